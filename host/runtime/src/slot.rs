//! The active policy: [`ActivePolicy`] (a loaded policy with its merged settings and version
//! label) behind [`PolicySlot`], the handle every reconcile reads at its start.
//!
//! The slot is a `tokio::sync::watch` channel, so a future command can swap the module while
//! the operator runs ([`PolicySlot::replace`]): reconciles already running finish with the
//! policy they started with, the next ones use the new one. The watched kinds are discovered
//! from the policy present at start; a replacement must trigger on and read the same kinds.

use std::sync::Arc;

use capt_policy::Metadata;
use serde_json::Value;
use tokio::sync::watch;

use crate::wasm::WasmPolicy;
use capt_host_core::Policy;
use capt_host_core::rounds::{self, RoundError};

/// How many hex digits of the module's SHA-256 the version label carries.
const DIGEST_PREFIX: usize = 12;

/// A policy ready to run: the policy, the settings it runs with and its version label.
pub struct ActivePolicy {
    policy: Arc<dyn Policy + Send + Sync>,
    version: String,
    settings: String,
    sha256: String,
}

impl std::fmt::Debug for ActivePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivePolicy")
            .field("name", &self.metadata().name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl ActivePolicy {
    /// `policy`, whose module has the SHA-256 `sha256` (hex), with its default settings merged
    /// with `overrides` (RFC 7396).
    pub fn new(
        policy: Arc<dyn Policy + Send + Sync>,
        sha256: &str,
        overrides: Option<&Value>,
    ) -> Result<Self, RoundError> {
        let metadata = policy.metadata();
        let settings = rounds::merge_settings(&metadata.default_settings, overrides)?;
        let digest = sha256.get(..DIGEST_PREFIX).unwrap_or(sha256);
        let version = format!("{}+{digest}", metadata.version);
        Ok(Self {
            policy,
            version,
            settings,
            sha256: sha256.to_owned(),
        })
    }

    /// A loaded component, with its default settings merged with `overrides`.
    pub fn wasm(policy: WasmPolicy, overrides: Option<&Value>) -> Result<Self, RoundError> {
        let sha256 = policy.sha256().to_owned();
        Self::new(Arc::new(policy), &sha256, overrides)
    }

    /// The policy.
    pub fn policy(&self) -> &(dyn Policy + Send + Sync) {
        &*self.policy
    }

    /// The policy's metadata.
    pub fn metadata(&self) -> &Metadata {
        self.policy.metadata()
    }

    /// The module version label: the policy's version and the start of the module's SHA-256,
    /// e.g. `0.1.0+fd2c0b2f90d8`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The SHA-256 of the module's bytes (hex), as given to [`ActivePolicy::new`].
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The merged settings (JSON text).
    pub fn settings(&self) -> &str {
        &self.settings
    }
}

/// The swappable handle to the active policy. Cheap to clone; clones share the slot.
#[derive(Clone, Debug)]
pub struct PolicySlot {
    current: Arc<watch::Sender<Arc<ActivePolicy>>>,
}

impl PolicySlot {
    /// A slot holding `policy`.
    pub fn new(policy: ActivePolicy) -> Self {
        Self {
            current: Arc::new(watch::Sender::new(Arc::new(policy))),
        }
    }

    /// The policy reconciles started now run with.
    pub fn current(&self) -> Arc<ActivePolicy> {
        self.current.borrow().clone()
    }

    /// Makes `policy` the active one; returns the one it replaces.
    pub fn replace(&self, policy: ActivePolicy) -> Arc<ActivePolicy> {
        self.current.send_replace(Arc::new(policy))
    }
}

#[cfg(test)]
mod tests {
    use capt_policy::{Request, Response};
    use serde_json::json;

    use super::*;
    use capt_host_core::PolicyError;

    struct Named(Metadata);

    impl Policy for Named {
        fn metadata(&self) -> &Metadata {
            &self.0
        }

        fn reconcile(&self, _: &Request) -> Result<Response, PolicyError> {
            Ok(Response::default())
        }
    }

    fn policy(version: &str) -> Arc<dyn Policy + Send + Sync> {
        Arc::new(Named(Metadata {
            name: "p".into(),
            version: version.into(),
            triggers: vec![],
            reads: vec![],
            default_settings: r#"{"a": 1, "b": 2}"#.into(),
        }))
    }

    #[test]
    fn the_version_label_has_the_policy_version_and_a_digest_prefix() {
        let active = ActivePolicy::new(policy("1.2.3"), "0123456789abcdef", None).unwrap();
        assert_eq!(active.version(), "1.2.3+0123456789ab");
    }

    #[test]
    fn settings_are_the_defaults_merged_with_the_overrides() {
        let active = ActivePolicy::new(policy("1.0.0"), "ab", Some(&json!({"b": 3}))).unwrap();
        let settings: Value = serde_json::from_str(active.settings()).unwrap();
        assert_eq!(settings, json!({"a": 1, "b": 3}));
        assert_eq!(active.version(), "1.0.0+ab");
    }

    #[test]
    fn a_replaced_policy_is_what_the_next_reconcile_gets() {
        let slot = PolicySlot::new(ActivePolicy::new(policy("1.0.0"), "aa", None).unwrap());
        let clone = slot.clone();
        let old = slot.replace(ActivePolicy::new(policy("2.0.0"), "bb", None).unwrap());
        assert_eq!(old.version(), "1.0.0+aa");
        assert_eq!(clone.current().version(), "2.0.0+bb");
    }
}
