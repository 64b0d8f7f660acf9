//! [`SwapError`]: why a candidate module was not promoted, each with a fixed [`reason`]
//! label (the `reason` of `policy_rejections_total`, of the `/policy` report and of the
//! `PolicyRejected` event).
//!
//! [`reason`]: SwapError::reason

use std::path::PathBuf;

use capt_host_core::PolicyErrorKind;
use capt_host_runtime::LoadError;

use super::verdict::Verdict;

/// Why a candidate module was rejected. The running module is kept in every case.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The module or settings file could not be read (missing, unreadable). Retried on the
    /// next change.
    #[error("could not read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The module file is larger than the configured limit; it was not read.
    #[error("the module is {size} bytes, over the limit of {limit} bytes (--max-module-bytes)")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The settings file is not a YAML object, or does not merge with the module's defaults.
    #[error("invalid settings{}: {message}", .path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Settings {
        /// The settings file, if the problem is in it.
        path: Option<PathBuf>,
        /// What is wrong.
        message: String,
    },
    /// The module was promoted before and rolled back: it is not tried again until the file
    /// holds something else.
    #[error("module sha256:{digest} was rolled back before; it is not tried again")]
    KnownBad {
        /// Its SHA-256.
        digest: String,
    },
    /// The module is not a policy this host can run (see [`LoadError`]).
    #[error("the module cannot be loaded as a policy")]
    Load(#[source] LoadError),
    /// The module is another policy (another `metadata().name`).
    #[error(
        "the module is the policy `{found}`, the running one is `{running}`: a different policy \
         needs a restart (its name is the operator's field manager, event reporter and Lease)"
    )]
    NameChanged {
        /// The running policy's name.
        running: String,
        /// The candidate's.
        found: String,
    },
    /// The module triggers on, or reads, other kinds than the running one.
    #[error(
        "the module watches other kinds than the running one ({details}); the watched kinds \
         are set when the operator starts: restart it to apply this module"
    )]
    KindsChanged {
        /// What differs.
        details: String,
    },
    /// A scenario of the canary suite failed.
    #[error("canary: scenario `{scenario}` failed: {message}")]
    Canary {
        /// The scenario (its name and file).
        scenario: String,
        /// Its first failure.
        message: String,
        /// The kind of the first policy error of that scenario, if one failed it.
        policy_error: Option<PolicyErrorKind>,
    },
    /// The canary suite could not be read or has no scenario (a configuration problem).
    #[error("the canary suite is unusable: {0}")]
    CanarySuite(String),
    /// In shadow mode the module failed live calls that the running module answered.
    #[error(
        "shadow mode: the module failed {failures} of {calls} live calls that the running \
         module answered{}",
        .last.as_ref().map(|e| format!(" (last: {e})")).unwrap_or_default()
    )]
    ShadowFailures {
        /// Calls the candidate failed.
        failures: u64,
        /// Calls compared.
        calls: u64,
        /// The last failure.
        last: Option<String>,
    },
    /// A newer module arrived before this one was promoted (during its shadow run).
    #[error("superseded by a newer module before it was promoted")]
    Superseded,
    /// A host-side failure (a task panicked).
    #[error("internal error: {0}")]
    Internal(String),
    /// A replica recorded its rejection of this module (with these settings) in the cluster:
    /// it is not judged again (see [`crate::Verdicts`]).
    #[error(
        "rejected by a recorded verdict: {} (judged by {} at {}){}",
        .0.reason.as_deref().unwrap_or("no reason"),
        .0.judged_by,
        .0.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        .0.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    Recorded(Box<Verdict>),
}

impl SwapError {
    /// A short, fixed label for the reason (metrics, `/policy`, events).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::TooLarge { .. } => "too_large",
            Self::Settings { .. } => "settings",
            Self::KnownBad { .. } => "known_bad",
            Self::Load(error) => error.kind(),
            Self::NameChanged { .. } => "name_changed",
            Self::KindsChanged { .. } => "kinds_changed",
            Self::Canary { policy_error, .. } => match *policy_error {
                Some(PolicyErrorKind::CpuTime) => "canary_cpu_time",
                Some(PolicyErrorKind::Deadline) => "canary_deadline",
                Some(PolicyErrorKind::OutOfMemory) => "canary_out_of_memory",
                Some(PolicyErrorKind::Trap) => "canary_trap",
                Some(PolicyErrorKind::Malformed) => "canary_malformed",
                Some(PolicyErrorKind::ResponseTooLarge) => "canary_response_too_large",
                Some(
                    PolicyErrorKind::Rejected
                    | PolicyErrorKind::Instantiate
                    | PolicyErrorKind::SlotWait,
                )
                | None => "canary_failed",
            },
            Self::CanarySuite(_) => "canary_suite",
            Self::ShadowFailures { .. } => "shadow_failures",
            Self::Superseded => "superseded",
            Self::Internal(_) => "internal",
            Self::Recorded(_) => "recorded_rejection",
        }
    }

    /// True when the error judges the module itself, the same on every replica with the same
    /// configuration (it does not load, fails the canary, rejects the settings): such a
    /// rejection is recorded as the cluster's verdict. Host-side failures, rejections relative
    /// to the running module and those of live calls are not.
    pub fn is_verdict(&self) -> bool {
        match self {
            Self::Load(error) => {
                !matches!(error, LoadError::Engine(_) | LoadError::CompileWorker(_))
            }
            Self::Settings { .. } | Self::Canary { .. } => true,
            _ => false,
        }
    }

    /// The recorded verdict this rejection follows, if it does.
    pub fn recorded(&self) -> Option<&Verdict> {
        match self {
            Self::Recorded(verdict) => Some(verdict),
            _ => None,
        }
    }

    /// True when the module file does not exist (a ConfigMap not created yet).
    pub fn is_missing_file(&self) -> bool {
        matches!(self, Self::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// True when the same files may pass later without changing (an I/O failure): such a
    /// rejection does not stop the next event from trying the same module again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Read { .. } | Self::Internal(_) | Self::Superseded
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_failures_are_labelled_by_the_policy_error_that_caused_them() {
        let canary = |policy_error| SwapError::Canary {
            scenario: "s".into(),
            message: "m".into(),
            policy_error,
        };
        assert_eq!(
            canary(Some(PolicyErrorKind::Deadline)).reason(),
            "canary_deadline"
        );
        assert_eq!(canary(Some(PolicyErrorKind::Trap)).reason(), "canary_trap");
        assert_eq!(
            canary(Some(PolicyErrorKind::Rejected)).reason(),
            "canary_failed"
        );
        assert_eq!(canary(None).reason(), "canary_failed");
        assert_eq!(SwapError::Load(LoadError::NotWasm).reason(), "not_wasm");
    }
}
