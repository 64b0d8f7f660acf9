//! The controllers' queues, measured as controller-runtime measures its controllers and their
//! workqueues, so that the dashboards and alerts written for controller-runtime operators read
//! this one too.
//!
//! One controller runs per trigger kind; its name (the `controller` label, and the `name` label
//! of the `workqueue_*` families, as controller-runtime sets both) is the kind in lower case,
//! as controller-runtime names a controller built `For` a kind: `captcluster`. Two trigger
//! kinds of one name in different groups share their series.
//!
//! kube's controller keeps its own queue (a scheduler merging duplicate requests, holding an
//! object while it is reconciled, and delaying requeues); what is measured is what enters and
//! leaves it: a request sent to a controller ([`Requests::send`]) is added unless it is
//! already waiting, as client-go's queue does not add an item twice; a reconcile the
//! controller starts by itself (a requeue whose delay passed, or a reconcile of every object)
//! is added as it starts, as client-go adds a delayed item once its delay has passed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::ObjectRef as StoreRef;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::dispatch::lock;
use super::object::CachedObject;

/// controller-runtime's buckets of `controller_runtime_reconcile_time_seconds`.
const RECONCILE_BUCKETS: [f64; 40] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0,
    25.0, 30.0, 40.0, 50.0, 60.0,
];

/// The name of the controller of trigger kind `kind`.
pub(crate) fn controller_name(kind: &str) -> String {
    kind.to_lowercase()
}

/// How a reconcile ended, as controller-runtime's `result` label says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It succeeded; the object waits for its next change.
    Success,
    /// It failed (retried after a backoff).
    Error,
    /// It succeeded and asked to run again at once (never asked by a policy; counted at 0).
    Requeue,
    /// It succeeded and asked to run again after a delay.
    RequeueAfter,
}

impl Outcome {
    const ALL: [Self; 4] = [
        Self::Success,
        Self::Error,
        Self::Requeue,
        Self::RequeueAfter,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Requeue => "requeue",
            Self::RequeueAfter => "requeue_after",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    name: String,
    controller: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The families of every controller, registered at once (all present from the start); the
/// series of a controller are created, at zero, by [`ControllerMetrics::controller`].
#[derive(Debug)]
pub(crate) struct ControllerMetrics {
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabels, Counter>,
    reconcile_time: HistogramFamily<ControllerLabels>,
    max_concurrent: Family<ControllerLabels, Gauge>,
    adds: Family<QueueLabels, Counter>,
    retries: Family<QueueLabels, Counter>,
    queue_duration: HistogramFamily<QueueLabels>,
    work_duration: HistogramFamily<QueueLabels>,
    queues: Arc<Queues>,
}

impl ControllerMetrics {
    /// Registers the `controller_runtime_*` and `workqueue_*` families in `registry` (which
    /// must not add a prefix).
    pub(crate) fn register(registry: &mut Registry) -> Self {
        fn reconcile_time() -> Histogram {
            Histogram::new(RECONCILE_BUCKETS)
        }
        fn queue_time() -> Histogram {
            // client-go's: 10 ns to 1000 s.
            Histogram::new(exponential_buckets(10e-9, 10.0, 12))
        }
        let metrics = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            reconcile_time: Family::new_with_constructor(reconcile_time),
            max_concurrent: Family::default(),
            adds: Family::default(),
            retries: Family::default(),
            queue_duration: Family::new_with_constructor(queue_time),
            work_duration: Family::new_with_constructor(queue_time),
            queues: Arc::default(),
        };
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            metrics.reconciles.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            metrics.errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            metrics.reconcile_time.clone(),
        );
        registry.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller (0: no limit)",
            metrics.max_concurrent.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            metrics.adds.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            metrics.retries.clone(),
        );
        registry.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            metrics.queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            metrics.work_duration.clone(),
        );
        registry.register_collector(Box::new(metrics.queues.clone()));
        metrics
    }

    /// The metrics of the controller `name`, running at most `concurrency` reconciles at once;
    /// every series of it exists, at zero, from now on.
    pub(crate) fn controller(&self, name: &str, concurrency: u16) -> ControllerQueue {
        let controller = ControllerLabels {
            controller: name.to_owned(),
        };
        let queue = QueueLabels {
            name: name.to_owned(),
            controller: name.to_owned(),
        };
        let reconciles = Outcome::ALL.map(|outcome| {
            self.reconciles
                .get_or_create(&ResultLabels {
                    controller: name.to_owned(),
                    result: outcome.label(),
                })
                .clone()
        });
        self.max_concurrent
            .get_or_create(&controller)
            .set(i64::from(concurrency));
        lock(&self.queues.0).entry(name.to_owned()).or_default();
        ControllerQueue {
            name: name.to_owned(),
            queues: self.queues.clone(),
            reconciles,
            errors: self.errors.get_or_create(&controller).clone(),
            reconcile_time: self.reconcile_time.get_or_create(&controller).clone(),
            adds: self.adds.get_or_create(&queue).clone(),
            retries: self.retries.get_or_create(&queue).clone(),
            queue_duration: self.queue_duration.get_or_create(&queue).clone(),
            work_duration: self.work_duration.get_or_create(&queue).clone(),
        }
    }
}

/// An object in a controller's queue: its namespace and name (the kind is the controller's).
type QueueKey = (Option<String>, String);

/// A gauge of a queue: its value from the queue's state and the seconds since an instant.
type QueueGauge = fn(&QueueState, &dyn Fn(&Instant) -> f64) -> f64;

/// What waits and what is being reconciled, by controller.
#[derive(Debug, Default)]
struct Queues(Mutex<BTreeMap<String, QueueState>>);

#[derive(Debug, Default)]
struct QueueState {
    /// Since when each object waits.
    waiting: HashMap<QueueKey, Instant>,
    /// Since when each object is being reconciled.
    working: HashMap<QueueKey, Instant>,
}

impl Collector for Queues {
    /// The families measured at the scrape: `workqueue_depth`, `workqueue_unfinished_work_seconds`,
    /// `workqueue_longest_running_processor_seconds` and `controller_runtime_active_workers`.
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = Instant::now();
        let queues = lock(&self.0);
        let seconds = |since: &Instant| now.saturating_duration_since(*since).as_secs_f64();
        let families: [(&str, &str, QueueGauge); 3] = [
            (
                "workqueue_depth",
                "Current depth of workqueue",
                |state, _| state.waiting.len() as f64,
            ),
            (
                "workqueue_unfinished_work_seconds",
                "How many seconds of work has been done that is in progress and hasn't been \
                 observed by work_duration",
                |state, seconds| state.working.values().map(seconds).fold(0.0, |a, b| a + b),
            ),
            (
                "workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been running",
                |state, seconds| state.working.values().map(seconds).fold(0.0, f64::max),
            ),
        ];
        for (name, help, value) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (controller, state) in queues.iter() {
                let labels = QueueLabels {
                    name: controller.clone(),
                    controller: controller.clone(),
                };
                ConstGauge::new(value(state, &seconds)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            None,
            MetricType::Gauge,
        )?;
        for (controller, state) in queues.iter() {
            let labels = ControllerLabels {
                controller: controller.clone(),
            };
            let workers = i64::try_from(state.working.len()).unwrap_or(i64::MAX);
            ConstGauge::new(workers).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The metrics of one controller. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ControllerQueue {
    name: String,
    queues: Arc<Queues>,
    reconciles: [Counter; 4],
    errors: Counter,
    reconcile_time: Histogram,
    adds: Counter,
    retries: Counter,
    queue_duration: Histogram,
    work_duration: Histogram,
}

impl ControllerQueue {
    fn with_state<T>(&self, f: impl FnOnce(&mut QueueState) -> T) -> T {
        f(lock(&self.queues.0).entry(self.name.clone()).or_default())
    }

    /// A request for `key`, unless it waits already.
    fn add(&self, key: QueueKey) {
        self.with_state(|state| {
            state.waiting.entry(key).or_insert_with(|| {
                self.adds.inc();
                Instant::now()
            });
        });
    }

    /// A request of `namespace/name` the controller dropped (its object is gone): it waits no
    /// more.
    pub(crate) fn forget(&self, namespace: Option<String>, name: String) {
        self.with_state(|state| state.waiting.remove(&(namespace, name)));
    }

    /// The term ended: nothing waits any more.
    pub(crate) fn clear(&self) {
        self.with_state(|state| state.waiting.clear());
    }

    /// The reconcile of `namespace/name` starts; it is measured until the guard is finished.
    pub(crate) fn start(&self, namespace: Option<String>, name: String) -> Work {
        let key = (namespace, name);
        let now = Instant::now();
        let waited = self.with_state(|state| {
            state.working.insert(key.clone(), now);
            state.waiting.remove(&key)
        });
        let waited = match waited {
            Some(since) => now.saturating_duration_since(since),
            None => {
                // Started by the controller itself: added as it starts.
                self.adds.inc();
                Duration::ZERO
            }
        };
        self.queue_duration.observe(waited.as_secs_f64());
        Work {
            queue: self.clone(),
            key: Some(key),
            start: now,
        }
    }

    /// A failed reconcile is requeued after a backoff.
    pub(crate) fn retried(&self) {
        self.retries.inc();
    }
}

/// A reconcile being measured; see [`ControllerQueue::start`]. Dropped unfinished (an abandoned
/// reconcile), it is measured as an error.
#[derive(Debug)]
pub(crate) struct Work {
    queue: ControllerQueue,
    key: Option<QueueKey>,
    start: Instant,
}

impl Work {
    /// The reconcile ended with `outcome`.
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: Outcome) {
        let Some(key) = self.key.take() else {
            return;
        };
        let elapsed = self.start.elapsed().as_secs_f64();
        let queue = &self.queue;
        queue.with_state(|state| state.working.remove(&key));
        queue.work_duration.observe(elapsed);
        queue.reconcile_time.observe(elapsed);
        if let Some(counter) = Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .and_then(|i| queue.reconciles.get(i))
        {
            counter.inc();
        }
        if outcome == Outcome::Error {
            queue.errors.inc();
        }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        self.end(Outcome::Error);
    }
}

fn key_of(reference: &StoreRef<CachedObject>) -> QueueKey {
    (reference.namespace.clone(), reference.name.clone())
}

/// The requests channel of one controller, counted into its queue's metrics.
#[derive(Clone)]
pub(crate) struct Requests {
    sender: UnboundedSender<StoreRef<CachedObject>>,
    queue: ControllerQueue,
}

impl Requests {
    /// Requests sent with `sender`, measured by `queue`.
    pub(crate) fn new(
        sender: UnboundedSender<StoreRef<CachedObject>>,
        queue: ControllerQueue,
    ) -> Self {
        Self { sender, queue }
    }

    /// Requests a reconcile of `reference`.
    pub(crate) fn send(&self, reference: StoreRef<CachedObject>) {
        self.queue.add(key_of(&reference));
        // A closed channel means the term is ending: the request is not needed.
        let _ = self.sender.unbounded_send(reference);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_waits_until_its_reconcile_starts_and_is_added_once() {
        let metrics = ControllerMetrics::register(&mut Registry::default());
        let queue = metrics.controller("thing", 2);
        queue.add((None, "a".into()));
        queue.add((None, "a".into()));
        assert_eq!(queue.adds.get(), 1, "a waiting object is not added twice");
        let work = queue.start(None, "a".into());
        queue.with_state(|state| {
            assert!(state.waiting.is_empty());
            assert_eq!(state.working.len(), 1);
        });
        work.finish(Outcome::RequeueAfter);
        queue.with_state(|state| assert!(state.working.is_empty()));
        assert_eq!(queue.reconciles[3].get(), 1);
        assert_eq!(queue.errors.get(), 0);

        drop(queue.start(None, "b".into()));
        assert_eq!(queue.adds.get(), 2, "started by the controller itself");
        assert_eq!(queue.errors.get(), 1, "an abandoned reconcile is an error");
        assert_eq!(queue.reconciles[1].get(), 1);
    }
}
