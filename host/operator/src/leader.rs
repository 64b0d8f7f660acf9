//! Leader election: [`LeaderGate`], the flag every write checks, and [`Election`], which holds
//! a `coordination.k8s.io/v1` Lease with kube-lease-manager and opens or closes the gate.
//!
//! The gate closes the moment the lease manager reports the Lease lost, before anything else
//! happens: writes already on their way are refused at their next check (each patch and each
//! event checks it), and the running controllers are shut down. The replica then waits, ready
//! and with warm caches, to be elected again. Stopping the election closes the gate first,
//! then releases the Lease, so that a standby takes over without waiting for it to expire.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::config::LeaderElection;

/// Whether this replica may write. Cheap to clone; clones share the flag.
#[derive(Clone, Debug)]
pub(crate) struct LeaderGate {
    open: Arc<watch::Sender<bool>>,
    gauge: Gauge,
}

impl LeaderGate {
    /// A closed gate (a standby), reported through `metrics`.
    pub(crate) fn new(metrics: &LeaderMetrics) -> Self {
        Self {
            open: Arc::new(watch::Sender::new(false)),
            gauge: metrics.leader.clone(),
        }
    }

    /// True when this replica may write: checked right before every write.
    pub(crate) fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Opens (`true`) or closes the gate.
    pub(crate) fn set(&self, open: bool) {
        self.open.send_if_modified(|current| {
            let changed = *current != open;
            *current = open;
            changed
        });
        self.gauge.set(i64::from(open));
    }

    /// Resolves once the gate is open (or closed, with `false`).
    pub(crate) async fn wait_for(&self, open: bool) {
        let mut changes = self.open.subscribe();
        // The sender lives in `self`: waiting cannot fail.
        let _ = changes.wait_for(|current| *current == open).await;
    }
}

/// The running election: a lease manager task and the task forwarding its verdicts to the gate.
pub(crate) struct Election {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Election {
    /// Builds the lease manager (creating the Lease if it does not exist) and starts electing.
    pub(crate) async fn start(
        client: Client,
        config: &LeaderElection,
        identity: &str,
        gate: LeaderGate,
    ) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, &config.lease_name)
            .with_namespace(&config.lease_namespace)
            .with_identity(identity)
            .with_duration(seconds(config.lease_duration))
            .with_grace(seconds(config.renew_grace))
            .build()
            .await?;
        let (stop, stopped) = oneshot::channel();
        let span = tracing::info_span!("election", lease = %config.lease_name, identity);
        let task = tokio::spawn(forward(manager, gate, stopped).instrument(span));
        Ok(Self { stop, task })
    }

    /// Closes the gate, releases the Lease and waits for the manager to finish.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the election task failed");
        }
    }
}

/// Runs `manager`, opening and closing `gate` as it wins and loses the Lease, until `stopped`.
async fn forward(manager: LeaseManager, gate: LeaderGate, mut stopped: oneshot::Receiver<()>) {
    let (mut verdicts, manager) = manager.watch().await;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            changed = verdicts.changed() => {
                if changed.is_err() {
                    tracing::error!("the lease manager stopped; this replica no longer writes");
                    break;
                }
                let leader = *verdicts.borrow_and_update();
                gate.set(leader);
                if leader {
                    tracing::info!("acquired the Lease: this replica reconciles and writes");
                } else {
                    tracing::warn!("lost the Lease: writes stopped");
                }
            }
        }
    }
    gate.set(false);
    // Closing the channel makes the manager release the Lease and return.
    drop(verdicts);
    match manager.await {
        Ok(Ok(_)) => tracing::info!("released the Lease"),
        Ok(Err(error)) => {
            tracing::warn!(error = %capt_host_core::error_chain(&error), "releasing the Lease failed")
        }
        Err(error) => tracing::warn!(%error, "the lease manager task failed"),
    }
}

fn seconds(duration: Duration) -> u64 {
    duration.as_secs().max(1)
}

/// Metrics of the election.
#[derive(Debug)]
pub(crate) struct LeaderMetrics {
    leader: Gauge,
}

impl LeaderMetrics {
    /// Registers `leader`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica may write (it holds the Lease, or runs without leader election)",
            leader.clone(),
        );
        Self { leader }
    }
}
