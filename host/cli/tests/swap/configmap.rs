//! A module mounted the way the kubelet mounts a ConfigMap: `policy.wasm` is a symlink to
//! `..data/policy.wasm`, `..data` a symlink to a timestamped directory, and an update writes
//! a new directory and renames a new `..data` symlink over the old one.

#![cfg(unix)]

use std::os::unix::fs::symlink;
use std::path::Path;

use capt_host_operator::ReconcileResult;

use crate::support::{
    Capt, SETTINGS, TempDir, digest, fixtures, policy_until, server, start, v1, v2,
};

/// Writes the ConfigMap's content (`policy.wasm`, `settings.yaml`) to a new timestamped
/// directory of `dir` and points `..data` at it atomically, like the kubelet's AtomicWriter.
fn publish(dir: &Path, version: &str, module: &[u8]) {
    let data = dir.join(format!("..2026_01_01_00_00_00.{version}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("policy.wasm"), module).unwrap();
    std::fs::write(data.join("settings.yaml"), SETTINGS).unwrap();
    let temporary = dir.join("..data_tmp");
    symlink(data.file_name().unwrap(), &temporary).unwrap();
    std::fs::rename(&temporary, dir.join("..data")).unwrap();
    for file in ["policy.wasm", "settings.yaml"] {
        let link = dir.join(file);
        if link.symlink_metadata().is_err() {
            symlink(Path::new("..data").join(file), link).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_update_is_picked_up_and_every_trigger_is_reconciled_again() {
    crate::support::trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let mount = TempDir::new("configmap");
    publish(mount.path(), "1", &v1());
    let mut config = capt_host_swap::SwapConfig::new(mount.join("policy.wasm"));
    config.canary = crate::embedded::canary();
    config.settings = Some(mount.join("settings.yaml"));
    config.debounce = std::time::Duration::from_millis(100);
    config.rescan = None;
    let (operator, mut reports) = start(&server, "configmap", config).await;
    capt.converge("mounted").await;
    // Quiet: everything converged, no reconcile pending.
    while tokio::time::timeout(std::time::Duration::from_millis(500), reports.recv())
        .await
        .is_ok()
    {}

    publish(mount.path(), "2", &v2());
    let report = policy_until(&operator, "v2 from the new ..data", |report, _| {
        report.active.digest == digest(&v2())
    })
    .await;
    assert_eq!(report["active"]["version"], policy_fixtures::V2_VERSION);

    // Nothing changed in the cluster, yet both triggers are reconciled under v2.
    let mut seen = std::collections::BTreeSet::new();
    crate::support::within("every trigger to be reconciled again", async {
        while seen.len() < 2 {
            let done = reports.recv().await.expect("reports");
            assert_ne!(done.result, ReconcileResult::Error, "{done:?}");
            seen.insert(format!("{}/{}", done.trigger.kind, done.trigger.name));
        }
    })
    .await;
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["CAPTCluster/mounted", "CAPTControlPlane/mounted"]
    );

    // A ConfigMap with a bad module: rejected, v2 keeps serving.
    publish(mount.path(), "3", &fixtures::bytes(fixtures::WRONG));
    let report = policy_until(&operator, "the wrong module to be rejected", |report, _| {
        report.rejections == 1
    })
    .await;
    assert_eq!(report["last_rejected"]["reason"], "canary_failed");
    assert_eq!(report["active"]["digest"], digest(&v2()));
    operator.shutdown().await.expect("stops cleanly");
}
