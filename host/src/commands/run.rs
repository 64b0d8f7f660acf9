//! `capt-host run`: the operator, against the cluster of the kubeconfig (or in-cluster).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use capt_host::operator::{ActivePolicy, LeaderElection, Operator, OperatorConfig, PolicySlot};
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::{describe_module, load_module, read_yaml};

/// Runs the operator: watches the policy's trigger kinds (and the kinds it reads) and
/// reconciles every trigger object when it, or an object its last reconcile read, changes;
/// writes status and events; serves /metrics, /healthz and /readyz. Stops gracefully on
/// SIGTERM or SIGINT (reconciles in flight finish, the Lease is released).
#[derive(Debug, Args)]
pub struct Run {
    /// The policy component (.wasm); default: the policy embedded at build time.
    #[arg(long, value_name = "FILE", env = "CAPT_MODULE")]
    module: Option<PathBuf>,
    /// Overrides of the policy's default settings: a YAML (or JSON) object.
    #[arg(long, value_name = "FILE", env = "CAPT_SETTINGS")]
    settings: Option<PathBuf>,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(
        long,
        value_name = "ADDR",
        env = "CAPT_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    metrics_addr: SocketAddr,
    /// Elect a leader with a coordination.k8s.io Lease: only the holder reconciles and
    /// writes; the other replicas wait, ready, and take over when it goes away.
    #[arg(long, env = "CAPT_LEADER_ELECTION")]
    leader_election: bool,
    /// The Lease's name; default: the policy's name (capt-status for the embedded policy).
    #[arg(long, value_name = "NAME", env = "CAPT_LEASE_NAME")]
    lease_name: Option<String>,
    /// The Lease's namespace; default: $POD_NAMESPACE, else the kubeconfig's namespace.
    #[arg(long, value_name = "NS", env = "CAPT_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
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
}

impl Run {
    /// Runs the command until SIGTERM or SIGINT.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            module,
            settings,
            metrics_addr,
            leader_election,
            lease_name,
            lease_namespace,
            identity,
            namespace,
            kubeconfig,
        } = self;
        let overrides = settings.as_deref().map(read_yaml).transpose()?;
        let policy = load_module(module.as_deref())?;
        let policy = ActivePolicy::wasm(policy, overrides.as_ref()).with_context(|| {
            format!(
                "invalid --settings for {}",
                describe_module(module.as_deref())
            )
        })?;
        let name = policy.metadata().name.clone();
        tracing::info!(policy = %name, version = policy.version(), "policy loaded");

        let runtime =
            tokio::runtime::Runtime::new().context("could not start the async runtime")?;
        runtime.block_on(async move {
            let client = client(kubeconfig.as_deref()).await?;
            let identity = identity
                .or_else(|| non_empty_env("POD_NAME"))
                .unwrap_or_else(host_name);
            let mut config = OperatorConfig::new(name.clone(), identity);
            config.namespace = namespace;
            config.metrics_addr = Some(metrics_addr);
            if leader_election {
                let lease_namespace = lease_namespace
                    .or_else(|| non_empty_env("POD_NAMESPACE"))
                    .unwrap_or_else(|| client.default_namespace().to_owned());
                config.leader_election = Some(LeaderElection::new(
                    lease_name.unwrap_or(name),
                    lease_namespace,
                ));
            }
            let operator = Operator::start(client, config, PolicySlot::new(policy)).await?;
            operator.run_until(shutdown_signal()).await?;
            anyhow::Ok(ExitCode::SUCCESS)
        })
    }
}

/// A client for `kubeconfig` (files separated like `$PATH`), else the in-cluster
/// configuration, else the default kubeconfig.
async fn client(kubeconfig: Option<&str>) -> anyhow::Result<kube::Client> {
    let options = KubeConfigOptions::default();
    let config = match kubeconfig {
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
            kube::Config::from_custom_kubeconfig(merged, &options).await?
        }
        None => {
            match kube::Config::incluster() {
                Ok(config) => config,
                Err(in_cluster) => kube::Config::from_kubeconfig(&options).await.with_context(
                    || {
                        format!(
                            "no in-cluster configuration ({in_cluster}) and no usable kubeconfig"
                        )
                    },
                )?,
            }
        }
    };
    kube::Client::try_from(config).context("could not build the Kubernetes client")
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
