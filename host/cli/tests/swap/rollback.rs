//! A promoted module that fails live reconciles is rolled back, and not tried again.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    Capt, Files, Tally, annotate, digest, eventually, fixtures, metric, pod_events, policy_until,
    server, start, v1,
};

const CLUSTERS: [&str; 3] = ["fail-a", "fail-b", "fail-c"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_failing_live_reconciles_is_rolled_back_and_not_retried() {
    crate::support::trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let files = Files::new("rollback", &v1());
    let (operator, reports) = start(&server, "rollback", files.config()).await;

    // Six triggers carry the annotation live-fail fails on; v1 ignores it.
    for name in CLUSTERS {
        capt.create(name).await;
        let annotation = json!({policy_fixtures::FAIL_LIVE_ANNOTATION: "true"});
        annotate(&capt.capt_clusters, name, annotation.clone()).await;
        annotate(&capt.control_planes, name, annotation).await;
    }
    capt.converge("clean").await;

    let tally = Tally::start(reports);
    let live_fail = fixtures::bytes(fixtures::LIVE_FAIL);
    files.replace(&live_fail);
    // It passes the canary, is promoted, fails every annotated trigger: rolled back.
    let report = policy_until(&operator, "the rollback", |report, _| report.rollbacks == 1).await;
    assert_eq!(report["active"]["digest"], digest(&v1()));
    let rollback = &report["last_rollback"];
    assert_eq!(rollback["from"]["digest"], digest(&live_fail));
    assert_eq!(rollback["to"]["digest"], digest(&v1()));
    assert!(
        rollback["message"]
            .as_str()
            .unwrap()
            .contains(policy_fixtures::LIVE_FAIL_MESSAGE),
        "{rollback}"
    );
    assert_eq!(report["last_rejected"]["reason"], "rolled_back");
    assert!(tally.get("error") >= 5, "{:?}", tally.counts());
    let text = operator.metrics();
    assert_eq!(metric(&text, "capt_host_policy_swaps_total", &[]), 1.0);
    assert_eq!(metric(&text, "capt_host_policy_rollbacks_total", &[]), 1.0);
    assert_eq!(
        metric(
            &text,
            "capt_host_policy_active_info",
            &[("digest", &digest(&v1()))]
        ),
        1.0
    );
    assert_eq!(pod_events(&server, "PolicyRolledBack").len(), 1);

    // v1 serves again: every trigger reconciles without error after the rollback.
    // (Counted before the changes: their reconciles may finish before `annotate` returns.)
    let errors = tally.get("error");
    let ok = tally.get("changed") + tally.get("unchanged");
    annotate(&capt.workspaces, "clean-vpc", json!({"after": "rollback"})).await;
    for name in CLUSTERS {
        annotate(&capt.capt_clusters, name, json!({"after": "rollback"})).await;
    }
    eventually("reconciles under v1 again", || async {
        tally.get("changed") + tally.get("unchanged") >= ok + CLUSTERS.len() as u64
    })
    .await;
    // (Reconciles of live-fail that were in flight during the rollback may still end.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late_errors = tally.get("error") - errors;
    assert!(capt.converged("clean").await);

    // The same file is not tried again: a new event in the directory changes nothing.
    std::fs::write(files.dir.join("unrelated"), "x").unwrap();
    files.write(&live_fail);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = operator.policy();
    assert_eq!(report.swaps, 1, "not promoted again");
    assert_eq!(report.active.digest, digest(&v1()));
    println!(
        "rollback: reconciles by result {:?}; errors after the rollback: {late_errors}",
        tally.counts()
    );
    operator.shutdown().await.expect("stops cleanly");
}
