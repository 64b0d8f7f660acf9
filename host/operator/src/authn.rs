//! Authentication and authorization of the metrics endpoints, as controller-runtime's
//! `metrics/filters.WithAuthenticationAndAuthorization` does it: each request carries a
//! bearer token, checked with a `TokenReview`; the token's user must then be allowed to `get`
//! the request's path (a non-resource URL), checked with a `SubjectAccessReview`.
//!
//! Decisions are cached briefly per token and path, like the API server's delegating
//! authenticator and authorizer caches, so that a scrape every 15 s costs no API calls.
//! The reviews go through an ungated client: standbys serve metrics too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

/// What the API server decided about a token and a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The token's user may `get` the path.
    Allowed,
    /// The token is not valid.
    Unauthenticated,
    /// The token's user may not `get` the path.
    Forbidden,
}

impl Verdict {
    /// How long the verdict is cached: an allowed one longer, so that a revoked grant or
    /// token takes effect within a minute, a refused one a few seconds.
    fn ttl(self) -> Duration {
        match self {
            Self::Allowed => Duration::from_secs(60),
            Self::Unauthenticated | Self::Forbidden => Duration::from_secs(10),
        }
    }
}

/// Verdicts cached per token and path, bounded in size.
#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<(String, String), (Verdict, Instant)>,
}

/// At most this many verdicts are cached.
const CACHE_CAPACITY: usize = 1024;

impl Cache {
    /// The cached verdict about `token` and `path`, if still valid at `now`.
    fn get(&self, token: &str, path: &str, now: Instant) -> Option<Verdict> {
        let (verdict, expires) = self.entries.get(&(token.to_owned(), path.to_owned()))?;
        (now < *expires).then_some(*verdict)
    }

    /// Caches `verdict` from `now` on; when full, expired verdicts are dropped first, then
    /// all of them.
    fn insert(&mut self, token: &str, path: &str, verdict: Verdict, now: Instant) {
        if self.entries.len() >= CACHE_CAPACITY {
            self.entries.retain(|_, (_, expires)| now < *expires);
            if self.entries.len() >= CACHE_CAPACITY {
                self.entries.clear();
            }
        }
        self.entries.insert(
            (token.to_owned(), path.to_owned()),
            (verdict, now + verdict.ttl()),
        );
    }
}

/// Checks requests with the API server's reviews.
#[derive(Clone)]
pub(crate) struct Reviewer {
    client: Client,
    cache: Arc<Mutex<Cache>>,
}

/// Why a request could not be checked.
#[derive(Debug, thiserror::Error)]
enum ReviewError {
    #[error("the TokenReview failed")]
    TokenReview(#[source] kube::Error),
    #[error("the SubjectAccessReview failed")]
    SubjectAccessReview(#[source] kube::Error),
}

impl Reviewer {
    /// Reviews with `client` (which must not be leadership-gated).
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            cache: Arc::default(),
        }
    }

    /// The verdict about `token` and `path`, cached or from the API server.
    async fn verdict(&self, token: &str, path: &str) -> Result<Verdict, ReviewError> {
        if let Some(verdict) = self.cache().get(token, path, Instant::now()) {
            return Ok(verdict);
        }
        let verdict = self.review(token, path).await?;
        self.cache().insert(token, path, verdict, Instant::now());
        Ok(verdict)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds no invariant a panic elsewhere could break.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn review(&self, token: &str, path: &str) -> Result<Verdict, ReviewError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(ReviewError::TokenReview)?;
        let Some(user) = reviewed
            .status
            .filter(|status| status.authenticated == Some(true))
            .and_then(|status| status.user)
        else {
            return Ok(Verdict::Unauthenticated);
        };
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                uid: user.uid,
                groups: user.groups,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_owned()),
                    verb: Some("get".to_owned()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await
            .map_err(ReviewError::SubjectAccessReview)?;
        Ok(match reviewed.status {
            Some(status) if status.allowed => Verdict::Allowed,
            _ => Verdict::Forbidden,
        })
    }
}

/// The bearer token of `headers`, if any.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The middleware: 401 without a valid token, 403 when its user may not `get` the path,
/// 500 when the API server could not tell.
pub(crate) async fn authorize(
    State(reviewer): State<Reviewer>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer_token(request.headers()) else {
        return (
            StatusCode::UNAUTHORIZED,
            "Unauthorized: a bearer token is required",
        )
            .into_response();
    };
    let path = request.uri().path().to_owned();
    match reviewer.verdict(token, &path).await {
        Ok(Verdict::Allowed) => next.run(request).await,
        Ok(Verdict::Unauthenticated) => (StatusCode::UNAUTHORIZED, "Unauthorized").into_response(),
        Ok(Verdict::Forbidden) => (
            StatusCode::FORBIDDEN,
            format!("Forbidden: the token's user may not get {path}"),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(
                error = %capt_host_core::error_chain(&error),
                %path,
                "could not authorize a metrics request"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Authorization failed: the API server could not review the request",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        assert_eq!(bearer_token(&headers("Bearer abc.def")), Some("abc.def"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic dXNlcjpwdw==")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn verdicts_are_cached_per_token_and_path_until_they_expire() {
        let mut cache = Cache::default();
        let now = Instant::now();
        cache.insert("t", "/metrics", Verdict::Allowed, now);
        cache.insert("t", "/policy", Verdict::Forbidden, now);
        assert_eq!(cache.get("t", "/metrics", now), Some(Verdict::Allowed));
        assert_eq!(cache.get("t", "/policy", now), Some(Verdict::Forbidden));
        assert_eq!(cache.get("u", "/metrics", now), None);
        let later = now + Verdict::Forbidden.ttl();
        assert_eq!(cache.get("t", "/policy", later), None);
        assert_eq!(cache.get("t", "/metrics", later), Some(Verdict::Allowed));
        assert_eq!(
            cache.get("t", "/metrics", now + Verdict::Allowed.ttl()),
            None
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = Cache::default();
        let now = Instant::now();
        for n in 0..CACHE_CAPACITY {
            cache.insert(&n.to_string(), "/metrics", Verdict::Forbidden, now);
        }
        // Expired verdicts make room first.
        let later = now + Verdict::Forbidden.ttl();
        cache.insert("fresh", "/metrics", Verdict::Allowed, later);
        assert_eq!(cache.entries.len(), 1);
        for n in 0..CACHE_CAPACITY * 2 {
            cache.insert(&n.to_string(), "/metrics", Verdict::Allowed, later);
            assert!(cache.entries.len() <= CACHE_CAPACITY);
        }
    }
}
