//! Benchmark: the operator (`capt-host run`, a separate process) converging N clusters against
//! an API server, then idling in steady state. The server is the in-process test double
//! (`--api-server double`, the default) or the real kube-apiserver and etcd (`--api-server
//! real`, built from the pinned Go modules by `tests/kube/build.sh` on first use).
//!
//! For each size N the harness
//! 1. starts the server with the CRDs (the double on `127.0.0.1:PORT`; the real server on
//!    free ports, with the CRDs as their projects publish them);
//! 2. creates N clusters, each a Cluster, a CAPTCluster, a CAPTControlPlane, two
//!    WorkspaceTemplateApplies (applied), two Workspaces (Ready, with outputs) and the control
//!    plane's connection Secret: Crossplane's work is already done, so what is measured is
//!    the operator's convergence alone;
//! 3. starts `target/release/capt-host run --kubeconfig FILE --kube-api-qps 0` (no client-side
//!    rate limit; metrics and probes on free local ports) with the embedded policy and its
//!    default settings, and polls the server's store until every CAPTCluster and
//!    CAPTControlPlane is ready and every Cluster has `infrastructureReady` and
//!    `controlPlaneReady` (wall time from the spawn, so it includes the process start and
//!    the policy's compile);
//! 4. reads the operator's reconcile count (`/metrics`), the server's request counters (the
//!    double's own; kube-apiserver's `apiserver_request_total`), the
//!    operator's peak RSS (`VmHWM`) and CPU time (`utime + stime`) from `/proc/PID`;
//! 5. lets it idle for the steady-state window and reads the same figures again.
//!
//! Results are merged (by N) into a JSON file per server, printed as a Markdown table, and drawn as a
//! log-log plot of each figure's growth relative to the smallest N (`--svg`).
//!
//! `cargo bench -p capt-host --bench operator_scale -- --clusters 100,1000 --steady 60
//!  [--api-server double|real] [--port 16443] [--timeout 600] [--results FILE]
//!  [--svg docs/benchmarks-scaling.svg]`
//! `cargo bench -p capt-host --bench operator_scale -- --clusters none --svg FILE` redraws the
//! plot from the results file alone. Relative paths are relative to the workspace root.

mod backend;
#[path = "../support/cluster.rs"]
mod cluster;
mod plot;
#[path = "../support/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use self::backend::Backend;
use self::cluster::populate;
use self::process::{Operator, cpu_seconds, free_local_addr, http_get};

/// Objects created per cluster (Cluster, CAPTCluster, CAPTControlPlane, 2 applies,
/// 2 Workspaces, 1 Secret).
const OBJECTS_PER_CLUSTER: usize = 8;

/// Command-line options (after `--`).
struct Options {
    /// Cluster counts to run, in order.
    clusters: Vec<usize>,
    /// The steady-state window.
    steady: Duration,
    /// The API server the operator runs against.
    api_server: backend::Kind,
    /// The test double's port.
    port: u16,
    /// How long a size may take to converge before it is reported as not converged.
    timeout: Duration,
    /// The results file (JSON, merged by cluster count); by default one per API server.
    results: Option<PathBuf>,
    /// Where to draw the scaling plot, if anywhere.
    svg: Option<PathBuf>,
    /// Extra environment of the operator process (`--operator-env K=V`, repeatable), for
    /// experiments such as `MALLOC_ARENA_MAX=2`.
    operator_env: Vec<(String, String)>,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let mut options = Self {
            clusters: vec![100, 1000],
            steady: Duration::from_secs(60),
            api_server: backend::Kind::Double,
            port: 16443,
            timeout: Duration::from_secs(600),
            results: None,
            svg: None,
            operator_env: vec![],
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--clusters" => {
                    let list = value()?;
                    options.clusters = match list.as_str() {
                        "none" => vec![],
                        list => list
                            .split(',')
                            .map(str::parse)
                            .collect::<Result<_, _>>()
                            .context("--clusters: numbers separated by commas")?,
                    };
                }
                "--steady" => options.steady = Duration::from_secs(value()?.parse()?),
                "--api-server" => options.api_server = backend::Kind::parse(&value()?)?,
                "--port" => options.port = value()?.parse()?,
                "--timeout" => options.timeout = Duration::from_secs(value()?.parse()?),
                "--results" => options.results = Some(from_workspace(value()?)),
                "--svg" => options.svg = Some(from_workspace(value()?)),
                "--operator-env" => {
                    let pair = value()?;
                    let (k, v) = pair.split_once('=').context("--operator-env: K=V")?;
                    options.operator_env.push((k.to_owned(), v.to_owned()));
                }
                // `cargo bench` passes `--bench`.
                _ => {}
            }
        }
        Ok(options)
    }

    /// The results file: `--results`, or `target/bench-results/operator_scale.json` for the
    /// double and `operator_scale-real.json` for the real server.
    fn results(&self) -> PathBuf {
        self.results.clone().unwrap_or_else(|| {
            let file = match self.api_server {
                backend::Kind::Double => "operator_scale.json".to_owned(),
                real => format!("operator_scale-{}.json", real.name()),
            };
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/bench-results")
                .join(file)
        })
    }
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Clusters created.
    pub clusters: usize,
    /// Objects created (all kinds).
    pub objects: usize,
    /// Seconds the harness took to create them (not part of the operator's figures).
    pub populate_s: f64,
    /// Seconds from the operator's spawn until `/readyz` answered 200 (caches synced).
    pub ready_s: Option<f64>,
    /// The operator's resident set (VmRSS) then, in MiB: the caches, before any reconcile.
    pub ready_rss_mib: Option<f64>,
    /// Seconds from the operator's spawn until every cluster was Ready; `None`: it timed out.
    pub converge_s: Option<f64>,
    /// Clusters Ready at the end of the convergence phase.
    pub converged: usize,
    /// Reconciles the operator finished until then (`capt_host_reconciles_total`).
    pub reconciles: f64,
    /// Reconciles by result (changed, unchanged, conflict, error, ...).
    pub reconciles_by_result: BTreeMap<String, f64>,
    /// API writes (create, update, patch, delete) until then, all clients but the harness.
    pub writes: u64,
    /// Patches refused with 409 Conflict (`capt_host_patch_conflicts_total`), part of `writes`.
    pub conflicts: f64,
    /// Writes by `verb resource[/subresource]`.
    pub writes_by_resource: BTreeMap<String, u64>,
    /// API reads (get, list, watch) until then.
    pub reads: u64,
    /// The operator's CPU time (user + system) until then, in seconds.
    pub cpu_s: f64,
    /// The harness's CPU time (API server and polling) during convergence, in seconds.
    pub harness_cpu_s: f64,
    /// The operator's peak resident set (VmHWM) until then, in MiB.
    pub peak_rss_mib: f64,
    /// The steady-state window, in seconds.
    pub steady_s: f64,
    /// Writes during the window.
    pub steady_writes: u64,
    /// Reads during the window.
    pub steady_reads: u64,
    /// Reconciles during the window.
    pub steady_reconciles: f64,
    /// The operator's CPU time during the window, in seconds.
    pub steady_cpu_s: f64,
    /// The operator's peak resident set at the end of the window, in MiB.
    pub steady_peak_rss_mib: f64,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let results_file = options.results();
    let mut results = load_results(&results_file)?;
    for &clusters in &options.clusters {
        eprintln!(
            "== {clusters} clusters ({} API server)",
            options.api_server.name()
        );
        let result = runtime.block_on(run(clusters, &options))?;
        eprintln!("{}", serde_json::to_string_pretty(&result)?);
        results.insert(clusters, result);
        save_results(&results_file, &results)?;
    }
    println!("{}", table(&results));
    if let Some(svg) = &options.svg {
        std::fs::write(
            svg,
            plot::scaling(&results.values().cloned().collect::<Vec<_>>()),
        )
        .with_context(|| format!("writing {}", svg.display()))?;
        eprintln!("wrote {}", svg.display());
    }
    Ok(())
}

/// `path` as given if absolute, else relative to the workspace root (cargo runs benches in
/// the package's directory).
fn from_workspace(path: String) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// The results file's runs by cluster count (empty if there is no file yet).
fn load_results(path: &Path) -> anyhow::Result<BTreeMap<usize, RunResult>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let runs: Vec<RunResult> = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(runs.into_iter().map(|r| (r.clusters, r)).collect())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_results(path: &Path, results: &BTreeMap<usize, RunResult>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let runs: Vec<&RunResult> = results.values().collect();
    std::fs::write(path, serde_json::to_string_pretty(&runs)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// One size: populate, converge, steady state.
async fn run(clusters: usize, options: &Options) -> anyhow::Result<RunResult> {
    let mut server = Backend::start(options.api_server, options.port).await?;

    let start = Instant::now();
    populate(&server.client(), clusters).await?;
    let populate_s = start.elapsed().as_secs_f64();
    eprintln!("created {clusters} clusters in {populate_s:.1} s");

    let scratch = std::env::temp_dir().join(format!(
        "capt-bench-{}-{clusters}.kubeconfig",
        std::process::id()
    ));
    let kubeconfig = server.kubeconfig(&scratch)?;
    let metrics_addr = free_local_addr()?;
    let probe_addr = free_local_addr()?;
    let log = std::env::temp_dir().join(format!("capt-bench-operator-{clusters}.log"));
    server.reset_requests().await?;
    let harness_cpu_start = cpu_seconds("self")?;
    let start = Instant::now();
    let mut operator = Operator::spawn(
        &kubeconfig,
        &metrics_addr,
        &probe_addr,
        &[],
        &options.operator_env,
        &log,
    )?;

    // The real server is polled through its API (three lists): less often, so that the
    // polling does not take the operator's CPU.
    let poll = match options.api_server {
        backend::Kind::Double => Duration::from_millis((clusters as u64 / 10).clamp(100, 1000)),
        backend::Kind::Real => Duration::from_millis((clusters as u64 / 2).clamp(200, 5000)),
    };
    let mut ready: Option<(f64, f64)> = None;
    let (converge_s, converged) = loop {
        tokio::time::sleep(poll).await;
        operator.check_alive(&log)?;
        if ready.is_none()
            && http_get(&probe_addr, "/readyz")
                .await
                .is_ok_and(|(c, _)| c == 200)
        {
            ready = Some((start.elapsed().as_secs_f64(), operator.rss_mib()?));
        }
        let converged = server.count_converged().await?;
        if converged == clusters {
            break (Some(start.elapsed().as_secs_f64()), converged);
        }
        if start.elapsed() > options.timeout {
            eprintln!("timed out: {converged} of {clusters} clusters converged");
            break (None, converged);
        }
    };
    let harness_cpu_s = cpu_seconds("self")? - harness_cpu_start;
    let backend::Requests {
        writes,
        reads,
        writes_by_resource,
    } = server.requests().await?;
    let reconciles = operator.reconciles(&metrics_addr).await?;
    let reconciles_by_result = operator.reconciles_by_result(&metrics_addr).await?;
    let conflicts = operator
        .metric(&metrics_addr, "capt_host_patch_conflicts_total")
        .await?;
    let cpu_s = operator.cpu_seconds()?;
    let peak_rss_mib = operator.peak_rss_mib()?;
    eprintln!(
        "converged {converged}/{clusters} in {converge_s:?} s: {reconciles} reconciles, {writes} writes, {cpu_s:.1} s CPU, {peak_rss_mib:.0} MiB"
    );

    server.reset_requests().await?;
    tokio::time::sleep(options.steady).await;
    operator.check_alive(&log)?;
    let requests = server.requests().await?;
    let steady_reconciles = operator.reconciles(&metrics_addr).await? - reconciles;
    let steady_cpu_s = operator.cpu_seconds()? - cpu_s;
    let steady_peak_rss_mib = operator.peak_rss_mib()?;
    operator.stop();
    server.shutdown().await;
    let _ = std::fs::remove_file(&scratch);
    Ok(RunResult {
        clusters,
        objects: clusters * OBJECTS_PER_CLUSTER,
        populate_s,
        ready_s: ready.map(|r| r.0),
        ready_rss_mib: ready.map(|r| r.1),
        converge_s,
        converged,
        reconciles,
        reconciles_by_result,
        writes,
        conflicts,
        writes_by_resource,
        reads,
        cpu_s,
        harness_cpu_s,
        peak_rss_mib,
        steady_s: options.steady.as_secs_f64(),
        steady_writes: requests.writes,
        steady_reads: requests.reads,
        steady_reconciles,
        steady_cpu_s,
        steady_peak_rss_mib,
    })
}

/// The results as a Markdown table.
fn table(results: &BTreeMap<usize, RunResult>) -> String {
    let mut out = String::from(
        "| clusters | objects | ready (s) | converge (s) | reconciles (per cluster) | \
         conflicts | writes (per cluster) | operator CPU (s) | RSS at ready (MiB) | \
         peak RSS (MiB) | steady writes | steady reconciles | steady CPU (s) |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results.values() {
        let n = r.clusters as f64;
        let seconds = |s: Option<f64>| s.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"));
        let converge = r.converge_s.map_or_else(
            || format!("> timeout ({} ready)", r.converged),
            |s| format!("{s:.1}"),
        );
        out.push_str(&format!(
            "| {} | {} | {} | {converge} | {:.0} ({:.2}) | {:.0} | {} ({:.2}) | {:.1} | {} | {:.0} | {} | {:.0} | {:.2} |\n",
            r.clusters,
            r.objects,
            seconds(r.ready_s),
            r.reconciles,
            r.reconciles / n,
            r.conflicts,
            r.writes,
            r.writes as f64 / n,
            r.cpu_s,
            r.ready_rss_mib.map_or_else(|| "-".to_owned(), |m| format!("{m:.0}")),
            r.peak_rss_mib,
            r.steady_writes,
            r.steady_reconciles,
            r.steady_cpu_s,
        ));
    }
    out
}
