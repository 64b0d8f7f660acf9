//! The operator's API clients: layers around the `kube::Client` it is given.
//!
//! Every request carries this replica's `User-Agent`; every request but a watch gets at most
//! the configured timeout for its whole response (a watch is long by design and ends on the
//! server's timeout). Requests other than the Lease's pass a client-side rate limit shared by
//! the operator's clients; the Lease's have none, so that a backlog of writes never delays a
//! renewal.
//!
//! The fenced client, the one reconciles and events write with, also checks the leader gate:
//! a write is refused unless the gate is open as it is sent, and abandoned the moment the gate
//! closes while it waits for its answer. The given client's own retries (kube retries 429, 503
//! and 504) happen inside that abandoned request, so none of them is sent once the gate has
//! closed: leadership is checked as each attempt is sent, not once before the first.
//!
//! Every request is counted as client-go counts them (`rest_client_requests_total{code,method,
//! host}`, `rest_client_request_duration_seconds{verb,host}`): the code is the response's
//! status, or `<error>` when there is none.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::header::{HeaderValue, USER_AGENT};
use http::{Method, Request, Response, Uri};
use kube::Client;
use kube::client::Body;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::config::ApiClientConfig;
use super::leader::LeaderGate;
use super::ratelimit::RateLimiter;

/// Why the operator's client did not deliver a response.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No complete response within the timeout.
    #[error("no response within {0:?} (--kube-api-timeout)")]
    Timeout(Duration),
    /// A write while this replica may not write: it was not sent.
    #[error("this replica does not lead: the write was not sent")]
    NotLeader,
    /// The replica lost the lead while the write waited for its answer: it was abandoned,
    /// and no retry of it is sent.
    #[error("this replica lost the lead while the write was in flight: abandoned")]
    LeadershipLost,
}

/// The clients of one operator, made from the client it was given.
#[derive(Clone)]
pub(crate) struct Clients {
    /// For the Lease: timeout and User-Agent, no rate limit, no gate.
    pub(crate) lease: Client,
    /// For what is plugged in (reads, the swap job's events): rate-limited, not gated.
    pub(crate) plain: Client,
    /// For everything the reconciles read and write: rate-limited, writes gated.
    pub(crate) fenced: Client,
}

impl Clients {
    /// The clients around `client`, configured by `config`, writes gated by `gate`.
    /// Requests are counted into `metrics`.
    pub(crate) fn new(
        client: &Client,
        config: &ApiClientConfig,
        gate: &LeaderGate,
        metrics: &RestClientMetrics,
    ) -> Self {
        let user_agent = HeaderValue::from_str(&config.user_agent).unwrap_or_else(|_| {
            tracing::warn!(user_agent = %config.user_agent, "not a valid User-Agent; sending capt-host");
            HeaderValue::from_static("capt-host")
        });
        let limiter = RateLimiter::new(config.qps, config.burst).map(Arc::new);
        let layered = |limiter: Option<Arc<RateLimiter>>, gate: Option<LeaderGate>| {
            let layers = Layers {
                inner: client.clone(),
                user_agent: user_agent.clone(),
                timeout: config.timeout,
                limiter,
                gate,
                metrics: metrics.clone(),
                host: config.host.clone(),
            };
            Client::new(layers, client.default_namespace().to_owned())
        };
        Self {
            lease: layered(None, None),
            plain: layered(limiter.clone(), None),
            fenced: layered(limiter, Some(gate.clone())),
        }
    }
}

/// A client's layers, as a service around the inner client.
#[derive(Clone)]
struct Layers {
    inner: Client,
    user_agent: HeaderValue,
    timeout: Duration,
    limiter: Option<Arc<RateLimiter>>,
    gate: Option<LeaderGate>,
    metrics: RestClientMetrics,
    host: String,
}

impl tower_service::Service<Request<Body>> for Layers {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), kube::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let method = request.method().clone();
            let start = Instant::now();
            let (metrics, host) = (this.metrics.clone(), this.host.clone());
            let response = this.send(request).await;
            let code = response.as_ref().ok().map(Response::status);
            metrics.observe(&method, &host, code, start.elapsed());
            response
        })
    }
}

impl Layers {
    async fn send(self, mut request: Request<Body>) -> Result<Response<Body>, kube::Error> {
        request
            .headers_mut()
            .insert(USER_AGENT, self.user_agent.clone());
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        let gate = self.gate.as_ref().filter(|_| writes(request.method()));
        let watch = is_watch(request.uri());
        let answer = async {
            if watch {
                return self.inner.send(request).await;
            }
            let complete = async {
                let (parts, body) = self.inner.send(request).await?.into_parts();
                let body = body.collect_bytes().await?;
                Ok::<_, kube::Error>(Response::from_parts(parts, Body::from(body)))
            };
            tokio::time::timeout(self.timeout, complete)
                .await
                .map_err(|_| service_error(RequestError::Timeout(self.timeout)))?
        };
        let Some(gate) = gate else {
            return answer.await;
        };
        if !gate.is_open() {
            return Err(service_error(RequestError::NotLeader));
        }
        tokio::select! {
            biased;
            () = gate.closed() => Err(service_error(RequestError::LeadershipLost)),
            answer = answer => answer,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    code: String,
    method: String,
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    verb: String,
    host: String,
}

/// Metrics of the API requests, as client-go reports them.
#[derive(Clone, Debug)]
pub(crate) struct RestClientMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
}

impl RestClientMetrics {
    /// Registers `rest_client_requests_total` and `rest_client_request_duration_seconds` in
    /// `registry` (which must not add a prefix).
    pub(crate) fn register(registry: &mut Registry) -> Self {
        fn buckets() -> Histogram {
            // client-go's.
            Histogram::new([
                0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0,
            ])
        }
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(buckets),
        };
        registry.register(
            "rest_client_requests",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            metrics.requests.clone(),
        );
        registry.register(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb, and host.",
            metrics.duration.clone(),
        );
        metrics
    }

    /// A request to `host` with `method` answered `code` (`None`: no answer) after `elapsed`.
    fn observe(
        &self,
        method: &Method,
        host: &str,
        code: Option<http::StatusCode>,
        elapsed: Duration,
    ) {
        let code = code.map_or_else(|| "<error>".to_owned(), |code| code.as_u16().to_string());
        self.requests
            .get_or_create(&RequestLabels {
                code,
                method: method.as_str().to_owned(),
                host: host.to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&DurationLabels {
                verb: method.as_str().to_owned(),
                host: host.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

fn service_error(error: RequestError) -> kube::Error {
    kube::Error::Service(Box::new(error))
}

/// Whether `method` writes.
fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether `uri` asks for a watch (`watch=true`, or `1`, as the API server accepts).
fn is_watch(uri: &Uri) -> bool {
    uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_are_told_by_their_query() {
        let uri = |text: &str| text.parse::<Uri>().expect("a URI");
        assert!(is_watch(&uri(
            "/api/v1/pods?resourceVersion=1&watch=true&timeoutSeconds=290"
        )));
        assert!(is_watch(&uri("/api/v1/pods?watch=1")));
        assert!(!is_watch(&uri("/api/v1/pods?watch=false")));
        assert!(!is_watch(&uri("/api/v1/pods?limit=500")));
        assert!(!is_watch(&uri("/api/v1/namespaces/a/pods/watch")));
    }

    #[test]
    fn only_reads_pass_a_closed_gate() {
        assert!(!writes(&Method::GET));
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(writes(&method), "{method}");
        }
    }
}
