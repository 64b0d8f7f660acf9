//! Shared by the operator tests: the in-process API server with the CAPT CRDs, the embedded
//! policy (compiled once), operators with test timings, CAPT objects, the test's part of
//! Crossplane, and polling, metrics and HTTP helpers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub use crate::backend::{Backend, TestServer};
pub use crate::capt::*;
pub use crate::harness::{eventually, http_get, metric, server, trace, within};

use capt_host_operator::{LeaderElection, Operator, OperatorConfig, Reconciled};

use crate::operators;
pub use crate::operators::config;
use capt_host_core::NativePolicy;
use capt_host_runtime::{ActivePolicy, PolicySlot};
use capt_policy::{ObjectRef, Request, Response};
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

/// `config` with leader election on the Lease `capt-status` in `namespace`, held for
/// `lease_seconds`, with a renew deadline of two thirds of it and a retry period of a sixth.
pub fn elected(identity: &str, lease_seconds: u64, namespace: &str) -> OperatorConfig {
    let mut config = config(identity);
    let mut election = LeaderElection::new("capt-status", namespace);
    let lease = Duration::from_secs(lease_seconds);
    election.lease_duration = lease;
    election.renew_deadline = lease * 2 / 3;
    election.retry_period = lease / 6;
    config.leader_election = Some(election);
    config
}

/// A policy whose calls go to `reconcile`, with the embedded policy's metadata (its triggers
/// and reads), for tests that need a response the real policy never gives.
pub fn native(reconcile: fn(&Request) -> Result<Response, capt_policy::Error>) -> PolicySlot {
    let metadata = policy().current().metadata().clone();
    let native = Arc::new(NativePolicy::new(metadata, reconcile));
    PolicySlot::new(ActivePolicy::new(native, "native", None).expect("valid settings"))
}

/// The manifest of `reference` among the objects of `request`, if it was sent.
pub fn sent(request: &Request, reference: &ObjectRef) -> Option<serde_json::Value> {
    let object = request
        .objects
        .iter()
        .find(|o| o.reference.same_object(reference))?;
    serde_json::from_str(&object.manifest).ok()
}

/// Starts an operator on `server` and waits until its caches are synced; with the reports
/// of all its reconciles (collected from before the first one).
pub async fn start(server: &impl TestServer, config: OperatorConfig) -> (Operator, Reconciles) {
    start_with(server, config, policy()).await
}

/// [`start`], running `policy`.
pub async fn start_with(
    server: &impl TestServer,
    config: OperatorConfig,
    policy: PolicySlot,
) -> (Operator, Reconciles) {
    let operator = Operator::start(server.operator_client(), config, policy)
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
