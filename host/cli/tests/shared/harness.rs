//! Test plumbing shared by the operator and hot-swap test binaries (each includes this file
//! with `#[path]` and defines `PATIENCE`, the bound of every wait): the in-process API server
//! with the CAPT CRDs, bounded waits, metrics and HTTP helpers, test logging.

use std::future::Future;
use std::time::Duration;

use capt_host_operator::manifests;
use inproc_apiserver::ApiServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::PATIENCE;

/// A fresh API server with the CRDs installed.
pub async fn server() -> ApiServer {
    let server = ApiServer::start().await.expect("the API server starts");
    let mut crds = Vec::new();
    for text in capt_status_sim::CRDS {
        crds.extend(manifests::parse(text).expect("the CRD files are YAML"));
    }
    manifests::create(&server.client(), &crds)
        .await
        .expect("the CRDs are installed");
    server
}

/// Awaits `future`, failing the test after [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {PATIENCE:?} waiting for {what}"))
}

/// Polls `condition` every 50 ms until it holds, failing the test after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// The sum of the samples of `name` whose labels include every `labels` pair.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, series_labels) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// A plain HTTP/1.1 GET: the status code and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Logs to the test output (RUST_LOG), once.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
