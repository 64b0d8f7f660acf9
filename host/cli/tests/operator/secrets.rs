//! Secrets are read only in the trigger's namespace and in `secret_namespaces`
//! (`--secret-namespaces`): a Secret elsewhere reaches the policy as missing, without a request.
//!
//! On the test double only (not parameterised by backend): its request log counts the Secret GETs.

use std::time::Duration;

use capt_host_operator::OperatorConfig;
use capt_policy::{Error, ObjectRef, Patch, Request, Response, Subresource};
use inproc_apiserver::Verb;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::common::{Capt, config, create, eventually, native, sent, server, start_with};

/// The Secrets the policy asks for: `(namespace, name)`. The trigger lives in `default`.
const SECRETS: [(&str, &str); 2] = [("default", "local"), ("kube-public", "remote")];

fn secret(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef::new("v1", "Secret", Some(namespace), name)
}

/// Asks for both Secrets, then writes into the trigger's status which ones it was given.
fn reports_the_secrets_it_was_given(request: &Request) -> Result<Response, Error> {
    let wanted: Vec<ObjectRef> = SECRETS.iter().map(|(ns, name)| secret(ns, name)).collect();
    let asked = |r: &ObjectRef| request.missing.iter().any(|m| m.same_object(r));
    let pending: Vec<ObjectRef> = wanted
        .iter()
        .filter(|r| sent(request, r).is_none() && !asked(r))
        .cloned()
        .collect();
    if !pending.is_empty() {
        return Ok(Response {
            requirements: pending,
            ..Response::default()
        });
    }
    let trigger = &request.trigger;
    let version = sent(request, trigger)
        .and_then(|m| m["metadata"]["resourceVersion"].as_str().map(str::to_owned));
    let given: serde_json::Map<String, Value> = SECRETS
        .iter()
        .map(|(ns, name)| {
            let found = sent(request, &secret(ns, name)).is_some();
            ((*name).to_owned(), Value::from(found))
        })
        .collect();
    Ok(Response {
        patches: vec![Patch {
            target: trigger.clone(),
            subresource: Subresource::Status,
            merge_patch: json!({"status": {"given": given}}).to_string(),
            resource_version: version,
        }],
        ..Response::default()
    })
}

/// Runs the policy with `config` on a CAPTCluster, both Secrets existing: what it was given,
/// and how many Secrets were read per reconcile (each reconcile reads its Secrets again).
async fn given(config: OperatorConfig) -> (Value, f64) {
    let server = server().await;
    let capt = Capt::new(&server);
    for (namespace, name) in SECRETS {
        let secrets: Api<Secret> = Api::namespaced(server.client(), namespace);
        let manifest = json!({"metadata": {"name": name}, "stringData": {"key": "value"}});
        let secret = serde_json::from_value(manifest).expect("a Secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("the Secret is created");
    }
    let manifest = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTCluster",
        "metadata": {"name": "reader"},
        "spec": {"region": "ap-northeast-1"},
    });
    create(&capt.capt_clusters, manifest).await;
    let policy = native(reports_the_secrets_it_was_given);
    let (operator, mut reconciles) = start_with(&server, config, policy).await;
    let status = || async {
        capt.capt_cluster("reader")
            .await
            .and_then(|c| c.get("status").cloned())
    };
    eventually("the policy to report what it was given", || async {
        status().await.is_some()
    })
    .await;
    let records = reconciles
        .settle_records(&["CAPTCluster/reader"], Duration::from_millis(500))
        .await;
    let reads = server.requests().count(Verb::Get, "secrets");
    operator.shutdown().await.expect("a clean shutdown");
    let per_reconcile = reads as f64 / records.len() as f64;
    (
        status().await.expect("a status")["given"].clone(),
        per_reconcile,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_outside_the_trigger_namespace_is_missing_and_never_read() {
    let (given, reads) = given(config("secrets")).await;
    assert_eq!(given, json!({"local": true, "remote": false}));
    assert_eq!(
        reads, 1.0,
        "only the Secret of the trigger's namespace is read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_a_configured_namespace_is_read() {
    let mut config = config("secrets");
    config.secret_namespaces = vec!["kube-public".into()];
    let (given, reads) = given(config).await;
    assert_eq!(given, json!({"local": true, "remote": true}));
    assert_eq!(reads, 2.0, "both Secrets are read");
}
