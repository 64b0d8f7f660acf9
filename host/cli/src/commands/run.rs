//! `capt-host run`: the operator, against the cluster of the kubeconfig (or in-cluster).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::embedded::{self, DEFAULT_POLICY};
use anyhow::Context as _;
use capt_host_core::settings::{self, SettingsFile};
use capt_host_operator::{CertSource, LeaderElection, Operator, OperatorConfig};
use capt_host_runtime::{ActivePolicy, PolicySlot};
use capt_host_runtime::{CompileCache, Limits, WasmPolicy};
use capt_host_swap::{
    Canary, ConfigMapVerdicts, EventTarget, Fallback, PolicyStatus, RollbackPolicy, SwapConfig,
    Swapper, Verdicts,
};
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::{LimitArgs, describe_module, duration, engine};

/// Runs the operator: watches the policy's trigger kinds (and the kinds it reads) and
/// reconciles every trigger object when it, or an object its last reconcile read, changes;
/// writes status and events; serves /metrics and the probes /healthz and /readyz. Stops
/// gracefully on SIGTERM or SIGINT (reconciles in flight finish, within
/// --graceful-shutdown-timeout; the Lease is released); exits non-zero when it loses the Lease.
///
/// With --module, the module and settings files are watched: a new module is compiled, checked
/// against the contract, run through the canary scenario suite (and optionally in shadow mode)
/// and then replaces the running one without a restart; a promoted module that fails live
/// reconciles is rolled back. At start, a module file that is missing, does not load or fails
/// the canary leaves the embedded policy serving until the file changes (a missing settings
/// file: the policy's defaults). GET /policy tells which module runs. See docs/hot-swap.md.
#[derive(Debug, Args)]
pub struct Run {
    /// The policy component (.wasm); default: the policy embedded at build time.
    #[arg(long, value_name = "FILE", env = "CAPT_MODULE")]
    module: Option<PathBuf>,
    /// Overrides of the policy's default settings: a YAML (or JSON) object.
    #[arg(long, value_name = "FILE", env = "CAPT_SETTINGS")]
    settings: Option<PathBuf>,
    #[command(flatten)]
    operator: OperatorArgs,
    /// This replica's identity (Lease holder, events' reporting instance); default: $POD_NAME,
    /// else the host name.
    #[arg(long, value_name = "ID", env = "CAPT_IDENTITY")]
    identity: Option<String>,
    /// Watch and reconcile one namespace only; default: all namespaces.
    #[arg(long, value_name = "NS", env = "CAPT_NAMESPACE")]
    namespace: Option<String>,
    /// The kubeconfig file(s), separated like $PATH; default: the in-cluster configuration,
    /// else ~/.kube/config.
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<String>,
    /// Watch --module and --settings and hot-swap the policy when they change: the default
    /// when --module is given.
    #[arg(long, env = "CAPT_WATCH_MODULE", overrides_with = "no_watch")]
    watch_module: bool,
    /// Load --module once; never swap it.
    #[arg(long, env = "CAPT_NO_WATCH", overrides_with = "watch_module")]
    no_watch: bool,
    /// The ConfigMap, in the Lease's namespace, where the replicas record their verdicts on
    /// --module's modules (accepted, or rejected and why), so that they all run the same one:
    /// a recorded verdict is followed, not judged again. Empty: each replica judges alone.
    #[arg(
        long,
        value_name = "NAME",
        env = "CAPT_POLICY_VERDICTS_CONFIGMAP",
        default_value = "capt-status-policy-verdicts"
    )]
    policy_verdicts_configmap: String,
    /// Refuse module files larger than this (bytes), without reading them.
    #[arg(
        long,
        value_name = "BYTES",
        env = "CAPT_MAX_MODULE_BYTES",
        default_value_t = 16 << 20
    )]
    max_module_bytes: u64,
    /// Keep compiled modules in DIR (created with mode 0700; refused if others can write to
    /// it), keyed by module digest and engine, so a restart or a swap back skips the compile;
    /// default: no cache.
    #[arg(long, value_name = "DIR", env = "CAPT_COMPILE_CACHE")]
    compile_cache: Option<PathBuf>,
    /// The canary: the scenario files (.yaml) under DIR, which a new module must all pass
    /// before it serves; default: the built-in suite of the capt-status policy.
    #[arg(long, value_name = "DIR", env = "CAPT_CANARY_SCENARIOS")]
    canary_scenarios: Option<PathBuf>,
    /// Promote new modules without a canary run.
    #[arg(long, env = "CAPT_NO_CANARY", conflicts_with = "canary_scenarios")]
    no_canary: bool,
    /// After its canary, run a new module in shadow mode for this long (e.g. 5m): it computes
    /// the live reconciles next to the active module, its differences are counted and shown
    /// on /policy, nothing it computes is applied. 0: promote at once.
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_SHADOW_DURATION",
        default_value = "0s",
        value_parser = duration
    )]
    shadow_duration: Duration,
    /// Roll a promoted module back once this many of its reconciles failed, if they are also
    /// more than --rollback-ratio of them, during its probation. 0: never roll back.
    #[arg(
        long,
        value_name = "N",
        env = "CAPT_ROLLBACK_THRESHOLD",
        default_value_t = 5
    )]
    rollback_threshold: u64,
    /// The share of failed reconciles (0 to 1) a rollback also needs.
    #[arg(
        long,
        value_name = "RATIO",
        env = "CAPT_ROLLBACK_RATIO",
        default_value_t = 0.5
    )]
    rollback_ratio: f64,
    /// A promoted module's probation ends after this many reconciles...
    #[arg(
        long,
        value_name = "N",
        env = "CAPT_PROBATION_RECONCILES",
        default_value_t = 200
    )]
    probation_reconciles: u64,
    /// ...or after this long, whichever comes first.
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_PROBATION_DURATION",
        default_value = "10m",
        value_parser = duration
    )]
    probation_duration: Duration,
    #[command(flatten)]
    limits: LimitArgs,
    /// Reconciles of one trigger kind that may run at the same time (never two of one object).
    /// The policy's instance pool is sized from it.
    #[arg(
        long,
        value_name = "N",
        env = "CAPT_CONCURRENCY",
        default_value_t = 16,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    concurrency: u16,
    #[command(flatten)]
    access: AccessArgs,
}

impl Run {
    /// Runs the command until SIGTERM or SIGINT.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            module,
            settings,
            operator: operator_args,
            identity,
            namespace,
            kubeconfig,
            watch_module,
            no_watch,
            policy_verdicts_configmap,
            max_module_bytes,
            compile_cache,
            canary_scenarios,
            no_canary,
            shadow_duration,
            rollback_threshold,
            rollback_ratio,
            probation_reconciles,
            probation_duration,
            limits,
            concurrency,
            access,
        } = self;
        anyhow::ensure!(
            (0.0..=1.0).contains(&rollback_ratio),
            "--rollback-ratio must be between 0 and 1"
        );
        let limits = limits.limits();
        let engine = engine(Limits {
            // Room for the reconciles of up to three trigger kinds and a swap's canary.
            concurrent_calls: (u32::from(concurrency) * 4).max(limits.concurrent_calls),
            ..limits
        })?;
        let reset = engine.page_reset();
        tracing::info!(
            page_reset = reset.reset.name(),
            reason = %reset.reason,
            cpu_limit = ?engine.limits().cpu_time,
            deadline = ?engine.limits().deadline,
            slots = engine.limits().concurrent_calls,
            slot_wait = ?engine.limits().slot_wait,
            compile_memory_bytes = engine.limits().compile.memory_bytes,
            compile_time = ?engine.limits().compile.time,
            "policy sandbox: instance memory reset between calls, call limits, compile budget"
        );
        let runtime =
            tokio::runtime::Runtime::new().context("could not start the async runtime")?;
        let identity = identity
            .or_else(|| non_empty_env("POD_NAME"))
            .unwrap_or_else(host_name);
        let connect = || {
            let (client, host) = runtime.block_on(client(
                kubeconfig.as_deref(),
                operator_args.kube_api_timeout,
            ))?;
            let lease_namespace = operator_args
                .leader_election_namespace
                .clone()
                .or_else(|| non_empty_env("POD_NAMESPACE"))
                .unwrap_or_else(|| client.default_namespace().to_owned());
            anyhow::Ok((client, host, lease_namespace))
        };
        // The swaps connect before they load (to the verdicts); the embedded policy after it
        // loaded: settings it rejects stop the operator before it connects.
        let mut connected = None;
        let policy = match &module {
            // A module file: hot-swappable (unless --no-watch).
            Some(path) => {
                let (client, host, lease_namespace) = connect()?;
                let mut swap = SwapConfig::new(path);
                swap.settings = settings.clone();
                swap.watch = watch_module || !no_watch;
                swap.max_module_bytes = max_module_bytes;
                swap.compile_cache = compile_cache
                    .map(CompileCache::open)
                    .transpose()
                    .context("--compile-cache")?;
                swap.canary = match (canary_scenarios, no_canary) {
                    (_, true) => Canary::Off,
                    (Some(dir), false) => Canary::Dir(dir),
                    (None, false) => embedded::canary(),
                };
                swap.shadow = shadow_duration;
                // A missing, broken or failing module file at start: the embedded policy
                // serves until the file holds a module that passes.
                swap.fallback = Some(Fallback {
                    bytes: DEFAULT_POLICY,
                    label: describe_module(None),
                });
                swap.rollback = RollbackPolicy {
                    min_failures: rollback_threshold,
                    ratio: rollback_ratio,
                    probation_reconciles,
                    probation: probation_duration,
                };
                if !policy_verdicts_configmap.is_empty() {
                    let store = ConfigMapVerdicts::new(
                        client.clone(),
                        &lease_namespace,
                        &policy_verdicts_configmap,
                        runtime.handle().clone(),
                        operator_args.kube_api_timeout,
                    );
                    swap.verdicts = Some(Verdicts::new(Arc::new(store), identity.clone()));
                }
                // Not in an async task: the verdicts are looked up and written blocking.
                let swapper = Swapper::load(&engine, swap)
                    .with_context(|| format!("could not load the policy {}", path.display()))?;
                connected = Some((client, host, lease_namespace));
                Policies::Swapped(Box::new(swapper))
            }
            None => {
                anyhow::ensure!(
                    !watch_module,
                    "--watch-module needs --module: the embedded policy never changes"
                );
                let settings = settings.as_deref().map(SettingsFile::read).transpose()?;
                let policy = WasmPolicy::load(&engine, DEFAULT_POLICY)
                    .context("could not load the embedded policy")?;
                // Settings the policy rejects stop the operator here, before it connects.
                settings::check(&policy, settings.as_ref())?;
                let policy =
                    ActivePolicy::wasm(policy, settings.as_ref().map(SettingsFile::overrides))
                        .with_context(|| {
                            format!("invalid --settings for {}", describe_module(None))
                        })?;
                Policies::Fixed(PolicySlot::new(policy))
            }
        };
        let current = policy.slot().current();
        let name = current.metadata().name.clone();
        tracing::info!(policy = %name, version = current.version(), "policy loaded");
        let (client, host, lease_namespace) = match connected {
            Some(connected) => connected,
            None => connect()?,
        };

        runtime.block_on(async move {
            let mut config = OperatorConfig::new(name.clone(), identity);
            config.namespace = namespace;
            config.concurrency = concurrency;
            access.configure(&mut config);
            let lease_name = operator_args.leader_election_id.clone().unwrap_or(name);
            operator_args.configure(&mut config, &lease_name, &lease_namespace);
            config.api.host = host;
            let operator = match policy {
                Policies::Fixed(slot) => {
                    let mut operator = Operator::builder(client, config, slot);
                    engine.pool_metrics().register(operator.metrics_registry());
                    PolicyStatus::attach_fixed(&mut operator);
                    operator.start().await?
                }
                Policies::Swapped(swapper) => {
                    // Swap events are about this Pod (downward API), else about the Lease.
                    let target = match (non_empty_env("POD_NAMESPACE"), non_empty_env("POD_NAME")) {
                        (Some(namespace), Some(pod)) => {
                            EventTarget::pod(&namespace, &pod, non_empty_env("POD_UID"))
                        }
                        _ => EventTarget::lease(&lease_namespace, &lease_name),
                    };
                    let swapper = (*swapper).with_events(Some(target));
                    let mut operator = Operator::builder(client, config, swapper.slot().clone());
                    engine.pool_metrics().register(operator.metrics_registry());
                    swapper.attach(&mut operator);
                    operator.start().await?
                }
            };
            operator.run_until(shutdown_signal()).await?;
            anyhow::Ok(ExitCode::SUCCESS)
        })
    }
}

/// The operator's flags: leader election, HTTP endpoints, API client and lifecycle, named as
/// controller-runtime names them (the earlier names are hidden aliases).
#[derive(Debug, Args)]
struct OperatorArgs {
    /// Elect a leader with a coordination.k8s.io Lease: only the holder reconciles and
    /// writes; the other replicas wait, ready, and take over when it goes away.
    #[arg(long, alias = "leader-election", env = "CAPT_LEADER_ELECT")]
    leader_elect: bool,
    /// How long a standby waits, from when it sees the Lease change, before it takes a Lease
    /// that was not renewed.
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_LEADER_ELECT_LEASE_DURATION",
        default_value = "15s",
        value_parser = duration
    )]
    leader_elect_lease_duration: Duration,
    /// The leader stops writing when it has not renewed the Lease for this long (shorter than
    /// the lease duration, so that it stops before a standby may take over), and exits.
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_LEADER_ELECT_RENEW_DEADLINE",
        default_value = "10s",
        value_parser = duration
    )]
    leader_elect_renew_deadline: Duration,
    /// How often the leader renews the Lease and a standby tries to take it.
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_LEADER_ELECT_RETRY_PERIOD",
        default_value = "2s",
        value_parser = duration
    )]
    leader_elect_retry_period: Duration,
    /// The Lease's name; default: the policy's name (capt-status for the embedded policy).
    #[arg(
        long,
        alias = "lease-name",
        value_name = "NAME",
        env = "CAPT_LEADER_ELECTION_ID"
    )]
    leader_election_id: Option<String>,
    /// The Lease's namespace; default: $POD_NAMESPACE, else the kubeconfig's namespace.
    #[arg(
        long,
        alias = "lease-namespace",
        value_name = "NS",
        env = "CAPT_LEADER_ELECTION_NAMESPACE"
    )]
    leader_election_namespace: Option<String>,
    /// Where /metrics (and /policy) are served: HOST:PORT, or :PORT for every interface;
    /// `0` serves no metrics. Default `:8443` (HTTPS), `:8080` with --metrics-secure=false.
    #[arg(
        long,
        alias = "metrics-addr",
        value_name = "ADDR",
        env = "CAPT_METRICS_BIND_ADDRESS",
        value_parser = bind_address
    )]
    metrics_bind_address: Option<BindAddress>,
    /// Serve the metrics over HTTPS, each request authenticated (TokenReview) and authorized
    /// (SubjectAccessReview: `get` on the path); `false`: plain HTTP, no authentication.
    #[arg(
        long,
        value_name = "BOOL",
        env = "CAPT_METRICS_SECURE",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    metrics_secure: bool,
    /// The directory of the metrics certificate and key; none: a self-signed certificate is
    /// generated at start.
    #[arg(long, value_name = "DIR", env = "CAPT_METRICS_CERT_PATH")]
    metrics_cert_path: Option<PathBuf>,
    /// The metrics certificate's file name in --metrics-cert-path.
    #[arg(
        long,
        value_name = "FILE",
        env = "CAPT_METRICS_CERT_NAME",
        default_value = "tls.crt"
    )]
    metrics_cert_name: String,
    /// The metrics key's file name in --metrics-cert-path.
    #[arg(
        long,
        value_name = "FILE",
        env = "CAPT_METRICS_CERT_KEY",
        default_value = "tls.key"
    )]
    metrics_cert_key: String,
    /// Where the probes /healthz and /readyz are served: HOST:PORT, or :PORT for every
    /// interface; `0` serves none.
    #[arg(
        long,
        value_name = "ADDR",
        env = "CAPT_HEALTH_PROBE_BIND_ADDRESS",
        default_value = ":8081",
        value_parser = bind_address
    )]
    health_probe_bind_address: BindAddress,
    /// Requests per second sent to the API server on average (the Lease's excepted); 0: no
    /// limit.
    #[arg(
        long,
        value_name = "QPS",
        env = "CAPT_KUBE_API_QPS",
        default_value_t = 20.0
    )]
    kube_api_qps: f32,
    /// Requests that may be sent at once above --kube-api-qps.
    #[arg(
        long,
        value_name = "N",
        env = "CAPT_KUBE_API_BURST",
        default_value_t = 30
    )]
    kube_api_burst: u32,
    /// How long an API request may wait for its whole response (watches excepted).
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_KUBE_API_TIMEOUT",
        default_value = "30s",
        value_parser = duration
    )]
    kube_api_timeout: Duration,
    /// On SIGTERM, how long the reconciles in flight may take to finish; then writes stop,
    /// they are abandoned, the Lease is released and the process exits.
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_GRACEFUL_SHUTDOWN_TIMEOUT",
        default_value = "30s",
        value_parser = duration
    )]
    graceful_shutdown_timeout: Duration,
    /// /healthz fails once a reconcile has been running this long (a stuck worker).
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_RECONCILE_STALL_TIMEOUT",
        default_value = "5m",
        value_parser = duration
    )]
    reconcile_stall_timeout: Duration,
}

impl OperatorArgs {
    /// Sets what these flags decide in `config`; the Lease is `lease_name` in
    /// `lease_namespace`.
    fn configure(self, config: &mut OperatorConfig, lease_name: &str, lease_namespace: &str) {
        let default_port = if self.metrics_secure { 8443 } else { 8080 };
        config.metrics_addr = match self.metrics_bind_address {
            Some(address) => address.0,
            None => Some(SocketAddr::from(([0, 0, 0, 0], default_port))),
        };
        config.metrics_tls = self.metrics_secure.then(|| match self.metrics_cert_path {
            Some(dir) => CertSource::Files {
                cert: dir.join(&self.metrics_cert_name),
                key: dir.join(&self.metrics_cert_key),
            },
            None => CertSource::SelfSigned,
        });
        config.probe_addr = self.health_probe_bind_address.0;
        config.api.qps = self.kube_api_qps;
        config.api.burst = self.kube_api_burst;
        config.api.timeout = self.kube_api_timeout;
        config.graceful_shutdown_timeout = self.graceful_shutdown_timeout;
        config.reconcile_stall_timeout = self.reconcile_stall_timeout;
        if self.leader_elect {
            let mut election = LeaderElection::new(lease_name, lease_namespace);
            election.lease_duration = self.leader_elect_lease_duration;
            election.renew_deadline = self.leader_elect_renew_deadline;
            election.retry_period = self.leader_elect_retry_period;
            config.leader_election = Some(election);
        }
    }
}

/// Which Secrets the operator may read, and how it yields to a second writer of its status.
#[derive(Debug, Args)]
struct AccessArgs {
    /// Namespaces whose Secrets may be read besides the trigger's own (comma-separated); a
    /// Secret elsewhere reaches the policy as missing. Default: none. See deploy/README.md.
    #[arg(
        long,
        value_name = "NS,...",
        env = "CAPT_SECRET_NAMESPACES",
        value_delimiter = ','
    )]
    secret_namespaces: Vec<String>,
    /// How long to stop writing an object's status once another field manager keeps
    /// overwriting the fields this operator writes (a second writer; docs/second-writer.md).
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_CONTESTED_BACKOFF",
        default_value = "5m",
        value_parser = duration
    )]
    contested_backoff: Duration,
}

impl AccessArgs {
    /// Sets what these flags decide in `config`.
    fn configure(self, config: &mut OperatorConfig) {
        config.secret_namespaces = self.secret_namespaces;
        config.contested_backoff = self.contested_backoff;
    }
}

/// A listening address, or none (`0`).
#[derive(Debug, Clone, Copy)]
struct BindAddress(Option<SocketAddr>);

/// Parses a bind address as controller-runtime does: `HOST:PORT`, `:PORT` (every interface),
/// or `0` (disabled).
fn bind_address(text: &str) -> Result<BindAddress, String> {
    match text {
        "0" => Ok(BindAddress(None)),
        _ => {
            let full = match text.strip_prefix(':') {
                Some(port) => format!("0.0.0.0:{port}"),
                None => text.to_owned(),
            };
            full.parse()
                .map(|addr| BindAddress(Some(addr)))
                .map_err(|_| format!("not HOST:PORT, :PORT or 0: {text}"))
        }
    }
}

/// The policy, fixed (the embedded module) or hot-swapped (a module file).
enum Policies {
    Fixed(PolicySlot),
    Swapped(Box<Swapper>),
}

impl Policies {
    fn slot(&self) -> &PolicySlot {
        match self {
            Self::Fixed(slot) => slot,
            Self::Swapped(swapper) => swapper.slot(),
        }
    }
}

/// A client for `kubeconfig` (files separated like `$PATH`), else the in-cluster
/// configuration, else the default kubeconfig; checked by asking the API server its version
/// (within `timeout`), so that an unreachable server is reported as such, with its URL and
/// kubeconfig context. With the server's `host[:port]`.
async fn client(
    kubeconfig: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<(kube::Client, String)> {
    let options = KubeConfigOptions::default();
    let (config, context) = match kubeconfig {
        Some(paths) => {
            let mut merged: Option<Kubeconfig> = None;
            for path in std::env::split_paths(paths) {
                let file = Kubeconfig::read_from(&path)
                    .with_context(|| format!("could not read the kubeconfig {}", path.display()))?;
                merged = Some(match merged {
                    Some(merged) => merged.merge(file)?,
                    None => file,
                });
            }
            let merged = merged.context("--kubeconfig names no file")?;
            let context = merged.current_context.clone();
            let config = kube::Config::from_custom_kubeconfig(merged, &options).await?;
            (config, context)
        }
        None => match kube::Config::incluster() {
            Ok(config) => (config, None),
            Err(in_cluster) => {
                let config = kube::Config::from_kubeconfig(&options)
                    .await
                    .with_context(|| {
                        format!(
                            "no in-cluster configuration ({in_cluster}) and no usable kubeconfig"
                        )
                    })?;
                let context = Kubeconfig::read().ok().and_then(|k| k.current_context);
                (config, context)
            }
        },
    };
    let target = match &context {
        Some(context) => format!("{} (kubeconfig context {context})", config.cluster_url),
        None => config.cluster_url.to_string(),
    };
    let host = config
        .cluster_url
        .authority()
        .map(ToString::to_string)
        .unwrap_or_default();
    let client = kube::Client::try_from(config).context("could not build the Kubernetes client")?;
    let unreachable = || format!("could not connect to the Kubernetes API server at {target}");
    let version = tokio::time::timeout(timeout, client.apiserver_version())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {timeout:?} (--kube-api-timeout)"))
        .with_context(unreachable)?
        .with_context(unreachable)?;
    tracing::info!(server = %target, version = %version.git_version, "connected to the API server");
    Ok((client, host))
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stopping on SIGINT only");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The host name ($HOSTNAME, else the kernel's), else a name made of the process id.
fn host_name() -> String {
    non_empty_env("HOSTNAME")
        .or_else(|| {
            std::fs::read_to_string(Path::new("/proc/sys/kernel/hostname"))
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| format!("capt-host-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_read_as_controller_runtime_reads_them() {
        assert_eq!(
            bind_address(":8080").map(|a| a.0),
            Ok(Some("0.0.0.0:8080".parse().expect("an address")))
        );
        assert_eq!(
            bind_address("127.0.0.1:9").map(|a| a.0),
            Ok(Some("127.0.0.1:9".parse().expect("an address")))
        );
        assert_eq!(bind_address("0").map(|a| a.0), Ok(None));
        assert!(bind_address("localhost").is_err());
    }
}
