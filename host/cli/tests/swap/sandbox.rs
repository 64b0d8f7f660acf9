//! The sandbox in an operator: a module that loops, panics or exhausts memory on some triggers
//! (the `live-fail` fixture, told by an annotation) fails those reconciles only, each with a
//! clear error, a Warning event and backoff; every other trigger converges.

use std::sync::Arc;
use std::time::Duration;

use capt_host_operator::Operator;

use capt_host_core::Policy;
use capt_host_runtime::{ActivePolicy, PolicySlot};
use capt_host_runtime::{Engine, Limits, WasmPolicy};
use kube::Client;
use serde_json::json;

use crate::support::{
    Capt, annotate, eventually, fixtures, http_get, metric, operator_config, server,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_or_a_limit_fails_one_reconcile_and_nothing_else() {
    crate::support::trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let engine = Engine::new(Limits {
        cpu_time: Duration::from_millis(250),
        memory_bytes: 32 << 20,
        concurrent_calls: 16,
        ..Limits::default()
    })
    .unwrap();
    let policy = WasmPolicy::load(&engine, &fixtures::bytes(fixtures::LIVE_FAIL)).unwrap();
    let sha256 = policy.sha256().to_owned();
    let policy: Arc<dyn Policy + Send + Sync> = Arc::new(policy);
    let active = ActivePolicy::new(policy, &sha256, Some(&json!({"pollInterval": "1h"}))).unwrap();
    let client = Client::try_from(server.kube_config().unwrap()).unwrap();
    let mut operator =
        Operator::builder(client, operator_config("sandbox"), PolicySlot::new(active));
    engine.pool_metrics().register(operator.metrics_registry());
    let operator = operator.start().await.unwrap();
    crate::support::within("the caches to sync", operator.ready()).await;

    for (name, failure) in [("loops", "loop"), ("panics", "panic"), ("hoards", "alloc")] {
        capt.create(name).await;
        annotate(
            &capt.capt_clusters,
            name,
            json!({policy_fixtures::FAIL_LIVE_ANNOTATION: failure}),
        )
        .await;
    }
    capt.converge("healthy").await;

    let errors = |text: &str, error: &str| {
        metric(
            text,
            "capt_host_reconcile_errors_total",
            &[("error", error)],
        )
    };
    eventually("each failure to be reported", || async {
        let text = operator.metrics();
        errors(&text, "cpu_time") > 0.0
            && errors(&text, "trap") > 0.0
            && errors(&text, "out_of_memory") > 0.0
    })
    .await;
    for (name, words) in [
        ("loops", "of CPU time in one call"),
        ("panics", policy_fixtures::PANIC_MESSAGE),
        ("hoards", "ran out of memory"),
    ] {
        eventually(&format!("a Warning event about {name}"), || async {
            capt.events_about("CAPTCluster", name)
                .await
                .iter()
                .any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("PolicyFailed")
                        && e.note.as_deref().is_some_and(|n| n.contains(words))
                })
        })
        .await;
    }
    // Every call took an instance slot through the gate, which /metrics shows.
    let text = operator.metrics();
    assert!(metric(&text, "capt_host_pool_wait_seconds_count", &[]) > 0.0);
    // Their control planes (not annotated) and the healthy cluster are served as usual.
    assert!(capt.converged("healthy").await);
    let (code, _) = http_get(operator.probe_addr().unwrap(), "/healthz").await;
    assert_eq!(code, 200);
    operator.shutdown().await.expect("stops cleanly");
}
