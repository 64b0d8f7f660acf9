//! Verdicts on candidates, recorded where every replica sees them (a [`VerdictStore`]: the
//! ConfigMap of [`ConfigMapVerdicts`], or [`MemoryVerdicts`] in tests), so that replicas
//! judging under different load still run the same module.
//!
//! A candidate is named by its [`VerdictKey`] (the module's and the settings' digests, what
//! the pipeline compares candidates by). Before judging one, a replica looks its verdict up:
//! a recorded rejection is not loaded ([`SwapError::Recorded`]); a recorded acceptance skips
//! the canary (the compile must still succeed locally, and its failure is not recorded); with
//! none, the replica judges it and records what it found. The first verdict recorded wins: a
//! store never overwrites an entry. A store that cannot be reached (or is forbidden) leaves
//! each replica judging on its own, logged once.

mod configmap;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::SwapError;
use super::lock;
use super::status::rfc3339;

pub use self::configmap::{ConfigMapVerdicts, MAX_ENTRIES};

/// What a verdict names: a module with its settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerdictKey {
    /// The SHA-256 of the module's bytes (hex).
    pub module: String,
    /// The SHA-256 of the settings file's bytes (hex); empty without a settings file.
    pub settings: String,
}

impl VerdictKey {
    /// The key's name in a store: the module digest, then `.` and the settings digest when
    /// there is a settings file (valid as a ConfigMap key).
    pub fn name(&self) -> String {
        if self.settings.is_empty() {
            self.module.clone()
        } else {
            format!("{}.{}", self.module, self.settings)
        }
    }

    pub(crate) fn of((module, settings): &(String, String)) -> Self {
        Self {
            module: module.clone(),
            settings: settings.clone(),
        }
    }
}

/// Accepted or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The candidate passed its checks.
    Accepted,
    /// The candidate failed one.
    Rejected,
}

/// A recorded verdict (also its JSON form in a store, and on `/policy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Accepted or rejected.
    pub verdict: Decision,
    /// The rejection's reason label ([`SwapError::reason`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rejection's error and causes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The identity of the replica that judged.
    pub judged_by: String,
    /// When.
    #[serde(serialize_with = "rfc3339", deserialize_with = "from_rfc3339")]
    pub at: DateTime<Utc>,
}

/// Reads an RFC 3339 time.
fn from_rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

impl Verdict {
    /// The verdict of `judged_by` on a candidate: accepted, or rejected with `error`.
    pub fn new(judged_by: &str, outcome: Result<(), &SwapError>) -> Self {
        let (verdict, reason, message) = match outcome {
            Ok(()) => (Decision::Accepted, None, None),
            Err(error) => (
                Decision::Rejected,
                Some(error.reason().to_owned()),
                Some(capt_host_core::error_chain(error)),
            ),
        };
        Self {
            verdict,
            reason,
            message,
            judged_by: judged_by.to_owned(),
            at: Utc::now(),
        }
    }
}

/// What [`VerdictStore::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The verdict is recorded.
    Recorded,
    /// Another verdict was recorded first; it stays.
    Existing(Verdict),
}

/// Why a store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VerdictStoreError {
    /// The API request failed (unreachable, forbidden, ...).
    #[error("the API request failed")]
    Api(#[source] kube::Error),
    /// The API server did not answer in time.
    #[error("no answer from the API server within {0:?}")]
    Timeout(std::time::Duration),
    /// The recorded entry is not a verdict (edited by hand?); it is neither used nor replaced.
    #[error("the recorded verdict `{key}` is not readable")]
    Malformed {
        /// The entry.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The verdict could not be written as JSON.
    #[error("the verdict cannot be encoded")]
    Encode(#[source] serde_json::Error),
    /// Other replicas kept writing the store at the same time.
    #[error("gave up after {0} conflicting writes")]
    Contended(u32),
}

/// Where verdicts are recorded. Blocking: called on blocking threads only (never in an async
/// task), bounded by the store's own timeout.
pub trait VerdictStore: std::fmt::Debug + Send + Sync {
    /// The verdict recorded for `key`, if any.
    fn lookup(&self, key: &VerdictKey) -> Result<Option<Verdict>, VerdictStoreError>;
    /// Records `verdict` for `key`, unless one is recorded already (it is kept and returned).
    fn record(&self, key: &VerdictKey, verdict: &Verdict) -> Result<Recorded, VerdictStoreError>;
}

/// A store in memory, for tests (shared by clones).
#[derive(Debug, Clone, Default)]
pub struct MemoryVerdicts {
    entries: Arc<std::sync::Mutex<std::collections::HashMap<VerdictKey, Verdict>>>,
}

impl MemoryVerdicts {
    /// The verdicts recorded so far.
    pub fn entries(&self) -> Vec<(VerdictKey, Verdict)> {
        lock(&self.entries)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl VerdictStore for MemoryVerdicts {
    fn lookup(&self, key: &VerdictKey) -> Result<Option<Verdict>, VerdictStoreError> {
        Ok(lock(&self.entries).get(key).cloned())
    }

    fn record(&self, key: &VerdictKey, verdict: &Verdict) -> Result<Recorded, VerdictStoreError> {
        let mut entries = lock(&self.entries);
        match entries.get(key) {
            Some(existing) => Ok(Recorded::Existing(existing.clone())),
            None => {
                entries.insert(key.clone(), verdict.clone());
                Ok(Recorded::Recorded)
            }
        }
    }
}

/// The verdicts a swapper uses: a store, and the identity its verdicts are recorded under.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Verdicts {
    store: Arc<dyn VerdictStore>,
    identity: String,
    /// Set once a failure of the store was logged as a warning (the next ones are debug).
    warned: Arc<AtomicBool>,
}

impl Verdicts {
    /// Verdicts in `store`, judged by `identity` (this replica).
    pub fn new(store: Arc<dyn VerdictStore>, identity: impl Into<String>) -> Self {
        Self {
            store,
            identity: identity.into(),
            warned: Arc::default(),
        }
    }

    /// The verdict recorded for `key`: `Err(())` when the store fails (logged).
    fn lookup(&self, key: &(String, String)) -> Result<Option<Verdict>, ()> {
        let key = VerdictKey::of(key);
        self.store
            .lookup(&key)
            .map_err(|error| self.failed("looking up", &key, &error))
    }

    /// Records this replica's verdict on `key` (`outcome`), when it is one: errors that do not
    /// judge the module itself ([`SwapError::is_verdict`]) are not recorded. Returns the
    /// verdict another replica recorded first, if any.
    fn record(&self, key: &(String, String), outcome: Result<(), &SwapError>) -> Option<Verdict> {
        if outcome.is_err_and(|error| !error.is_verdict()) {
            return None;
        }
        let key = VerdictKey::of(key);
        let verdict = Verdict::new(&self.identity, outcome);
        match self.store.record(&key, &verdict) {
            Ok(Recorded::Recorded) => {
                tracing::info!(key = %key.name(), verdict = ?verdict.verdict, reason = verdict.reason.as_deref().unwrap_or(""), "policy module verdict recorded");
                None
            }
            Ok(Recorded::Existing(existing)) => {
                tracing::info!(key = %key.name(), verdict = ?existing.verdict, judged_by = %existing.judged_by, "another replica recorded its verdict on this policy module first; it stands");
                Some(existing)
            }
            Err(error) => {
                self.failed("recording", &key, &error);
                None
            }
        }
    }

    fn failed(&self, what: &str, key: &VerdictKey, error: &VerdictStoreError) {
        let error = capt_host_core::error_chain(error);
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(key = %key.name(), %error, "{what} a policy module verdict failed");
        } else {
            tracing::warn!(
                key = %key.name(),
                %error,
                "{what} a policy module verdict failed; this replica judges modules on its own \
                 (logged once)"
            );
        }
    }
}

/// Why a candidate was not accepted by [`follow`].
pub(crate) enum Refused<E> {
    /// A recorded rejection ([`SwapError::Recorded`]): this replica did not judge, or its
    /// acceptance came after another replica's rejection.
    Recorded(SwapError),
    /// This replica's judgment.
    Failed(E),
}

/// Judges the candidate `key` with `judge`, following `verdicts`: a recorded rejection refuses
/// it unjudged; a recorded acceptance is passed to `judge` (it skips the canary); with none
/// recorded, the outcome is recorded when `complete` (the judgment ran every check;
/// `error` tells the [`SwapError`] of a failure). The store is not written after it failed a
/// lookup: one timeout at most.
pub(crate) fn follow<T, E>(
    verdicts: Option<&Verdicts>,
    key: &(String, String),
    complete: bool,
    judge: impl FnOnce(bool) -> Result<T, E>,
    error: impl Fn(&E) -> &SwapError,
) -> Result<T, Refused<E>> {
    let Some(verdicts) = verdicts else {
        return judge(false).map_err(Refused::Failed);
    };
    let recorded = verdicts.lookup(key);
    if let Ok(Some(verdict)) = &recorded
        && verdict.verdict == Decision::Rejected
    {
        return Err(Refused::Recorded(SwapError::Recorded(Box::new(
            verdict.clone(),
        ))));
    }
    let accepted = matches!(recorded, Ok(Some(_)));
    let judged = judge(accepted);
    // A recorded acceptance stands even when this replica cannot compile the module.
    if complete && matches!(recorded, Ok(None)) {
        let outcome = judged.as_ref().map(|_| ()).map_err(&error);
        if let Some(first) = verdicts.record(key, outcome)
            && first.verdict == Decision::Rejected
            && judged.is_ok()
        {
            // Another replica's rejection was recorded first: it stands here too.
            return Err(Refused::Recorded(SwapError::Recorded(Box::new(first))));
        }
    }
    judged.map_err(Refused::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(settings: &str) -> (String, String) {
        ("a".repeat(64), settings.to_owned())
    }

    #[test]
    fn the_key_names_the_settings_only_when_there_is_a_settings_file() {
        assert_eq!(VerdictKey::of(&key("")).name(), "a".repeat(64));
        assert_eq!(
            VerdictKey::of(&key("b")).name(),
            format!("{}.b", "a".repeat(64))
        );
    }

    #[test]
    fn the_first_verdict_wins_and_host_side_failures_are_not_verdicts() {
        let memory = MemoryVerdicts::default();
        let a = Verdicts::new(Arc::new(memory.clone()), "a");
        let b = Verdicts::new(Arc::new(memory.clone()), "b");
        assert_eq!(
            a.record(&key(""), Err(&SwapError::Internal("x".into()))),
            None
        );
        assert_eq!(a.lookup(&key("")), Ok(None));
        let canary = SwapError::Canary {
            scenario: "s".into(),
            message: "m".into(),
            policy_error: None,
        };
        assert_eq!(a.record(&key(""), Err(&canary)), None);
        let existing = b.record(&key(""), Ok(())).expect("a's verdict stands");
        assert_eq!(existing.verdict, Decision::Rejected);
        assert_eq!(existing.judged_by, "a");
        assert_eq!(existing.reason.as_deref(), Some("canary_failed"));
        assert_eq!(b.lookup(&key("")), Ok(Some(existing)));
        assert_eq!(memory.entries().len(), 1);
    }

    #[test]
    fn a_verdict_reads_back_from_its_json() {
        let verdict = Verdict::new("replica-a", Err(&SwapError::Superseded));
        let json = serde_json::to_value(&verdict).unwrap();
        assert_eq!(json["verdict"], "rejected");
        assert_eq!(json["reason"], "superseded");
        assert_eq!(json["judgedBy"], "replica-a");
        let back: Verdict = serde_json::from_value(json).unwrap();
        // Milliseconds are kept.
        assert_eq!(back.at.timestamp_millis(), verdict.at.timestamp_millis());
        assert_eq!(back.judged_by, verdict.judged_by);
        let accepted = serde_json::to_value(Verdict::new("b", Ok(()))).unwrap();
        assert_eq!(accepted["verdict"], "accepted");
        assert!(accepted.get("reason").is_none());
    }
}
