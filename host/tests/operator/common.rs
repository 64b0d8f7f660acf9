//! Shared by the operator tests: the in-process API server with the CAPT CRDs, the embedded
//! policy (compiled once), operators with test timings, CAPT objects, the test's part of
//! Crossplane, and polling, metrics and HTTP helpers.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use crate::capt::*;

use capt_host::operator::{
    ActivePolicy, LeaderElection, Operator, OperatorConfig, PolicySlot, Reconciled, RetryPolicy,
};
use capt_host::{DEFAULT_POLICY, Engine, Limits, Policy, WasmPolicy, manifests};
use inproc_apiserver::ApiServer;
use kube::Client;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::broadcast;

/// How long any wait may take before the test fails (never a timing assertion: only a guard
/// against hanging, generous for a loaded 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The CRDs the operator and the tests need.
const CRDS: [&str; 6] = [
    include_str!(
        "../../../policies/capt-status/crds/infrastructure.cluster.x-k8s.io_captclusters.yaml"
    ),
    include_str!(
        "../../../policies/capt-status/crds/controlplane.cluster.x-k8s.io_captcontrolplanes.yaml"
    ),
    include_str!(
        "../../../policies/capt-status/crds/infrastructure.cluster.x-k8s.io_workspacetemplates.yaml"
    ),
    include_str!(
        "../../../policies/capt-status/crds/infrastructure.cluster.x-k8s.io_workspacetemplateapplies.yaml"
    ),
    include_str!("../../../policies/capt-status/crds/test-only/cluster.x-k8s.io_clusters.yaml"),
    include_str!("../../../policies/capt-status/crds/test-only/tf.upbound.io_workspaces.yaml"),
];

/// A fresh API server with the CRDs installed.
pub async fn server() -> ApiServer {
    let server = ApiServer::start().await.expect("the API server starts");
    let mut crds = Vec::new();
    for text in CRDS {
        crds.extend(manifests::parse(text).expect("the CRD files are YAML"));
    }
    manifests::create(&server.client(), &crds)
        .await
        .expect("the CRDs are installed");
    server
}

/// The embedded policy, compiled once for every test of this binary. Its `pollInterval` is an
/// hour, so the tests converge only if the operator re-triggers on changes.
pub fn policy() -> PolicySlot {
    static COMPILED: OnceLock<Arc<WasmPolicy>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        // Several operators run at once in this binary: room for all their calls.
        let limits = Limits {
            concurrent_calls: 64,
            ..Limits::default()
        };
        let engine = Engine::new(limits).expect("the engine starts");
        Arc::new(WasmPolicy::load(&engine, DEFAULT_POLICY).expect("the default policy loads"))
    });
    let settings = json!({"pollInterval": "1h"});
    let policy: Arc<dyn Policy + Send + Sync> = compiled.clone();
    let active = ActivePolicy::new(policy, compiled.sha256(), Some(&settings))
        .expect("the settings are valid");
    PolicySlot::new(active)
}

/// An operator configuration with short retries, named `identity`.
pub fn config(identity: &str) -> OperatorConfig {
    let mut config = OperatorConfig::new("capt-status", identity);
    config.retry = RetryPolicy {
        min: Duration::from_millis(50),
        max: Duration::from_secs(1),
    };
    config
}

/// `config` with leader election on the Lease `capt-status` in `default`, held for
/// `lease_seconds` and renewed a third of it before it expires.
pub fn elected(identity: &str, lease_seconds: u64) -> OperatorConfig {
    let mut config = config(identity);
    let mut election = LeaderElection::new("capt-status", "default");
    election.lease_duration = Duration::from_secs(lease_seconds);
    election.renew_grace = Duration::from_secs(lease_seconds.div_ceil(3));
    config.leader_election = Some(election);
    config
}

/// Starts an operator on `server` and waits until its caches are synced; with the reports
/// of all its reconciles (collected from before the first one).
pub async fn start(server: &ApiServer, config: OperatorConfig) -> (Operator, Reconciles) {
    let client =
        Client::try_from(server.kube_config().expect("a client configuration")).expect("a client");
    let operator = Operator::start(client, config, policy())
        .await
        .expect("the operator starts");
    let reconciles = Reconciles::of(&operator);
    within("the caches to sync", operator.ready()).await;
    (operator, reconciles)
}

/// Awaits `future`, failing the test after [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {PATIENCE:?} waiting for {what}"))
}

/// Polls `condition` every 100 ms until it holds, failing the test after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// The sum of the samples of `name` whose labels include every `labels` pair.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, series_labels) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// A plain HTTP/1.1 GET: the status code and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Collects the reconciles an operator reports.
pub struct Reconciles(broadcast::Receiver<Reconciled>);

impl Reconciles {
    /// Starts collecting from `operator`.
    pub fn of(operator: &Operator) -> Self {
        Self(operator.reconciles())
    }

    /// Waits until no reconcile finished for `quiet`, then returns the triggers reconciled
    /// since the last call, as `Kind/name`.
    pub async fn until_quiet(&mut self, quiet: Duration) -> BTreeSet<String> {
        self.settle(&[], quiet).await
    }

    /// Waits until every trigger of `expected` (`Kind/name`) was reconciled, then until no
    /// reconcile finished for `quiet`; returns every trigger reconciled since the last call.
    pub async fn settle(&mut self, expected: &[&str], quiet: Duration) -> BTreeSet<String> {
        let records = self.settle_records(expected, quiet).await;
        records.iter().map(name).collect()
    }

    /// [`Reconciles::settle`], returning every reconcile report, in order.
    pub async fn settle_records(&mut self, expected: &[&str], quiet: Duration) -> Vec<Reconciled> {
        let mut records = Vec::new();
        within(&format!("reconciles of {expected:?}"), async {
            loop {
                let waiting = expected
                    .iter()
                    .any(|e| !records.iter().any(|r| name(r) == *e));
                let next = if waiting {
                    Ok(self.0.recv().await)
                } else {
                    tokio::time::timeout(quiet, self.0.recv()).await
                };
                match next {
                    Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return,
                    Ok(Ok(done)) => records.push(done),
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                }
            }
        })
        .await;
        records
    }
}

/// `Kind/name` of a reconciled trigger.
pub fn name(reconciled: &Reconciled) -> String {
    format!("{}/{}", reconciled.trigger.kind, reconciled.trigger.name)
}

/// Logs to the test output (RUST_LOG), once.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
