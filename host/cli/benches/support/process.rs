//! The operator as a separate process (`capt-host run`, the release binary cargo built with
//! the bench) and what the harness reads about it: `/proc/PID` and its HTTP endpoints.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The operator process.
pub struct Operator {
    child: Child,
}

impl Operator {
    /// Starts `capt-host run [args]` (the release binary cargo built with this bench), serving
    /// its metrics on `metrics_addr` and its probes on `probe_addr`, without a client-side rate
    /// limit, with the extra environment `env` and its log in `log`.
    pub fn spawn(
        kubeconfig: &Path,
        metrics_addr: &str,
        probe_addr: &str,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_capt-host"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--metrics-bind-address", metrics_addr])
            // The bench scrapes plain HTTP, without a token.
            .arg("--metrics-secure=false")
            .args(["--health-probe-bind-address", probe_addr])
            // What is measured is the operator's own cost: no client-side rate limit.
            .args(["--kube-api-qps", "0"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting capt-host run")?;
        Ok(Self { child })
    }

    /// Fails if the operator exited.
    pub fn check_alive(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!("the operator exited ({status}); its log:\n{text}");
        }
        Ok(())
    }

    fn proc(&self, file: &str) -> anyhow::Result<String> {
        let path = format!("/proc/{}/{file}", self.child.id());
        std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))
    }

    /// User + system CPU time so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        parse_cpu_seconds(&self.proc("stat")?)
    }

    /// The peak resident set (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        self.status_mib("VmHWM:")
    }

    /// The resident set now (VmRSS), in MiB.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        self.status_mib("VmRSS:")
    }

    /// A `kB` field of `/proc/PID/status`, in MiB.
    fn status_mib(&self, field: &str) -> anyhow::Result<f64> {
        let status = self.proc("status")?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {field} in /proc/PID/status"))?;
        Ok(kib / 1024.0)
    }

    /// Reconciles finished so far, from `/metrics`.
    pub async fn reconciles(&self, metrics_addr: &str) -> anyhow::Result<f64> {
        self.metric(metrics_addr, "capt_host_reconciles_total")
            .await
    }

    /// The sum of every series of the counter `name` (all labels), from `/metrics`.
    pub async fn metric(&self, metrics_addr: &str, name: &str) -> anyhow::Result<f64> {
        let (_, text) = http_get(metrics_addr, "/metrics").await?;
        Ok(text
            .lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum())
    }

    /// `capt_host_reconciles_total` by its `result` label, from `/metrics`.
    pub async fn reconciles_by_result(
        &self,
        metrics_addr: &str,
    ) -> anyhow::Result<BTreeMap<String, f64>> {
        let (_, text) = http_get(metrics_addr, "/metrics").await?;
        let mut by_result = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("capt_host_reconciles_total{"))
        {
            let result = line
                .split("result=\"")
                .nth(1)
                .and_then(|r| r.split('"').next());
            let value = line
                .rsplit_once(' ')
                .and_then(|(_, v)| v.parse::<f64>().ok());
            if let (Some(result), Some(value)) = (result, value) {
                *by_result.entry(result.to_owned()).or_default() += value;
            }
        }
        Ok(by_result)
    }

    /// Kills the process (it keeps no state worth a graceful stop) and reaps it.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Operator {
    /// A harness that fails half-way leaves no operator behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU seconds of `/proc/{pid}` (`self` for this process).
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    parse_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

/// utime + stime of a `/proc/PID/stat` line, in seconds (fields 14 and 15; the command name
/// in parentheses may contain spaces, so fields are counted after its closing parenthesis).
fn parse_cpu_seconds(stat: &str) -> anyhow::Result<f64> {
    let rest = stat.rsplit_once(')').context("a /proc stat line")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("a short stat line")?.parse::<f64>()?)
    };
    // After ")": field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second())
}

/// `getconf CLK_TCK` (100 on Linux unless the kernel says otherwise).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A local address with a port free right now, for the operator's HTTP server.
pub fn free_local_addr() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// A plain HTTP/1.1 GET: the status code and the body.
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("an HTTP status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}
