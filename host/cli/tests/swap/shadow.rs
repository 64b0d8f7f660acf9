//! Shadow mode: v2 computes next to v1; its differences are reported, never written.

use std::time::Duration;

use crate::support::{
    Capt, Files, condition_of, digest, eventually, metric, pod_events, policy_until,
    ready_true_message, server, start, v1, v2,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_in_shadow_mode_reports_its_differences_without_writing_them() {
    crate::support::trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let files = Files::new("shadow", &v1());
    let mut config = files.config();
    // Long enough for the test to make both objects ready while v2 shadows.
    config.shadow = Duration::from_secs(20);
    let (operator, _) = start(&server, "shadow", config).await;

    // The cluster waits for its control plane.
    capt.create("shadow").await;
    capt.provision_vpc("shadow").await;
    eventually("the VPC to be ready", || async {
        capt.capt_cluster("shadow")
            .await
            .and_then(|c| condition_of(&c, "Ready"))
            .as_deref()
            == Some("False/WaitingForControlPlaneEndpoint")
    })
    .await;

    files.write(&v2());
    let v2_digest = digest(&v2());
    policy_until(&operator, "the shadow run to start", |report, _| {
        report
            .shadow
            .as_ref()
            .is_some_and(|s| s.state == "running" && s.candidate.digest == v2_digest)
    })
    .await;
    // v1 makes both objects ready; v2 computes the same reconciles and differs (its mark).
    capt.provision_control_plane("shadow").await;
    eventually("v1 to converge the cluster", || capt.converged("shadow")).await;
    let report = policy_until(&operator, "a shadow difference", |report, _| {
        report
            .shadow
            .as_ref()
            .is_some_and(|s| s.stats.differences > 0)
    })
    .await;
    let shadow = &report["shadow"];
    assert_eq!(report["active"]["digest"], digest(&v1()), "v1 still serves");
    let recent = shadow["recent"].as_array().unwrap();
    assert!(
        recent
            .iter()
            .any(|d| d["diff"].as_str().unwrap().contains("(policy v2)")),
        "{shadow:#}"
    );
    assert!(shadow["comparisons"].as_u64().unwrap() >= shadow["differences"].as_u64().unwrap());
    assert_eq!(shadow["candidate_failures"], 0);

    // Nothing v2 computed was written: the messages are v1's.
    for object in [
        capt.capt_cluster("shadow").await,
        capt.control_plane("shadow").await,
    ] {
        let message = ready_true_message(&object.unwrap()).unwrap();
        assert!(
            !message.ends_with(policy_fixtures::V2_SUFFIX),
            "{message:?}"
        );
    }
    let text = operator.metrics();
    assert!(metric(&text, "capt_host_policy_shadow_differences_total", &[]) > 0.0);
    assert!(metric(&text, "capt_host_policy_shadow_comparisons_total", &[]) > 0.0);
    assert_eq!(metric(&text, "capt_host_policy_swaps_total", &[]), 0.0);
    assert_eq!(pod_events(&server, "PolicyShadowStarted").len(), 1);

    // After the shadow run, v2 is promoted.
    let report = policy_until(
        &operator,
        "v2 to be promoted after its shadow run",
        |report, _| report.active.digest == v2_digest,
    )
    .await;
    assert_eq!(report["shadow"]["state"], "finished");
    assert!(report["last_swap"]["shadow"].as_u64().unwrap() > 0);
    operator.shutdown().await.expect("stops cleanly");
}
