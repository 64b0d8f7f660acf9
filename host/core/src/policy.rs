//! What the host needs from a policy, however it runs: [`Policy`], and why a call failed:
//! [`PolicyError`].

use std::time::Duration;

use capt_policy::{Metadata, Request, Response};

/// A status policy: the contract's `reconciler` interface, in Rust.
///
/// [`crate::WasmPolicy`] runs a component; a native implementation over a guest crate's own
/// functions is what the parity tests compare it with. Implementations must be pure: the
/// result is a function of the request alone.
pub trait Policy {
    /// What the policy is and needs; read once, when the policy is loaded.
    fn metadata(&self) -> &Metadata;

    /// Computes the writes for one trigger object (one round of the round protocol).
    fn reconcile(&self, request: &Request) -> Result<Response, PolicyError>;
}

/// A policy crate linked natively: its metadata and its `reconcile` function, called directly.
/// The parity tests and the named scenario tests compare it with the same crate's component.
pub struct NativePolicy {
    metadata: Metadata,
    reconcile: fn(&Request) -> Result<Response, capt_policy::Error>,
}

impl NativePolicy {
    /// The policy whose metadata is `metadata` and whose calls go to `reconcile`.
    pub fn new(
        metadata: Metadata,
        reconcile: fn(&Request) -> Result<Response, capt_policy::Error>,
    ) -> Self {
        Self {
            metadata,
            reconcile,
        }
    }
}

impl Policy for NativePolicy {
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    fn reconcile(&self, request: &Request) -> Result<Response, PolicyError> {
        (self.reconcile)(request).map_err(PolicyError::Rejected)
    }
}

/// An error a host-side failure carries as its cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The `capt-host` flag that raises a call's CPU time limit (named in error messages).
pub const CPU_TIME_FLAG: &str = "--call-cpu-limit";
/// The `capt-host` flag that raises a call's wall-clock deadline.
pub const DEADLINE_FLAG: &str = "--call-deadline";
/// The `capt-host` flag that raises how long a call may wait for an instance slot.
pub const SLOT_WAIT_FLAG: &str = "--call-slot-wait";

/// Why a call to a policy failed.
///
/// A failed call changes nothing. [`PolicyError::is_transient`] tells whether calling again
/// with the same request may succeed; otherwise the request itself must change first (the host
/// still retries with backoff, since the objects may change).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy answered with one of the contract's errors. Terminal for this request.
    #[error("the policy rejected the request")]
    Rejected(#[source] capt_policy::Error),
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access...). Terminal: the
    /// same request traps again.
    #[error("the policy trapped{}", logged_suffix(.logged))]
    Trap {
        /// The guest's last error-level log message before the trap (its panic message).
        logged: Option<String>,
        /// The trap, with the guest's backtrace.
        #[source]
        source: BoxError,
    },
    /// The call used more CPU time than its limit (the runtime's `Limits::cpu_time`) and was
    /// interrupted: the guest loops, or the objects need more work than the limit allows.
    /// Terminal: the same request needs the same work.
    #[error(
        "the policy used more than its {limit:?} of CPU time in one call and was stopped \
         (it loops, or the objects need more work: {flag} raises the limit)",
        flag = CPU_TIME_FLAG
    )]
    CpuTimeExceeded {
        /// The CPU time limit of one call.
        limit: Duration,
    },
    /// The call ran past its wall-clock deadline (the runtime's `Limits::deadline`, a backstop for a
    /// stuck host) without using up its CPU time, and was interrupted. Transient: its thread
    /// hardly ran, so the machine was busy or stuck.
    #[error(
        "the policy did not answer within its wall-clock deadline of {deadline:?}, without \
         using up its CPU time: the host was stuck or overloaded ({flag} raises the deadline)",
        flag = DEADLINE_FLAG
    )]
    DeadlineExceeded {
        /// The wall-clock deadline the call had.
        deadline: Duration,
    },
    /// Every instance slot stayed busy for as long as a call may wait for one
    /// (the runtime's `Limits::slot_wait`). Transient: slots free up as calls end.
    #[error(
        "no instance slot became free within {waited:?}: every slot of the pool was busy \
         ({flag} raises the wait; the pool has one slot per concurrent call)",
        flag = SLOT_WAIT_FLAG
    )]
    SlotWaitExceeded {
        /// How long the call waited.
        waited: Duration,
    },
    /// The guest asked for more memory than the limit and failed. Terminal.
    #[error("the policy ran out of memory (limit: {limit_bytes} bytes)")]
    OutOfMemory {
        /// The memory limit of one call.
        limit_bytes: usize,
    },
    /// The response carries more text than the limit. Terminal.
    #[error(
        "the policy's response is too large ({size_bytes} bytes of text; limit: {limit_bytes})"
    )]
    ResponseTooLarge {
        /// The response's size.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// The host could not set up the call (wasmtime could not instantiate the component).
    /// Transient.
    #[error("the policy could not be instantiated")]
    Instantiate(#[source] BoxError),
    /// The guest broke the canonical ABI (an invalid string, an out-of-range value...).
    /// Terminal.
    #[error("the policy returned a malformed value")]
    Malformed(#[source] BoxError),
}

impl PolicyError {
    /// True when calling again with the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::DeadlineExceeded { .. } | Self::SlotWaitExceeded { .. } | Self::Instantiate(_)
        )
    }

    /// The kind of failure.
    pub fn kind(&self) -> PolicyErrorKind {
        match self {
            Self::Rejected(_) => PolicyErrorKind::Rejected,
            Self::Trap { .. } => PolicyErrorKind::Trap,
            Self::CpuTimeExceeded { .. } => PolicyErrorKind::CpuTime,
            Self::DeadlineExceeded { .. } => PolicyErrorKind::Deadline,
            Self::SlotWaitExceeded { .. } => PolicyErrorKind::SlotWait,
            Self::OutOfMemory { .. } => PolicyErrorKind::OutOfMemory,
            Self::ResponseTooLarge { .. } => PolicyErrorKind::ResponseTooLarge,
            Self::Instantiate(_) => PolicyErrorKind::Instantiate,
            Self::Malformed(_) => PolicyErrorKind::Malformed,
        }
    }
}

/// The kind of a [`PolicyError`], without its details (for metrics, logs and decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyErrorKind {
    /// [`PolicyError::Rejected`].
    Rejected,
    /// [`PolicyError::Trap`].
    Trap,
    /// [`PolicyError::CpuTimeExceeded`].
    CpuTime,
    /// [`PolicyError::DeadlineExceeded`].
    Deadline,
    /// [`PolicyError::SlotWaitExceeded`].
    SlotWait,
    /// [`PolicyError::OutOfMemory`].
    OutOfMemory,
    /// [`PolicyError::ResponseTooLarge`].
    ResponseTooLarge,
    /// [`PolicyError::Instantiate`].
    Instantiate,
    /// [`PolicyError::Malformed`].
    Malformed,
}

impl PolicyErrorKind {
    /// A short, fixed label (the `error` label of metrics).
    pub fn label(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Trap => "trap",
            Self::CpuTime => "cpu_time",
            Self::Deadline => "deadline",
            Self::SlotWait => "slot_wait",
            Self::OutOfMemory => "out_of_memory",
            Self::ResponseTooLarge => "response_too_large",
            Self::Instantiate => "instantiate",
            Self::Malformed => "malformed",
        }
    }
}

impl std::fmt::Display for PolicyErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

fn logged_suffix(logged: &Option<String>) -> String {
    logged
        .as_deref()
        .map(|m| format!(" after logging: {m}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call's limits, each hit: CPU time (2 s), wall-clock deadline (30 s), slot wait (10 s).
    fn limits_hit() -> [PolicyError; 3] {
        [
            PolicyError::CpuTimeExceeded {
                limit: Duration::from_secs(2),
            },
            PolicyError::DeadlineExceeded {
                deadline: Duration::from_secs(30),
            },
            PolicyError::SlotWaitExceeded {
                waited: Duration::from_secs(10),
            },
        ]
    }

    #[test]
    fn only_failures_of_a_busy_host_are_transient() {
        let [cpu_time, deadline, slot_wait] = limits_hit();
        let rejected = PolicyError::Rejected(capt_policy::Error::Internal("x".into()));
        let oom = PolicyError::OutOfMemory { limit_bytes: 1 };
        assert!(deadline.is_transient());
        assert!(slot_wait.is_transient());
        assert!(!cpu_time.is_transient());
        assert!(!rejected.is_transient());
        assert!(!oom.is_transient());
    }

    #[test]
    fn a_limit_error_names_the_flag_that_raises_the_limit() {
        let [cpu_time, deadline, slot_wait] = limits_hit().map(|error| error.to_string());
        assert!(cpu_time.contains("2s of CPU time"), "{cpu_time}");
        assert!(cpu_time.contains("--call-cpu-limit raises"), "{cpu_time}");
        assert!(
            deadline.contains("wall-clock deadline of 30s"),
            "{deadline}"
        );
        assert!(deadline.contains("--call-deadline raises"), "{deadline}");
        assert!(slot_wait.contains("--call-slot-wait raises"), "{slot_wait}");
    }

    #[test]
    fn a_trap_message_carries_the_guest_panic_message() {
        let trap = PolicyError::Trap {
            logged: Some("policy panicked: boom".into()),
            source: "wasm trap: unreachable".into(),
        };
        assert_eq!(
            trap.to_string(),
            "the policy trapped after logging: policy panicked: boom"
        );
    }
}
