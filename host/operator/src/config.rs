//! [`OperatorConfig`]: what `capt-host run` (or the demo, or a test) decides about an operator,
//! as plain values. Reading flags and the environment is the command line's job.

use std::net::SocketAddr;
use std::time::Duration;

use super::kinds::KindKey;
use super::tls::CertSource;

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
    /// Where `/metrics` (and `/policy`) are served; `None`: nowhere.
    pub metrics_addr: Option<SocketAddr>,
    /// How the metrics are secured: `Some`: HTTPS with this certificate, each request
    /// authenticated (`TokenReview`) and authorized (`SubjectAccessReview`: `get` on its path);
    /// `None` (the default): plain HTTP, no authentication.
    pub metrics_tls: Option<CertSource>,
    /// Where the probes `/healthz` and `/readyz` are served; `None`: nowhere.
    pub probe_addr: Option<SocketAddr>,
    /// The API client's limits: request timeout, client-side rate limit, User-Agent.
    pub api: ApiClientConfig,
    /// How long a shutdown waits for the reconciles in flight before it abandons them
    /// (closing the write gate first), releases the Lease and stops. Default 30 s.
    pub graceful_shutdown_timeout: Duration,
    /// `/healthz` fails once a reconcile has been running for this long (a stuck worker).
    /// Default 5 min.
    pub reconcile_stall_timeout: Duration,
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
        let identity = identity.into();
        Self {
            reporter: reporter.into(),
            api: ApiClientConfig::new(&identity),
            identity,
            namespace: None,
            metrics_addr: None,
            metrics_tls: None,
            probe_addr: None,
            graceful_shutdown_timeout: Duration::from_secs(30),
            reconcile_stall_timeout: Duration::from_secs(300),
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

/// The API client's limits.
#[derive(Debug, Clone)]
pub struct ApiClientConfig {
    /// How long a request may wait for its response (watches excepted: they are long by
    /// design and end on the server's timeout). Default 30 s.
    pub timeout: Duration,
    /// Requests per second the client sends, on average (the Lease's own requests excepted);
    /// `0`: no limit. Default 20.
    pub qps: f32,
    /// How many requests may be sent at once above `qps`. Default 30.
    pub burst: u32,
    /// The `User-Agent` of every request. Default `capt-host/<version> (<identity>)`.
    pub user_agent: String,
    /// The API server's `host[:port]`, the `host` label of the `rest_client_*` metrics (the
    /// client's requests carry only a path). Default empty.
    pub host: String,
}

impl ApiClientConfig {
    /// The defaults, for the replica `identity`.
    pub fn new(identity: &str) -> Self {
        Self {
            timeout: Duration::from_secs(30),
            qps: 20.0,
            burst: 30,
            user_agent: format!("capt-host/{} ({identity})", env!("CARGO_PKG_VERSION")),
            host: String::new(),
        }
    }
}

/// Leader election through a `coordination.k8s.io/v1` Lease, with client-go's timings.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace.
    pub lease_namespace: String,
    /// How long a standby waits, from the moment it sees the Lease change, before it takes a
    /// Lease that was not renewed. Default 15 s.
    pub lease_duration: Duration,
    /// How long the leader keeps writing after its last successful renewal (counted from when
    /// that renewal was sent): it stops writing then, before a standby may take the Lease.
    /// Shorter than `lease_duration`. Default 10 s.
    pub renew_deadline: Duration,
    /// How often the leader renews, and a standby tries to acquire. Shorter than
    /// `renew_deadline`. Default 2 s.
    pub retry_period: Duration,
}

impl LeaderElection {
    /// The Lease `name` in `namespace`, with the default timings.
    pub fn new(name: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            lease_name: name.into(),
            lease_namespace: namespace.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks the timings as client-go does: the lease duration exceeds the renew deadline,
    /// which exceeds the retry period (with client-go's jitter factor 1.2).
    pub fn validate(&self) -> Result<(), TimingError> {
        if self.lease_duration <= self.renew_deadline {
            return Err(TimingError::RenewDeadline {
                renew_deadline: self.renew_deadline,
                lease_duration: self.lease_duration,
            });
        }
        if self.renew_deadline <= self.retry_period.mul_f64(JITTER_FACTOR) {
            return Err(TimingError::RetryPeriod {
                retry_period: self.retry_period,
                renew_deadline: self.renew_deadline,
            });
        }
        if self.retry_period.is_zero() {
            return Err(TimingError::ZeroRetryPeriod);
        }
        Ok(())
    }
}

/// client-go's `JitterFactor`: the renew deadline must exceed the retry period times this.
const JITTER_FACTOR: f64 = 1.2;

/// Leader election timings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// The renew deadline is not shorter than the lease duration.
    #[error(
        "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration ({lease_duration:?})"
    )]
    RenewDeadline {
        /// The renew deadline.
        renew_deadline: Duration,
        /// The lease duration.
        lease_duration: Duration,
    },
    /// The retry period (times 1.2) is not shorter than the renew deadline.
    #[error(
        "the retry period ({retry_period:?}) times 1.2 must be shorter than the renew deadline ({renew_deadline:?})"
    )]
    RetryPeriod {
        /// The retry period.
        retry_period: Duration,
        /// The renew deadline.
        renew_deadline: Duration,
    },
    /// The retry period is zero.
    #[error("the retry period must not be zero")]
    ZeroRetryPeriod,
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
    fn leader_election_timings_follow_client_go() {
        let mut election = LeaderElection::new("lease", "ns");
        assert_eq!(election.validate(), Ok(()));
        election.renew_deadline = election.lease_duration;
        assert!(matches!(
            election.validate(),
            Err(TimingError::RenewDeadline { .. })
        ));
        election.renew_deadline = Duration::from_millis(2300);
        election.retry_period = Duration::from_secs(2);
        assert!(matches!(
            election.validate(),
            Err(TimingError::RetryPeriod { .. })
        ));
        election.retry_period = Duration::ZERO;
        assert_eq!(election.validate(), Err(TimingError::ZeroRetryPeriod));
    }

    #[test]
    fn terminal_failures_wait_the_maximum() {
        let retry = RetryPolicy::default();
        assert_eq!(retry.delay(1, false), retry.max);
    }
}
