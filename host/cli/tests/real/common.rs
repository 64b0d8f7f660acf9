//! Shared by the real-server tests: a server with the CRDs, the embedded policy, operators,
//! bounded waits.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use capt_host_core::Policy;
use capt_host_operator::{Operator, OperatorConfig, RetryPolicy};
use capt_host_runtime::{ActivePolicy, Engine, Limits, PolicySlot, WasmPolicy};

use crate::embedded::DEFAULT_POLICY;
use kube::Client;
use kube_harness::{KubeServer, crds};

/// How long any wait may take before the test fails: a guard against hanging (the real
/// server on a loaded 2-core machine answers in milliseconds, but starts in seconds).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A fresh real server with every CRD the operator needs.
pub async fn server() -> KubeServer {
    trace();
    let server = KubeServer::start()
        .await
        .expect("the real API server starts");
    let crds = crds::all().expect("the CRD files are found");
    server.install(&crds).await.expect("the CRDs are installed");
    server
}

/// The embedded policy, compiled once for every test of this binary.
pub fn policy() -> PolicySlot {
    static COMPILED: OnceLock<Arc<WasmPolicy>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        let limits = Limits {
            concurrent_calls: 64,
            ..Limits::default()
        };
        let engine = Engine::new(limits).expect("the engine starts");
        Arc::new(WasmPolicy::load(&engine, DEFAULT_POLICY).expect("the default policy loads"))
    });
    let policy: Arc<dyn Policy + Send + Sync> = compiled.clone();
    let active = ActivePolicy::new(policy, compiled.sha256(), None).expect("default settings");
    PolicySlot::new(active)
}

/// An operator configuration with short retries.
pub fn config(identity: &str) -> OperatorConfig {
    let mut config = OperatorConfig::new("capt-status", identity);
    config.retry = RetryPolicy {
        min: Duration::from_millis(50),
        max: Duration::from_secs(1),
    };
    config
}

/// Starts an operator with `client`; `None` if its caches do not sync within `patience`
/// (as when a read it needs is forbidden).
pub async fn start(client: Client, config: OperatorConfig, patience: Duration) -> Option<Operator> {
    let operator = Operator::start(client, config, policy())
        .await
        .expect("the operator starts");
    match tokio::time::timeout(patience, operator.ready()).await {
        Ok(_) => Some(operator),
        Err(_) => {
            let _ = operator.shutdown().await;
            None
        }
    }
}

/// Awaits `future`, failing the test after [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {PATIENCE:?} waiting for {what}"))
}

/// Polls `condition` every 100 ms until it holds or `patience` passes; whether it held.
pub async fn holds_within<F, Fut>(patience: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    tokio::time::timeout(patience, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok()
}

/// Logs to the test output (RUST_LOG), once.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
