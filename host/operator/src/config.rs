//! [`OperatorConfig`]: what `capt-host run` (or the demo, or a test) decides about an operator,
//! as plain values. Reading flags and the environment is the command line's job.

use std::net::SocketAddr;
use std::time::Duration;

use super::kinds::KindKey;

/// How an operator runs. [`OperatorConfig::new`] gives the defaults documented on each field.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The name the operator reports as: the reporting controller of its events and the field
    /// manager of its writes (`capt-host run` uses the policy's name).
    pub reporter: String,
    /// This replica's identity: the reporting instance of its events and, with leader
    /// election, the Lease holder. Unique among replicas.
    pub identity: String,
    /// Watch and reconcile only this namespace; `None`: all namespaces. Cluster-scoped kinds
    /// are always watched cluster-wide; objects of other namespaces are read with a GET.
    pub namespace: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None`: nowhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Leader election; `None`: this replica reconciles and writes from the start.
    pub leader_election: Option<LeaderElection>,
    /// Kinds that are never listed or watched, only read one object at a time with a GET when a
    /// reconcile requires one, so the operator never holds all of them (and needs only the
    /// `get` verb on them). A change of such an object does not trigger a reconcile: a policy
    /// waiting for one relies on its `requeue-after`. Trigger kinds are always watched.
    /// Default: core `Secret`.
    pub uncached_kinds: Vec<KindKey>,
    /// Reconciles of one trigger kind that may run at the same time (never two of one object).
    /// Default 16 (`capt-host run --concurrency`).
    pub concurrency: u16,
    /// The backoff after failed reconciles.
    pub retry: RetryPolicy,
    /// How long to wait before discovering again kinds the API server does not serve yet
    /// (CRDs not installed). Default 10 s.
    pub discovery_retry: Duration,
    /// Namespaces whose Secrets a reconcile may read besides the trigger's own; a Secret
    /// elsewhere reaches the policy as missing. Default: none (`--secret-namespaces`).
    pub secret_namespaces: Vec<String>,
    /// How long the operator stops writing an object once another field manager keeps
    /// overwriting the status fields it writes (a second writer). Default 5 min
    /// (`--contested-backoff`).
    pub contested_backoff: Duration,
}

impl OperatorConfig {
    /// The defaults, for a replica named `identity` reporting as `reporter`.
    pub fn new(reporter: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            reporter: reporter.into(),
            identity: identity.into(),
            namespace: None,
            metrics_addr: None,
            leader_election: None,
            uncached_kinds: vec![KindKey::new("", "Secret")],
            concurrency: 16,
            retry: RetryPolicy::default(),
            discovery_retry: Duration::from_secs(10),
            secret_namespaces: Vec::new(),
            contested_backoff: Duration::from_secs(300),
        }
    }
}

/// Leader election through a `coordination.k8s.io/v1` Lease.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace.
    pub lease_namespace: String,
    /// How long a holder keeps the Lease without renewing it; a standby takes over at most this
    /// long after the holder stops renewing (at once after a graceful release once it looks
    /// again, within this duration). Default 15 s.
    pub lease_duration: Duration,
    /// How long before the Lease expires the holder renews it. Default 5 s.
    pub renew_grace: Duration,
}

impl LeaderElection {
    /// The Lease `name` in `namespace`, with the default timings.
    pub fn new(name: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            lease_name: name.into(),
            lease_namespace: namespace.into(),
            lease_duration: Duration::from_secs(15),
            renew_grace: Duration::from_secs(5),
        }
    }
}

/// Per-object backoff after failed reconciles.
///
/// A transient failure (an API error, a conflict, a policy deadline) is retried after
/// `min`, then twice as long after each further failure in a row, up to `max`. A terminal one
/// (the policy rejected the request, trapped, ran out of memory...) fails again until an object
/// changes, and a change reconciles the trigger at once: it is retried only after `max`, as a
/// safety net. Requests from changes are not delayed by the backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay. Default 500 ms.
    pub min: Duration,
    /// The longest delay. Default 5 min.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(500),
            max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delay after the `failures`-th failure in a row (1 for the first).
    pub fn delay(&self, failures: u32, transient: bool) -> Duration {
        if !transient {
            return self.max;
        }
        let doublings = failures.saturating_sub(1).min(31);
        self.min.saturating_mul(1 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_back_off_exponentially_up_to_the_maximum() {
        let retry = RetryPolicy {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<_> = (1..=6).map(|n| retry.delay(n, true).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(retry.delay(u32::MAX, true), retry.max);
    }

    #[test]
    fn terminal_failures_wait_the_maximum() {
        let retry = RetryPolicy::default();
        assert_eq!(retry.delay(1, false), retry.max);
    }
}
