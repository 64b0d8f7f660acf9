//! Gathering a reconcile's objects: [`Gatherer`], the [`ObjectSource`] the requirement rounds
//! read from, and [`Timed`], the policy wrapper that measures each guest call.
//!
//! Objects of watched kinds come from the cache, without a request. Objects of other kinds
//! (and of namespaces outside the watched one) are read with one GET each, when a reconcile
//! requires them. The gatherer remembers every object it was asked for, found or not (the
//! trigger's dependencies), and the manifest and resourceVersion it handed the policy for each
//! (what a patch may target, and the base it is compared with, to skip writes that change
//! nothing). A Secret outside the namespaces the [`SecretScope`] allows is reported missing,
//! without a request.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use capt_policy::{Metadata, ObjectRef, Request, Response};
use kube::ResourceExt as _;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::runtime::Handle;

use super::cache::{Cache, Lookup};
use super::kinds::ObjectKey;
use super::secrets::SecretScope;
use capt_host_core::rounds::ObjectSource;
use capt_host_core::{BoxError, Policy, PolicyError};

/// What one reconcile read.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// Every object asked for, found or missing, and how it was read (only objects of watched
    /// kinds can trigger reconciles when they change).
    pub(crate) keys: HashMap<ObjectKey, Read>,
    /// What was handed to the policy, for each object found.
    pub(crate) observed: HashMap<ObjectKey, Observed>,
}

/// One object as it was handed to the policy.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    /// The manifest (JSON text).
    pub(crate) manifest: Arc<str>,
    /// Its `metadata.resourceVersion`.
    pub(crate) resource_version: Option<String>,
}

/// How one object was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Read {
    /// From the cache of its (watched) kind, at this resourceVersion; `None`: it did not exist.
    Cached(Option<String>),
    /// With a GET: its kind is not watched.
    Fetched,
}

impl Reads {
    /// True when an object read from the cache has changed there since (or appeared, or
    /// gone). A change that came between the read and the recording of the reads as the
    /// trigger's dependencies re-triggered nothing, so the caller asks for another reconcile.
    pub(crate) fn changed_since(&self, cache: &Cache) -> bool {
        self.keys.iter().any(|(key, read)| match read {
            Read::Cached(version) => cache.version(key) != *version,
            Read::Fetched => false,
        })
    }

    /// The objects whose changes must trigger the trigger again: the watched ones.
    pub(crate) fn watched(&self) -> HashSet<ObjectKey> {
        self.of_kinds(true).collect()
    }

    /// The objects of kinds that are not watched.
    pub(crate) fn unwatched(&self) -> Vec<ObjectKey> {
        self.of_kinds(false).collect()
    }

    fn of_kinds(&self, watched: bool) -> impl Iterator<Item = ObjectKey> + '_ {
        self.keys
            .iter()
            .filter(move |(_, read)| matches!(read, Read::Cached(_)) == watched)
            .map(|(key, _)| key.clone())
    }
}

/// Reads objects from the cache, or with a GET for unwatched ones, and remembers them.
///
/// Used from a blocking thread (the policy call is CPU-bound): GETs run on `runtime`.
pub(crate) struct Gatherer<'a> {
    cache: &'a Cache,
    secrets: &'a SecretScope,
    /// The trigger's namespace (whose Secrets may be read).
    namespace: Option<&'a str>,
    runtime: Handle,
    reads: RefCell<Reads>,
}

impl<'a> Gatherer<'a> {
    /// A gatherer over `cache` for a trigger in `namespace`, reading the Secrets `secrets`
    /// allows, running GETs on `runtime`.
    pub(crate) fn new(
        cache: &'a Cache,
        secrets: &'a SecretScope,
        namespace: Option<&'a str>,
        runtime: Handle,
    ) -> Self {
        Self {
            cache,
            secrets,
            namespace,
            runtime,
            reads: RefCell::default(),
        }
    }

    /// What was read.
    pub(crate) fn into_reads(self) -> Reads {
        self.reads.into_inner()
    }
}

/// The policy asked for an object of a kind it does not declare.
#[derive(Debug, thiserror::Error)]
#[error("the policy requires {0}, whose kind is not among its triggers or reads")]
struct UndeclaredKind(ObjectRef);

impl ObjectSource for Gatherer<'_> {
    fn get(&self, reference: &ObjectRef) -> Result<Option<String>, BoxError> {
        let key = ObjectKey::of(reference);
        let Some((info, lookup)) = self.cache.lookup(&key) else {
            return Err(UndeclaredKind(reference.clone()).into());
        };
        if !self.secrets.allows(self.namespace, &key) {
            // Outside the allowed namespaces: missing, as far as the policy knows (and read,
            // as far as the dependencies go, like any missing object).
            self.reads.borrow_mut().keys.insert(key, Read::Fetched);
            return Ok(None);
        }
        let (object, read) = match lookup {
            Lookup::Cached(object) => {
                let version = object.as_ref().and_then(|o| o.resource_version());
                (
                    object.map(|o| (o.manifest(), o.resource_version())),
                    Read::Cached(version),
                )
            }
            Lookup::Uncached(api) => {
                let object = self.runtime.block_on(api.get_opt(&key.name))?;
                let object = object.map(|mut o| {
                    o.fill_type(&info.api_resource);
                    (o.manifest(), o.resource_version())
                });
                (object, Read::Fetched)
            }
        };
        let mut reads = self.reads.borrow_mut();
        reads.keys.insert(key.clone(), read);
        let Some((manifest, resource_version)) = object else {
            return Ok(None);
        };
        let observed = Observed {
            manifest: Arc::from(manifest.as_str()),
            resource_version,
        };
        reads.observed.insert(key, observed);
        Ok(Some(manifest))
    }
}

/// Metrics of the guest calls.
#[derive(Debug)]
pub(crate) struct GuestMetrics {
    call_duration: Histogram,
}

impl GuestMetrics {
    /// Registers `guest_call_duration_seconds`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        // 100 µs to about 1.6 s: a policy answers in milliseconds; its default deadline is 250 ms.
        let call_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        registry.register(
            "guest_call_duration_seconds",
            "Duration of one call of the policy (one round of a reconcile)",
            call_duration.clone(),
        );
        Self { call_duration }
    }
}

/// A policy whose calls are timed into `guest_call_duration_seconds`.
pub(crate) struct Timed<'a> {
    policy: &'a dyn Policy,
    metrics: &'a GuestMetrics,
}

impl<'a> Timed<'a> {
    /// Times the calls of `policy`.
    pub(crate) fn new(policy: &'a dyn Policy, metrics: &'a GuestMetrics) -> Self {
        Self { policy, metrics }
    }
}

impl Policy for Timed<'_> {
    fn metadata(&self) -> &Metadata {
        self.policy.metadata()
    }

    fn reconcile(&self, request: &Request) -> Result<Response, PolicyError> {
        let start = Instant::now();
        let result = self.policy.reconcile(request);
        self.metrics
            .call_duration
            .observe(start.elapsed().as_secs_f64());
        result
    }
}
