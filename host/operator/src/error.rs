//! The operator's errors: [`ReconcileError`] (one reconcile failed; sorted into transient and
//! terminal, which drives the backoff) and [`OperatorError`] (the operator could not run).

use std::net::SocketAddr;

use capt_policy::ObjectRef;

use capt_host_core::rounds::RoundError;

use super::object::Unreadable;

/// Why one reconcile failed. A failed reconcile is retried with a per-object backoff
/// ([`super::RetryPolicy`]); [`ReconcileError::is_transient`] chooses the delay.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Gathering the objects or calling the policy failed (see [`RoundError::is_transient`]).
    #[error("the reconcile failed")]
    Rounds(#[source] RoundError),
    /// A patch's object changed since the version the policy computed from: the rest of the
    /// response was not applied; the trigger is reconciled again once re-read. Transient.
    #[error("{target} changed since it was read (409 Conflict)")]
    Conflict {
        /// The patched object.
        target: ObjectRef,
    },
    /// The API server refused or failed a write.
    #[error("patching {target} failed")]
    Write {
        /// The patched object.
        target: ObjectRef,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The policy's response patches an object it may not patch (see [`Refusal`]): nothing
    /// of the response was written, no event recorded. Terminal.
    #[error("refused the policy's patch of {target}: {reason}")]
    RefusedPatch {
        /// The patched object.
        target: ObjectRef,
        /// Why the patch is refused.
        reason: Refusal,
    },
    /// The policy's merge patch is not a JSON object. Terminal.
    #[error("the policy's merge patch for {target} is invalid: {reason}")]
    InvalidPatch {
        /// The patched object.
        target: ObjectRef,
        /// What is wrong with it.
        reason: String,
    },
    /// This replica lost (or does not hold) the leader Lease: it does not write.
    #[error("not the leader: writes are stopped")]
    NotLeader,
    /// The task running the policy panicked or was cancelled: a host defect. Transient.
    #[error("the policy task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The operator cannot read the trigger object; the policy was not called. Terminal: it
    /// is reconciled again when it changes.
    #[error("{trigger} cannot be read")]
    Unreadable {
        /// The trigger.
        trigger: ObjectRef,
        /// Why.
        #[source]
        source: Unreadable,
    },
}

impl ReconcileError {
    /// True when reconciling again unchanged may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Rounds(error) => error.is_transient(),
            Self::Write { source, .. } => is_transient_api_error(source),
            Self::Conflict { .. } | Self::NotLeader | Self::Task(_) => true,
            Self::RefusedPatch { .. } | Self::InvalidPatch { .. } | Self::Unreadable { .. } => {
                false
            }
        }
    }

    /// What the Warning event about this failure says: the error and its causes, except the
    /// round a policy failed in, which depends on what the host fetched up front (so the same
    /// failure repeating itself reads the same, and is recorded once).
    pub fn note(&self) -> String {
        match self {
            Self::Rounds(RoundError::Policy { source, .. }) => {
                format!(
                    "{self}: the policy failed: {}",
                    capt_host_core::error_chain(source)
                )
            }
            _ => capt_host_core::error_chain(self),
        }
    }

    /// A short, fixed name for the `error` label of `reconcile_errors_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Rounds(RoundError::Policy { source, .. }) => source.kind().label(),
            Self::Rounds(RoundError::TooManyRounds { .. }) => "too_many_rounds",
            Self::Rounds(RoundError::Source { .. }) => "read",
            Self::Rounds(RoundError::Settings(_)) => "settings",
            Self::Rounds(RoundError::TriggerMissing(_)) => "trigger_missing",
            Self::Conflict { .. } => "conflict",
            Self::Write { .. } => "write",
            Self::RefusedPatch { .. } => "refused_patch",
            Self::InvalidPatch { .. } => "invalid_patch",
            Self::NotLeader => "not_leader",
            Self::Task(_) => "task",
            Self::Unreadable { .. } => "unreadable",
        }
    }

    /// The reason of the Warning event recorded on the trigger, or `None` when the failure is
    /// part of normal operation (a conflict, a lost Lease) and is not worth an event.
    pub fn event_reason(&self) -> Option<&'static str> {
        match self {
            Self::Conflict { .. } | Self::NotLeader => None,
            Self::Rounds(RoundError::Source { .. }) => Some("ReadFailed"),
            Self::Rounds(_) | Self::InvalidPatch { .. } => Some("PolicyFailed"),
            Self::RefusedPatch { .. } => Some("PatchRefused"),
            Self::Write { .. } => Some("WriteFailed"),
            Self::Task(_) => Some("ReconcileFailed"),
            Self::Unreadable { .. } => Some("UnreadableObject"),
        }
    }
}

/// Why the host refuses a patch of a policy's response: a policy may patch only what it was
/// given in this reconcile, at the version it was given (`wit/policy.wit`, record `patch`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The target's kind is not among the `reads` of the policy's metadata.
    #[error("its kind is not among the policy's reads")]
    KindNotRead,
    /// The target is neither the trigger nor an object sent to the policy in this reconcile.
    #[error("the object was not sent to the policy in this reconcile")]
    NotSent,
    /// The patch carries no `resourceVersion`: it would be written unconditionally.
    #[error("it carries no resourceVersion")]
    NoResourceVersion,
    /// The patch's `resourceVersion` is not the one the object was sent with.
    #[error("its resourceVersion {patched} is not {sent}, the one the object was sent with")]
    OtherResourceVersion {
        /// The version the patch carries.
        patched: String,
        /// The version the object was sent with (empty when it had none).
        sent: String,
    },
}

impl Refusal {
    /// A short, fixed name for the `reason` label of `patches_refused_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::KindNotRead => "kind_not_read",
            Self::NotSent => "not_sent",
            Self::NoResourceVersion => "no_resource_version",
            Self::OtherResourceVersion { .. } => "other_resource_version",
        }
    }
}

/// True for API errors worth retrying soon: throttling, server errors, timeouts and transport
/// failures; false for refusals (forbidden, invalid, not found...).
fn is_transient_api_error(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Why an operator could not run.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The HTTP address could not be bound.
    #[error("could not listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The metrics listener's certificate cannot be used.
    #[error("the metrics TLS setup failed")]
    MetricsTls(#[from] crate::TlsError),
    /// The HTTP server stopped with an error.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// An operator task panicked.
    #[error("an operator task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The leader election's timings cannot work.
    #[error("invalid leader election timings")]
    LeaderElection(#[from] crate::TimingError),
    /// This replica lost the Lease (it was not renewed within the renew deadline, or another
    /// replica took it): it stopped writing and ended, to be restarted.
    #[error("leadership lost: this replica stopped writing")]
    LeadershipLost,
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure("x", "y").with_code(code)))
    }

    #[test]
    fn write_errors_are_transient_only_when_the_server_may_answer_otherwise_later() {
        let target = ObjectRef::new("v1", "Thing", None, "t");
        let write = |code| ReconcileError::Write {
            target: target.clone(),
            source: api_error(code),
        };
        assert!(write(500).is_transient());
        assert!(write(503).is_transient());
        assert!(write(429).is_transient());
        assert!(!write(403).is_transient());
        assert!(!write(422).is_transient());
        assert!(ReconcileError::Conflict { target }.is_transient());
    }

    #[test]
    fn conflicts_and_lost_leases_record_no_warning() {
        let target = ObjectRef::new("v1", "Thing", None, "t");
        assert_eq!(ReconcileError::Conflict { target }.event_reason(), None);
        assert_eq!(ReconcileError::NotLeader.event_reason(), None);
        let rejected = ReconcileError::Rounds(RoundError::Policy {
            round: 1,
            source: capt_host_core::PolicyError::Rejected(capt_policy::Error::InvalidInput(
                "x".into(),
            )),
        });
        assert_eq!(rejected.event_reason(), Some("PolicyFailed"));
        assert_eq!(rejected.label(), "rejected");
        assert!(!rejected.is_transient());
    }

    #[test]
    fn an_unreadable_trigger_is_a_terminal_unreadable_object_warning() {
        let unreadable = ReconcileError::Unreadable {
            trigger: ObjectRef::new("v1", "Thing", Some("ns"), "t"),
            source: Unreadable::NoMetadata,
        };
        assert_eq!(unreadable.event_reason(), Some("UnreadableObject"));
        assert_eq!(unreadable.label(), "unreadable");
        assert!(!unreadable.is_transient());
        assert_eq!(
            unreadable.note(),
            "Thing/ns/t cannot be read: the manifest has no metadata object"
        );
    }

    #[test]
    fn the_note_of_a_policy_failure_does_not_depend_on_its_round() {
        let rejected = |round| {
            ReconcileError::Rounds(RoundError::Policy {
                round,
                source: capt_host_core::PolicyError::Rejected(capt_policy::Error::InvalidInput(
                    "bad".into(),
                )),
            })
        };
        assert_eq!(rejected(1).note(), rejected(2).note());
        assert_eq!(
            rejected(2).note(),
            "the reconcile failed: the policy failed: the policy rejected the request: invalid input: bad"
        );
        let target = ObjectRef::new("v1", "Thing", None, "t");
        let conflict = ReconcileError::Conflict { target };
        assert_eq!(conflict.note(), capt_host_core::error_chain(&conflict));
    }
}
