//! # The operator: a policy run against a Kubernetes API server (`capt-host run`)
//!
//! Generic over the policy: the kinds it watches are the policy's `triggers` and `reads`, what
//! a reconcile reads is what the policy `requires`, and what it writes is what the policy
//! patches. It knows the contract (`wit/policy.wit`), never a policy's kinds or fields.
//!
//! ```text
//!  API server ──watch──▶ cache (a reflector store per watched kind)
//!      ▲                   │ every event
//!      │                   ▼
//!      │                dispatch ── the changed trigger; triggers that read the object
//!      │                   │        (index); trigger-kind owners ──▶ reconcile requests
//!      │                   ▼
//!      │   leader only: a kube Controller per trigger kind (queue, no two reconciles of one
//!      │                   │                                object, backoff, requeue)
//!      │                   ▼
//!      │                reconcile ── rounds over the cache (GET for unwatched kinds) ──▶ policy
//!      │                   │
//!      └──── patches ◀── apply (no-op skipped, resourceVersion-chained, leader gate)
//!            events  ◀── events (one create each)
//! ```
//!
//! One module per job: [`config`](OperatorConfig), `kinds` (discovery), `object` (objects as
//! the operator holds them: [`CachedObject`]), `cache`, `dispatch`, `echo` (the operator's own
//! writes), `index` (per-trigger state, bounded), `gather` (the rounds' object source),
//! `secrets` (whose Secrets may be read), `reconcile`, `output` (the check of a policy's
//! patches), `apply`, `contention` (a second writer of the same status), `events`, `leader`
//! (the Lease and the write gate), `metrics`, `http` (probes, `/metrics` and `/policy`), `error`. This module wires them and runs leadership
//! terms until shutdown.
//!
//! The policy runs from a [`PolicySlot`] (`capt_host_runtime`): whoever holds the slot may
//! replace the module while the operator serves. The operator knows nothing of how or why; what
//! it offers others is an [`OperatorBuilder`]: a [`ReconcileAll`] handle (reconcile every
//! trigger object again), its metrics registry, a [`StatusProvider`] for `/policy`, and tasks
//! run beside it until shutdown.
//!
//! Lifecycle: [`Operator::start`] (or [`OperatorBuilder::start`]) binds the HTTP address and starts the operator task, which
//! discovers the kinds (retrying while a CRD is missing), starts the watchers (ready once
//! every store is filled), joins the election (or opens the write gate at once without one),
//! and, for each term as leader, runs the controllers until the Lease is lost or shutdown is
//! asked. [`Operator::shutdown`] stops the controllers gracefully (reconciles in flight
//! finish), releases the Lease, and stops the HTTP server.

mod apply;
mod cache;
mod config;
mod contention;
mod dispatch;
mod echo;
mod error;
mod events;
mod gather;
mod http;
mod index;
mod kinds;
mod leader;
pub mod manifests;
mod metrics;
mod object;
mod output;
mod reconcile;
mod secrets;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _, stream};
use kube::Client;
use kube::runtime::controller::{self, Controller};
use kube::runtime::watcher;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use self::cache::Cache;
use self::contention::Contention;
use self::dispatch::{Dispatcher, TermSenders};
use self::events::EventPublisher;
use self::http::Probes;
use self::index::TriggerIndex;
use self::leader::{Election, LeaderGate};
use self::metrics::Metrics;
use self::reconcile::{Context, error_policy, reconcile};
use self::secrets::SecretScope;
use capt_host_core::error_chain;
use capt_host_runtime::PolicySlot;

pub use self::config::{LeaderElection, OperatorConfig, RetryPolicy};
pub use self::error::{OperatorError, ReconcileError, Refusal};
pub use self::kinds::{DiscoveryError, KindInfo, KindKey, Kinds, ObjectKey};
pub use self::object::CachedObject;
pub use self::reconcile::{ReconcileResult, Reconciled};
pub use prometheus_client::registry::Registry;

/// How many reconcile reports a slow [`Operator::reconciles`] subscriber may fall behind.
const OBSERVER_CAPACITY: usize = 1024;

/// What `/policy` serves: the policy module's state, as JSON. Plugged in with
/// [`OperatorBuilder::status_provider`]; without one, `/policy` is not served.
pub trait StatusProvider: Send + Sync {
    /// The current state.
    fn status(&self) -> serde_json::Value;
}

/// Reconciles every trigger object of an operator again (while it leads), e.g. after its
/// policy module was replaced. Cheap to clone.
#[derive(Clone)]
pub struct ReconcileAll(watch::Sender<u64>);

impl ReconcileAll {
    /// Asks for the reconciles; several requests before they start count once.
    pub fn reconcile_all(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A task run beside the operator: given a receiver that turns true at shutdown, it must
/// return soon after. [`Operator::shutdown`] waits for it.
type Beside = Box<dyn FnOnce(watch::Receiver<bool>) -> BoxFuture<'static, ()> + Send>;

/// An operator being set up: what others plug in before it starts.
pub struct OperatorBuilder {
    client: Client,
    config: OperatorConfig,
    policy: PolicySlot,
    metrics: Metrics,
    status: Option<Arc<dyn StatusProvider>>,
    reconcile_all: watch::Sender<u64>,
    beside: Vec<(&'static str, Beside)>,
}

impl OperatorBuilder {
    /// The client the operator will use.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The operator's configuration.
    pub fn config(&self) -> &OperatorConfig {
        &self.config
    }

    /// The slot the operator runs the policy from.
    pub fn policy(&self) -> &PolicySlot {
        &self.policy
    }

    /// The operator's metrics registry (every name prefixed `capt_host_`), for the families of
    /// what is plugged in; `/metrics` serves them with the operator's own.
    pub fn metrics_registry(&mut self) -> &mut Registry {
        self.metrics.registry_mut()
    }

    /// Serves `provider`'s status on `/policy`.
    pub fn status_provider(&mut self, provider: Arc<dyn StatusProvider>) -> &mut Self {
        self.status = Some(provider);
        self
    }

    /// A handle that reconciles every trigger object again.
    pub fn reconcile_all(&self) -> ReconcileAll {
        ReconcileAll(self.reconcile_all.clone())
    }

    /// Runs `task` beside the operator (in a span named `name`), from its start until
    /// shutdown: `task` gets a receiver that turns true at shutdown.
    pub fn run_beside<F>(
        &mut self,
        name: &'static str,
        task: impl FnOnce(watch::Receiver<bool>) -> F + Send + 'static,
    ) -> &mut Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.beside
            .push((name, Box::new(move |shutdown| task(shutdown).boxed())));
        self
    }

    /// Starts the operator. Fails only when the HTTP address cannot be bound; everything else
    /// is retried in the background.
    pub async fn start(self) -> Result<Operator, OperatorError> {
        let Self {
            client,
            config,
            policy,
            metrics,
            status,
            reconcile_all,
            beside,
        } = self;
        let metrics = Arc::new(metrics);
        let shared = Arc::new(Shared {
            gate: LeaderGate::new(&metrics.leader),
            ready: watch::Sender::new(false),
            observers: broadcast::Sender::new(OBSERVER_CAPACITY),
            reconcile_all,
            policy_status: status,
            metrics,
        });
        let listener = match config.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| OperatorError::Bind { addr, source })?,
            ),
            None => None,
        };
        let http_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let shutdown = watch::Sender::new(false);
        let span = tracing::info_span!("operator", identity = %config.identity);
        let task = tokio::spawn(
            run(
                client,
                config,
                policy,
                beside,
                shared.clone(),
                shutdown.subscribe(),
                listener,
            )
            .instrument(span),
        );
        Ok(Operator {
            shared,
            shutdown,
            task,
            http_addr,
        })
    }
}

/// A running operator. Dropping the handle stops it in the background (as
/// [`Operator::shutdown`] does, without waiting).
pub struct Operator {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), OperatorError>>,
    http_addr: Option<SocketAddr>,
}

/// What the handle and the operator task share.
struct Shared {
    metrics: Arc<Metrics>,
    ready: watch::Sender<bool>,
    gate: LeaderGate,
    observers: broadcast::Sender<Reconciled>,
    /// Bumped to reconcile every trigger object again (after a policy swap).
    reconcile_all: watch::Sender<u64>,
    /// What `/policy` reports, if anything.
    policy_status: Option<Arc<dyn StatusProvider>>,
}

impl Operator {
    /// An operator running `policy` with `client`, configured by `config`, to plug things
    /// into before [`OperatorBuilder::start`].
    pub fn builder(client: Client, config: OperatorConfig, policy: PolicySlot) -> OperatorBuilder {
        OperatorBuilder {
            client,
            config,
            policy,
            metrics: Metrics::new(),
            status: None,
            reconcile_all: watch::Sender::new(0),
            beside: Vec::new(),
        }
    }

    /// Starts an operator running `policy` with `client`, configured by `config`, with nothing
    /// plugged in. Fails only when the HTTP address cannot be bound; everything else is
    /// retried in the background.
    pub async fn start(
        client: Client,
        config: OperatorConfig,
        policy: PolicySlot,
    ) -> Result<Self, OperatorError> {
        Self::builder(client, config, policy).start().await
    }

    /// Reconciles every trigger object again (what a policy swap does), while leading.
    pub fn reconcile_all(&self) {
        self.shared
            .reconcile_all
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The address `/metrics`, `/healthz` and `/readyz` are served on, if any.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// True once every cache has been filled (what `/readyz` reports).
    pub fn is_ready(&self) -> bool {
        *self.shared.ready.borrow()
    }

    /// Resolves once every cache has been filled.
    pub async fn ready(&self) {
        let mut ready = self.shared.ready.subscribe();
        // The sender lives in `self`: waiting cannot fail.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// True while this replica may write (it leads, or runs without leader election).
    pub fn is_leader(&self) -> bool {
        self.shared.gate.is_open()
    }

    /// The metrics, in the OpenMetrics text format (what `/metrics` serves).
    pub fn metrics(&self) -> String {
        self.shared.metrics.encode()
    }

    /// A report of every reconcile finished from now on (for tests and tools embedding the
    /// operator). A subscriber that falls more than 1024 reports behind loses the oldest.
    pub fn reconciles(&self) -> broadcast::Receiver<Reconciled> {
        self.shared.observers.subscribe()
    }

    /// Stops gracefully: no new reconciles, those in flight finish, the Lease is released,
    /// the watchers and the HTTP server stop.
    pub async fn shutdown(self) -> Result<(), OperatorError> {
        self.shutdown.send_replace(true);
        self.task.await.map_err(OperatorError::Task)?
    }

    /// Runs until `signal` resolves, then shuts down; or returns at once if the operator
    /// stops by itself (an error).
    pub async fn run_until(
        mut self,
        signal: impl Future<Output = ()>,
    ) -> Result<(), OperatorError> {
        tokio::select! {
            () = signal => self.shutdown().await,
            result = &mut self.task => result.map_err(OperatorError::Task)?,
        }
    }
}

/// The operator task: serves HTTP while [`operate`] runs, then stops the server.
async fn run(
    client: Client,
    config: OperatorConfig,
    policy: PolicySlot,
    beside: Vec<(&'static str, Beside)>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    listener: Option<TcpListener>,
) -> Result<(), OperatorError> {
    let beside: Vec<_> = beside
        .into_iter()
        .map(|(name, task)| {
            tokio::spawn(task(shutdown.clone()).instrument(tracing::info_span!("task", name)))
        })
        .collect();
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let http = listener.map(|listener| {
        let probes = Probes {
            ready: shared.ready.subscribe(),
            metrics: shared.metrics.clone(),
            policy: shared.policy_status.clone(),
        };
        let stopped = http_stopped.map(drop);
        tokio::spawn(http::serve(listener, probes, stopped).instrument(tracing::info_span!("http")))
    });
    operate(&client, &config, policy, &shared, shutdown).await;
    for task in beside {
        task.await.map_err(OperatorError::Task)?;
    }
    let _ = stop_http.send(());
    if let Some(http) = http {
        http.await
            .map_err(OperatorError::Task)?
            .map_err(OperatorError::Serve)?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Discovers, watches, elects and runs leadership terms until shutdown.
async fn operate(
    client: &Client,
    config: &OperatorConfig,
    policy: PolicySlot,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let metadata = policy.current().metadata().clone();
    let discovery = retrying("discovery", config.discovery_retry, || {
        Kinds::discover(client, &metadata, &config.uncached_kinds)
    });
    let kinds = tokio::select! {
        kinds = discovery => Arc::new(kinds),
        () = stopping(&mut shutdown) => return,
    };
    tracing::info!(
        kinds = kinds.iter().count(),
        "discovered the policy's kinds"
    );

    let index = Arc::new(Mutex::new(TriggerIndex::default()));
    let dispatcher = Arc::new(Dispatcher::new(kinds.clone(), index.clone()));
    let (cache, watchers) =
        Cache::start(client, kinds, config.namespace.clone(), dispatcher.clone());
    let cache = Arc::new(cache);
    let synced = {
        let (cache, shared) = (cache.clone(), shared.clone());
        tokio::spawn(
            async move {
                cache.synced().await;
                shared.ready.send_replace(true);
                tracing::info!("caches synced: ready");
            }
            .in_current_span(),
        )
    };

    let election = match &config.leader_election {
        None => {
            shared.gate.set(true);
            None
        }
        Some(election) => {
            let start = retrying(
                "joining the leader election",
                config.discovery_retry,
                || {
                    Election::start(
                        client.clone(),
                        election,
                        &config.identity,
                        shared.gate.clone(),
                    )
                },
            );
            tokio::select! {
                election = start => Some(election),
                () = stopping(&mut shutdown) => None,
            }
        }
    };

    let ctx = Arc::new(Context {
        client: client.clone(),
        cache: cache.clone(),
        dispatcher: dispatcher.clone(),
        policy,
        index,
        gate: shared.gate.clone(),
        events: EventPublisher::new(
            client.clone(),
            &config.reporter,
            &config.identity,
            shared.gate.clone(),
        ),
        metrics: shared.metrics.clone(),
        retry: config.retry,
        secrets: Arc::new(SecretScope::new(config.secret_namespaces.clone())),
        contention: Contention::new(config.contested_backoff),
        field_manager: config.reporter.clone(),
        observers: shared.observers.clone(),
    });
    // Reconcile from complete caches only. (`shared.ready`, not `Cache::synced`: kube's
    // `Store::wait_until_ready` wakes only one of several concurrent waiters.)
    let mut ready = shared.ready.subscribe();
    while !*shutdown.borrow() {
        tokio::select! {
            () = async {
                shared.gate.wait_for(true).await;
                let _ = ready.wait_for(|ready| *ready).await;
            } => {}
            () = stopping(&mut shutdown) => break,
        }
        run_term(
            &ctx,
            &dispatcher,
            config,
            &shared.reconcile_all,
            shutdown.clone(),
        )
        .await;
    }

    if let Some(election) = election {
        election.stop().await;
    }
    synced.abort();
    for watcher in watchers {
        watcher.abort();
    }
}

/// One leadership term: a controller per trigger kind, fed by the dispatcher, until the Lease
/// is lost or shutdown is asked; then the controllers stop gracefully.
async fn run_term(
    ctx: &Arc<Context>,
    dispatcher: &Dispatcher,
    config: &OperatorConfig,
    reconcile_all: &watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!("leading: starting the controllers");
    let mut senders = TermSenders::new();
    let mut stops = Vec::new();
    let mut controllers = Vec::new();
    for info in ctx.cache.kinds().triggers() {
        // Trigger kinds are always watched.
        let Some(store) = ctx.cache.store(&info.key()) else {
            continue;
        };
        let (requests, queue) = futures::channel::mpsc::unbounded();
        let (stop, stopped) = oneshot::channel::<()>();
        senders.insert(info.key(), requests);
        stops.push(stop);
        let (reconciled, failed) = (info.clone(), info.clone());
        let controller = Controller::for_stream_with(
            stream::pending::<Result<CachedObject, watcher::Error>>(),
            store.clone(),
            info.api_resource.clone(),
        )
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .reconcile_on(queue)
        .reconcile_all_on(bumps(reconcile_all.subscribe()))
        .graceful_shutdown_on(stopped.map(drop))
        .run(
            move |object, ctx| reconcile(reconciled.clone(), object, ctx),
            move |object, error, ctx| error_policy(&failed, object, error, ctx),
            ctx.clone(),
        )
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(error = %error_chain(&error), "controller");
            }
            std::future::ready(())
        })
        .instrument(tracing::info_span!("controller", kind = %info.key()));
        controllers.push(controller);
    }
    dispatcher.begin_term(senders, &ctx.cache);
    let end = async {
        tokio::select! {
            () = ctx.gate.wait_for(false) => tracing::warn!("leadership lost: stopping the controllers"),
            () = stopping(&mut shutdown) => tracing::info!("shutting down: finishing the reconciles in flight"),
        }
        for stop in stops {
            let _ = stop.send(());
        }
    };
    futures::future::join(end, futures::future::join_all(controllers)).await;
    dispatcher.end_term();
}

/// An item for every change of `counter` after now.
fn bumps(counter: watch::Receiver<u64>) -> impl futures::Stream<Item = ()> + Send + 'static {
    stream::unfold(counter, |mut counter| async move {
        counter.changed().await.ok()?;
        Some(((), counter))
    })
}

/// Resolves when shutdown is asked (or the handle is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Calls `attempt` until it succeeds, waiting `delay` after each failure (logged).
async fn retrying<T, E, F>(what: &str, delay: Duration, mut attempt: impl FnMut() -> F) -> T
where
    E: std::error::Error,
    F: Future<Output = Result<T, E>>,
{
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), retry_in = ?delay, "{what} failed");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
