//! Shared by the real-server tests: a server with the CRDs, the embedded policy, operators,
//! bounded waits.

use std::future::Future;
use std::time::Duration;

use capt_host_operator::{Operator, OperatorConfig};

pub use crate::operators::config;
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

/// Starts an operator with `client`; `None` if its caches do not sync within `patience`
/// (as when a read it needs is forbidden).
pub async fn start(client: Client, config: OperatorConfig, patience: Duration) -> Option<Operator> {
    let operator = Operator::start(client, config, crate::operators::policy(None))
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
