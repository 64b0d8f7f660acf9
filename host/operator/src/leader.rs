//! Leader election, as client-go does it: [`LeaderGate`], the gate every write passes, and
//! [`Election`], the loop that holds a `coordination.k8s.io/v1` Lease and opens the gate.
//!
//! Fencing rests on two clocks that never meet:
//! - the leader's gate is open until its **last successful renewal (counted from when that
//!   renewal was sent) plus the renew deadline**; once that instant passes the gate is closed,
//!   whether or not the election loop noticed, and every write checks it as it is sent (the
//!   client's own retries included, see [`super::client`]);
//! - a standby takes the Lease only once it has seen the same Lease record, unchanged, for the
//!   **lease duration**, counted on its own clock from when it first saw that record, which is
//!   after the leader sent the renewal that wrote it.
//!
//! Since the renew deadline is shorter than the lease duration, the leader stops writing before
//! any standby may take over. A leader that loses the Lease (it was not renewed in time, or
//! another holder took it) ends its term: the operator stops its controllers and ends with
//! [`crate::OperatorError::LeadershipLost`], as controller-runtime exits, so that nothing of
//! the old term survives. Stopping the election closes the gate
//! first, then releases the Lease, so that a standby takes over without waiting for it to
//! expire.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument as _;

use super::config::LeaderElection;
use capt_host_core::error_chain;

/// Until when the gate is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Term {
    /// Closed: a standby, or a leader that lost the Lease or stops.
    Closed,
    /// Open until this instant (exclusive): a leader, until its renew deadline.
    Until(Instant),
    /// Open for good: no leader election.
    Unbounded,
}

impl Term {
    fn is_open(self, now: Instant) -> bool {
        match self {
            Self::Closed => false,
            Self::Until(deadline) => now < deadline,
            Self::Unbounded => true,
        }
    }
}

/// Whether this replica may write, checked as each write is sent. Cheap to clone; clones
/// share the gate.
#[derive(Clone, Debug)]
pub(crate) struct LeaderGate {
    term: Arc<watch::Sender<Term>>,
    gauge: Gauge,
}

impl LeaderGate {
    /// A closed gate (a standby), reported through `metrics` as the holder of the Lease
    /// `lease` (without leader election, `None`: not reported).
    pub(crate) fn new(metrics: &LeaderMetrics, lease: Option<&str>) -> Self {
        let gauge = lease.map_or_else(Gauge::default, |name| {
            metrics
                .status
                .get_or_create(&NameLabels {
                    name: name.to_owned(),
                })
                .clone()
        });
        Self {
            term: Arc::new(watch::Sender::new(Term::Closed)),
            gauge,
        }
    }

    /// True when this replica may write now.
    pub(crate) fn is_open(&self) -> bool {
        self.term.borrow().is_open(Instant::now())
    }

    /// Opens the gate for good (no leader election).
    pub(crate) fn open(&self) {
        self.set(Term::Unbounded);
    }

    /// Opens the gate until `deadline` (exclusive), or moves its deadline.
    pub(crate) fn open_until(&self, deadline: Instant) {
        self.set(Term::Until(deadline));
    }

    /// Closes the gate.
    pub(crate) fn close(&self) {
        self.set(Term::Closed);
    }

    fn set(&self, term: Term) {
        self.term.send_replace(term);
        self.gauge.set(i64::from(term.is_open(Instant::now())));
    }

    /// Resolves once the gate is open.
    pub(crate) async fn opened(&self) {
        let mut changes = self.term.subscribe();
        // The sender lives in `self`: waiting cannot fail.
        let _ = changes.wait_for(|term| term.is_open(Instant::now())).await;
    }

    /// Resolves once the gate is closed: closed explicitly, or its deadline passed.
    pub(crate) async fn closed(&self) {
        let mut changes = self.term.subscribe();
        loop {
            let term = *changes.borrow_and_update();
            match term {
                Term::Closed => return,
                Term::Until(deadline) if Instant::now() >= deadline => return,
                // A renewal may have moved the deadline meanwhile: look again.
                Term::Until(deadline) => tokio::select! {
                    _ = changes.changed() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                },
                Term::Unbounded => {
                    // The sender lives in `self`: it cannot be dropped while we wait.
                    let _ = changes.changed().await;
                }
            }
        }
    }
}

/// The running election.
pub(crate) struct Election {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Election {
    /// Starts electing with `client` (which must not be gated: the Lease is written before
    /// this replica leads), each Lease request bounded by `timeout`.
    pub(crate) fn start(
        client: Client,
        config: &LeaderElection,
        identity: &str,
        gate: LeaderGate,
        timeout: Duration,
    ) -> Self {
        let elector = Elector {
            leases: Api::namespaced(client, &config.lease_namespace),
            config: config.clone(),
            identity: identity.to_owned(),
            gate,
            timeout,
            observed: None,
        };
        let (stop, stopped) = oneshot::channel();
        let span = tracing::info_span!("election", lease = %config.lease_name, identity);
        let task = tokio::spawn(elector.run(stopped).instrument(span));
        Self { stop, task }
    }

    /// Closes the gate, releases the Lease if this replica holds it, and waits for the loop
    /// to finish.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the election task failed");
        }
    }
}

/// A Lease record as a standby saw it, and when it first saw it (on its own clock).
struct Observed {
    spec: LeaseSpec,
    at: Instant,
}

/// What one attempt to acquire or renew found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the Lease (acquired or renewed).
    Holds,
    /// Another replica holds the Lease, and it has not expired.
    HeldElsewhere(String),
    /// The Lease changed between the read and the write: nothing is known.
    Conflict,
}

/// The election loop's state.
struct Elector {
    leases: Api<Lease>,
    config: LeaderElection,
    identity: String,
    gate: LeaderGate,
    timeout: Duration,
    observed: Option<Observed>,
}

impl Elector {
    /// Every retry period: tries to acquire (a standby) or renew (the leader), until the lead
    /// is lost or `stopped`.
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut ticks = tokio::time::interval(self.config.retry_period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut deadline: Option<Instant> = None;
        loop {
            let lost = tokio::select! {
                biased;
                _ = &mut stopped => break,
                lost = async {
                    ticks.tick().await;
                    self.step(&mut deadline).await
                } => lost,
            };
            if lost {
                self.gate.close();
                return;
            }
        }
        self.gate.close();
        // A leader past its renew deadline has lost the Lease already: nothing to release.
        if deadline.is_some_and(|deadline| Instant::now() < deadline) {
            match tokio::time::timeout(self.timeout, self.release()).await {
                Ok(Ok(())) => tracing::info!("released the Lease"),
                Ok(Err(error)) => {
                    tracing::warn!(error = %error_chain(&error), "releasing the Lease failed")
                }
                Err(_) => tracing::warn!(timeout = ?self.timeout, "releasing the Lease timed out"),
            }
        }
    }

    /// One attempt; `deadline` is the renew deadline while leading. True when the lead is
    /// lost.
    async fn step(&mut self, deadline: &mut Option<Instant>) -> bool {
        let sent = Instant::now();
        // A leader's attempt ends at its renew deadline at the latest.
        let until = match *deadline {
            Some(deadline) => deadline.min(sent + self.timeout),
            None => sent + self.timeout,
        };
        let attempt = tokio::time::timeout_at(until, self.try_acquire_or_renew(sent)).await;
        match (attempt, *deadline) {
            (Ok(Ok(Attempt::Holds)), previous) => {
                let next = sent + self.config.renew_deadline;
                self.gate.open_until(next);
                *deadline = Some(next);
                if previous.is_none() {
                    tracing::info!("acquired the Lease: this replica reconciles and writes");
                }
                false
            }
            (Ok(Ok(Attempt::HeldElsewhere(holder))), Some(_)) => {
                tracing::error!(%holder, "another replica took the Lease: writes stopped");
                true
            }
            (Ok(Ok(Attempt::HeldElsewhere(holder))), None) => {
                tracing::debug!(%holder, "the Lease is held");
                false
            }
            (Ok(Ok(Attempt::Conflict)), _) => {
                tracing::debug!("the Lease changed while it was written; trying again");
                self.expired(*deadline)
            }
            (Ok(Err(error)), _) => {
                tracing::warn!(error = %error_chain(&error), "acquiring or renewing the Lease failed");
                self.expired(*deadline)
            }
            (Err(_), _) => {
                tracing::warn!(
                    timeout = ?(until - sent),
                    "acquiring or renewing the Lease timed out"
                );
                self.expired(*deadline)
            }
        }
    }

    /// True (and logged) when this replica led and its renew deadline has passed.
    fn expired(&self, deadline: Option<Instant>) -> bool {
        let expired = deadline.is_some_and(|deadline| Instant::now() >= deadline);
        if expired {
            tracing::error!(
                renew_deadline = ?self.config.renew_deadline,
                "the Lease was not renewed within the renew deadline: writes stopped"
            );
        }
        expired
    }

    /// Reads the Lease and takes it (absent, released, expired or already this replica's),
    /// writing with the read's resourceVersion as precondition.
    async fn try_acquire_or_renew(&mut self, now: Instant) -> Result<Attempt, kube::Error> {
        let name = self.config.lease_name.clone();
        let Some(mut lease) = self.leases.get_opt(&name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.taken(&LeaseSpec::default())),
            };
            return match self.leases.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default(), now);
                    Ok(Attempt::Holds)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec
            .holder_identity
            .clone()
            .filter(|holder| !holder.is_empty());
        let duration = spec
            .lease_duration_seconds
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map_or(self.config.lease_duration, Duration::from_secs);
        let first_seen = self.observe(spec.clone(), now);
        if let Some(holder) = holder
            && holder != self.identity
            && now < first_seen + duration
        {
            return Ok(Attempt::HeldElsewhere(holder));
        }
        lease.spec = Some(self.taken(&spec));
        match self
            .leases
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observe(written.spec.unwrap_or_default(), now);
                Ok(Attempt::Holds)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(error) => Err(error),
        }
    }

    /// Records `spec` as seen at `now` unless it is the record already seen; returns when it
    /// was first seen.
    fn observe(&mut self, spec: LeaseSpec, now: Instant) -> Instant {
        match &self.observed {
            Some(observed) if observed.spec == spec => observed.at,
            _ => {
                self.observed = Some(Observed { spec, at: now });
                now
            }
        }
    }

    /// `previous` held by this replica from now on.
    fn taken(&self, previous: &LeaseSpec) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let renewing = previous.holder_identity.as_deref() == Some(self.identity.as_str());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(whole_seconds(self.config.lease_duration)),
            renew_time: Some(now.clone()),
            acquire_time: if renewing {
                previous.acquire_time.clone()
            } else {
                Some(now)
            },
            lease_transitions: if renewing {
                previous.lease_transitions
            } else {
                Some(previous.lease_transitions.unwrap_or(0) + 1)
            },
            ..previous.clone()
        }
    }

    /// Gives the Lease up, as client-go does: no holder, a one-second duration.
    async fn release(&self) -> Result<(), kube::Error> {
        let name = &self.config.lease_name;
        let Some(mut lease) = self.leases.get_opt(name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        lease.spec = Some(spec);
        self.leases
            .replace(name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }
}

/// `duration` in whole seconds, rounded up, at least one.
fn whole_seconds(duration: Duration) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(seconds.max(1)).unwrap_or(i32::MAX)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    name: String,
}

/// Metrics of the election, as client-go's leader election reports them.
#[derive(Debug)]
pub(crate) struct LeaderMetrics {
    status: Family<NameLabels, Gauge>,
}

impl LeaderMetrics {
    /// Registers `leader_election_master_status{name}` in `registry` (which must not add a
    /// prefix).
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let status = Family::default();
        registry.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates \
             backup, 1 indicates master. 'name' is the string used to identify the lease.",
            status.clone(),
        );
        Self { status }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> LeaderGate {
        LeaderGate::new(&LeaderMetrics::register(&mut Registry::default()), None)
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_closes_at_its_deadline_without_being_told() {
        let gate = gate();
        assert!(!gate.is_open());
        let deadline = Instant::now() + Duration::from_secs(10);
        gate.open_until(deadline);
        assert!(gate.is_open());
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(gate.is_open());
        let closed = tokio::spawn({
            let gate = gate.clone();
            async move {
                gate.closed().await;
                Instant::now()
            }
        });
        let closed_at = closed.await.expect("the waiter");
        assert_eq!(closed_at, deadline);
        assert!(!gate.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_moves_the_deadline_of_a_waiter() {
        let gate = gate();
        let start = Instant::now();
        gate.open_until(start + Duration::from_secs(2));
        let closed = tokio::spawn({
            let gate = gate.clone();
            async move {
                gate.closed().await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        gate.open_until(start + Duration::from_secs(5));
        assert_eq!(
            closed.await.expect("the waiter"),
            start + Duration::from_secs(5)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unbounded_gate_stays_open_until_closed() {
        let gate = gate();
        gate.open();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(gate.is_open());
        gate.close();
        gate.closed().await;
        assert!(!gate.is_open());
    }

    #[test]
    fn lease_seconds_round_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(15)), 15);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }
}
