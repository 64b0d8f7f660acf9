//! Object storage: objects by resource, the global resourceVersion counter, the bounded
//! history of changes and the open watches that changes are delivered to.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::registry::StorageKey;
use crate::util::metadata_mut;

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub(crate) type ObjectKey = (String, String);

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object changed.
    Modified,
    /// The object was deleted.
    Deleted,
}

impl EventType {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change (or a synthetic `ADDED` for the initial state of a watch).
#[derive(Debug)]
pub(crate) struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    pub storage: StorageKey,
    pub namespace: String,
    pub event: EventType,
    /// The object after the change (for deletions: the last state, with the deletion's
    /// resourceVersion), in storage form.
    pub object: Arc<Value>,
    /// The object before the change, if any.
    pub old: Option<Arc<Value>>,
}

/// What a watch stream receives.
#[derive(Debug)]
pub(crate) enum WatchMsg {
    /// A change to deliver (after filtering).
    Change(Arc<Change>),
    /// Emit a bookmark at this resourceVersion (`initial_end`: the end of the initial events
    /// of a streaming list).
    Bookmark { rv: u64, initial_end: bool },
    /// The watch's position fell out of the history window: emit a 410 ERROR and end.
    Expired(String),
}

struct Watcher {
    storage: StorageKey,
    namespace: Option<String>,
    tx: mpsc::UnboundedSender<WatchMsg>,
}

/// Where a new watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchStart {
    /// At the current state: synthetic `ADDED` events for the existing objects first, then
    /// (if `initial_end_bookmark`) a bookmark marking the end of the initial events.
    Current { initial_end_bookmark: bool },
    /// After this resourceVersion, replaying the history.
    After(u64),
}

/// Objects, resourceVersions, history and watches.
pub(crate) struct Store {
    rv: u64,
    objects: HashMap<StorageKey, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    capacity: usize,
    /// Every change with `rv > floor` is in `history`.
    floor: u64,
    watchers: HashMap<u64, Watcher>,
    next_watcher: u64,
}

fn key_of(obj: &Value) -> ObjectKey {
    let meta = obj.get("metadata");
    let field = |f: &str| {
        meta.and_then(|m| m.get(f))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (field("namespace"), field("name"))
}

impl Store {
    /// An empty store keeping at most `capacity` changes of history.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            rv: 0,
            objects: HashMap::new(),
            history: VecDeque::new(),
            capacity: capacity.max(1),
            floor: 0,
            watchers: HashMap::new(),
            next_watcher: 0,
        }
    }

    /// The current (latest) resourceVersion.
    pub(crate) fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch or continue token may start from.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// The object `namespace/name` of `storage`.
    pub(crate) fn get(
        &self,
        storage: &StorageKey,
        namespace: &str,
        name: &str,
    ) -> Option<&Arc<Value>> {
        self.objects
            .get(storage)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// The objects of `storage` in key order (namespace, name), optionally in one namespace,
    /// starting after `after`.
    pub(crate) fn list<'a>(
        &'a self,
        storage: &StorageKey,
        namespace: Option<&'a str>,
        after: Option<&'a ObjectKey>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a {
        self.objects
            .get(storage)
            .into_iter()
            .flat_map(|objects| objects.iter())
            .filter(move |(key, _)| namespace.is_none_or(|ns| key.0 == ns))
            .filter(move |(key, _)| after.is_none_or(|a| *key > a))
    }

    /// Every storage key with at least one object.
    pub(crate) fn storages(&self) -> Vec<StorageKey> {
        self.objects
            .iter()
            .filter(|(_, objects)| !objects.is_empty())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Writes `obj` (created or modified) with a new resourceVersion and records the change.
    pub(crate) fn put(&mut self, storage: &StorageKey, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        metadata_mut(&mut obj).insert(
            "resourceVersion".to_string(),
            Value::String(self.rv.to_string()),
        );
        let key = key_of(&obj);
        let obj = Arc::new(obj);
        let old = self
            .objects
            .entry(storage.clone())
            .or_default()
            .insert(key.clone(), obj.clone());
        let event = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv: self.rv,
            storage: storage.clone(),
            namespace: key.0,
            event,
            object: obj.clone(),
            old,
        });
        obj
    }

    /// Deletes `namespace/name` of `storage`; `last` is its final state (for example with the
    /// last finalizer removed), defaulting to the stored object. Returns the deleted object
    /// (with the deletion's resourceVersion).
    pub(crate) fn remove(
        &mut self,
        storage: &StorageKey,
        namespace: &str,
        name: &str,
        last: Option<Value>,
    ) -> Option<Arc<Value>> {
        let key = (namespace.to_string(), name.to_string());
        let old = self.objects.get_mut(storage)?.remove(&key)?;
        self.rv += 1;
        let mut obj = last.unwrap_or_else(|| (*old).clone());
        metadata_mut(&mut obj).insert(
            "resourceVersion".to_string(),
            Value::String(self.rv.to_string()),
        );
        let obj = Arc::new(obj);
        self.record(Change {
            rv: self.rv,
            storage: storage.clone(),
            namespace: key.0,
            event: EventType::Deleted,
            object: obj.clone(),
            old: Some(old),
        });
        Some(obj)
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.capacity {
            if let Some(evicted) = self.history.pop_front() {
                self.floor = evicted.rv;
            }
        }
        self.watchers.retain(|_, w| {
            if w.storage != change.storage
                || w.namespace
                    .as_ref()
                    .is_some_and(|ns| *ns != change.namespace)
            {
                return true;
            }
            w.tx.send(WatchMsg::Change(change.clone())).is_ok()
        });
    }

    /// Opens a watch on `storage` (optionally one namespace). Returns its id and receiver;
    /// a start position older than the history window yields a receiver with a single
    /// `Expired` message.
    pub(crate) fn watch(
        &mut self,
        storage: &StorageKey,
        namespace: Option<&str>,
        start: WatchStart,
    ) -> (u64, mpsc::UnboundedReceiver<WatchMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.next_watcher += 1;
        let id = self.next_watcher;
        match start {
            WatchStart::Current {
                initial_end_bookmark,
            } => {
                for (key, obj) in self.list(storage, namespace, None) {
                    let rv = obj
                        .get("metadata")
                        .and_then(|m| m.get("resourceVersion"))
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(self.rv);
                    let _ = tx.send(WatchMsg::Change(Arc::new(Change {
                        rv,
                        storage: storage.clone(),
                        namespace: key.0.clone(),
                        event: EventType::Added,
                        object: obj.clone(),
                        old: None,
                    })));
                }
                if initial_end_bookmark {
                    let _ = tx.send(WatchMsg::Bookmark {
                        rv: self.rv,
                        initial_end: true,
                    });
                }
            }
            WatchStart::After(rv) => {
                if rv < self.floor {
                    let _ = tx.send(WatchMsg::Expired(format!(
                        "too old resource version: {rv} ({})",
                        self.floor + 1
                    )));
                    return (id, rx);
                }
                for change in self.history.iter().filter(|c| {
                    c.rv > rv
                        && c.storage == *storage
                        && namespace.is_none_or(|ns| c.namespace == ns)
                }) {
                    let _ = tx.send(WatchMsg::Change(change.clone()));
                }
            }
        }
        self.watchers.insert(
            id,
            Watcher {
                storage: storage.clone(),
                namespace: namespace.map(str::to_string),
                tx,
            },
        );
        (id, rx)
    }

    /// Closes the watch `id` (when its stream ends).
    pub(crate) fn unwatch(&mut self, id: u64) {
        self.watchers.remove(&id);
    }

    /// Queues a bookmark at the current resourceVersion for watch `id`, after every change
    /// already delivered to it.
    pub(crate) fn bookmark(&mut self, id: u64) {
        let rv = self.rv;
        if let Some(w) = self.watchers.get(&id) {
            let _ = w.tx.send(WatchMsg::Bookmark {
                rv,
                initial_end: false,
            });
        }
    }

    /// The number of open watches.
    pub(crate) fn watch_count(&self) -> usize {
        self.watchers.len()
    }

    /// Ends every open watch (their streams finish cleanly once drained).
    pub(crate) fn drop_watches(&mut self) -> usize {
        let n = self.watchers.len();
        self.watchers.clear();
        n
    }

    /// Forgets the whole history: every open watch gets a 410 ERROR, and watches or continue
    /// tokens from any resourceVersion before now are answered 410.
    pub(crate) fn expire_history(&mut self) {
        // Advance the counter so that every resourceVersion handed out so far is now older
        // than the window, while lists made from now on get a valid one.
        self.rv += 1;
        self.history.clear();
        self.floor = self.rv;
        for (_, w) in self.watchers.drain() {
            let _ = w.tx.send(WatchMsg::Expired(format!(
                "too old resource version: the history before {} was compacted",
                self.rv
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}})
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<WatchMsg>) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            match msg {
                WatchMsg::Change(c) => out.push((c.event.as_str().to_string(), c.rv)),
                WatchMsg::Bookmark { rv, .. } => out.push(("BOOKMARK".to_string(), rv)),
                WatchMsg::Expired(_) => out.push(("EXPIRED".to_string(), 0)),
            }
        }
        out
    }

    #[test]
    fn resource_versions_increase_and_history_replays() {
        let sk = StorageKey::new("", "configmaps");
        let mut store = Store::new(100);
        let a = store.put(&sk, cm("a"));
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        store.put(&sk, cm("b"));
        store.put(&sk, cm("a"));
        store.remove(&sk, "ns", "b", None);
        assert_eq!(store.current_rv(), 4);
        assert!(store.get(&sk, "ns", "b").is_none());
        let (_, mut rx) = store.watch(&sk, None, WatchStart::After(1));
        assert_eq!(
            drain(&mut rx),
            vec![
                ("ADDED".to_string(), 2),
                ("MODIFIED".to_string(), 3),
                ("DELETED".to_string(), 4)
            ]
        );
        store.put(&sk, cm("c"));
        assert_eq!(drain(&mut rx), vec![("ADDED".to_string(), 5)]);
    }

    #[test]
    fn current_start_sends_synthetic_adds_and_bookmark() {
        let sk = StorageKey::new("", "configmaps");
        let mut store = Store::new(100);
        store.put(&sk, cm("a"));
        store.put(&sk, cm("b"));
        let (_, mut rx) = store.watch(
            &sk,
            Some("ns"),
            WatchStart::Current {
                initial_end_bookmark: true,
            },
        );
        assert_eq!(
            drain(&mut rx),
            vec![
                ("ADDED".to_string(), 1),
                ("ADDED".to_string(), 2),
                ("BOOKMARK".to_string(), 2)
            ]
        );
    }

    #[test]
    fn bounded_history_expires_old_positions() {
        let sk = StorageKey::new("", "configmaps");
        let mut store = Store::new(2);
        for name in ["a", "b", "c", "d"] {
            store.put(&sk, cm(name));
        }
        assert_eq!(store.floor(), 2);
        let (_, mut rx) = store.watch(&sk, None, WatchStart::After(1));
        assert_eq!(drain(&mut rx), vec![("EXPIRED".to_string(), 0)]);
        let (_, mut rx) = store.watch(&sk, None, WatchStart::After(2));
        assert_eq!(drain(&mut rx).len(), 2);
    }

    #[test]
    fn expiring_history_notifies_watchers() {
        let sk = StorageKey::new("", "configmaps");
        let mut store = Store::new(10);
        store.put(&sk, cm("a"));
        let (_, mut rx) = store.watch(&sk, None, WatchStart::After(1));
        store.expire_history();
        assert_eq!(drain(&mut rx), vec![("EXPIRED".to_string(), 0)]);
        assert_eq!(store.watch_count(), 0);
        let (_, mut rx) = store.watch(&sk, None, WatchStart::After(0));
        assert_eq!(drain(&mut rx), vec![("EXPIRED".to_string(), 0)]);
    }

    #[test]
    fn watches_filter_by_namespace_and_storage() {
        let sk = StorageKey::new("", "configmaps");
        let other = StorageKey::new("", "secrets");
        let mut store = Store::new(10);
        let (id, mut rx) = store.watch(&sk, Some("ns"), WatchStart::After(0));
        store.put(
            &sk,
            json!({"metadata": {"name": "x", "namespace": "other"}}),
        );
        store.put(&other, cm("y"));
        store.put(&sk, cm("z"));
        store.bookmark(id);
        assert_eq!(
            drain(&mut rx),
            vec![("ADDED".to_string(), 3), ("BOOKMARK".to_string(), 3)]
        );
        store.unwatch(id);
        assert_eq!(store.watch_count(), 0);
    }
}
