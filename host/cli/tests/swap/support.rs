//! Shared by the hot-swap tests: the in-process API server with the CAPT CRDs, one engine for
//! every module of this binary, module files in temporary directories, operators that swap,
//! CAPT objects and the test's part of Crossplane (`../shared/capt.rs`), `/policy` and metrics
//! helpers; the plumbing both binaries share is `../shared/harness.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use crate::capt::*;
pub use crate::harness::{eventually, http_get, metric, server, trace, within};

use crate::embedded::DEFAULT_POLICY;
use capt_host_operator::{Operator, OperatorConfig, OperatorError, Reconciled, RetryPolicy};
use capt_host_runtime::{Engine, Limits};
use capt_host_swap::{EventTarget, PolicyReport, PolicyStatus, SwapConfig, Swapper};
use inproc_apiserver::ApiServer;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::broadcast;

pub use policy_fixture_artifacts as fixtures;

/// How long any wait may take before the test fails (never a timing assertion: only a guard
/// against hanging, generous for a loaded 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(90);

/// The settings of every module file: the policy's `pollInterval` is an hour, so objects
/// converge only because the operator re-triggers on changes.
pub const SETTINGS: &str = "pollInterval: 1h\n";

/// The Pod swap events are recorded about.
pub const POD: &str = "capt-status-0";

/// The engine every module of this binary runs in (several operators run at once: room for
/// all their calls).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::new(Limits {
            concurrent_calls: 64,
            ..Limits::default()
        })
        .expect("the engine starts")
    })
}

/// The SHA-256 of `bytes`, in hex (what `/policy` reports).
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes of the default (embedded) policy: "v1" in these tests.
pub fn v1() -> Vec<u8> {
    DEFAULT_POLICY.to_vec()
}

/// The bytes of the `v2` fixture.
pub fn v2() -> Vec<u8> {
    fixtures::bytes(fixtures::V2)
}

/// A directory removed (with its content) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory named after `name`.
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "capt-host-swap-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` in the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Module files: `policy.wasm` holding `module`, and `settings.yaml`, in a temporary
/// directory.
pub struct Files {
    pub dir: TempDir,
}

impl Files {
    /// A directory with `module` and the test settings.
    pub fn new(name: &str, module: &[u8]) -> Self {
        let dir = TempDir::new(name);
        std::fs::write(dir.join("policy.wasm"), module).expect("writes the module");
        std::fs::write(dir.join("settings.yaml"), SETTINGS).expect("writes the settings");
        Self { dir }
    }

    /// The module file.
    pub fn module(&self) -> PathBuf {
        self.dir.join("policy.wasm")
    }

    /// The settings file.
    pub fn settings(&self) -> PathBuf {
        self.dir.join("settings.yaml")
    }

    /// Replaces the module, as `cp new policy.wasm` does (truncate and write in place).
    pub fn write(&self, module: &[u8]) {
        std::fs::write(self.module(), module).expect("writes the module");
    }

    /// Replaces the module atomically, as `mv new policy.wasm` does (a new file renamed over
    /// the old one).
    pub fn replace(&self, module: &[u8]) {
        let temporary = self.dir.join(".policy.wasm.new");
        std::fs::write(&temporary, module).expect("writes the module");
        std::fs::rename(&temporary, self.module()).expect("renames the module");
    }

    /// The swap configuration for these files: short debounce, no periodic re-read, events
    /// about [`POD`].
    pub fn config(&self) -> SwapConfig {
        let mut config = SwapConfig::new(self.module());
        config.settings = Some(self.settings());
        config.debounce = Duration::from_millis(100);
        config.rescan = None;
        config.canary = crate::embedded::canary();
        config.events = Some(EventTarget::pod("default", POD, None));
        config
    }
}

/// An operator configuration with short retries, named `identity`, serving HTTP on a free
/// port.
pub fn operator_config(identity: &str) -> OperatorConfig {
    let mut config = OperatorConfig::new("capt-status", identity);
    config.retry = RetryPolicy {
        min: Duration::from_millis(50),
        max: Duration::from_secs(1),
    };
    config.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    config.probe_addr = Some("127.0.0.1:0".parse().unwrap());
    config
}

/// An operator with hot swaps plugged in, and the status they report.
pub struct Swapping {
    operator: Operator,
    status: Arc<PolicyStatus>,
}

impl std::ops::Deref for Swapping {
    type Target = Operator;

    fn deref(&self) -> &Operator {
        &self.operator
    }
}

impl Swapping {
    /// What `/policy` serves.
    pub fn policy(&self) -> PolicyReport {
        self.status.report()
    }

    /// Stops the operator (and the swaps) gracefully.
    pub async fn shutdown(self) -> Result<(), OperatorError> {
        self.operator.shutdown().await
    }
}

/// Loads `swap` and starts an operator swapping it on `server`; waits until its caches are
/// synced. The reports of all its reconciles are collected from before the first one.
pub async fn start(
    server: &ApiServer,
    identity: &str,
    swap: SwapConfig,
) -> (Swapping, broadcast::Receiver<Reconciled>) {
    // On a blocking thread, as `capt-host run` does: verdict stores block.
    let swapper = tokio::task::spawn_blocking(move || Swapper::load(engine(), swap))
        .await
        .expect("the load task ends")
        .expect("the initial module loads");
    let client =
        Client::try_from(server.kube_config().expect("a client configuration")).expect("a client");
    let mut operator = Operator::builder(client, operator_config(identity), swapper.slot().clone());
    let status = swapper.attach(&mut operator);
    let operator = Swapping {
        operator: operator.start().await.expect("the operator starts"),
        status,
    };
    let reconciles = operator.reconciles();
    within("the caches to sync", operator.ready()).await;
    (operator, reconciles)
}

/// Waits until `/policy` (read over HTTP) satisfies `condition`; returns that report.
pub async fn policy_until(
    operator: &Swapping,
    what: &str,
    mut condition: impl FnMut(&PolicyReport, &Value) -> bool,
) -> Value {
    let addr = operator.metrics_addr().expect("a metrics address");
    let waiting = async {
        loop {
            let report = operator.policy();
            let (code, body) = http_get(addr, "/policy").await;
            assert_eq!(code, 200, "/policy answers");
            let json: Value = serde_json::from_str(&body).expect("/policy is JSON");
            if condition(&report, &json) {
                return json;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    match tokio::time::timeout(PATIENCE, waiting).await {
        Ok(json) => json,
        Err(_) => panic!(
            "timed out after {PATIENCE:?} waiting for {what}; /policy: {:#}",
            serde_json::to_value(operator.policy()).unwrap()
        ),
    }
}

/// Failed reconciles in `text` (metrics), conflicts excepted: a 409 is part of normal
/// operation (the trigger is reconciled again at once from fresh data), not an error.
pub fn reconcile_errors(text: &str) -> f64 {
    metric(text, "capt_host_reconcile_errors_total", &[])
        - metric(
            text,
            "capt_host_reconcile_errors_total",
            &[("error", "conflict")],
        )
}

/// Counts reconcile reports by result, in the background, until dropped.
pub struct Tally {
    counts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tally {
    /// Starts counting `reports`.
    pub fn start(mut reports: broadcast::Receiver<Reconciled>) -> Self {
        let counts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let task = {
            let counts = counts.clone();
            tokio::spawn(async move {
                loop {
                    match reports.recv().await {
                        Ok(done) => {
                            *counts
                                .lock()
                                .unwrap()
                                .entry(done.result.label().to_owned())
                                .or_default() += 1;
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            *counts.lock().unwrap().entry("lagged".into()).or_default() += n;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            })
        };
        Self { counts, task }
    }

    /// The counts so far, by result.
    pub fn counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.counts.lock().unwrap().clone()
    }

    /// The count of `result`.
    pub fn get(&self, result: &str) -> u64 {
        self.counts().get(result).copied().unwrap_or(0)
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The message of the Ready condition of `object`, if it is True.
pub fn ready_true_message(object: &Value) -> Option<String> {
    let conditions = object.pointer("/status/conditions")?.as_array()?;
    let ready = conditions
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")?;
    ready["message"].as_str().map(str::to_owned)
}

/// The events recorded about the Pod [`POD`] with `reason`.
pub fn pod_events(server: &ApiServer, reason: &str) -> Vec<Event> {
    server
        .store()
        .list::<Event>(Some("default"))
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("Pod") && r.name.as_deref() == Some(POD)
                })
        })
        .collect()
}

/// Merges `annotations` into the metadata of `name`.
pub async fn annotate(api: &Api<DynamicObject>, name: &str, annotations: Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": annotations}})),
    )
    .await
    .unwrap_or_else(|e| panic!("annotating {name} failed: {e}"));
}
