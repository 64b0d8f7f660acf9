//! Starting, configuring and stopping the server, and the handles tests use: the client,
//! store reads, request counters and fault injection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::builtin::to_served;
use crate::error::ServerError;
use crate::faults::{FaultPlan, RequestFilter};
use crate::ops::State;
use crate::registry::ResourceKind;
use crate::stats::{Counters, LoggedRequest, RequestLog, RequestStats};

/// Server settings. `ServerConfig::default()` is what [`ApiServer::start`] uses.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How many changes the watch history keeps (older resourceVersions get 410 Gone).
    pub history_capacity: usize,
    /// How often a watch with `allowWatchBookmarks=true` receives a BOOKMARK.
    pub bookmark_interval: Duration,
    /// How long a watch lasts when the request gives no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
    /// Namespaces that exist at start.
    pub namespaces: Vec<String>,
    /// Whether creating a namespaced object requires its namespace to exist (and not be
    /// terminating), like the real NamespaceLifecycle admission.
    pub enforce_namespaces: bool,
    /// Extra kinds served from the start (besides the built-ins).
    pub kinds: Vec<ResourceKind>,
    /// `gitVersion` reported by `/version`.
    pub git_version: String,
    /// Port to listen on, on 127.0.0.1 (0: an ephemeral port).
    pub port: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            history_capacity: 10_000,
            bookmark_interval: Duration::from_secs(5),
            default_watch_timeout: Duration::from_secs(1800),
            namespaces: ["default", "kube-system", "kube-public", "kube-node-lease"]
                .map(str::to_string)
                .to_vec(),
            enforce_namespaces: true,
            kinds: Vec::new(),
            git_version: "v1.34.0-inproc".to_string(),
            port: 0,
        }
    }
}

impl ServerConfig {
    /// Serves `kind` from the start.
    pub fn with_kind(mut self, kind: ResourceKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Sets the watch history capacity.
    pub fn with_history_capacity(mut self, capacity: usize) -> Self {
        self.history_capacity = capacity;
        self
    }

    /// Sets the bookmark interval.
    pub fn with_bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// Sets the default watch timeout.
    pub fn with_default_watch_timeout(mut self, timeout: Duration) -> Self {
        self.default_watch_timeout = timeout;
        self
    }

    /// Sets the namespaces that exist at start.
    pub fn with_namespaces<I, S>(mut self, namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.namespaces = namespaces.into_iter().map(Into::into).collect();
        self
    }

    /// Listens on this port of 127.0.0.1 (0: ephemeral), for example for a demo that other
    /// processes connect to.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Turns the namespace-existence check on or off.
    pub fn with_enforced_namespaces(mut self, enforce: bool) -> Self {
        self.enforce_namespaces = enforce;
        self
    }
}

/// State shared by the HTTP handlers and the handles.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) faults: FaultPlan,
    pub(crate) counters: Counters,
    pub(crate) log: RequestLog,
    pub(crate) config: ServerConfig,
    pub(crate) address: String,
}

impl Shared {
    /// Locks the registry and store (recovering from a poisoned lock).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn version_info(&self) -> Value {
        let git = &self.config.git_version;
        let mut parts = git.trim_start_matches('v').split('.');
        let major = parts.next().unwrap_or("1");
        let minor = parts.next().unwrap_or("0");
        json!({
            "major": major,
            "minor": minor,
            "gitVersion": git,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24",
            "compiler": "gc",
            "platform": "linux/amd64",
        })
    }
}

/// A running in-process API server on `127.0.0.1` (ephemeral port).
///
/// Dropping it stops the server; [`ApiServer::shutdown`] stops it gracefully.
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    client: kube::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer").field("url", &self.url).finish()
    }
}

impl ApiServer {
    /// Starts a server with the default configuration.
    pub async fn start() -> Result<Self, ServerError> {
        Self::start_with(ServerConfig::default()).await
    }

    /// Starts a server with `config`.
    pub async fn start_with(config: ServerConfig) -> Result<Self, ServerError> {
        for kind in &config.kinds {
            kind.validate().map_err(ServerError::Kind)?;
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(ServerError::Bind)?;
        let addr = listener.local_addr().map_err(ServerError::Bind)?;
        let state = State::new(
            config.kinds.clone(),
            config.history_capacity,
            &config.namespaces,
            config.enforce_namespaces,
        )
        .map_err(|e| ServerError::Kind(e.to_string()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            faults: FaultPlan::default(),
            counters: Counters::default(),
            log: RequestLog::default(),
            config,
            address: addr.to_string(),
        });
        // The real server accepts request bodies up to 3 MiB.
        let app = Router::new()
            .fallback(crate::handlers::dispatch)
            .layer(axum::extract::DefaultBodyLimit::max(3 * 1024 * 1024))
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(err) = server.await {
                tracing::warn!(%err, "in-process API server stopped with an error");
            }
        });
        let url = format!("http://{addr}");
        let client = client_for(&url)?;
        tracing::info!(%url, "in-process API server started");
        Ok(Self {
            shared,
            addr,
            url,
            client,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `kube::Client` for this server (cheap clone of one client).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A `kube::Config` for this server (default namespace `default`), to build clients
    /// with other settings.
    pub fn kube_config(&self) -> Result<kube::Config, ServerError> {
        let uri = self
            .url
            .parse()
            .map_err(|_| ServerError::Url(self.url.clone()))?;
        Ok(kube::Config::new(uri))
    }

    /// A kubeconfig (YAML) whose current context points at this server (namespace
    /// `default`, no credentials), for other processes or tools.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: inproc\n  cluster:\n    server: {}\n\
             users:\n- name: inproc\n  user: {{}}\ncontexts:\n- name: inproc\n  context:\n    \
             cluster: inproc\n    user: inproc\n    namespace: default\ncurrent-context: inproc\n",
            self.url
        )
    }

    /// Serves a new kind (or replaces the kind with the same group, version and plural).
    pub fn register(&self, kind: ResourceKind) -> Result<(), ServerError> {
        kind.validate().map_err(ServerError::Kind)?;
        self.shared.lock().registry.register(kind);
        Ok(())
    }

    /// Read access to the stored objects, for assertions.
    pub fn store(&self) -> StoreReader {
        StoreReader {
            shared: self.shared.clone(),
        }
    }

    /// A snapshot of the request counters.
    pub fn requests(&self) -> RequestStats {
        self.shared.counters.snapshot()
    }

    /// Every resource request received so far, in order, with its `User-Agent` and when it
    /// was received and answered (not reset by [`ApiServer::reset_requests`]).
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.log.snapshot()
    }

    /// Resets the request counters.
    pub fn reset_requests(&self) {
        self.shared.counters.reset();
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        Faults {
            shared: self.shared.clone(),
        }
    }

    /// The current resourceVersion (the global counter).
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.current_rv()
    }

    /// The number of open watch streams.
    pub fn open_watches(&self) -> usize {
        self.shared.lock().store.watch_count()
    }

    /// Stops the server: ends every watch, stops accepting connections and waits (at most
    /// five seconds) for open requests to finish.
    pub async fn shutdown(mut self) {
        self.stop_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        tracing::info!(url = %self.url, "in-process API server stopped");
    }

    fn stop_watches(&self) {
        self.shared.lock().store.drop_watches();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn client_for(url: &str) -> Result<kube::Client, ServerError> {
    let uri = url.parse().map_err(|_| ServerError::Url(url.to_string()))?;
    kube::Client::try_from(kube::Config::new(uri)).map_err(ServerError::Client)
}

/// Read-only access to the server's objects (served form, as a client would get them).
#[derive(Clone)]
pub struct StoreReader {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader").finish_non_exhaustive()
    }
}

impl StoreReader {
    /// The object `name` (in `namespace` for namespaced kinds) of the kind served at
    /// `api_version` (`v1`, `group/version`) and `plural`, if the kind is served and the
    /// object exists.
    pub fn get_dynamic(
        &self,
        api_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let state = self.shared.lock();
        let kind = state.registry.find(group, version, plural)?;
        let obj = state
            .store
            .get(&kind.storage, namespace.unwrap_or_default(), name)?;
        Some(to_served(kind, obj))
    }

    /// The objects of a kind, in one namespace or all (`None`), ordered by namespace and
    /// name.
    pub fn list_dynamic(
        &self,
        api_version: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> Vec<Value> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let state = self.shared.lock();
        let Some(kind) = state.registry.find(group, version, plural) else {
            return Vec::new();
        };
        state
            .store
            .list(&kind.storage, namespace, None)
            .map(|(_, obj)| to_served(kind, obj))
            .collect()
    }

    /// A typed object; `None` if missing, not served, or not decodable as `K`.
    pub fn get<K>(&self, namespace: Option<&str>, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let value = self.get_dynamic(&K::api_version(&()), &K::plural(&()), namespace, name)?;
        serde_json::from_value(value).ok()
    }

    /// Typed objects of `K` (undecodable objects are skipped).
    pub fn list<K>(&self, namespace: Option<&str>) -> Vec<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.list_dynamic(&K::api_version(&()), &K::plural(&()), namespace)
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.current_rv()
    }
}

/// Fault injection, usable from any thread while clients run against the server.
#[derive(Clone)]
pub struct Faults {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

impl Faults {
    /// The next `n` write requests (create, update, patch, delete, deletecollection) fail
    /// with 409 Conflict.
    pub fn conflict_next_writes(&self, n: u32) {
        self.shared.faults.add_conflicts(n, RequestFilter::any());
    }

    /// The next `n` write requests matching `filter` fail with 409 Conflict.
    pub fn conflict_next_writes_matching(&self, n: u32, filter: RequestFilter) {
        self.shared.faults.add_conflicts(n, filter);
    }

    /// The next `n` resource requests (any verb, watches included) fail with 500.
    pub fn fail_next_requests(&self, n: u32) {
        self.shared
            .faults
            .add_failures(n, 500, RequestFilter::any());
    }

    /// The next `n` requests matching `filter` fail with HTTP `code` (429, 503 and 504 carry
    /// `Retry-After: 1`, which `kube::Client` retries on its own).
    pub fn fail_next_requests_matching(&self, n: u32, code: u16, filter: RequestFilter) {
        self.shared.faults.add_failures(n, code, filter);
    }

    /// Requests matching `filter` hang (get no answer) until [`Faults::release_hangs`] or
    /// [`Faults::clear`], or until their client gives up.
    pub fn hang_requests_matching(&self, filter: RequestFilter) {
        self.shared.faults.add_hang(filter);
    }

    /// Lets every hung request go on, and hangs no more.
    pub fn release_hangs(&self) {
        self.shared.faults.release_hangs();
    }

    /// Adds `latency` before every resource request is handled (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults.set_latency(latency);
    }

    /// Ends every open watch stream now (cleanly, as when the server closes a watch);
    /// returns how many were open.
    pub fn drop_watches(&self) -> usize {
        self.shared.lock().store.drop_watches()
    }

    /// Forgets the watch history: every open watch receives a 410 Expired ERROR event, and
    /// watches, lists and continue tokens from any earlier resourceVersion get 410 Gone.
    pub fn expire_watch_history(&self) {
        self.shared.lock().store.expire_history();
    }

    /// Removes every pending conflict, failure and hang, and the latency.
    pub fn clear(&self) {
        self.shared.faults.clear();
    }
}
