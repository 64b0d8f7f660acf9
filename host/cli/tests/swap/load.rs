//! v1 -> v2 while objects keep changing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Capt, Files, Tally, annotate, condition_of, digest, eventually, metric, pod_events,
    policy_until, ready_true_message, reconcile_errors, server, start, v1, v2,
};

const CLUSTERS: [&str; 3] = ["load-a", "load-b", "load-c"];
/// A cluster made Ready by v1 before the swap: rewritten by v2 when every trigger is
/// reconciled after the promotion.
const READY_UNDER_V1: &str = "load-early";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_under_load_loses_no_reconcile_and_every_object_shows_v2_after_it() {
    crate::support::trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let files = Files::new("load", &v1());
    let (operator, reports) = start(&server, "load", files.config()).await;
    let tally = Tally::start(reports);

    // One cluster is Ready under v1 before the swap; v2 must rewrite it after promotion.
    capt.create(READY_UNDER_V1).await;
    capt.provision_vpc(READY_UNDER_V1).await;
    capt.provision_control_plane(READY_UNDER_V1).await;
    eventually("the early cluster to converge under v1", || {
        capt.converged(READY_UNDER_V1)
    })
    .await;
    let v1_message =
        ready_true_message(&capt.control_plane(READY_UNDER_V1).await.unwrap()).unwrap();
    assert!(
        !v1_message.ends_with(policy_fixtures::V2_SUFFIX),
        "{v1_message:?}"
    );

    // Every other cluster waits for its control plane: not Ready yet.
    for name in CLUSTERS {
        capt.create(name).await;
        capt.provision_vpc(name).await;
    }
    eventually("the VPCs to be ready", || async {
        for name in CLUSTERS {
            let ready = capt
                .capt_cluster(name)
                .await
                .and_then(|c| condition_of(&c, "Ready"));
            if ready.as_deref() != Some("False/WaitingForControlPlaneEndpoint") {
                return false;
            }
        }
        true
    })
    .await;

    // The load: the Workspaces and applies every trigger reads keep changing (annotations:
    // nothing the operator writes, so no conflict is expected either).
    let stop = Arc::new(AtomicBool::new(false));
    let ticks = Arc::new(AtomicU64::new(0));
    let load = {
        let (workspaces, applies) = (capt.workspaces.clone(), capt.applies.clone());
        let (stop, ticks) = (stop.clone(), ticks.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let tick = ticks.fetch_add(1, Ordering::Relaxed).to_string();
                for name in CLUSTERS {
                    annotate(
                        &workspaces,
                        &format!("{name}-vpc"),
                        json!({"load/tick": tick}),
                    )
                    .await;
                    annotate(
                        &applies,
                        &format!("{name}-eks-controlplane-apply"),
                        json!({"load/tick": tick}),
                    )
                    .await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let before = tally.counts();
    eventually("reconciles under load", || async {
        ticks.load(Ordering::Relaxed) > 20
    })
    .await;

    let written = Instant::now();
    files.write(&v2());
    let v2_digest = digest(&v2());
    let report = policy_until(&operator, "v2 to be promoted", |report, _| {
        report.active.digest == v2_digest
    })
    .await;
    let observed = written.elapsed();
    // More load on v2, then the control planes become ready: under v2.
    let ticks_at_swap = ticks.load(Ordering::Relaxed);
    eventually("reconciles under load after the swap", || async {
        ticks.load(Ordering::Relaxed) > ticks_at_swap + 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("the load task ends");
    for name in CLUSTERS {
        capt.provision_control_plane(name).await;
    }
    for name in CLUSTERS {
        eventually(&format!("{name} to converge"), || capt.converged(name)).await;
    }
    eventually("the cluster made Ready by v1 to show v2", || async {
        [
            capt.capt_cluster(READY_UNDER_V1).await,
            capt.control_plane(READY_UNDER_V1).await,
        ]
        .iter()
        .all(|object| {
            object
                .as_ref()
                .and_then(ready_true_message)
                .is_some_and(|m| m.ends_with(policy_fixtures::V2_SUFFIX))
        })
    })
    .await;
    for name in CLUSTERS.iter().chain([&READY_UNDER_V1]) {
        for (kind, object) in [
            ("CAPTCluster", capt.capt_cluster(name).await),
            ("CAPTControlPlane", capt.control_plane(name).await),
        ] {
            let message = ready_true_message(&object.unwrap()).unwrap();
            assert!(
                message.ends_with(policy_fixtures::V2_SUFFIX),
                "{kind} {name}: {message:?}"
            );
        }
    }

    let counts = tally.counts();
    let text = operator.metrics();
    println!(
        "swap under load: {} load rounds ({} objects changed each), reconciles by result {counts:?} \
         (before the swap: {before:?}); reconcile errors (409 conflicts excepted): {}; file written -> v2 serving: {observed:?}; \
         /policy last_swap: {}",
        ticks.load(Ordering::Relaxed),
        CLUSTERS.len() * 2,
        reconcile_errors(&text),
        report["last_swap"],
    );
    assert_eq!(tally.get("error"), 0, "{counts:?}");
    assert_eq!(tally.get("lagged"), 0, "every report was seen: {counts:?}");
    assert_eq!(reconcile_errors(&text), 0.0);
    assert_eq!(metric(&text, "capt_host_policy_swaps_total", &[]), 1.0);
    assert_eq!(
        metric(
            &text,
            "capt_host_policy_active_info",
            &[
                ("digest", &v2_digest),
                ("version", policy_fixtures::V2_VERSION)
            ]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "capt_host_policy_active_info",
            &[("digest", &digest(&v1()))]
        ),
        0.0,
        "only the active module is reported"
    );
    let label = report["active"]["label"].as_str().unwrap();
    assert!(
        metric(
            &text,
            "capt_host_reconciles_total",
            &[("module_version", label)]
        ) > 0.0,
        "reconciles ran under {label}"
    );
    assert_eq!(report["last_good"]["digest"], digest(&v1()));
    assert_eq!(
        report["active"]["source"],
        files.module().display().to_string()
    );
    assert_eq!(pod_events(&server, "PolicySwapped").len(), 1);
    operator.shutdown().await.expect("stops cleanly");
}
