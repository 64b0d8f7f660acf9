//! [`Dispatcher`]: turns watch events into reconcile requests.
//!
//! A change of an object (applied, deleted, or found changed or gone by a re-list) requests a
//! reconcile of:
//! - the object itself, when its kind is a trigger (a deleted trigger is forgotten instead);
//! - every trigger whose last reconcile read it, found or missing ([`TriggerIndex`]);
//! - the trigger-kind owners named in its `ownerReferences`.
//!
//! Requests go to the controllers of the current leadership term, one channel per trigger
//! kind (the controller's scheduler merges duplicates). Between terms (a standby, or a leader
//! stepping down) nothing is sent, and a new term starts by requesting every trigger object.
//!
//! A re-list after a watch expired (410) replaces a store without delete events: the store's
//! objects are remembered at `Init`, and at `InitDone` those that were not listed again are
//! treated as deleted; those listed again at the same resourceVersion are not changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::mpsc::UnboundedSender;
use kube::ResourceExt as _;
use kube::api::DynamicObject;
use kube::runtime::reflector::{ObjectRef as StoreRef, Store};
use kube::runtime::watcher::Event;

use super::cache::Cache;
use super::index::TriggerIndex;
use super::kinds::{KindInfo, KindKey, Kinds, ObjectKey};

/// The request channels of one leadership term, by trigger kind.
pub(crate) type TermSenders = HashMap<KindKey, UnboundedSender<StoreRef<DynamicObject>>>;

/// Routes changes to reconcile requests. See the module docs.
pub(crate) struct Dispatcher {
    kinds: Arc<Kinds>,
    index: Arc<Mutex<TriggerIndex>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    term: Option<TermSenders>,
    /// Per kind being re-listed: the objects of its store before the re-list, by key.
    relists: HashMap<KindKey, HashMap<ObjectKey, Arc<DynamicObject>>>,
}

impl Dispatcher {
    /// A dispatcher for `kinds`, recording into and reading from `index`.
    pub(crate) fn new(kinds: Arc<Kinds>, index: Arc<Mutex<TriggerIndex>>) -> Self {
        Self {
            kinds,
            index,
            state: Mutex::default(),
        }
    }

    /// Handles one watch event of `kind`, after `store` applied it.
    pub(crate) fn on_event(
        &self,
        kind: &KindInfo,
        event: &Event<DynamicObject>,
        store: &Store<DynamicObject>,
    ) {
        match event {
            Event::Apply(object) => self.changed(kind, object, false),
            Event::Delete(object) => self.changed(kind, object, true),
            Event::Init => {
                let before = store
                    .state()
                    .into_iter()
                    .map(|object| (kind.object_key(&object), object))
                    .collect();
                lock(&self.state).relists.insert(kind.key(), before);
            }
            Event::InitApply(object) => {
                let key = kind.object_key(object);
                let before = lock(&self.state)
                    .relists
                    .get_mut(&kind.key())
                    .and_then(|before| before.remove(&key));
                let unchanged = before.is_some_and(|before| {
                    before.resource_version().is_some()
                        && before.resource_version() == object.resource_version()
                });
                if !unchanged {
                    self.changed(kind, object, false);
                }
            }
            Event::InitDone => {
                let gone = lock(&self.state).relists.remove(&kind.key());
                for object in gone.into_iter().flat_map(HashMap::into_values) {
                    self.changed(kind, &object, true);
                }
            }
        }
    }

    /// Starts a term: requests go to `senders` from now on, starting with every trigger
    /// object in `cache`.
    pub(crate) fn begin_term(&self, senders: TermSenders, cache: &Cache) {
        let mut state = lock(&self.state);
        for info in self.kinds.triggers() {
            let (Some(sender), Some(store)) = (senders.get(&info.key()), cache.store(&info.key()))
            else {
                continue;
            };
            for object in store.state() {
                let reference = StoreRef::from_obj_with(&*object, info.api_resource.clone());
                let _ = sender.unbounded_send(reference);
            }
        }
        state.term = Some(senders);
    }

    /// Ends the term: requests are dropped until the next one.
    pub(crate) fn end_term(&self) {
        lock(&self.state).term = None;
    }

    fn changed(&self, kind: &KindInfo, object: &DynamicObject, deleted: bool) {
        let key = kind.object_key(object);
        let mut targets = Vec::new();
        {
            let mut index = lock(&self.index);
            if kind.trigger {
                if deleted {
                    index.forget(&key);
                } else {
                    targets.push(key.clone());
                }
            }
            targets.extend(index.readers_of(&key).cloned());
        }
        for owner in object.owner_references() {
            let owner_kind = KindKey::new(capt_policy::group_of(&owner.api_version), &owner.kind);
            if let Some(info) = self.kinds.get(&owner_kind).filter(|k| k.trigger) {
                targets.push(ObjectKey {
                    kind: owner_kind,
                    namespace: if info.namespaced {
                        object.namespace()
                    } else {
                        None
                    },
                    name: owner.name.clone(),
                });
            }
        }
        let state = lock(&self.state);
        let Some(senders) = &state.term else {
            return;
        };
        for target in targets {
            let (Some(sender), Some(info)) =
                (senders.get(&target.kind), self.kinds.get(&target.kind))
            else {
                continue;
            };
            tracing::trace!(changed = %key, trigger = %target, "reconcile requested");
            // A closed channel means the term is ending: the request is not needed.
            let _ = sender.unbounded_send(info.store_ref(&target));
        }
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves the data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
