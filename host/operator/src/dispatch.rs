//! [`Dispatcher`]: turns watch events into reconcile requests.
//!
//! A change of an object (applied, deleted, or found changed or gone by a re-list) requests a
//! reconcile of:
//! - the object itself, when its kind is a trigger (a deleted trigger is forgotten instead);
//! - every trigger whose last reconcile read it, found or missing ([`TriggerIndex`]);
//! - the trigger-kind owners named in its `ownerReferences`;
//!
//! except the trigger whose reconcile wrote this very version (its echo, see [`OwnWrites`]):
//! the apply step brackets every write with [`Dispatcher::writing`].
//!
//! Requests go to the controllers of the current leadership term, one channel per trigger
//! kind (the controller's scheduler merges duplicates). Between terms (a standby, or a leader
//! stepping down) nothing is sent, and a new term starts by requesting every trigger object.
//!
//! A re-list after a watch expired (410) replaces a store at once, at `InitDone`, without
//! delete events: the store's objects are remembered at `Init`; objects listed again at the
//! same resourceVersion are not changes; the others are dispatched at `InitDone`, once the
//! store holds them (a reconcile started earlier would read the old store), together with the
//! objects that were not listed again, as deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::ResourceExt as _;
use kube::runtime::reflector::{ObjectRef as StoreRef, Store};
use kube::runtime::watcher::Event;

use super::echo::{Change, OwnWrites};
use super::index::TriggerIndex;
use super::kinds::{KindInfo, KindKey, Kinds, ObjectKey};
use super::object::CachedObject;
use super::queue::Requests;

/// The request channels of one leadership term, by trigger kind.
pub(crate) type TermSenders = HashMap<KindKey, Requests>;

/// Routes changes to reconcile requests. See the module docs.
pub(crate) struct Dispatcher {
    kinds: Arc<Kinds>,
    index: Arc<Mutex<TriggerIndex>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    term: Option<TermSenders>,
    /// The kinds being re-listed.
    relists: HashMap<KindKey, Relist>,
    /// The operator's writes in flight and their echoes.
    own_writes: OwnWrites,
}

/// A re-list in progress.
struct Relist {
    /// The store's objects before it, by key; those listed again are removed.
    before: HashMap<ObjectKey, Arc<CachedObject>>,
    /// The objects listed with a new version (or new), dispatched at `InitDone`.
    changed: Vec<CachedObject>,
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
        event: &Event<CachedObject>,
        store: &Store<CachedObject>,
    ) {
        match event {
            Event::Apply(object) => self.changed(kind, object, false),
            Event::Delete(object) => self.changed(kind, object, true),
            Event::Init => {
                let before = store
                    .state()
                    .into_iter()
                    .map(|object| (kind.object_key(&*object), object))
                    .collect();
                let relist = Relist {
                    before,
                    changed: Vec::new(),
                };
                lock(&self.state).relists.insert(kind.key(), relist);
            }
            Event::InitApply(object) => {
                let mut state = lock(&self.state);
                let Some(relist) = state.relists.get_mut(&kind.key()) else {
                    return;
                };
                let before = relist.before.remove(&kind.object_key(object));
                let unchanged = before.is_some_and(|before| {
                    before.resource_version().is_some()
                        && before.resource_version() == object.resource_version()
                });
                if !unchanged {
                    relist.changed.push(object.clone());
                }
            }
            Event::InitDone => {
                let Some(relist) = lock(&self.state).relists.remove(&kind.key()) else {
                    return;
                };
                for object in &relist.changed {
                    self.changed(kind, object, false);
                }
                for object in relist.before.into_values() {
                    self.changed(kind, &object, true);
                }
            }
        }
    }

    /// Starts a term: requests go to `senders` from now on, starting with every trigger
    /// object in the trigger kinds' stores, given by `store_of` (the cache's).
    pub(crate) fn begin_term<'a>(
        &self,
        senders: TermSenders,
        store_of: impl Fn(&KindKey) -> Option<&'a Store<CachedObject>>,
    ) {
        let mut state = lock(&self.state);
        for info in self.kinds.triggers() {
            let (Some(sender), Some(store)) = (senders.get(&info.key()), store_of(&info.key()))
            else {
                continue;
            };
            for object in store.state() {
                sender.send(StoreRef::from_obj_with(&*object, info.api_resource.clone()));
            }
        }
        state.term = Some(senders);
    }

    /// Ends the term: requests are dropped until the next one.
    pub(crate) fn end_term(&self) {
        lock(&self.state).term = None;
    }

    fn changed(&self, kind: &KindInfo, object: &CachedObject, deleted: bool) {
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
        let version = object.resource_version().filter(|_| !deleted);
        let mut state = lock(&self.state);
        let targets = state.own_writes.route(&key, Change { version, targets });
        self.request(&state, &key, targets);
    }

    /// Requests another reconcile of `trigger` (in the current term).
    pub(crate) fn request_again(&self, trigger: &ObjectKey) {
        let state = lock(&self.state);
        self.request(&state, trigger, vec![trigger.clone()]);
    }

    /// Marks a write of `object` by `writer`'s reconcile as in flight until the returned guard
    /// is finished (or dropped, as a failed write). Meanwhile the object's changes are held.
    pub(crate) fn writing(self: &Arc<Self>, object: ObjectKey, writer: ObjectKey) -> OwnWrite {
        lock(&self.state)
            .own_writes
            .start(object.clone(), writer.clone());
        OwnWrite {
            dispatcher: self.clone(),
            object,
            writer,
            finished: false,
        }
    }

    fn finish_write(&self, object: &ObjectKey, writer: &ObjectKey, version: Option<String>) {
        let mut state = lock(&self.state);
        let targets = state.own_writes.finish(object, writer, version);
        self.request(&state, object, targets);
    }

    /// Requests reconciles of `targets` (for a change of `changed`) in the current term.
    fn request(&self, state: &State, changed: &ObjectKey, targets: Vec<ObjectKey>) {
        let Some(senders) = &state.term else {
            return;
        };
        for target in targets {
            let (Some(sender), Some(info)) =
                (senders.get(&target.kind), self.kinds.get(&target.kind))
            else {
                continue;
            };
            tracing::trace!(%changed, trigger = %target, "reconcile requested");
            sender.send(info.store_ref(&target));
        }
    }
}

/// A write of the operator's own in flight (see [`Dispatcher::writing`]).
pub(crate) struct OwnWrite {
    dispatcher: Arc<Dispatcher>,
    object: ObjectKey,
    writer: ObjectKey,
    finished: bool,
}

impl OwnWrite {
    /// The write returned, producing `version` (`None`: it failed).
    pub(crate) fn finish(mut self, version: Option<String>) {
        self.finished = true;
        self.dispatcher
            .finish_write(&self.object, &self.writer, version);
    }
}

impl Drop for OwnWrite {
    /// A write abandoned (its reconcile was cancelled) releases the object's changes.
    fn drop(&mut self) {
        if !self.finished {
            self.dispatcher
                .finish_write(&self.object, &self.writer, None);
        }
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves the data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use futures::channel::mpsc::{UnboundedReceiver, unbounded};
    use kube::api::ApiResource;
    use kube::runtime::reflector::store::Writer;
    use prometheus_client::registry::Registry;
    use serde_json::json;

    use crate::queue::ControllerMetrics;

    use super::*;

    fn info(kind: &str, trigger: bool) -> KindInfo {
        KindInfo {
            api_resource: Arc::new(ApiResource {
                group: "example.com".into(),
                version: "v1".into(),
                api_version: "example.com/v1".into(),
                kind: kind.into(),
                plural: format!("{}s", kind.to_lowercase()),
            }),
            namespaced: true,
            status_subresource: true,
            trigger,
            cached: true,
        }
    }

    fn object(kind: &str, name: &str, version: &str, owner: Option<&str>) -> CachedObject {
        let owners: Vec<_> = owner
            .map(
                |o| json!({"apiVersion": "example.com/v1", "kind": "Thing", "name": o, "uid": "u"}),
            )
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "example.com/v1", "kind": kind,
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": version,
                         "ownerReferences": owners},
        }))
        .unwrap()
    }

    fn key(kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind: KindKey::new("example.com", kind),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    /// A dispatcher over the trigger kind `Thing` and the read kind `Dep`, in a term whose
    /// requests arrive on the receiver; `Dep`'s writer and store mimic a reflector.
    struct Fixture {
        dispatcher: Arc<Dispatcher>,
        index: Arc<Mutex<TriggerIndex>>,
        thing: KindInfo,
        dep: KindInfo,
        writer: Writer<CachedObject>,
        requests: UnboundedReceiver<StoreRef<CachedObject>>,
    }

    impl Fixture {
        fn new() -> Self {
            let (thing, dep) = (info("Thing", true), info("Dep", false));
            let kinds = Arc::new(Kinds::from_infos([thing.clone(), dep.clone()]));
            let index = Arc::new(Mutex::new(TriggerIndex::default()));
            let dispatcher = Arc::new(Dispatcher::new(kinds, index.clone()));
            let (sender, requests) = unbounded();
            let queue =
                ControllerMetrics::register(&mut Registry::default()).controller("thing", 1);
            let senders = TermSenders::from([(thing.key(), Requests::new(sender, queue))]);
            dispatcher.begin_term(senders, |_| None);
            let writer = Writer::new(dep.api_resource.clone());
            Self {
                dispatcher,
                index,
                thing,
                dep,
                writer,
                requests,
            }
        }

        /// Applies `event` of a `Dep` to the store, then dispatches it.
        fn dep_event(&mut self, event: Event<CachedObject>) {
            self.writer.apply_watcher_event(&event);
            let store = self.writer.as_reader();
            self.dispatcher.on_event(&self.dep, &event, &store);
        }

        /// The names of the triggers requested so far.
        fn requested(&mut self) -> HashSet<String> {
            let mut names = HashSet::new();
            while let Ok(reference) = self.requests.try_recv() {
                names.insert(reference.name);
            }
            names
        }
    }

    fn names(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_change_requests_the_triggers_that_read_the_object_and_its_owners() {
        let mut fixture = Fixture::new();
        fixture
            .index
            .lock()
            .unwrap()
            .record_reads(&key("Thing", "t1"), [key("Dep", "d1")].into());
        fixture.dep_event(Event::Apply(object("Dep", "d1", "1", None)));
        assert_eq!(fixture.requested(), names(&["t1"]));
        fixture.dep_event(Event::Apply(object("Dep", "d2", "1", Some("t2"))));
        assert_eq!(fixture.requested(), names(&["t2"]), "the owner");
        fixture.dep_event(Event::Delete(object("Dep", "d1", "1", None)));
        assert_eq!(
            fixture.requested(),
            names(&["t1"]),
            "a deletion is a change"
        );
    }

    #[test]
    fn a_changed_trigger_is_requested_and_a_deleted_one_forgotten() {
        let mut fixture = Fixture::new();
        let thing = fixture.thing.clone();
        let store = Writer::new(thing.api_resource.clone()).as_reader();
        fixture
            .index
            .lock()
            .unwrap()
            .record_reads(&key("Thing", "t1"), [key("Dep", "d1")].into());
        let t1 = object("Thing", "t1", "1", None);
        fixture
            .dispatcher
            .on_event(&thing, &Event::Apply(t1.clone()), &store);
        assert_eq!(fixture.requested(), names(&["t1"]));
        fixture
            .dispatcher
            .on_event(&thing, &Event::Delete(t1), &store);
        assert_eq!(fixture.requested(), names(&[]));
        assert_eq!(fixture.index.lock().unwrap().size(), (0, 0));
    }

    #[test]
    fn a_relist_dispatches_changes_and_deletions_once_the_store_holds_them() {
        let mut fixture = Fixture::new();
        {
            let mut index = fixture.index.lock().unwrap();
            index.record_reads(&key("Thing", "t1"), [key("Dep", "d1")].into());
            index.record_reads(&key("Thing", "t2"), [key("Dep", "d2")].into());
            index.record_reads(&key("Thing", "t3"), [key("Dep", "d3")].into());
        }
        for name in ["d1", "d2"] {
            fixture.dep_event(Event::Apply(object("Dep", name, "1", None)));
        }
        fixture.requested();

        // d1 unchanged, d2 gone, d3 new.
        fixture.dep_event(Event::Init);
        fixture.dep_event(Event::InitApply(object("Dep", "d1", "1", None)));
        fixture.dep_event(Event::InitApply(object("Dep", "d3", "1", None)));
        assert_eq!(
            fixture.requested(),
            names(&[]),
            "nothing before the store is replaced"
        );
        fixture.dep_event(Event::InitDone);
        assert_eq!(fixture.requested(), names(&["t2", "t3"]));
    }

    #[test]
    fn the_echo_of_a_write_skips_only_its_writer_even_before_the_write_returns() {
        let mut fixture = Fixture::new();
        {
            let mut index = fixture.index.lock().unwrap();
            index.record_reads(&key("Thing", "t1"), [key("Dep", "d1")].into());
            index.record_reads(&key("Thing", "t2"), [key("Dep", "d1")].into());
        }
        let dispatcher = fixture.dispatcher.clone();
        let write = dispatcher.writing(key("Dep", "d1"), key("Thing", "t1"));
        let store = fixture.writer.as_reader();
        let event = Event::Apply(object("Dep", "d1", "2", None));
        fixture.writer.apply_watcher_event(&event);
        dispatcher.on_event(&fixture.dep, &event, &store);
        assert_eq!(fixture.requested(), names(&[]), "held while t1 writes");
        write.finish(Some("2".into()));
        assert_eq!(fixture.requested(), names(&["t2"]), "t1 wrote version 2");

        let event = Event::Apply(object("Dep", "d1", "3", None));
        dispatcher.on_event(&fixture.dep, &event, &store);
        assert_eq!(
            fixture.requested(),
            names(&["t1", "t2"]),
            "somebody else's change"
        );

        drop(dispatcher.writing(key("Dep", "d1"), key("Thing", "t1")));
        let event = Event::Apply(object("Dep", "d1", "4", None));
        dispatcher.on_event(&fixture.dep, &event, &store);
        assert_eq!(
            fixture.requested(),
            names(&["t1", "t2"]),
            "an abandoned write holds nothing"
        );
    }

    #[test]
    fn between_terms_nothing_is_requested() {
        let mut fixture = Fixture::new();
        fixture
            .index
            .lock()
            .unwrap()
            .record_reads(&key("Thing", "t1"), [key("Dep", "d1")].into());
        fixture.dispatcher.end_term();
        fixture.dep_event(Event::Apply(object("Dep", "d1", "1", None)));
        assert_eq!(fixture.requested(), names(&[]));
    }
}
