//! Shared by the operator tests: the in-process API server with the CAPT CRDs, the embedded
//! policy (compiled once), operators with test timings, CAPT objects, the test's part of
//! Crossplane, and polling, metrics and HTTP helpers.

use std::collections::BTreeSet;
use std::time::Duration;

pub use crate::capt::*;
pub use crate::harness::{eventually, http_get, metric, server, trace, within};

use capt_host_operator::{LeaderElection, Operator, OperatorConfig, Reconciled};

use crate::operators;
pub use crate::operators::config;
use capt_host_runtime::PolicySlot;
use inproc_apiserver::ApiServer;
use kube::Client;
use serde_json::json;
use tokio::sync::broadcast;

/// How long any wait may take before the test fails (never a timing assertion: only a guard
/// against hanging, generous for a loaded 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The embedded policy (compiled once for every test of this binary) with a `pollInterval` of
/// an hour, so the tests converge only if the operator re-triggers on changes.
pub fn policy() -> PolicySlot {
    operators::policy(Some(&json!({"pollInterval": "1h"})))
}

/// `config` with leader election on the Lease `capt-status` in `default`, held for
/// `lease_seconds`, with a renew deadline of two thirds of it and a retry period of a sixth.
pub fn elected(identity: &str, lease_seconds: u64) -> OperatorConfig {
    let mut config = config(identity);
    let mut election = LeaderElection::new("capt-status", "default");
    let lease = Duration::from_secs(lease_seconds);
    election.lease_duration = lease;
    election.renew_deadline = lease * 2 / 3;
    election.retry_period = lease / 6;
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
