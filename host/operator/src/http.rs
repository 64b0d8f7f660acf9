//! The HTTP endpoints, as controller-runtime serves them, on two listeners:
//! - the probes: `/healthz` (fails while a reconcile is stuck, see [`super::health`]) and
//!   `/readyz` (every cache has been filled; standbys are ready too);
//! - the metrics: `/metrics` (OpenMetrics text) and `/policy` (the policy module, JSON from
//!   the [`StatusProvider`] plugged in, if any); over HTTPS, each request authenticated and
//!   authorized (see [`super::authn`]), or over plain HTTP when not secured.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::authn::{Reviewer, authorize};
use super::health::Progress;
use super::metrics::{CONTENT_TYPE, Metrics};
use super::tls::TlsListener;
use crate::StatusProvider;

/// What the probes report.
#[derive(Clone)]
pub(crate) struct Probes {
    /// True once every cache has been filled.
    pub(crate) ready: watch::Receiver<bool>,
    /// The reconciles running now.
    pub(crate) progress: Arc<Progress>,
}

/// What the metrics listener serves.
#[derive(Clone)]
pub(crate) struct Exposed {
    /// The operator's metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The policy module's status; `None`: `/policy` is not served.
    pub(crate) policy: Option<Arc<dyn StatusProvider>>,
}

/// Serves the probes on `listener` until `shutdown` resolves.
pub(crate) async fn serve_probes(
    listener: TcpListener,
    probes: Probes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(probes);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `/metrics` and `/policy` on `listener` until `shutdown` resolves: over TLS with
/// each request reviewed when `secured`, else over plain HTTP.
pub(crate) async fn serve_metrics(
    listener: TcpListener,
    exposed: Exposed,
    secured: Option<(Arc<ServerConfig>, Reviewer)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = Router::new().route("/metrics", get(metrics));
    if exposed.policy.is_some() {
        app = app.route("/policy", get(policy));
    }
    let app = app.with_state(exposed);
    match secured {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some((tls, reviewer)) => {
            let app = app.layer(middleware::from_fn_with_state(reviewer, authorize));
            axum::serve(TlsListener::new(listener, tls), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

async fn healthz(State(probes): State<Probes>) -> impl IntoResponse {
    match probes.progress.stalled() {
        None => (StatusCode::OK, "ok".to_owned()),
        Some(stall) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the reconcile of {} has been running for {:.0?} (--reconcile-stall-timeout)",
                stall.what, stall.running_for
            ),
        ),
    }
}

async fn readyz(State(probes): State<Probes>) -> impl IntoResponse {
    if *probes.ready.borrow() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches are not synced yet")
    }
}

async fn policy(State(exposed): State<Exposed>) -> impl IntoResponse {
    axum::Json(exposed.policy.as_ref().map(|status| status.status()))
}

async fn metrics(State(exposed): State<Exposed>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        exposed.metrics.encode(),
    )
}
