//! The secured metrics endpoints on the real API server, as `capt-host run` serves them: the
//! operator, running as `deploy/`'s ServiceAccount with exactly `deploy/`'s roles, serves
//! `/metrics` and `/policy` over HTTPS to a ServiceAccount bound to
//! `capt-status-metrics-reader` (200), refuses one that is not (403), and a missing or bogus
//! token (401); the probes stay plain HTTP without authentication.

use std::net::SocketAddr;
use std::sync::Arc;

use capt_host_operator::{CertSource, Operator, StatusProvider};
use http::{Request, StatusCode, header};
use kube::client::Body;
use kube::{Client, Config};
use kube_harness::KubeServer;
use kube_harness::rbac::Grants;
use serde_json::json;

use crate::common::{config, server, within};
use crate::grants::{grant, service_account};

/// The ClusterRole of deploy/ that may read the metrics, bound by users.
const METRICS_READER: &str = "capt-status-metrics-reader";
/// The ServiceAccount bound to it here (Prometheus' in a cluster).
const SCRAPER: &str = "scraper";
/// A ServiceAccount bound to nothing.
const STRANGER: &str = "stranger";

/// What `/policy` reports here.
struct Fixed;

impl StatusProvider for Fixed {
    fn status(&self) -> serde_json::Value {
        json!({"active": "fixed"})
    }
}

/// Binds the metrics reader to the scraper in `namespace`, as deploy/README.md ("Metrics")
/// tells users to.
async fn bind_metrics_reader(server: &KubeServer, namespace: &str) {
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": METRICS_READER},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": METRICS_READER,
        },
        "subjects": [{"kind": "ServiceAccount", "name": SCRAPER, "namespace": namespace}],
    });
    let api = server.api_for(&binding).await.expect("a served kind");
    if api.get_opt(METRICS_READER).await.expect("a read").is_none() {
        server
            .create(&binding)
            .await
            .expect("the binding is created");
    }
}

/// Starts the operator as the ServiceAccount of `grants`, its metrics secured with a
/// self-signed certificate and `/policy` served.
async fn secured_operator(server: &KubeServer, grants: &Grants) -> Operator {
    let mut config = config("metrics");
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    config.metrics_addr = Some(local);
    config.probe_addr = Some(local);
    config.metrics_tls = Some(CertSource::SelfSigned);
    let mut builder = Operator::builder(
        service_account(server, grants).await,
        config,
        crate::operators::policy(None),
    );
    builder.status_provider(Arc::new(Fixed));
    builder.start().await.expect("the operator starts")
}

/// GETs `path` from `base` (`https` certificates unchecked) with `token` as bearer, if any.
async fn fetch(
    base: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(StatusCode, String), kube::Error> {
    let mut config = Config::new(base.parse().expect("a URL"));
    config.accept_invalid_certs = true;
    let client = Client::try_from(config)?;
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Body::empty()).expect("a request");
    let response = within(path, client.send(request)).await?;
    let status = response.status();
    let body = response.into_body().collect_bytes().await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// As [`fetch`], which must answer.
async fn get(base: &str, path: &str, token: Option<&str>) -> (StatusCode, String) {
    fetch(base, path, token)
        .await
        .unwrap_or_else(|error| panic!("GET {base}{path}: {error}"))
}

/// Whether the scraper reads `/metrics` and `/policy` from an operator running with `grants`
/// (the rbac test: without the review rules it cannot).
pub async fn scraped(server: &KubeServer, grants: &Grants) -> bool {
    bind_metrics_reader(server, &grants.namespace).await;
    let token = server
        .service_account_token(&grants.namespace, SCRAPER)
        .await
        .expect("a token");
    let operator = secured_operator(server, grants).await;
    let base = format!(
        "https://{}",
        operator.metrics_addr().expect("metrics served")
    );
    let mut ok = true;
    for path in ["/metrics", "/policy"] {
        ok &= get(&base, path, Some(&token)).await.0 == StatusCode::OK;
    }
    let _ = operator.shutdown().await;
    ok
}

#[tokio::test]
async fn metrics_are_served_over_https_to_the_metrics_reader_only() {
    let server = server().await;
    let grants = Grants::from_deploy().expect("deploy/ is readable");
    grant(&server, &grants).await;
    bind_metrics_reader(&server, &grants.namespace).await;
    let scraper = server
        .service_account_token(&grants.namespace, SCRAPER)
        .await
        .expect("a token");
    let stranger = server
        .service_account_token(&grants.namespace, STRANGER)
        .await
        .expect("a token");
    let operator = secured_operator(&server, &grants).await;
    let base = format!(
        "https://{}",
        operator.metrics_addr().expect("metrics served")
    );

    let (status, body) = get(&base, "/metrics", Some(&scraper)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text: {body}");
    assert!(
        body.contains("controller_runtime_reconcile_total"),
        "{body}"
    );
    // Twice: the second answer comes from the cache, alike.
    for _ in 0..2 {
        let (status, body) = get(&base, "/policy", Some(&scraper)).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, r#"{"active":"fixed"}"#)
        );
    }
    for path in ["/metrics", "/policy"] {
        assert_eq!(
            get(&base, path, Some(&stranger)).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        assert_eq!(
            get(&base, path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            get(&base, path, Some("bogus")).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    // Plain HTTP is not served on the metrics port.
    let plain = format!("http://{}", operator.metrics_addr().expect("metrics"));
    assert!(
        fetch(&plain, "/metrics", Some(&scraper)).await.is_err(),
        "plain HTTP on the metrics port"
    );
    // The probes: plain HTTP, no token.
    let probes = format!("http://{}", operator.probe_addr().expect("probes served"));
    let (status, body) = get(&probes, "/healthz", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let _ = operator.shutdown().await;
}
