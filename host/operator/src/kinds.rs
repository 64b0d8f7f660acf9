//! The kinds an operator works with: the policy's `triggers` and `reads` ([`KindRef`]s),
//! resolved to API resources by discovery ([`Kinds::discover`]), and [`ObjectKey`], the
//! version-free identity of one object.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use capt_policy::{KindRef, Metadata, ObjectRef, group_of};
use kube::api::{Api, ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};
use kube::runtime::reflector::ObjectRef as StoreRef;
use kube::{Client, Resource, ResourceExt as _};

use super::object::CachedObject;

/// A kind, without its version: versions of one API group name the same objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KindKey {
    /// The API group (`""` for the core group).
    pub group: String,
    /// The kind, e.g. `Secret`.
    pub kind: String,
}

impl KindKey {
    /// The kind `kind` of `group` (`""` for the core group).
    pub fn new(group: &str, kind: &str) -> Self {
        Self {
            group: group.to_owned(),
            kind: kind.to_owned(),
        }
    }
}

impl fmt::Display for KindKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// One object, without its version (the same object as [`ObjectRef::same_object`] means).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The kind.
    pub kind: KindKey,
    /// The namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of a contract reference.
    pub fn of(reference: &ObjectRef) -> Self {
        Self {
            kind: KindKey::new(reference.group(), &reference.kind),
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{}/{namespace}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// A kind the policy triggers on or reads, as the API server serves it.
#[derive(Debug, Clone)]
pub struct KindInfo {
    /// Group, version, kind and plural, as discovered.
    pub api_resource: Arc<ApiResource>,
    /// True when objects of this kind live in a namespace.
    pub namespaced: bool,
    /// True when the kind has the `status` subresource.
    pub status_subresource: bool,
    /// True when objects of this kind are reconciled (a policy `trigger`).
    pub trigger: bool,
    /// True when the kind is watched into a cache; false for kinds read with a GET when a
    /// reconcile needs one.
    pub cached: bool,
}

impl KindInfo {
    /// This kind's key.
    pub fn key(&self) -> KindKey {
        KindKey::new(&self.api_resource.group, &self.api_resource.kind)
    }

    /// The key of `object`, an object of this kind.
    pub fn object_key(&self, object: &impl Resource) -> ObjectKey {
        ObjectKey {
            kind: self.key(),
            namespace: if self.namespaced {
                object.namespace()
            } else {
                None
            },
            name: object.name_any(),
        }
    }

    /// The contract reference of `object`, an object of this kind.
    pub fn object_ref(&self, object: &impl Resource) -> ObjectRef {
        self.reference(self.object_key(object))
    }

    /// The contract reference of `key`, an object of this kind, at the served version.
    pub fn reference(&self, key: ObjectKey) -> ObjectRef {
        ObjectRef {
            api_version: self.api_resource.api_version.clone(),
            kind: self.api_resource.kind.clone(),
            namespace: key.namespace,
            name: key.name,
        }
    }

    /// The reflector store key of `key`, an object of this kind.
    pub fn store_ref(&self, key: &ObjectKey) -> StoreRef<CachedObject> {
        let reference = StoreRef::new_with(&key.name, self.api_resource.clone());
        match &key.namespace {
            Some(namespace) if self.namespaced => reference.within(namespace),
            _ => reference,
        }
    }

    /// The API for objects of this kind in `namespace` (all namespaces, or cluster-scoped
    /// objects, when `None`).
    pub fn api(&self, client: &Client, namespace: Option<&str>) -> Api<CachedObject> {
        match namespace {
            Some(namespace) if self.namespaced => {
                Api::namespaced_with(client.clone(), namespace, &self.api_resource)
            }
            _ => Api::all_with(client.clone(), &self.api_resource),
        }
    }
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The API server does not serve a kind of the policy (its CRD is not installed, or not at
    /// this version). Transient: it may be installed later.
    #[error("the API server does not serve {api_version} {kind}")]
    NotServed {
        /// The kind's `apiVersion`.
        api_version: String,
        /// The kind.
        kind: String,
        /// What discovery answered.
        #[source]
        source: kube::Error,
    },
}

/// Every kind of a policy, by [`KindKey`].
#[derive(Debug, Clone, Default)]
pub struct Kinds {
    by_key: HashMap<KindKey, Arc<KindInfo>>,
}

impl Kinds {
    /// Resolves the policy's triggers and reads with the API server's discovery. Kinds in
    /// `uncached` are never watched (they are read one object at a time, with GET), unless
    /// they are triggers, which are always watched.
    pub async fn discover(
        client: &Client,
        metadata: &Metadata,
        uncached: &[KindKey],
    ) -> Result<Self, DiscoveryError> {
        // Triggers first: when a kind is both, its trigger version is the one watched.
        let declared = metadata
            .triggers
            .iter()
            .map(|k| (k, true))
            .chain(metadata.reads.iter().map(|k| (k, false)));
        let mut by_key: HashMap<KindKey, Arc<KindInfo>> = HashMap::new();
        for (kind_ref, trigger) in declared {
            let key = KindKey::new(group_of(&kind_ref.api_version), &kind_ref.kind);
            if by_key.contains_key(&key) {
                continue;
            }
            let info = resolve(
                client,
                kind_ref,
                trigger,
                !uncached.contains(&key) || trigger,
            )
            .await?;
            by_key.insert(key, Arc::new(info));
        }
        Ok(Self { by_key })
    }

    /// Kinds already resolved (for tests).
    #[cfg(test)]
    pub(crate) fn from_infos(infos: impl IntoIterator<Item = KindInfo>) -> Self {
        Self {
            by_key: infos
                .into_iter()
                .map(|info| (info.key(), Arc::new(info)))
                .collect(),
        }
    }

    /// The kind with this key, if the policy declared it.
    pub fn get(&self, key: &KindKey) -> Option<&Arc<KindInfo>> {
        self.by_key.get(key)
    }

    /// Every kind, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<KindInfo>> {
        self.by_key.values()
    }

    /// The trigger kinds.
    pub fn triggers(&self) -> impl Iterator<Item = &Arc<KindInfo>> {
        self.iter().filter(|k| k.trigger)
    }
}

async fn resolve(
    client: &Client,
    kind_ref: &KindRef,
    trigger: bool,
    cached: bool,
) -> Result<KindInfo, DiscoveryError> {
    let (group, version) = match kind_ref.api_version.rsplit_once('/') {
        Some((group, version)) => (group, version),
        None => ("", kind_ref.api_version.as_str()),
    };
    let gvk = GroupVersionKind::gvk(group, version, &kind_ref.kind);
    let (api_resource, capabilities) =
        discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|source| DiscoveryError::NotServed {
                api_version: kind_ref.api_version.clone(),
                kind: kind_ref.kind.clone(),
                source,
            })?;
    let namespaced = capabilities.scope == Scope::Namespaced;
    if namespaced != kind_ref.namespaced {
        tracing::warn!(
            kind = %kind_ref.kind,
            namespaced,
            "the policy declares a different scope than the API server serves; using the server's"
        );
    }
    Ok(KindInfo {
        namespaced,
        status_subresource: capabilities
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status"),
        api_resource: Arc::new(api_resource),
        trigger,
        cached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_the_version() {
        let v1 = ObjectRef::new("example.com/v1", "Thing", Some("ns"), "a");
        let v2 = ObjectRef::new("example.com/v2", "Thing", Some("ns"), "a");
        assert_eq!(ObjectKey::of(&v1), ObjectKey::of(&v2));
        assert_eq!(ObjectKey::of(&v1).to_string(), "Thing.example.com/ns/a");
        let core = ObjectRef::new("v1", "Secret", Some("ns"), "s");
        assert_eq!(ObjectKey::of(&core).kind, KindKey::new("", "Secret"));
        assert_eq!(ObjectKey::of(&core).to_string(), "Secret/ns/s");
    }
}
