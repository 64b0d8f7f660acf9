//! An operator keeps serving its module through every bad module written over its file.

use serde_json::json;

use crate::support::{
    Capt, Files, Tally, annotate, digest, eventually, fixtures, http_get, metric, pod_events,
    policy_until, reconcile_errors, server, start, v1,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_module_is_rejected_and_the_running_one_keeps_serving() {
    crate::support::trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let files = Files::new("rejections", &v1());
    let mut config = files.config();
    config.max_module_bytes = 2 << 20;
    let (operator, reports) = start(&server, "rejections", config).await;
    let tally = Tally::start(reports);
    let addr = operator.probe_addr().unwrap();
    capt.converge("demo").await;

    let mut oversized = b"\0asm\x0d\0\x01\0".to_vec();
    oversized.resize((2 << 20) + 1, 0);
    let bad = [
        ("loop", fixtures::bytes(fixtures::LOOP), "canary_cpu_time"),
        (
            "alloc",
            fixtures::bytes(fixtures::ALLOC),
            "canary_out_of_memory",
        ),
        ("panic", fixtures::bytes(fixtures::PANIC), "canary_trap"),
        ("wasi", fixtures::bytes(fixtures::WASI), "unexpected_import"),
        (
            "old-world",
            fixtures::bytes(fixtures::OLD_WORLD),
            "incompatible_version",
        ),
        ("wrong", fixtures::bytes(fixtures::WRONG), "canary_failed"),
        ("truncated", fixtures::truncated(fixtures::V2), "compile"),
        (
            "nested-blocks",
            crate::guests::nested_blocks(1 << 20),
            "too_complex",
        ),
        ("oversized", oversized, "too_large"),
    ];
    for (round, (name, bytes, reason)) in bad.into_iter().enumerate() {
        files.replace(&bytes);
        let expected = (name != "oversized").then(|| digest(&bytes));
        let seen = round as u64 + 1;
        let report = policy_until(&operator, &format!("{name} to be rejected"), |report, _| {
            report.rejections >= seen
        })
        .await;
        let rejected = &report["last_rejected"];
        assert_eq!(rejected["reason"], reason, "{name}: {rejected}");
        assert!(!rejected["message"].as_str().unwrap().is_empty());
        if let Some(expected) = expected {
            assert_eq!(rejected["digest"], expected, "{name}");
        }
        // The running module is untouched and keeps reconciling.
        assert_eq!(report["active"]["digest"], digest(&v1()), "{name}");
        let before = tally.get("changed") + tally.get("unchanged");
        annotate(&capt.workspaces, "demo-vpc", json!({"touched-after": name})).await;
        eventually(&format!("a reconcile after {name}"), || async {
            tally.get("changed") + tally.get("unchanged") > before
        })
        .await;
        assert!(capt.converged("demo").await);
    }

    let text = operator.metrics();
    for reason in [
        "canary_cpu_time",
        "canary_out_of_memory",
        "canary_trap",
        "unexpected_import",
        "incompatible_version",
        "canary_failed",
        "compile",
        "too_complex",
        "too_large",
    ] {
        assert_eq!(
            metric(
                &text,
                "capt_host_policy_rejections_total",
                &[("reason", reason)]
            ),
            1.0,
            "{reason}"
        );
    }
    assert_eq!(metric(&text, "capt_host_policy_swaps_total", &[]), 0.0);
    assert_eq!(
        metric(
            &text,
            "capt_host_policy_active_info",
            &[("digest", &digest(&v1()))]
        ),
        1.0
    );
    assert_eq!(reconcile_errors(&text), 0.0);
    assert_eq!(tally.get("error"), 0, "{:?}", tally.counts());
    let events = pod_events(&server, "PolicyRejected");
    assert!(
        events.iter().any(|e| e
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with("canary_cpu_time: "))),
        "{events:#?}"
    );
    let (code, _) = http_get(addr, "/healthz").await;
    assert_eq!(code, 200);
    operator.shutdown().await.expect("stops cleanly");
}
