//! HTTP: routing of Kubernetes API paths, query parameters, content negotiation, request
//! counting and fault injection in front of the API semantics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::ops::{DeleteOptions, Deleted, ListOptions, Part, Write};
use crate::patch::{PatchType, parse_body};
use crate::registry::ResourceKind;
use crate::selectors::{FieldSelector, LabelSelector, Selectors};
use crate::server::Shared;
use crate::stats::{RequestKey, Verb};
use crate::store::WatchStart;
use crate::watch::{WatchOptions, partial_metadata};

const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// A JSON response.
pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A parsed resource request path.
struct Target {
    kind: ResourceKind,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn resolve(shared: &Shared, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let state = shared.lock();
    let registry = &state.registry;
    let (kind, namespace, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if registry
                .find(group, version, plural)
                .is_some_and(|k| k.namespaced) =>
        {
            let kind = registry.find(group, version, plural).cloned();
            (kind, Some((*ns).to_string()), tail)
        }
        [plural, tail @ ..] => {
            let kind = registry.find(group, version, plural).cloned();
            if kind.as_ref().is_some_and(|k| k.namespaced) && !tail.is_empty() {
                return Err(ApiError::resource_not_found());
            }
            (kind, None, tail)
        }
        [] => return Err(ApiError::resource_not_found()),
    };
    let kind = kind.ok_or_else(ApiError::resource_not_found)?;
    let (name, subresource) = match tail {
        [] => (None, None),
        [name] => (Some((*name).to_string()), None),
        [name, sub] => (Some((*name).to_string()), Some((*sub).to_string())),
        _ => return Err(ApiError::resource_not_found()),
    };
    if let Some(sub) = &subresource
        && !(sub == "status" && kind.status_subresource)
    {
        return Err(ApiError::resource_not_found());
    }
    Ok(Target {
        kind,
        namespace,
        name,
        subresource,
    })
}

fn verb_of(
    method: &Method,
    target: &Target,
    params: &HashMap<String, String>,
) -> Result<Verb, ApiError> {
    let watch = params.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (method, &target.name) {
        (&Method::GET, None) if watch => Verb::Watch,
        (&Method::GET, None) => Verb::List,
        (&Method::POST, None) if target.namespace.is_some() || !target.kind.namespaced => {
            Verb::Create
        }
        (&Method::DELETE, None) => Verb::DeleteCollection,
        (&Method::GET, Some(_)) => Verb::Get,
        (&Method::PUT, Some(_)) => Verb::Update,
        (&Method::PATCH, Some(_)) => Verb::Patch,
        (&Method::DELETE, Some(_)) if target.subresource.is_none() => Verb::Delete,
        _ => return Err(ApiError::method_not_allowed(method.as_str())),
    };
    Ok(verb)
}

fn selectors(params: &HashMap<String, String>) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: match params.get("labelSelector") {
            Some(s) => LabelSelector::parse(s)?,
            None => LabelSelector::default(),
        },
        fields: match params.get("fieldSelector") {
            Some(s) => FieldSelector::parse(s)?,
            None => FieldSelector::default(),
        },
    })
}

fn wants_metadata_only(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("as=PartialObjectMetadata"))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

fn parse_object_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(headers).to_ascii_lowercase();
    if ct.contains("protobuf") {
        return Err(ApiError::unsupported_media_type(
            "the in-process API server only accepts JSON and YAML",
        ));
    }
    let value = parse_body(body, ct.contains("yaml"))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized in request body",
        ));
    }
    Ok(value)
}

fn delete_options(
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        dry_run: params.get("dryRun").is_some_and(|d| d == "All"),
        orphan: params
            .get("propagationPolicy")
            .is_some_and(|p| p == "Orphan")
            || params.get("orphanDependents").is_some_and(|o| o == "true"),
        ..Default::default()
    };
    if body.iter().any(|b| !b.is_ascii_whitespace()) {
        let options: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"))
        {
            opts.dry_run = true;
        }
        if options.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
            || options.get("orphanDependents").and_then(Value::as_bool) == Some(true)
        {
            opts.orphan = true;
        }
        let pre = options.get("preconditions");
        let field = |f: &str| {
            pre.and_then(|p| p.get(f))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        opts.precondition_rv = field("resourceVersion");
        opts.precondition_uid = field("uid");
    }
    Ok(opts)
}

/// The field manager of a write: `fieldManager`, else the User-Agent's first word (as the
/// real server defaults it), else `unknown`.
fn field_manager(params: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(manager) = params.get("fieldManager").filter(|m| !m.is_empty()) {
        return manager.clone();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn shape(value: Value, metadata_only: bool) -> Value {
    if !metadata_only || value.get("kind").and_then(Value::as_str) == Some("Status") {
        return value;
    }
    match value.get("items").and_then(Value::as_array) {
        Some(items) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": value.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "items": items.iter().map(partial_metadata).collect::<Vec<_>>(),
        }),
        None => partial_metadata(&value),
    }
}

/// Serves every path: discovery and resources.
pub(crate) async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let params: HashMap<String, String> = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0.into_iter().collect())
        .unwrap_or_default();
    let response = match route(&shared, &method, &segments, &params, &headers, &body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    tracing::debug!(%method, %uri, status = response.status().as_u16(), "request");
    response
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    segments: &[&str],
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let aggregated = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("as=APIGroupDiscoveryList"));
    let discovery = |value: Option<Value>| -> Result<Response, ApiError> {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed(method.as_str()));
        }
        let value = value.ok_or_else(ApiError::resource_not_found)?;
        let mut response = json_response(StatusCode::OK, &value);
        if value.get("kind").and_then(Value::as_str) == Some("APIGroupDiscoveryList") {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(AGGREGATED_CONTENT_TYPE),
            );
        }
        Ok(response)
    };
    match segments {
        ["version"] => discovery(Some(shared.version_info())),
        ["healthz" | "livez" | "readyz"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => {
            let state = shared.lock();
            discovery(Some(if aggregated {
                state.registry.aggregated(true)
            } else {
                state.registry.core_versions(&shared.address)
            }))
        }
        ["api", version] => discovery(shared.lock().registry.resource_list("", version)),
        ["apis"] => {
            let state = shared.lock();
            discovery(Some(if aggregated {
                state.registry.aggregated(false)
            } else {
                state.registry.group_list()
            }))
        }
        ["apis", group] => discovery(shared.lock().registry.group(group)),
        ["apis", group, version] => discovery(shared.lock().registry.resource_list(group, version)),
        ["api", version, rest @ ..] => {
            resource(shared, method, "", version, rest, params, headers, body).await
        }
        ["apis", group, version, rest @ ..] => {
            resource(shared, method, group, version, rest, params, headers, body).await
        }
        _ => Err(ApiError::resource_not_found()),
    }
}

/// Serves a resource request, logging it (see [`crate::stats::RequestLog`]).
#[allow(clippy::too_many_arguments)]
async fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let target = resolve(shared, group, version, rest)?;
    let verb = verb_of(method, &target, params)?;
    let key = RequestKey {
        verb,
        group: target.kind.group.clone(),
        resource: target.kind.plural.clone(),
        subresource: target.subresource.clone(),
    };
    shared.counters.record(key.clone());
    // The object it names: from the URL, or from the body of a create.
    let name = target.name.clone().unwrap_or_else(|| {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| Some(b.get("metadata")?.get("name")?.as_str()?.to_string()))
            .unwrap_or_default()
    });
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|ua| ua.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let logged = shared
        .log
        .receive(key.clone(), name.clone(), user_agent.clone());
    let result = serve_resource(
        shared,
        target,
        &key,
        Request {
            name: &name,
            user_agent: &user_agent,
            params,
            headers,
            body,
        },
    )
    .await;
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(err) => err.code,
    };
    shared.log.answer(logged, status);
    result
}

/// What a resource request carries besides its target.
struct Request<'a> {
    name: &'a str,
    user_agent: &'a str,
    params: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

async fn serve_resource(
    shared: &Arc<Shared>,
    target: Target,
    key: &RequestKey,
    request: Request<'_>,
) -> Result<Response, ApiError> {
    let Request {
        name: fault_name,
        user_agent,
        params,
        headers,
        body,
    } = request;
    let verb = key.verb;
    let latency = shared.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    shared.faults.hang(key, user_agent).await;
    if let Some(err) = shared.faults.check(key, fault_name, user_agent) {
        tracing::debug!(?key, code = err.code, "injected fault");
        return Err(err);
    }
    let metadata_only = wants_metadata_only(headers);
    let write = Write {
        dry_run: params.get("dryRun").is_some_and(|d| d == "All"),
        manager: field_manager(params, headers),
        force: params.get("force").is_some_and(|f| f == "true"),
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let kind = &target.kind;
    let name = target.name.clone().unwrap_or_default();
    let part = match target.subresource {
        Some(_) => Part::Status,
        None => Part::Object,
    };
    let ok = |code: StatusCode, value: Value| Ok(json_response(code, &shape(value, metadata_only)));
    match verb {
        Verb::Get => ok(StatusCode::OK, shared.lock().get(kind, &ns, &name)?),
        Verb::List => {
            let opts = ListOptions {
                selectors: selectors(params)?,
                limit: match params.get("limit") {
                    Some(l) => Some(
                        l.parse()
                            .map_err(|_| ApiError::bad_request(format!("invalid limit \"{l}\"")))?,
                    ),
                    None => None,
                },
                continue_token: params.get("continue").cloned(),
                resource_version: params.get("resourceVersion").cloned(),
                resource_version_match: params.get("resourceVersionMatch").cloned(),
            };
            let list = shared
                .lock()
                .list(kind, target.namespace.as_deref(), &opts)?;
            ok(StatusCode::OK, list)
        }
        Verb::Watch => {
            let start = if params.get("sendInitialEvents").is_some_and(|s| s == "true") {
                WatchStart::Current {
                    initial_end_bookmark: true,
                }
            } else {
                match params
                    .get("resourceVersion")
                    .map(String::as_str)
                    .filter(|rv| !rv.is_empty() && *rv != "0")
                {
                    None => WatchStart::Current {
                        initial_end_bookmark: false,
                    },
                    Some(rv) => WatchStart::After(rv.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid resource version \"{rv}\""))
                    })?),
                }
            };
            let timeout = match params.get("timeoutSeconds") {
                Some(t) => t.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid timeoutSeconds \"{t}\""))
                })?,
                None => 0,
            };
            // 0 or absent: the server's default, as the real server does.
            let timeout = if timeout == 0 {
                shared.config.default_watch_timeout
            } else {
                Duration::from_secs(timeout)
            };
            let opts = WatchOptions {
                selectors: selectors(params)?,
                allow_bookmarks: params
                    .get("allowWatchBookmarks")
                    .is_some_and(|b| b == "true" || b == "1"),
                timeout,
                metadata_only,
                bookmark_interval: shared.config.bookmark_interval,
            };
            let body = crate::watch::open(
                shared,
                kind.clone(),
                target.namespace.as_deref(),
                start,
                opts,
            );
            let mut response = Response::new(body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        Verb::Create => {
            let obj = parse_object_body(headers, body)?;
            let created = shared.lock().create(kind, &ns, obj, &write)?;
            ok(StatusCode::CREATED, created)
        }
        Verb::Update => {
            let obj = parse_object_body(headers, body)?;
            let updated = shared.lock().update(kind, &ns, &name, obj, part, &write)?;
            ok(StatusCode::OK, updated)
        }
        Verb::Patch => {
            let ct = content_type(headers);
            let patch_type = PatchType::from_content_type(&ct).ok_or_else(|| {
                ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format ({ct}) - accepted media \
                     types include: application/json-patch+json, application/merge-patch+json, \
                     application/apply-patch+yaml, application/strategic-merge-patch+json"
                ))
            })?;
            if patch_type == PatchType::Apply
                && params.get("fieldManager").is_none_or(|m| m.is_empty())
            {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    "fieldManager",
                    "Required value: is required for apply patch",
                ));
            }
            if write.force && patch_type != PatchType::Apply {
                return Err(ApiError::bad_request(
                    "force may not be specified for non-apply patch",
                ));
            }
            let (obj, created) = shared
                .lock()
                .patch(kind, &ns, &name, patch_type, body, part, &write)?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            ok(code, obj)
        }
        Verb::Delete => {
            let opts = delete_options(params, body)?;
            match shared.lock().delete(kind, &ns, &name, &opts)? {
                Deleted::Pending(obj) => ok(StatusCode::OK, obj),
                Deleted::Gone(status) => ok(StatusCode::OK, status),
            }
        }
        Verb::DeleteCollection => {
            let opts = delete_options(params, body)?;
            let list = shared.lock().delete_collection(
                kind,
                target.namespace.as_deref(),
                &selectors(params)?,
                &opts,
            )?;
            ok(StatusCode::OK, list)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_metadata_only_lists_and_objects() {
        let list = json!({"kind": "ConfigMapList", "metadata": {"resourceVersion": "3"},
            "items": [{"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}]});
        let shaped = shape(list, true);
        assert_eq!(shaped["kind"], "PartialObjectMetadataList");
        assert_eq!(shaped["metadata"]["resourceVersion"], "3");
        assert_eq!(shaped["items"][0]["kind"], "PartialObjectMetadata");
        assert!(shaped["items"][0].get("data").is_none());
        let status = json!({"kind": "Status", "status": "Success"});
        assert_eq!(shape(status.clone(), true), status);
    }

    #[test]
    fn delete_options_from_query_and_body() {
        let mut params = HashMap::new();
        params.insert("dryRun".to_string(), "All".to_string());
        let opts = delete_options(&params, b"").unwrap();
        assert!(opts.dry_run);
        let opts = delete_options(
            &HashMap::new(),
            br#"{"propagationPolicy":"Orphan","preconditions":{"resourceVersion":"4"}}"#,
        )
        .unwrap();
        assert!(opts.orphan);
        assert_eq!(opts.precondition_rv.as_deref(), Some("4"));
        assert_eq!(delete_options(&HashMap::new(), b"{").unwrap_err().code, 400);
    }

    #[test]
    fn object_bodies() {
        let headers = HeaderMap::new();
        assert!(parse_object_body(&headers, br#"{"a":1}"#).is_ok());
        assert_eq!(parse_object_body(&headers, b"[1]").unwrap_err().code, 400);
        assert_eq!(parse_object_body(&headers, b"{oops").unwrap_err().code, 400);
        let mut yaml = HeaderMap::new();
        yaml.insert(header::CONTENT_TYPE, "application/yaml".parse().unwrap());
        assert_eq!(parse_object_body(&yaml, b"a: 1\n").unwrap()["a"], 1);
    }
}
