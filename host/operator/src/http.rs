//! The HTTP endpoints: `/healthz` (the process serves requests), `/readyz` (every cache has
//! been filled; standbys are ready too), `/metrics` (OpenMetrics text) and `/policy` (the
//! policy module, JSON from the [`StatusProvider`] plugged in, if any).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::{CONTENT_TYPE, Metrics};
use crate::StatusProvider;

/// What the endpoints report.
#[derive(Clone)]
pub(crate) struct Probes {
    /// True once every cache has been filled.
    pub(crate) ready: watch::Receiver<bool>,
    /// The operator's metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The policy module's status; `None`: `/policy` is not served.
    pub(crate) policy: Option<Arc<dyn StatusProvider>>,
}

/// Serves the endpoints on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    probes: Probes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if probes.policy.is_some() {
        app = app.route("/policy", get(policy));
    }
    let app = app.with_state(probes);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(probes): State<Probes>) -> impl IntoResponse {
    if *probes.ready.borrow() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches are not synced yet")
    }
}

async fn policy(State(probes): State<Probes>) -> impl IntoResponse {
    axum::Json(probes.policy.as_ref().map(|status| status.status()))
}

async fn metrics(State(probes): State<Probes>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        probes.metrics.encode(),
    )
}
