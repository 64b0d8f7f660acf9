//! The start of an operator whose module file is missing, broken or failing its canary: the
//! embedded policy serves (no crash loop), `/policy` and metrics say why, and the file's
//! module is swapped in once it passes.

use capt_host_swap::{Fallback, SwapConfig};

use crate::embedded::DEFAULT_POLICY;
use crate::support::{
    Capt, Files, SETTINGS, Swapping, TempDir, digest, fixtures, metric, policy_until, server,
    start, v1, v2,
};

fn with_fallback(mut config: SwapConfig) -> SwapConfig {
    config.fallback = Some(Fallback {
        bytes: DEFAULT_POLICY,
        label: "embedded default".into(),
    });
    config
}

/// The `capt_host_policy_fallback` gauge.
fn fallback_gauge(operator: &Swapping) -> f64 {
    metric(&operator.metrics(), "capt_host_policy_fallback", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_module_at_start_leaves_the_embedded_policy_serving_until_a_good_one_arrives() {
    crate::support::trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let broken = fixtures::truncated(fixtures::V2);
    let files = Files::new("fallback-broken", &broken);
    let (operator, _reports) =
        start(&server, "fallback-broken", with_fallback(files.config())).await;
    let report = policy_until(
        &operator,
        "the start failure to be reported",
        |report, _| report.rejections >= 1,
    )
    .await;
    assert_eq!(report["active"]["digest"], digest(&v1()), "{report:#}");
    assert!(report["active"].get("source").is_none(), "{report:#}");
    assert_eq!(report["fallback"]["reason"], "compile", "{report:#}");
    assert_eq!(report["fallback"]["digest"], digest(&broken), "{report:#}");
    assert_eq!(report["last_rejected"]["reason"], "compile", "{report:#}");
    assert_eq!(fallback_gauge(&operator), 1.0);
    // The embedded policy reconciles.
    capt.converge("fallback").await;

    files.replace(&v2());
    let report = policy_until(&operator, "v2 to be promoted", |report, _| {
        report.active.digest == digest(&v2())
    })
    .await;
    assert!(report.get("fallback").is_none(), "{report:#}");
    assert_eq!(fallback_gauge(&operator), 0.0);
    operator.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_failing_its_canary_at_start_is_not_served() {
    crate::support::trace();
    let server = server().await;
    let wrong = fixtures::bytes(fixtures::WRONG);
    let files = Files::new("fallback-canary", &wrong);
    let (operator, _reports) =
        start(&server, "fallback-canary", with_fallback(files.config())).await;
    let report = policy_until(
        &operator,
        "the canary failure to be reported",
        |report, _| report.rejections >= 1,
    )
    .await;
    assert_eq!(report["active"]["digest"], digest(&v1()), "{report:#}");
    assert_eq!(report["fallback"]["reason"], "canary_failed", "{report:#}");
    assert_eq!(report["fallback"]["digest"], digest(&wrong), "{report:#}");
    operator.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_module_and_settings_files_the_embedded_policy_serves_until_they_appear() {
    crate::support::trace();
    let server = server().await;
    let capt = Capt::new(&server);
    // An optional ConfigMap volume that is not there yet: an empty directory.
    let mount = TempDir::new("fallback-missing");
    let mut config = SwapConfig::new(mount.join("policy.wasm"));
    config.settings = Some(mount.join("settings.yaml"));
    config.debounce = std::time::Duration::from_millis(100);
    config.rescan = None;
    config.canary = crate::embedded::canary();
    let (operator, _reports) = start(&server, "fallback-missing", with_fallback(config)).await;
    let report = operator.policy();
    assert_eq!(report.active.digest, digest(&v1()));
    let fallback = report.fallback.as_ref().expect("the fallback is reported");
    assert_eq!(fallback.reason, "read");
    assert_eq!(report.rejections, 0, "a missing file is no rejection");
    capt.converge("missing").await;
    assert_eq!(fallback_gauge(&operator), 1.0);

    // The ConfigMap is created: settings, then the module.
    std::fs::write(mount.join("settings.yaml"), SETTINGS).unwrap();
    std::fs::write(mount.join("policy.wasm"), v2()).unwrap();
    let report = policy_until(&operator, "v2 from the new files", |report, _| {
        report.active.digest == digest(&v2())
    })
    .await;
    assert!(report.get("fallback").is_none(), "{report:#}");
    assert_eq!(
        report["active"]["source"],
        mount.join("policy.wasm").display().to_string()
    );
    operator.shutdown().await.expect("stops cleanly");
}
