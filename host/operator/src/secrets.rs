//! [`SecretScope`]: the namespaces whose Secrets a reconcile may read.
//!
//! A policy names the Secrets it needs (for capt-status: the connection Secret a
//! WorkspaceTemplateApply names, in any namespace it likes). Whoever can write such an object
//! could otherwise make the operator read any Secret of the cluster by name. So a Secret is
//! read only in the trigger's namespace and in the namespaces the operator is configured for
//! ([`super::OperatorConfig::secret_namespaces`]); any other reaches the policy as missing,
//! without a request, and is logged once per Secret (not on every reconcile).

use std::collections::HashSet;
use std::sync::Mutex;

use super::dispatch::lock;
use super::kinds::{KindKey, ObjectKey};

/// How many refused Secrets are remembered (each logged once); past it, the memory starts
/// over and each is logged once more. Bounds the memory whatever the objects name.
const REMEMBERED: usize = 4096;

/// The namespaces whose Secrets may be read, and the Secrets refused so far.
#[derive(Debug)]
pub(crate) struct SecretScope {
    namespaces: HashSet<String>,
    refused: Mutex<HashSet<ObjectKey>>,
}

impl SecretScope {
    /// Secrets may be read in the trigger's namespace and in `namespaces`.
    pub(crate) fn new(namespaces: impl IntoIterator<Item = String>) -> Self {
        Self {
            namespaces: namespaces.into_iter().collect(),
            refused: Mutex::default(),
        }
    }

    /// True when `key` may be read for a trigger in `trigger_namespace`: it is not a Secret,
    /// or it is one in the trigger's namespace or a configured one. A refusal is logged the
    /// first time only.
    pub(crate) fn allows(&self, trigger_namespace: Option<&str>, key: &ObjectKey) -> bool {
        if key.kind != KindKey::new("", "Secret") {
            return true;
        }
        let Some(namespace) = key.namespace.as_deref() else {
            return true;
        };
        if trigger_namespace == Some(namespace) || self.namespaces.contains(namespace) {
            return true;
        }
        let mut refused = lock(&self.refused);
        if !refused.contains(key) {
            if refused.len() >= REMEMBERED {
                refused.clear();
            }
            tracing::warn!(
                secret = %key,
                "not reading a Secret outside the trigger's namespace and --secret-namespaces: \
                 the policy sees it as missing"
            );
            refused.insert(key.clone());
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind: KindKey::new("", kind),
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    #[test]
    fn secrets_are_read_in_the_trigger_namespace_and_the_configured_ones_only() {
        let scope = SecretScope::new(["shared".to_owned()]);
        assert!(scope.allows(Some("team-a"), &key("Secret", "team-a", "s")));
        assert!(scope.allows(Some("team-a"), &key("Secret", "shared", "s")));
        assert!(!scope.allows(Some("team-a"), &key("Secret", "team-b", "s")));
        assert!(!scope.allows(None, &key("Secret", "team-b", "s")));
        assert!(
            scope.allows(Some("team-a"), &key("ConfigMap", "team-b", "c")),
            "only Secrets are limited"
        );
    }

    #[test]
    fn each_refused_secret_is_remembered_once_within_the_bound() {
        let scope = SecretScope::new([]);
        for _ in 0..3 {
            assert!(!scope.allows(Some("a"), &key("Secret", "b", "s")));
        }
        assert_eq!(lock(&scope.refused).len(), 1);
        for n in 0..REMEMBERED + 10 {
            scope.allows(Some("a"), &key("Secret", "b", &n.to_string()));
        }
        assert!(lock(&scope.refused).len() <= REMEMBERED);
    }
}
