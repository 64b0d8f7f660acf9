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
    /// The call ran past its deadline and was interrupted. Transient: the machine may have
    /// been busy (though usually the policy loops).
    #[error("the policy did not answer within its deadline of {deadline:?}")]
    DeadlineExceeded {
        /// The deadline the call had.
        deadline: Duration,
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
    /// The host could not set up the call (no free instance slot, for example). Transient.
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
        matches!(self, Self::DeadlineExceeded { .. } | Self::Instantiate(_))
    }

    /// A short, fixed name for the kind of failure (for metrics and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "rejected",
            Self::Trap { .. } => "trap",
            Self::DeadlineExceeded { .. } => "deadline",
            Self::OutOfMemory { .. } => "out_of_memory",
            Self::ResponseTooLarge { .. } => "response_too_large",
            Self::Instantiate(_) => "instantiate",
            Self::Malformed(_) => "malformed",
        }
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

    #[test]
    fn only_deadline_and_instantiation_failures_are_transient() {
        let deadline = PolicyError::DeadlineExceeded {
            deadline: Duration::from_secs(1),
        };
        let rejected = PolicyError::Rejected(capt_policy::Error::Internal("x".into()));
        let oom = PolicyError::OutOfMemory { limit_bytes: 1 };
        assert!(deadline.is_transient());
        assert!(!rejected.is_transient());
        assert!(!oom.is_transient());
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
