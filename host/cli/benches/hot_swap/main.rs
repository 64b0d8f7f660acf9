//! Benchmark: hot swaps of the policy module in a running operator (`capt-host run --module
//! FILE`, a separate process), with and without the compile cache, and the reconcile latency
//! around them.
//!
//! The harness starts an in-process API server with N converged clusters (see
//! `operator_scale`), writes the default policy to `DIR/policy.wasm` and starts the operator on
//! it (`--compile-cache DIR/cache` in the cached variant). A load generator changes a label of
//! one CAPTCluster every `--tick` ms (round robin), so reconciles run all along. Each swap then
//! writes a new module (the default policy with a custom section naming the run, so that every
//! module has a new digest and is compiled anew) with a rename, and polls `/policy` until the
//! new digest is active. Reported per swap: the wall time from the rename to the promotion, the
//! operator's own breakdown (`last_swap`: debounce, read, load — compile or cache —, canary),
//! the operator's CPU time, and reconcile durations (`controller_runtime_reconcile_time_seconds`)
//! in three windows: before the swap, during it (rename to promotion) and after it (the
//! re-reconcile of every trigger a promotion starts).
//!
//! In the cached variant the new module is compiled into the cache by the harness first (with
//! an engine of the same configuration), as a previous run of the operator or a CI step would.
//!
//! `cargo bench -p capt-host --bench hot_swap [-- --clusters 100 --swaps 3 --tick 20
//!  --window 5 --port 16444]`

#[path = "../support/cluster.rs"]
mod cluster;
#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../../src/embedded.rs"]
mod embedded;
#[path = "../support/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::embedded::DEFAULT_POLICY;
use anyhow::Context as _;
use capt_host_runtime::{CompileCache, Engine, Limits, WasmPolicy};
use inproc_apiserver::{ApiServer, ServerConfig};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use sha2::Digest as _;

use self::cluster::{count_converged, install_crds, populate};
use self::process::{Operator, cpu_seconds, free_local_addr, http_get};

/// Command-line options (after `--`).
struct Options {
    clusters: usize,
    swaps: usize,
    tick: Duration,
    window: Duration,
    port: u16,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let mut options = Self {
            clusters: 100,
            swaps: 3,
            tick: Duration::from_millis(20),
            window: Duration::from_secs(5),
            port: 16444,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--bench" {
                continue;
            }
            let value = args
                .next()
                .with_context(|| format!("{arg} needs a value"))?;
            match arg.as_str() {
                "--clusters" => options.clusters = value.parse()?,
                "--swaps" => options.swaps = value.parse()?,
                "--tick" => options.tick = Duration::from_millis(value.parse()?),
                "--window" => options.window = Duration::from_secs(value.parse()?),
                "--port" => options.port = value.parse()?,
                _ => anyhow::bail!("unknown option {arg}"),
            }
        }
        Ok(options)
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(&options))
}

async fn run(options: &Options) -> anyhow::Result<()> {
    let config = ServerConfig {
        port: options.port,
        history_capacity: 400_000,
        ..ServerConfig::default()
    };
    let server = ApiServer::start_with(config).await?;
    install_crds(&server.client()).await?;
    populate(&server.client(), options.clusters).await?;

    let dir = std::env::temp_dir().join(format!("capt-bench-swap-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig_yaml())?;

    // The load: a label change on one CAPTCluster per tick, round robin.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(label_changes(
        server.client(),
        options.clusters,
        options.tick,
        stop.clone(),
    ));

    println!(
        "| cache | swap | rename to promotion (ms) | debounce | read | load | canary | \
         operator CPU (s) | reconciles before / during / after | p50 ms before / during / after | \
         p99 ms before / during / after | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|"
    );
    for cached in [false, true] {
        let module = dir.join("policy.wasm");
        std::fs::write(&module, DEFAULT_POLICY)?;
        let cache_dir = dir.join("cache");
        let mut args = vec!["--module".to_owned(), module.display().to_string()];
        if cached {
            args.extend([
                "--compile-cache".to_owned(),
                cache_dir.display().to_string(),
            ]);
        }
        let metrics_addr = free_local_addr()?;
        let probe_addr = free_local_addr()?;
        let log = dir.join(format!("operator-cache-{cached}.log"));
        let mut operator =
            Operator::spawn(&kubeconfig, &metrics_addr, &probe_addr, &args, &[], &log)?;
        // Ready (caches synced, HTTP up) and every cluster converged.
        let store = server.store();
        loop {
            operator.check_alive(&log)?;
            let ready = http_get(&probe_addr, "/readyz")
                .await
                .is_ok_and(|(code, _)| code == 200);
            if ready && count_converged(&store) == options.clusters {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let engine = Engine::new(Limits::default())?;
        for swap in 0..options.swaps {
            let bytes = with_custom_section(DEFAULT_POLICY, &format!("cache={cached} swap={swap}"));
            if cached {
                let cache = CompileCache::open(&cache_dir)?;
                WasmPolicy::load_with_cache(&engine, &bytes, Some(&cache))?;
            }
            let digest = hex(&sha2::Sha256::digest(&bytes));

            let before = Histogram::read(&metrics_addr).await?;
            tokio::time::sleep(options.window).await;
            let start_swap = Histogram::read(&metrics_addr).await?;
            let errors_before = operator
                .metric(&metrics_addr, "capt_host_reconcile_errors_total")
                .await?;
            let cpu_before = operator.cpu_seconds()?;
            let start = Instant::now();
            let staged = dir.join("policy.wasm.new");
            std::fs::write(&staged, &bytes)?;
            std::fs::rename(&staged, &module)?;
            let report = loop {
                operator.check_alive(&log)?;
                let (_, body) = http_get(&metrics_addr, "/policy").await?;
                let report: Value = serde_json::from_str(&body)?;
                if report["active"]["digest"] == digest.as_str() {
                    break report;
                }
                if start.elapsed() > Duration::from_secs(120) {
                    anyhow::bail!("the swap did not happen in 2 minutes: {report}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let promotion = start.elapsed();
            let promoted = Histogram::read(&metrics_addr).await?;
            tokio::time::sleep(options.window).await;
            let after = Histogram::read(&metrics_addr).await?;
            let cpu = operator.cpu_seconds()? - cpu_before;
            let errors = operator
                .metric(&metrics_addr, "capt_host_reconcile_errors_total")
                .await?
                - errors_before;
            let windows = [
                start_swap.since(&before),
                promoted.since(&start_swap),
                after.since(&promoted),
            ];
            let timing = |name: &str| report["last_swap"][name].as_f64().unwrap_or(f64::NAN);
            let triple = |f: &dyn Fn(&Histogram) -> String| {
                windows.iter().map(f).collect::<Vec<_>>().join(" / ")
            };
            println!(
                "| {} | {swap} | {:.0} | {:.0} | {:.0} | {:.0}{} | {:.0} | {cpu:.1} | {} | {} | {} | {errors:.0} |",
                if cached { "yes" } else { "no" },
                promotion.as_secs_f64() * 1000.0,
                timing("debounce"),
                timing("read"),
                timing("load"),
                if report["last_swap"]["from_cache"] == true {
                    " (cache)"
                } else {
                    ""
                },
                timing("canary"),
                triple(&|h| format!("{:.0}", h.count())),
                triple(&|h| h.quantile_ms(0.5)),
                triple(&|h| h.quantile_ms(0.99)),
            );
        }
        eprintln!(
            "cache={cached}: operator RSS {:.0} MiB (peak {:.0} MiB), {:.0} reconciles {:?}; \
             harness CPU so far {:.1} s",
            operator.rss_mib()?,
            operator.peak_rss_mib()?,
            operator.reconciles(&metrics_addr).await?,
            operator.reconciles_by_result(&metrics_addr).await?,
            cpu_seconds("self")?
        );
        operator.stop();
    }
    stop.store(true, Ordering::Relaxed);
    load.await??;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Changes the label `bench-tick` of CAPTCluster `c{i}` every `tick`, i round robin, until
/// `stop`: a reconcile each, which writes nothing.
async fn label_changes(
    client: kube::Client,
    clusters: usize,
    tick: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let resource = ApiResource {
        group: "infrastructure.cluster.x-k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "infrastructure.cluster.x-k8s.io/v1beta1".into(),
        kind: "CAPTCluster".into(),
        plural: "captclusters".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("c{:05}", n % clusters);
        let patch = json!({"metadata": {"labels": {"bench-tick": n.to_string()}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        n += 1;
        tokio::time::sleep(tick).await;
    }
    Ok(())
}

/// `bytes` (a component) with a custom section `capt-bench` holding `payload` appended: the
/// same policy under another digest.
fn with_custom_section(bytes: &[u8], payload: &str) -> Vec<u8> {
    let name = b"capt-bench";
    let mut contents = leb128(name.len());
    contents.extend_from_slice(name);
    contents.extend_from_slice(payload.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.extend(leb128(contents.len()));
    out.extend(contents);
    out
}

/// `n` as unsigned LEB128.
fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `controller_runtime_reconcile_time_seconds`, summed over its labels: cumulative counts by upper
/// bound (seconds), and the sum.
struct Histogram {
    buckets: BTreeMap<u64, f64>,
    sum: f64,
}

impl Histogram {
    /// Reads it from the operator's `/metrics`.
    async fn read(metrics_addr: &str) -> anyhow::Result<Self> {
        const NAME: &str = "controller_runtime_reconcile_time_seconds";
        let (_, text) = http_get(metrics_addr, "/metrics").await?;
        let mut histogram = Self {
            buckets: BTreeMap::new(),
            sum: 0.0,
        };
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if series.starts_with(&format!("{NAME}_sum")) {
                histogram.sum += value;
            } else if series.starts_with(&format!("{NAME}_bucket")) {
                let le = series
                    .split("le=\"")
                    .nth(1)
                    .and_then(|l| l.split('"').next())
                    .context("a bucket without le")?;
                // Keyed in microseconds (+Inf as u64::MAX) to order the bounds.
                let key = match le {
                    "+Inf" => u64::MAX,
                    le => (le.parse::<f64>()? * 1e6).round() as u64,
                };
                *histogram.buckets.entry(key).or_default() += value;
            }
        }
        Ok(histogram)
    }

    /// The observations since `earlier`.
    fn since(&self, earlier: &Self) -> Self {
        Self {
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| (*le, n - earlier.buckets.get(le).copied().unwrap_or(0.0)))
                .collect(),
            sum: self.sum - earlier.sum,
        }
    }

    fn count(&self) -> f64 {
        self.buckets.get(&u64::MAX).copied().unwrap_or(0.0)
    }

    /// The upper bound of the bucket holding quantile `q`, as `≤ X` milliseconds.
    fn quantile_ms(&self, q: f64) -> String {
        let total = self.count();
        if total == 0.0 {
            return "-".into();
        }
        let bound = self
            .buckets
            .iter()
            .find(|(_, n)| **n >= q * total)
            .map_or(u64::MAX, |(le, _)| *le);
        if bound == u64::MAX {
            return "> max".into();
        }
        format!("≤{}", bound as f64 / 1000.0)
    }
}
