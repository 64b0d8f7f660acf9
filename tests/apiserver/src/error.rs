//! Typed errors: the API errors the server answers with (as `metav1.Status` bodies) and the
//! errors of starting a server.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The `reason` of a failed `metav1.Status`, as the real API server spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// 400: the request could not be understood (malformed body, bad parameter).
    BadRequest,
    /// 403: the request is not allowed (for example creating in a terminating namespace).
    Forbidden,
    /// 404: the object or the resource does not exist.
    NotFound,
    /// 405: the verb is not supported on this path.
    MethodNotAllowed,
    /// 409: the object already exists.
    AlreadyExists,
    /// 409: a precondition (resourceVersion, uid) failed.
    Conflict,
    /// 410: the resourceVersion or continue token is older than the retained history.
    Expired,
    /// 415: the content type (for example a patch type) is not supported.
    UnsupportedMediaType,
    /// 422: the object is invalid.
    Invalid,
    /// 500: an internal (here: usually injected) error.
    InternalError,
    /// 504 or a synthetic failure with a chosen code: the request timed out.
    Timeout,
    /// 429: too many requests.
    TooManyRequests,
    /// 503: the service is unavailable.
    ServiceUnavailable,
}

impl Reason {
    /// The string the API server uses in `Status.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Expired => "Expired",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::InternalError => "InternalError",
            Reason::Timeout => "Timeout",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The reason usually paired with an HTTP status code (used for injected failures).
    pub fn for_code(code: u16) -> Reason {
        match code {
            400 => Reason::BadRequest,
            403 => Reason::Forbidden,
            404 => Reason::NotFound,
            405 => Reason::MethodNotAllowed,
            409 => Reason::Conflict,
            410 => Reason::Expired,
            415 => Reason::UnsupportedMediaType,
            422 => Reason::Invalid,
            429 => Reason::TooManyRequests,
            503 => Reason::ServiceUnavailable,
            504 => Reason::Timeout,
            _ => Reason::InternalError,
        }
    }
}

/// `Status.details`: what the failure is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// The object's name, if any.
    pub name: String,
    /// The API group of the resource.
    pub group: String,
    /// The resource (plural) or kind concerned.
    pub kind: String,
    /// Field-level causes: `(reason, message, field)`.
    pub causes: Vec<(String, String, String)>,
    /// `retryAfterSeconds`, 0 when absent.
    pub retry_after_seconds: u32,
}

/// An error answered by the API server: an HTTP status code with a `metav1.Status` body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} {}: {message}", reason.as_str())]
pub struct ApiError {
    /// The HTTP status code (also `Status.code`).
    pub code: u16,
    /// `Status.reason`.
    pub reason: Reason,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`.
    pub details: Option<Box<Details>>,
}

/// `plural.group` or just `plural` for the core group, as in the server's messages.
pub(crate) fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiError {
    /// A failure with the given code, reason and message and no details.
    pub fn new(code: u16, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            name: name.to_string(),
            group: group.to_string(),
            kind: kind.to_string(),
            ..Details::default()
        }));
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, Reason::BadRequest, message)
    }

    /// 404 for a path that names no known resource.
    pub fn resource_not_found() -> Self {
        Self::new(
            404,
            Reason::NotFound,
            "the server could not find the requested resource",
        )
        .with_details("", "", "")
    }

    /// 404 `plural.group "name" not found`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            Reason::NotFound,
            format!("{} \"{name}\" not found", qualified(group, plural)),
        )
        .with_details(group, plural, name)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        )
        .with_details(group, plural, name)
    }

    /// 409 Conflict on a stale resourceVersion (or an injected conflict).
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    /// 409 Conflict with a custom message (failed uid precondition and the like).
    pub fn conflict_msg(group: &str, plural: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    /// 409 Conflict of a server-side apply: `(manager, field)` pairs owned by other managers.
    pub fn apply_conflicts(
        group: &str,
        plural: &str,
        name: &str,
        api_version: &str,
        conflicts: &[(String, String)],
    ) -> Self {
        let listed: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| {
                format!("conflict with \"{manager}\" using {api_version}: {field}")
            })
            .collect();
        let n = conflicts.len();
        let mut err = Self::new(
            409,
            Reason::Conflict,
            format!(
                "Apply failed with {n} conflict{}: {}",
                if n == 1 { "" } else { "s" },
                listed.join("\n")
            ),
        )
        .with_details(group, plural, name);
        if let Some(details) = err.details.as_mut() {
            for (manager, field) in conflicts {
                details.causes.push((
                    "FieldManagerConflict".to_string(),
                    format!("conflict with \"{manager}\" using {api_version}"),
                    field.clone(),
                ));
            }
        }
        err
    }

    /// 422 Invalid with one field cause.
    pub fn invalid(group: &str, kind: &str, name: &str, field: &str, detail: &str) -> Self {
        let mut err = Self::new(
            422,
            Reason::Invalid,
            format!(
                "{} \"{name}\" is invalid: {field}: {detail}",
                qualified(group, kind)
            ),
        )
        .with_details(group, kind, name);
        if let Some(details) = err.details.as_mut() {
            details.causes.push((
                "FieldValueInvalid".to_string(),
                detail.to_string(),
                field.to_string(),
            ));
        }
        err
    }

    /// Sets `details.retryAfterSeconds` (also sent as a `Retry-After` header).
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.details
            .get_or_insert_with(Box::default)
            .retry_after_seconds = seconds;
        self
    }

    /// 410 Expired (too old resourceVersion or continue token).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, Reason::Expired, message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(what: &str) -> Self {
        Self::new(
            405,
            Reason::MethodNotAllowed,
            format!("the server does not allow this method on the requested resource ({what})"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, Reason::UnsupportedMediaType, message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, Reason::Forbidden, message)
    }

    /// The `metav1.Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code,
        });
        if let Some(d) = &self.details {
            let mut details = serde_json::Map::new();
            for (key, value) in [("name", &d.name), ("group", &d.group), ("kind", &d.kind)] {
                if !value.is_empty() {
                    details.insert(key.to_string(), Value::String(value.clone()));
                }
            }
            if !d.causes.is_empty() {
                let causes = d
                    .causes
                    .iter()
                    .map(|(reason, message, field)| {
                        json!({"reason": reason, "message": message, "field": field})
                    })
                    .collect();
                details.insert("causes".to_string(), Value::Array(causes));
            }
            if d.retry_after_seconds > 0 {
                details.insert(
                    "retryAfterSeconds".to_string(),
                    Value::from(d.retry_after_seconds),
                );
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = crate::handlers::json_response(code, &self.to_status());
        if let Some(d) = &self.details
            && d.retry_after_seconds > 0
            && let Ok(value) = d.retry_after_seconds.to_string().parse()
        {
            response.headers_mut().insert("Retry-After", value);
        }
        response
    }
}

/// Failure to start an [`ApiServer`](crate::ApiServer), build a client for it or register a
/// kind.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listening socket on 127.0.0.1 failed.
    #[error("cannot bind the API server socket: {0}")]
    Bind(#[source] std::io::Error),
    /// The server URL could not be turned into a client configuration.
    #[error("invalid server URL {0}")]
    Url(String),
    /// Building the `kube::Client` failed.
    #[error("cannot build a kube client for the server: {0}")]
    Client(#[source] kube::Error),
    /// A kind given in the configuration or registered later is invalid.
    #[error("invalid resource kind: {0}")]
    Kind(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_matches_the_real_shape() {
        let status = ApiError::not_found("example.com", "widgets", "w1").to_status();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 404);
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["message"], "widgets.example.com \"w1\" not found");
        assert_eq!(status["details"]["name"], "w1");
        assert_eq!(status["details"]["kind"], "widgets");
    }

    #[test]
    fn core_group_messages_omit_the_group() {
        let err = ApiError::conflict("", "configmaps", "c");
        assert!(
            err.message
                .starts_with("Operation cannot be fulfilled on configmaps \"c\"")
        );
        assert_eq!(err.code, 409);
        let status = err.to_status();
        assert!(status["details"].get("group").is_none());
    }

    #[test]
    fn invalid_has_a_cause() {
        let status =
            ApiError::invalid("", "ConfigMap", "", "metadata.name", "Required value").to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    }

    #[test]
    fn reasons_for_codes() {
        assert_eq!(Reason::for_code(500), Reason::InternalError);
        assert_eq!(Reason::for_code(503), Reason::ServiceUnavailable);
        assert_eq!(Reason::for_code(409), Reason::Conflict);
    }
}
