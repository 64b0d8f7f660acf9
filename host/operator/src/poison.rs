//! Objects the operator cannot read ([`Unreadable`], "poison" objects): reported when they are
//! seen, and never allowed to hold up anything but their own reconciles.
//!
//! Any JSON reads as a [`CachedObject`], so an unreadable object never fails the list or the
//! watch of its kind. The watch of each kind passes its events through a [`PoisonWatch`]:
//! - an unreadable object is logged and counted (`poison_objects_total{kind}`) once per version
//!   seen, and cached under the identity that could be read;
//! - one without a name cannot be cached (the store keys objects by name): it is left out of
//!   the watch, and logged and counted each time it is seen.
//!
//! An unreadable trigger fails its reconciles with [`crate::ReconcileError::Unreadable`], without
//! calling the policy; the reconciler records that once as a Warning event `UnreadableObject` on
//! it. An unreadable object of a kind the policy reads reaches the policy as it is: only the
//! reconciles that read it can fail on it (the policy answers `invalid-input` for what it
//! cannot read).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kube::runtime::watcher::Event;
use kube::{Resource as _, ResourceExt as _};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::kinds::{KindInfo, ObjectKey};
use super::object::{CachedObject, Unreadable};
use capt_host_core::error_chain;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Metrics of the unreadable objects.
#[derive(Debug, Clone)]
pub(crate) struct PoisonMetrics {
    objects: Family<KindLabels, Counter>,
}

impl PoisonMetrics {
    /// Registers `poison_objects_total`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let objects = Family::default();
        registry.register(
            "poison_objects",
            "Objects (each version once) the operator cannot read, by kind: only their own \
             reconciles fail",
            objects.clone(),
        );
        Self { objects }
    }
}

/// Reports the unreadable objects of one watched kind (see the module docs).
pub(crate) struct PoisonWatch {
    kind: Arc<KindInfo>,
    metrics: PoisonMetrics,
    /// The unreadable objects in the store, at the version they were reported at.
    reported: HashMap<ObjectKey, Option<String>>,
    /// During a re-list: the unreadable objects listed so far (the others are gone).
    listed: Option<HashSet<ObjectKey>>,
}

impl PoisonWatch {
    /// A reporter for the watch of `kind`.
    pub(crate) fn new(kind: Arc<KindInfo>, metrics: &PoisonMetrics) -> Self {
        Self {
            kind,
            metrics: metrics.clone(),
            reported: HashMap::new(),
            listed: None,
        }
    }

    /// Reports what `event` shows of unreadable objects; false when the event must be left
    /// out of the watch (its object has no name).
    pub(crate) fn keep(&mut self, event: &Event<CachedObject>) -> bool {
        match event {
            Event::Init => {
                self.listed = Some(HashSet::new());
                true
            }
            Event::InitApply(object) | Event::Apply(object) => self.seen(object),
            Event::InitDone => {
                if let Some(listed) = self.listed.take() {
                    self.reported.retain(|key, _| listed.contains(key));
                }
                true
            }
            Event::Delete(object) => {
                if object.meta().name.is_none() {
                    return false;
                }
                self.reported.remove(&self.kind.object_key(object));
                true
            }
        }
    }

    fn seen(&mut self, object: &CachedObject) -> bool {
        if object.meta().name.is_none() {
            if let Some(reason) = object.unreadable() {
                self.report(None, reason);
            }
            return false;
        }
        let key = self.kind.object_key(object);
        let Some(reason) = object.unreadable() else {
            self.reported.remove(&key);
            return true;
        };
        let version = object.resource_version();
        if self.reported.get(&key) != Some(&version) {
            self.report(Some(&key), reason);
        }
        if let Some(listed) = &mut self.listed {
            listed.insert(key.clone());
        }
        self.reported.insert(key, version);
        true
    }

    fn report(&self, key: Option<&ObjectKey>, reason: &Unreadable) {
        self.metrics
            .objects
            .get_or_create(&KindLabels {
                kind: self.kind.api_resource.kind.clone(),
            })
            .inc();
        match key {
            Some(key) => tracing::warn!(
                object = %key,
                reason = %error_chain(reason),
                "an object cannot be read: its reconciles fail until it is fixed"
            ),
            None => tracing::warn!(
                kind = %self.kind.key(),
                reason = %error_chain(reason),
                "an object without a name cannot be read or cached: it is left out"
            ),
        }
    }

    /// How many objects of this kind were reported (for tests).
    #[cfg(test)]
    fn count(&self) -> u64 {
        self.metrics
            .objects
            .get_or_create(&KindLabels {
                kind: self.kind.api_resource.kind.clone(),
            })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ApiResource;
    use serde_json::json;

    use super::*;

    fn watch() -> PoisonWatch {
        let kind = KindInfo {
            api_resource: Arc::new(ApiResource {
                group: "example.com".into(),
                version: "v1".into(),
                api_version: "example.com/v1".into(),
                kind: "Thing".into(),
                plural: "things".into(),
            }),
            namespaced: true,
            status_subresource: true,
            trigger: true,
            cached: true,
        };
        PoisonWatch::new(
            Arc::new(kind),
            &PoisonMetrics::register(&mut Registry::default()),
        )
    }

    fn thing(name: &str, version: &str, labels: serde_json::Value) -> CachedObject {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": version,
                         "labels": labels},
        }))
        .unwrap()
    }

    #[test]
    fn each_version_of_an_unreadable_object_is_reported_once() {
        let mut watch = watch();
        let poison = |version| Event::Apply(thing("p", version, json!(["x"])));
        assert!(watch.keep(&poison("1")));
        assert!(watch.keep(&poison("1")));
        assert_eq!(watch.count(), 1);
        assert!(watch.keep(&poison("2")));
        assert_eq!(watch.count(), 2);
        assert!(watch.keep(&Event::Apply(thing("ok", "3", json!({"a": "b"})))));
        assert_eq!(watch.count(), 2, "a readable object is not reported");

        // Fixed, then broken again: reported again.
        assert!(watch.keep(&Event::Apply(thing("p", "4", json!({})))));
        assert!(watch.keep(&poison("4")));
        assert_eq!(watch.count(), 3);
    }

    #[test]
    fn a_relist_reports_only_new_versions_and_forgets_what_is_gone() {
        let mut watch = watch();
        watch.keep(&Event::Apply(thing("p", "1", json!(["x"]))));
        watch.keep(&Event::Apply(thing("q", "1", json!(["x"]))));
        assert_eq!(watch.count(), 2);
        watch.keep(&Event::Init);
        watch.keep(&Event::InitApply(thing("p", "1", json!(["x"]))));
        watch.keep(&Event::InitDone);
        assert_eq!(watch.count(), 2, "p is unchanged");
        assert_eq!(watch.reported.len(), 1, "q is gone");
        watch.keep(&Event::Delete(thing("p", "1", json!(["x"]))));
        assert!(watch.reported.is_empty());
    }

    #[test]
    fn an_object_without_a_name_is_left_out_and_reported() {
        let mut watch = watch();
        let nameless: CachedObject =
            serde_json::from_value(json!({"metadata": {"name": ["x"]}})).unwrap();
        for event in [
            Event::Apply(nameless.clone()),
            Event::InitApply(nameless.clone()),
            Event::Delete(nameless),
        ] {
            assert!(!watch.keep(&event));
        }
        assert_eq!(watch.count(), 2, "reported when seen, not when deleted");
        assert!(watch.keep(&Event::Init) && watch.keep(&Event::InitDone));
    }
}
