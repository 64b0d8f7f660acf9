//! [`Cache`]: one reflector store per watched kind, filled by a watcher task each, and the
//! lookups a reconcile makes in them.
//!
//! Trigger kinds and the readable kinds not listed in
//! [`super::OperatorConfig::uncached_kinds`] are watched: in the configured namespace for
//! namespaced kinds (all namespaces when none is configured), cluster-wide for cluster-scoped
//! ones. Every watch event, after the store applied it, goes to the [`Dispatcher`], which
//! turns changes into reconcile requests. The watchers run for the operator's whole life, on
//! leaders and standbys alike, so a standby is ready (and warm) when it takes over.
//!
//! Objects are kept as [`CachedObject`]s: their manifests as text, ready for the policy. Any
//! JSON reads as one, so an object the operator cannot read never fails its kind's list or
//! watch; each watch reports such objects through a [`PoisonWatch`].

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt as _;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::dispatch::Dispatcher;
use super::kinds::{KindInfo, KindKey, Kinds, ObjectKey};
use super::object::CachedObject;
use super::poison::{PoisonMetrics, PoisonWatch};

/// Where a reconcile finds an object.
pub(crate) enum Lookup {
    /// The kind is watched in the object's namespace: the cached object, if it exists. No
    /// request is made.
    Cached(Option<Arc<CachedObject>>),
    /// The kind is not watched there: read the object with this API.
    Uncached(Box<Api<CachedObject>>),
}

/// The reflector stores of the watched kinds.
pub(crate) struct Cache {
    client: Client,
    kinds: Arc<Kinds>,
    namespace: Option<String>,
    stores: HashMap<KindKey, Store<CachedObject>>,
}

impl Cache {
    /// Starts a watcher for every cached kind of `kinds`; each event goes to `dispatcher`,
    /// unreadable objects are counted into `poison`. Returns the cache and the watcher tasks
    /// (abort them to stop watching).
    pub(crate) fn start(
        client: &Client,
        kinds: Arc<Kinds>,
        namespace: Option<String>,
        dispatcher: Arc<Dispatcher>,
        poison: &PoisonMetrics,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let mut stores = HashMap::new();
        let mut tasks = Vec::new();
        for info in kinds.iter().filter(|k| k.cached) {
            let writer = Writer::new(info.api_resource.clone());
            let store = writer.as_reader();
            let api = info.api(client, namespace.as_deref());
            let (watched, dispatcher, reader) = (info.clone(), dispatcher.clone(), store.clone());
            let resource = info.api_resource.clone();
            let mut poison = PoisonWatch::new(info.clone(), poison);
            let events = watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(move |object| object.fill_type(&resource))
                .filter(move |event| {
                    std::future::ready(event.as_ref().map_or(true, |event| poison.keep(event)))
                })
                .reflect(writer);
            let task = async move {
                events
                    .for_each(|event| {
                        match event {
                            Ok(event) => dispatcher.on_event(&watched, &event, &reader),
                            Err(error) => tracing::warn!(
                                error = %capt_host_core::error_chain(&error),
                                "watch failed; retrying with backoff"
                            ),
                        }
                        std::future::ready(())
                    })
                    .await;
            };
            let span = tracing::info_span!("watch", kind = %info.key());
            tasks.push(tokio::spawn(task.instrument(span)));
            stores.insert(info.key(), store);
        }
        let cache = Self {
            client: client.clone(),
            kinds,
            namespace,
            stores,
        };
        (cache, tasks)
    }

    /// Resolves once every store has been filled by its first list. Call it from one task
    /// only: kube's `Store::wait_until_ready` wakes a single waiter.
    pub(crate) async fn synced(&self) {
        for store in self.stores.values() {
            // Fails only when the writer is gone, i.e. the operator is stopping.
            let _ = store.wait_until_ready().await;
        }
    }

    /// The declared kinds.
    pub(crate) fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    /// The store of a watched kind.
    pub(crate) fn store(&self, kind: &KindKey) -> Option<&Store<CachedObject>> {
        self.stores.get(kind)
    }

    /// Where to find `key`; `None` when its kind is not declared by the policy.
    pub(crate) fn lookup(&self, key: &ObjectKey) -> Option<(Arc<KindInfo>, Lookup)> {
        let info = self.kinds.get(&key.kind)?.clone();
        let in_scope = !info.namespaced
            || self.namespace.is_none()
            || self.namespace.as_ref() == key.namespace.as_ref();
        let lookup = match self.stores.get(&key.kind) {
            Some(store) if in_scope => Lookup::Cached(store.get(&info.store_ref(key))),
            _ => Lookup::Uncached(Box::new(info.api(&self.client, key.namespace.as_deref()))),
        };
        Some((info, lookup))
    }

    /// The resourceVersion of a cached object; `None` when it is not in the cache.
    pub(crate) fn version(&self, key: &ObjectKey) -> Option<String> {
        match self.lookup(key)? {
            (_, Lookup::Cached(object)) => object?.resource_version(),
            (_, Lookup::Uncached(_)) => None,
        }
    }

    /// The uid of a cached object (events name it), if known.
    pub(crate) fn uid(&self, key: &ObjectKey) -> Option<String> {
        match self.lookup(key)? {
            (_, Lookup::Cached(object)) => object?.uid(),
            (_, Lookup::Uncached(_)) => None,
        }
    }
}
