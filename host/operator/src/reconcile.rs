//! One reconcile of one trigger object: gather, call the policy, apply, record events, requeue.
//!
//! ```text
//!  trigger ─▶ rounds::reconcile over Gatherer (cache; GET for unwatched kinds) ─▶ response
//!               │ (blocking thread; every round timed)          │
//!               └─ reads ─▶ TriggerIndex (dependencies)         ▼
//!                          output check: every patch of an object the policy was given, at
//!                                    │   its version, else refused: nothing written
//!                                    ▼
//!                          apply patches (skip no-ops, chained preconditions, leader gate)
//!                                    │ conflict/error: stop ─▶ error_policy (backoff)
//!                                    ▼
//!                          events of fully written objects ─▶ requeue-after / await change
//! ```
//!
//! The rounds start with what the trigger's last reconcile read, fetched up front
//! ([`rounds::reconcile_knowing`]): a reconcile whose needs did not change is one policy call
//! instead of one per link of its chain of reads. Those objects are read, and so recorded as
//! dependencies, again: a dependency the policy stopped needing stays while the object exists
//! (costing at most extra reconciles, never a wrong one).
//!
//! A change that reaches the cache while a reconcile reads, before its reads are recorded as
//! the trigger's dependencies, re-triggers nothing by itself; so once they are recorded, an
//! object read at another version than the cache now holds asks for one more reconcile.
//!
//! Failures are logged, counted (`reconcile_errors_total{kind,error}`) and, unless they are
//! part of normal operation (conflicts, a lost Lease), recorded once as a Warning event on the
//! trigger. [`error_policy`] requeues after the per-object backoff.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use capt_policy::ObjectRef;
use kube::Client;
use kube::runtime::controller::Action;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast;
use tracing::Instrument as _;

use super::apply;
use super::cache::Cache;
use super::config::RetryPolicy;
use super::contention::Contention;
use super::dispatch::{Dispatcher, lock};
use super::error::ReconcileError;
use super::events::EventPublisher;
use super::gather::{Gatherer, Reads, Timed};
use super::index::TriggerIndex;
use super::kinds::{KindInfo, ObjectKey};
use super::leader::LeaderGate;
use super::metrics::Metrics;
use super::object::CachedObject;
use super::output;
use super::queue::ControllerQueue;
use super::secrets::SecretScope;
use capt_host_core::error_chain;
use capt_host_core::rounds::{self, RoundError};
use capt_host_runtime::{ActivePolicy, PolicySlot};

/// How one reconcile ended, as reported to [`super::Operator::reconciles`] subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// The trigger object.
    pub trigger: ObjectRef,
    /// How it ended.
    pub result: ReconcileResult,
    /// Patches sent.
    pub writes: usize,
}

/// How a reconcile ended (the `result` label of `reconciles_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// Patches were sent.
    Changed,
    /// Nothing needed writing.
    Unchanged,
    /// A write lost a race (its resourceVersion precondition failed); retried.
    Conflict,
    /// This replica stopped leading before it could write.
    NotLeader,
    /// Any other failure.
    Error,
}

impl ReconcileResult {
    /// The label: `changed`, `unchanged`, `conflict`, `not_leader` or `error`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::Unchanged => "unchanged",
            Self::Conflict => "conflict",
            Self::NotLeader => "not_leader",
            Self::Error => "error",
        }
    }
}

/// Everything a reconcile needs, shared by the controllers of every trigger kind.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) cache: Arc<Cache>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) policy: PolicySlot,
    pub(crate) index: Arc<Mutex<TriggerIndex>>,
    pub(crate) gate: LeaderGate,
    pub(crate) events: EventPublisher,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) retry: RetryPolicy,
    pub(crate) secrets: Arc<SecretScope>,
    pub(crate) contention: Contention,
    pub(crate) field_manager: String,
    pub(crate) observers: broadcast::Sender<Reconciled>,
}

/// Reconciles `object`, of kind `info`. The controller's reconciler.
pub(crate) async fn reconcile(
    info: Arc<KindInfo>,
    object: Arc<CachedObject>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let trigger = info.object_ref(&*object);
    let policy = ctx.policy.current();
    let span = tracing::info_span!(
        "reconcile",
        trigger = %trigger,
        module_version = policy.version(),
    );
    async move {
        let kind = info.api_resource.kind.as_str();
        let key = ObjectKey::of(&trigger);
        let outcome = match object.unreadable() {
            // A poison object (see `poison`): only its own reconciles fail.
            Some(reason) => Err(ReconcileError::Unreadable {
                trigger: trigger.clone(),
                source: reason.clone(),
            }),
            None => run(&ctx, &trigger, &key, &policy).await,
        };
        let (result, writes) = match &outcome {
            Ok((_, 0)) => (ReconcileResult::Unchanged, 0),
            Ok((_, writes)) => (ReconcileResult::Changed, *writes),
            Err(ReconcileError::Conflict { .. }) => (ReconcileResult::Conflict, 0),
            Err(ReconcileError::NotLeader) => (ReconcileResult::NotLeader, 0),
            Err(_) => (ReconcileResult::Error, 0),
        };
        ctx.metrics
            .reconcile
            .finished(kind, policy.version(), result);
        match &outcome {
            Ok((action, _)) => {
                lock(&ctx.index).succeeded(&key);
                tracing::debug!(result = result.label(), writes, ?action, "reconciled");
            }
            Err(error) => failed(&ctx, kind, &trigger, &key, error).await,
        }
        let _ = ctx.observers.send(Reconciled {
            trigger: trigger.clone(),
            result,
            writes,
        });
        outcome.map(|(action, _)| action)
    }
    .instrument(span)
    .await
}

/// The controller's error policy: requeue after the trigger's backoff (counted as a retry of
/// `queue`).
pub(crate) fn error_policy(
    info: &KindInfo,
    queue: &ControllerQueue,
    object: Arc<CachedObject>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    if matches!(error, ReconcileError::NotLeader) {
        return Action::await_change();
    }
    queue.retried();
    let key = info.object_key(&*object);
    let failures = lock(&ctx.index).failures(&key).max(1);
    Action::requeue(ctx.retry.delay(failures, error.is_transient()))
}

/// Gathers, calls the policy and applies; the requeue action and the number of writes.
async fn run(
    ctx: &Context,
    trigger: &ObjectRef,
    key: &ObjectKey,
    policy: &Arc<ActivePolicy>,
) -> Result<(Action, usize), ReconcileError> {
    let known = lock(&ctx.index)
        .last_reads(key)
        .into_iter()
        .filter_map(|read| Some(ctx.cache.kinds().get(&read.kind)?.reference(read)))
        .collect();
    let (outcome, reads) = gather(ctx, trigger, known, policy).await?;
    let (triggers, edges) = {
        let mut index = lock(&ctx.index);
        index.record_reads(key, reads.watched());
        index.record_unwatched_reads(key, reads.unwatched());
        index.size()
    };
    if reads.changed_since(&ctx.cache) {
        tracing::debug!("an object changed while it was read: reconciling again");
        ctx.dispatcher.request_again(key);
    }
    ctx.metrics.reconcile.index_size(triggers, edges);
    let response = match outcome {
        Ok(response) => response,
        // Deleted after it was queued: nothing to do, its deletion is being handled.
        Err(RoundError::TriggerMissing(_)) => return Ok((Action::await_change(), 0)),
        Err(error) => return Err(ReconcileError::Rounds(error)),
    };
    output::check(
        &response.patches,
        &policy.metadata().reads,
        &reads.observed,
        &ctx.metrics.output,
    )?;
    let applied = apply::apply(ctx, key, &response.patches, &reads.observed).await;
    for event in &response.events {
        let regarding = ObjectKey::of(&event.regarding);
        if applied.unapplied.contains(&regarding) {
            // Its transition was not written: the next reconcile computes it again.
            continue;
        }
        let uid = ctx.cache.uid(&regarding);
        if let Err(error) = ctx.events.publish(event, uid, &ctx.metrics.events).await {
            tracing::warn!(error = %error_chain(&error), reason = %event.reason, "event not recorded");
        }
    }
    if let Some(error) = applied.error {
        return Err(error);
    }
    // A held (contested) write is looked at again after its back-off.
    let requeue = response.requeue_after_millis.map(Duration::from_millis);
    let action = match (requeue, applied.retry_in) {
        (Some(a), Some(b)) => Action::requeue(a.min(b)),
        (Some(after), None) | (None, Some(after)) => Action::requeue(after),
        (None, None) => Action::await_change(),
    };
    Ok((action, applied.writes))
}

/// Runs the requirement rounds on a blocking thread (the policy is CPU-bound; unwatched
/// objects are fetched from there, on the runtime), starting with the `known` objects (what
/// the trigger's last reconcile read).
async fn gather(
    ctx: &Context,
    trigger: &ObjectRef,
    known: Vec<ObjectRef>,
    policy: &Arc<ActivePolicy>,
) -> Result<(Result<capt_policy::Response, RoundError>, Reads), ReconcileError> {
    let cache = ctx.cache.clone();
    let secrets = ctx.secrets.clone();
    let metrics = ctx.metrics.clone();
    let policy = policy.clone();
    let trigger = trigger.clone();
    let runtime = tokio::runtime::Handle::current();
    let span = tracing::Span::current();
    let now = chrono::Utc::now().timestamp_millis();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let namespace = trigger.namespace.as_deref();
        let gatherer = Gatherer::new(&cache, &secrets, namespace, runtime);
        let timed = Timed::new(policy.policy(), &metrics.guest);
        let outcome =
            rounds::reconcile_knowing(&timed, &gatherer, &trigger, &known, now, policy.settings());
        (outcome, gatherer.into_reads())
    })
    .await
    .map_err(ReconcileError::Task)
}

/// Counts, logs and (once per distinct failure) records a Warning event about a failure.
async fn failed(
    ctx: &Context,
    kind: &str,
    trigger: &ObjectRef,
    key: &ObjectKey,
    error: &ReconcileError,
) {
    ctx.metrics.reconcile.error(kind, error.label());
    let message = error_chain(error);
    let failures = lock(&ctx.index).failed(key);
    if matches!(
        error,
        ReconcileError::Conflict { .. } | ReconcileError::NotLeader
    ) {
        tracing::debug!(error = %message, "reconcile stopped; it runs again");
        return;
    }
    if error.is_transient() {
        tracing::warn!(error = %message, failures, "reconcile failed; retrying with backoff");
    } else {
        tracing::error!(error = %message, failures, "reconcile failed; retrying when an object changes");
    }
    let Some(reason) = error.event_reason() else {
        return;
    };
    let note = error.note();
    if !lock(&ctx.index).warn(key, (reason.to_owned(), note.clone())) {
        return;
    }
    let uid = ctx.cache.uid(key);
    if let Err(error) = ctx
        .events
        .warn(trigger, uid, reason, &note, &ctx.metrics.events)
        .await
    {
        tracing::warn!(error = %error_chain(&error), "warning event not recorded");
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    kind: String,
    module_version: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    error: &'static str,
}

/// The policy's own metrics of the reconciles: what controller-runtime's families (see
/// [`super::queue`]) do not say, the module version and what the reconcile did or why it
/// failed.
#[derive(Debug)]
pub(crate) struct ReconcileMetrics {
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    index_triggers: Gauge,
    index_edges: Gauge,
}

impl ReconcileMetrics {
    /// Registers `reconciles_total`, `reconcile_errors_total` and the dependency index sizes.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            index_triggers: Gauge::default(),
            index_edges: Gauge::default(),
        };
        registry.register(
            "reconciles",
            "Reconciles finished, by trigger kind, module version and result \
             (changed, unchanged, conflict, not_leader, error)",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by trigger kind and error",
            metrics.errors.clone(),
        );
        registry.register(
            "dependency_index_triggers",
            "Triggers the dependency index holds (as of the last reconcile)",
            metrics.index_triggers.clone(),
        );
        registry.register(
            "dependency_index_edges",
            "(object, trigger that read it) pairs the dependency index holds (as of the last \
             reconcile)",
            metrics.index_edges.clone(),
        );
        metrics
    }

    fn index_size(&self, triggers: usize, edges: usize) {
        self.index_triggers
            .set(i64::try_from(triggers).unwrap_or(i64::MAX));
        self.index_edges
            .set(i64::try_from(edges).unwrap_or(i64::MAX));
    }

    fn finished(&self, kind: &str, module_version: &str, result: ReconcileResult) {
        self.reconciles
            .get_or_create(&ResultLabels {
                kind: kind.into(),
                module_version: module_version.into(),
                result: result.label(),
            })
            .inc();
    }

    fn error(&self, kind: &str, error: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.into(),
                error,
            })
            .inc();
    }
}
