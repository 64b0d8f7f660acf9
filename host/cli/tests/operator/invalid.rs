//! An object the policy rejects: a Warning event (recorded once), backoff, and no harm to the
//! rest; fixing the object fixes the reconcile.
//!
//! On the test double only (not parameterised by backend): the real server's CRD schema refuses
//! the rejected object (`existingVpcId: 42`) before the policy could see it.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::common::{Capt, condition_of, config, eventually, metric, server, start, trace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_policy_rejects_is_a_warning_event_and_backoff_not_a_panic() {
    trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let (operator, _) = start(&server, config("invalid")).await;
    // `existingVpcId` must be a string: the policy answers invalid-input.
    capt.create_with(
        "bad",
        json!({"region": "ap-northeast-1", "existingVpcId": 42}),
    )
    .await;
    capt.create("good").await;

    // The operator's Warnings about the rejection (the policy's own events, e.g. a
    // `ClusterNotFound` when the CAPTCluster is reconciled before its Cluster is cached, are
    // not this test's subject).
    let warnings = || async {
        capt.events_about("CAPTCluster", "bad")
            .await
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| e.reason.as_deref() == Some("PolicyFailed"))
            .collect::<Vec<_>>()
    };
    eventually(
        "a PolicyFailed Warning on the rejected CAPTCluster",
        || async { !warnings().await.is_empty() },
    )
    .await;
    let first = warnings().await;
    let warning = &first[0];
    let note = warning.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("spec.existingVpcId must be a string"),
        "the note says what is wrong: {note}"
    );

    // Retried with backoff, counted, and recorded once.
    let rejected = || {
        metric(
            &operator.metrics(),
            "capt_host_reconcile_errors_total",
            &[("kind", "CAPTCluster"), ("error", "rejected")],
        )
    };
    eventually("retries", || async { rejected() >= 3.0 }).await;
    let before = rejected();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let retries = rejected() - before;
    assert!(
        retries <= 5.0,
        "backoff, not a hot loop: {retries} retries in 2 s"
    );
    let warnings = warnings().await;
    assert_eq!(
        warnings.len(),
        1,
        "one Warning for a repeating failure: {warnings:?}"
    );
    assert!(
        warnings[0].series.is_none(),
        "and never repeated: {warnings:?}"
    );

    // The other cluster is not held up.
    eventually("the good CAPTCluster to be reconciled", || async {
        capt.capt_cluster("good")
            .await
            .and_then(|c| condition_of(&c, "Ready"))
            .as_deref()
            == Some("False/WaitingForWorkspace")
    })
    .await;

    // Fixed, the object is reconciled normally.
    let fix = json!({"spec": {"existingVpcId": "vpc-existing"}});
    capt.capt_clusters
        .patch("bad", &PatchParams::default(), &Patch::Merge(&fix))
        .await
        .expect("the CAPTCluster is fixed");
    eventually("the fixed CAPTCluster to use the existing VPC", || async {
        capt.capt_cluster("bad")
            .await
            .and_then(|c| condition_of(&c, "VPCReady"))
            .as_deref()
            == Some("True/ExistingVPCUsed")
    })
    .await;
    assert!(
        operator.is_ready() && operator.is_leader(),
        "the operator carries on"
    );
    operator.shutdown().await.expect("a clean shutdown");
}
