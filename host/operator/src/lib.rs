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
//! the operator holds them: [`CachedObject`]), `cache`, `poison` (objects it cannot read),
//! `dispatch`, `echo` (the operator's own writes), `index` (per-trigger state, bounded),
//! `gather` (the rounds' object source), `secrets` (whose Secrets may be read), `reconcile`, `output` (the check of a policy's
//! patches), `apply`, `contention` (a second writer of the same status), `events`, `leader`
//! (the Lease and the write gate), `client` (request timeouts, the rate limit of `ratelimit`,
//! the User-Agent, and the gate on every write), `health` (whether reconciles make progress),
//! `metrics`, `http` (probes, `/metrics` and `/policy`), `error`. This module wires them and
//! runs the leadership term until shutdown.
//!
//! The policy runs from a [`PolicySlot`] (`capt_host_runtime`): whoever holds the slot may
//! replace the module while the operator serves. The operator knows nothing of how or why; what
//! it offers others is an [`OperatorBuilder`]: a [`ReconcileAll`] handle (reconcile every
//! trigger object again), its metrics registry, a [`StatusProvider`] for `/policy`, and tasks
//! run beside it until shutdown.
//!
//! Lifecycle: [`Operator::start`] (or [`OperatorBuilder::start`]) binds the HTTP addresses and
//! starts the operator task, which discovers the kinds (retrying while a CRD is missing),
//! starts the watchers (ready once every store is filled), joins the election (or opens the
//! write gate at once without one), and, once it leads, runs the controllers until shutdown is
//! asked or the lead is lost. [`Operator::shutdown`] stops the controllers gracefully
//! (reconciles in flight finish, for at most the graceful shutdown timeout; then the gate
//! closes and they are abandoned), releases the Lease, and stops the HTTP servers. A lost lead
//! ends the operator with [`OperatorError::LeadershipLost`]: as controller-runtime exits, so
//! that a replica restarts from scratch rather than carry anything over from its old term.

mod apply;
mod authn;
mod cache;
mod client;
mod config;
mod contention;
mod dispatch;
mod echo;
mod error;
mod events;
mod gather;
mod health;
mod http;
mod index;
mod kinds;
mod leader;
pub mod manifests;
mod metrics;
mod object;
mod output;
mod poison;
mod process;
mod queue;
mod ratelimit;
mod reconcile;
mod secrets;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _, stream};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use self::cache::Cache;
use self::client::Clients;
use self::contention::Contention;
use self::dispatch::{Dispatcher, TermSenders};
use self::events::EventPublisher;
use self::health::Progress;
use self::http::{Exposed, Probes};
use self::index::TriggerIndex;
use self::leader::{Election, LeaderGate};
use self::metrics::Metrics;
use self::queue::{ControllerQueue, Outcome, Requests, controller_name};
use self::reconcile::{Context, error_policy, reconcile};
use self::secrets::SecretScope;
use capt_host_core::error_chain;
use capt_host_runtime::PolicySlot;

pub use self::client::RequestError;
pub use self::config::{ApiClientConfig, LeaderElection, OperatorConfig, RetryPolicy, TimingError};
pub use self::error::{OperatorError, ReconcileError, Refusal};
pub use self::kinds::{DiscoveryError, KindInfo, KindKey, Kinds, ObjectKey};
pub use self::object::{CachedObject, Unreadable};
pub use self::reconcile::{ReconcileResult, Reconciled};
pub use self::tls::{CertSource, TlsError};
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
    clients: Clients,
    gate: LeaderGate,
    config: OperatorConfig,
    policy: PolicySlot,
    metrics: Metrics,
    status: Option<Arc<dyn StatusProvider>>,
    reconcile_all: watch::Sender<u64>,
    beside: Vec<(&'static str, Beside)>,
}

impl OperatorBuilder {
    /// A client for what is plugged in: the operator's timeout, rate limit and User-Agent,
    /// without the leader gate (what it writes is about this replica, e.g. its own events).
    pub fn client(&self) -> &Client {
        &self.clients.plain
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

    /// Starts the operator. Fails only when the leader election's timings cannot work or an
    /// HTTP address cannot be bound; everything else is retried in the background.
    pub async fn start(self) -> Result<Operator, OperatorError> {
        let Self {
            clients,
            gate,
            config,
            policy,
            metrics,
            status,
            reconcile_all,
            beside,
        } = self;
        if let Some(election) = &config.leader_election {
            election.validate()?;
        }
        let metrics = Arc::new(metrics);
        let shared = Arc::new(Shared {
            gate,
            progress: Arc::new(Progress::new(config.reconcile_stall_timeout)),
            ready: watch::Sender::new(false),
            observers: broadcast::Sender::new(OBSERVER_CAPACITY),
            reconcile_all,
            policy_status: status,
            metrics,
        });
        let metrics_tls = config
            .metrics_tls
            .as_ref()
            .filter(|_| config.metrics_addr.is_some())
            .map(tls::server_config)
            .transpose()?;
        let listeners = Listeners {
            metrics_tls,
            metrics: bind(config.metrics_addr).await?,
            probes: bind(config.probe_addr).await?,
        };
        let metrics_addr = listeners.metrics.as_ref().and_then(|l| l.local_addr().ok());
        let probe_addr = listeners.probes.as_ref().and_then(|l| l.local_addr().ok());
        let shutdown = watch::Sender::new(false);
        let span = tracing::info_span!("operator", identity = %config.identity);
        let task = tokio::spawn(
            run(
                clients,
                config,
                policy,
                beside,
                shared.clone(),
                shutdown.subscribe(),
                listeners,
            )
            .instrument(span),
        );
        Ok(Operator {
            shared,
            shutdown,
            task,
            metrics_addr,
            probe_addr,
        })
    }
}

/// A running operator. Dropping the handle stops it in the background (as
/// [`Operator::shutdown`] does, without waiting).
pub struct Operator {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), OperatorError>>,
    metrics_addr: Option<SocketAddr>,
    probe_addr: Option<SocketAddr>,
}

/// The HTTP listeners, bound before the operator starts.
struct Listeners {
    metrics: Option<TcpListener>,
    /// `Some`: the metrics are served over TLS, each request authorized.
    metrics_tls: Option<Arc<rustls::ServerConfig>>,
    probes: Option<TcpListener>,
}

/// Binds `addr`, if any.
async fn bind(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, OperatorError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| OperatorError::Bind { addr, source })
}

/// What the handle and the operator task share.
struct Shared {
    metrics: Arc<Metrics>,
    ready: watch::Sender<bool>,
    gate: LeaderGate,
    /// The reconciles running now (for `/healthz`).
    progress: Arc<Progress>,
    observers: broadcast::Sender<Reconciled>,
    /// Bumped to reconcile every trigger object again (after a policy swap).
    reconcile_all: watch::Sender<u64>,
    /// What `/policy` reports, if anything.
    policy_status: Option<Arc<dyn StatusProvider>>,
}

impl Operator {
    /// An operator running `policy` with `client`, configured by `config`, to plug things
    /// into before [`OperatorBuilder::start`].
    ///
    /// The operator sends its requests through `client` with its own layers around it (see
    /// [`ApiClientConfig`]); `client` should not retry on its own (`kube::Config::default_retry`
    /// false) for the rate limit to count every attempt, though even its retries are never sent
    /// once the leader gate has closed.
    pub fn builder(client: Client, config: OperatorConfig, policy: PolicySlot) -> OperatorBuilder {
        let metrics = Metrics::new();
        let lease = config
            .leader_election
            .as_ref()
            .map(|e| e.lease_name.as_str());
        let gate = LeaderGate::new(&metrics.leader, lease);
        // Every controller's series exist from the start.
        for trigger in &policy.current().metadata().triggers {
            metrics
                .controllers
                .controller(&controller_name(&trigger.kind), config.concurrency);
        }
        OperatorBuilder {
            clients: Clients::new(&client, &config.api, &gate, &metrics.rest),
            gate,
            config,
            policy,
            metrics,
            status: None,
            reconcile_all: watch::Sender::new(0),
            beside: Vec::new(),
        }
    }

    /// Starts an operator running `policy` with `client`, configured by `config`, with nothing
    /// plugged in. Fails only when the leader election's timings cannot work or an HTTP
    /// address cannot be bound; everything else is retried in the background.
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

    /// The address `/metrics` (and `/policy`) are served on, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The address the probes `/healthz` and `/readyz` are served on, if any.
    pub fn probe_addr(&self) -> Option<SocketAddr> {
        self.probe_addr
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

    /// Stops gracefully: no new reconciles, those in flight finish (for at most the graceful
    /// shutdown timeout), the Lease is released, the watchers and the HTTP servers stop. Fails
    /// with [`OperatorError::LeadershipLost`] when the lead was lost before.
    pub async fn shutdown(self) -> Result<(), OperatorError> {
        self.shutdown.send_replace(true);
        self.task.await.map_err(OperatorError::Task)?
    }

    /// Runs until `signal` resolves, then shuts down; or returns at once if the operator
    /// stops by itself (an error: [`OperatorError::LeadershipLost`]).
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

/// The operator task: serves HTTP and runs the tasks beside it while [`operate`] runs, then
/// stops them.
async fn run(
    clients: Clients,
    config: OperatorConfig,
    policy: PolicySlot,
    beside: Vec<(&'static str, Beside)>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    listeners: Listeners,
) -> Result<(), OperatorError> {
    // The tasks beside stop once the operator has (shutdown, or a lost lead).
    let stop_beside = watch::Sender::new(false);
    let beside: Vec<_> = beside
        .into_iter()
        .map(|(name, task)| {
            tokio::spawn(
                task(stop_beside.subscribe()).instrument(tracing::info_span!("task", name)),
            )
        })
        .collect();
    let (stop_http, http_stopped) = watch::channel(false);
    let stopped = move || {
        let mut http_stopped = http_stopped.clone();
        async move {
            let _ = http_stopped.wait_for(|stop| *stop).await;
        }
    };
    let mut servers = Vec::new();
    if let Some(listener) = listeners.probes {
        let probes = Probes {
            ready: shared.ready.subscribe(),
            progress: shared.progress.clone(),
        };
        servers.push(tokio::spawn(
            http::serve_probes(listener, probes, stopped())
                .instrument(tracing::info_span!("probes")),
        ));
    }
    if let Some(listener) = listeners.metrics {
        let exposed = Exposed {
            metrics: shared.metrics.clone(),
            policy: shared.policy_status.clone(),
        };
        // Reviews go through the ungated client: standbys serve metrics too.
        let secured = listeners
            .metrics_tls
            .map(|tls| (tls, authn::Reviewer::new(clients.plain.clone())));
        servers.push(tokio::spawn(
            http::serve_metrics(listener, exposed, secured, stopped())
                .instrument(tracing::info_span!("metrics")),
        ));
    }
    let outcome = operate(&clients, &config, policy, &shared, shutdown).await;
    stop_beside.send_replace(true);
    for task in beside {
        task.await.map_err(OperatorError::Task)?;
    }
    stop_http.send_replace(true);
    for server in servers {
        server
            .await
            .map_err(OperatorError::Task)?
            .map_err(OperatorError::Serve)?;
    }
    match &outcome {
        Ok(()) => tracing::info!("stopped"),
        Err(error) => tracing::error!(error = %error_chain(error), "stopped"),
    }
    outcome
}

/// Discovers, watches, elects and runs the leadership term until shutdown or a lost lead.
async fn operate(
    clients: &Clients,
    config: &OperatorConfig,
    policy: PolicySlot,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), OperatorError> {
    let client = &clients.fenced;
    let metadata = policy.current().metadata().clone();
    let discovery = retrying("discovery", config.discovery_retry, || {
        Kinds::discover(client, &metadata, &config.uncached_kinds)
    });
    let kinds = tokio::select! {
        kinds = discovery => Arc::new(kinds),
        () = stopping(&mut shutdown) => return Ok(()),
    };
    tracing::info!(
        kinds = kinds.iter().count(),
        "discovered the policy's kinds"
    );

    let index = Arc::new(Mutex::new(TriggerIndex::default()));
    let dispatcher = Arc::new(Dispatcher::new(kinds.clone(), index.clone()));
    let (cache, watchers) = Cache::start(
        client,
        kinds,
        config.namespace.clone(),
        dispatcher.clone(),
        &shared.metrics.poison,
    );
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
            shared.gate.open();
            None
        }
        Some(election) => Some(Election::start(
            clients.lease.clone(),
            election,
            &config.identity,
            shared.gate.clone(),
            config.api.timeout,
        )),
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
    let mut outcome = Ok(());
    while !*shutdown.borrow() {
        tokio::select! {
            () = async {
                shared.gate.opened().await;
                let _ = ready.wait_for(|ready| *ready).await;
            } => {}
            () = stopping(&mut shutdown) => break,
        }
        let term = Term {
            ctx: &ctx,
            dispatcher: &dispatcher,
            config,
            reconcile_all: &shared.reconcile_all,
            progress: &shared.progress,
        };
        if term.run(shutdown.clone()).await == TermEnd::LeadershipLost {
            outcome = Err(OperatorError::LeadershipLost);
            break;
        }
    }

    shared.gate.close();
    if let Some(election) = election {
        election.stop().await;
    }
    synced.abort();
    for watcher in watchers {
        watcher.abort();
    }
    outcome
}

/// How a leadership term ended.
#[derive(Debug, PartialEq, Eq)]
enum TermEnd {
    /// Shutdown was asked.
    Shutdown,
    /// The leader gate closed: the Lease was lost or not renewed in time.
    LeadershipLost,
    /// The controllers stopped by themselves (their queues closed): a new term starts.
    ControllersStopped,
}

/// What a leadership term runs with.
struct Term<'a> {
    ctx: &'a Arc<Context>,
    dispatcher: &'a Dispatcher,
    config: &'a OperatorConfig,
    reconcile_all: &'a watch::Sender<u64>,
    progress: &'a Arc<Progress>,
}

impl Term<'_> {
    /// A controller per trigger kind, fed by the dispatcher, until the lead is lost or
    /// shutdown is asked; then the controllers stop gracefully, for at most the graceful
    /// shutdown timeout, after which the gate closes and the reconciles still running are
    /// abandoned.
    async fn run(self, mut shutdown: watch::Receiver<bool>) -> TermEnd {
        let Self {
            ctx,
            dispatcher,
            config,
            reconcile_all,
            progress,
        } = self;
        tracing::info!("leading: starting the controllers");
        let mut senders = TermSenders::new();
        let mut stops = Vec::new();
        let mut controllers = Vec::new();
        let mut queues = Vec::new();
        for info in ctx.cache.kinds().triggers() {
            // Trigger kinds are always watched.
            let Some(store) = ctx.cache.store(&info.key()) else {
                continue;
            };
            let (requests, queue) = futures::channel::mpsc::unbounded();
            let (stop, stopped) = oneshot::channel::<()>();
            let measured = ctx.metrics.controllers.controller(
                &controller_name(&info.api_resource.kind),
                config.concurrency,
            );
            senders.insert(info.key(), Requests::new(requests, measured.clone()));
            stops.push(stop);
            let (reconciled, failed) = (info.clone(), info.clone());
            let progress = progress.clone();
            let (working, retrying, dropped) =
                (measured.clone(), measured.clone(), measured.clone());
            queues.push(measured);
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
                move |object, ctx| {
                    let running = progress.begin(
                        ObjectRef::from_obj_with(&*object, reconciled.api_resource.clone())
                            .to_string(),
                    );
                    let work = working.start(object.namespace(), object.name_any());
                    reconcile(reconciled.clone(), object, ctx).inspect(move |outcome| {
                        work.finish(match outcome {
                            Err(_) => Outcome::Error,
                            Ok(action) if *action == Action::await_change() => Outcome::Success,
                            Ok(_) => Outcome::RequeueAfter,
                        });
                        drop(running);
                    })
                },
                move |object, error, ctx| error_policy(&failed, &retrying, object, error, ctx),
                ctx.clone(),
            )
            .for_each(move |result| {
                match result {
                    Err(controller::Error::ObjectNotFound(gone)) => {
                        dropped.forget(gone.namespace, gone.name);
                    }
                    Err(error) => {
                        tracing::debug!(error = %error_chain(&error), "controller");
                    }
                    Ok(_) => {}
                }
                std::future::ready(())
            })
            .instrument(tracing::info_span!("controller", kind = %info.key()));
            controllers.push(controller);
        }
        dispatcher.begin_term(senders, |kind| ctx.cache.store(kind));
        let mut controllers = std::pin::pin!(futures::future::join_all(controllers));
        let end = tokio::select! {
            () = ctx.gate.closed() => {
                tracing::error!("leadership lost: stopping the controllers");
                TermEnd::LeadershipLost
            }
            () = stopping(&mut shutdown) => {
                tracing::info!("shutting down: finishing the reconciles in flight");
                TermEnd::Shutdown
            }
            _ = &mut controllers => {
                dispatcher.end_term();
                queues.iter().for_each(ControllerQueue::clear);
                return TermEnd::ControllersStopped;
            }
        };
        for stop in stops {
            let _ = stop.send(());
        }
        let timeout = config.graceful_shutdown_timeout;
        if tokio::time::timeout(timeout, &mut controllers)
            .await
            .is_err()
        {
            ctx.gate.close();
            tracing::warn!(
                ?timeout,
                "reconciles still running after the graceful shutdown timeout: abandoned"
            );
        }
        dispatcher.end_term();
        queues.iter().for_each(ControllerQueue::clear);
        end
    }
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
