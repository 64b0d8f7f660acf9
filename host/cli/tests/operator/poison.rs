//! Poison objects: objects the operator cannot read, in each way the in-process API server
//! lets a client write them (it validates names only), next to a healthy cluster of the same
//! kinds. The healthy cluster converges, the operator stays ready, each poison object is
//! reported (a metric, and a Warning event on an unreadable trigger) and only its own
//! reconciles fail; fixed, it is reconciled like any other.
//!
//! On the test double only (not parameterised by backend): it stores objects the real server
//! refuses (`real::schemas` covers the extreme ones there).

use kube::Client;
use serde_json::{Value, json};

use crate::common::{
    Capt, condition_of, config, eventually, http_get, metric, server, start, trace,
};

const CAPT_CLUSTERS: &str =
    "/apis/infrastructure.cluster.x-k8s.io/v1beta1/namespaces/default/captclusters";
const APPLIES: &str =
    "/apis/infrastructure.cluster.x-k8s.io/v1beta1/namespaces/default/workspacetemplateapplies";

/// Sends `body` with `method` to `path` as raw JSON, past every typed client (which could not
/// write what these tests write); the response is not decoded either.
async fn raw(client: &Client, method: &str, path: &str, content_type: &str, body: &Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body.to_string().into_bytes())
        .expect("a request");
    client
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
}

/// A CAPTCluster without an owner (the policy then writes its Ready condition only), with
/// `metadata` merged into its metadata and `spec` into its spec.
fn capt_cluster(name: &str, metadata: Value, spec: Value) -> Value {
    let mut object = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"region": "ap-northeast-1",
                 "vpcTemplateRef": {"name": "vpc-template", "namespace": "default"}},
    });
    for (part, fields) in [("metadata", metadata), ("spec", spec)] {
        for (key, value) in fields.as_object().expect("an object") {
            object[part][key] = value.clone();
        }
    }
    object
}

/// `0` nested `depth` levels deep in arrays.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(0), |inner, _| Value::Array(vec![inner]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_objects_fail_only_their_own_reconciles_and_are_reported() {
    trace();
    let server = server().await;
    let client = server.client();
    let capt = Capt::new(&server);
    let json = "application/json";
    // Objects that the operator cannot read: metadata of the wrong types, in the fields the
    // test double does not validate (a real server validates them all).
    let unreadable = [
        ("owners", json!({"ownerReferences": "a string"})),
        ("annotations", json!({"annotations": {"a": 1}})),
        ("finalizers", json!({"finalizers": "not a list"})),
    ];
    for (name, metadata) in &unreadable {
        let object = capt_cluster(name, metadata.clone(), json!({}));
        raw(&client, "POST", CAPT_CLUSTERS, json, &object).await;
    }
    // Objects that it can read, though they are extreme: as deep as the server parses (128
    // levels in all) and a 1 MiB string, in fields the policy does not read.
    let extreme = [
        ("deep", json!({"deep": nested(120)})),
        ("huge", json!({"huge": "x".repeat(1 << 20)})),
    ];
    for (name, spec) in &extreme {
        let object = capt_cluster(name, json!({}), spec.clone());
        raw(&client, "POST", CAPT_CLUSTERS, json, &object).await;
    }
    // An unreadable object of a kind the policy only reads.
    let apply = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "WorkspaceTemplateApply",
        "metadata": {"name": "poison", "namespace": "default", "finalizers": "not a list"},
        "spec": {},
    });
    raw(&client, "POST", APPLIES, json, &apply).await;

    // The operator starts on them: its caches sync, and it is ready.
    let mut config = config("poison");
    config.probe_addr = Some("127.0.0.1:0".parse().unwrap());
    let (operator, _) = start(&server, config).await;
    let addr = operator.probe_addr().expect("a probe address");
    assert_eq!(http_get(addr, "/readyz").await, (200, "ok".to_owned()));

    // A healthy cluster of the same kinds converges.
    capt.converge("good").await;

    // Each unreadable trigger: a Warning event on it, and failed reconciles.
    for (name, _) in &unreadable {
        let warnings = || async {
            capt.events_about("CAPTCluster", name)
                .await
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("UnreadableObject"))
                .collect::<Vec<_>>()
        };
        eventually(
            &format!("an UnreadableObject Warning on {name}"),
            || async { !warnings().await.is_empty() },
        )
        .await;
        let warning = &warnings().await[0];
        assert_eq!(warning.type_.as_deref(), Some("Warning"));
        let note = warning.note.as_deref().unwrap_or_default();
        assert!(
            note.contains(&format!("CAPTCluster/default/{name} cannot be read"))
                && note.contains("metadata."),
            "the note says which object and field: {note}"
        );
        assert_eq!(
            capt.capt_cluster(name)
                .await
                .and_then(|c| c.get("status").cloned()),
            None
        );
    }
    // The extreme ones are reconciled like any other.
    for (name, _) in &extreme {
        eventually(&format!("{name} to get its Ready condition"), || async {
            capt.capt_cluster(name)
                .await
                .and_then(|c| condition_of(&c, "Ready"))
                .is_some()
        })
        .await;
    }
    let metrics = operator.metrics();
    let poison = |kind| {
        metric(
            &metrics,
            "capt_host_poison_objects_total",
            &[("kind", kind)],
        )
    };
    assert_eq!(
        poison("CAPTCluster"),
        3.0,
        "each unreadable CAPTCluster, once"
    );
    assert_eq!(poison("WorkspaceTemplateApply"), 1.0);
    let unreadable_errors = metric(
        &metrics,
        "capt_host_reconcile_errors_total",
        &[("kind", "CAPTCluster"), ("error", "unreadable")],
    );
    assert!(
        unreadable_errors >= 3.0,
        "{unreadable_errors} unreadable reconciles"
    );
    assert_eq!(http_get(addr, "/readyz").await, (200, "ok".to_owned()));

    // Fixed, an object is reconciled like any other.
    let fix = json!({"metadata": {"annotations": {"a": "1"}}});
    let path = format!("{CAPT_CLUSTERS}/annotations");
    raw(
        &client,
        "PATCH",
        &path,
        "application/merge-patch+json",
        &fix,
    )
    .await;
    eventually(
        "the fixed CAPTCluster to get its Ready condition",
        || async {
            capt.capt_cluster("annotations")
                .await
                .and_then(|c| condition_of(&c, "Ready"))
                .is_some()
        },
    )
    .await;
    assert!(operator.is_ready(), "the operator carries on");
    operator.shutdown().await.expect("a clean shutdown");
}
