//! Kubernetes-style views of contract values (`apiVersion`, `type`, merge patches as objects
//! rather than JSON strings), for output and for scenario expectations. Fields serialize in
//! the order declared here.

use capt_policy::{Event, EventType, KindRef, ObjectRef, Patch, Response, Subresource};
use serde::Serialize;
use serde_json::Value;

use capt_policy::duration::format_millis;

/// An [`ObjectRef`]: `{apiVersion, kind, namespace?, name}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceView<'a> {
    api_version: &'a str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    name: &'a str,
}

/// A [`KindRef`]: `{apiVersion, kind, namespaced}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindView<'a> {
    api_version: &'a str,
    kind: &'a str,
    namespaced: bool,
}

/// A [`Patch`]: `{target, subresource, resourceVersion?, mergePatch}`, the merge patch parsed
/// (kept as a string if it is not valid JSON).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchView<'a> {
    target: ReferenceView<'a>,
    subresource: Subresource,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_version: Option<&'a str>,
    merge_patch: Value,
}

/// An [`Event`]: `{regarding, type, reason, message}`, `type` being `Normal` or `Warning`.
#[derive(Debug, Serialize)]
pub struct EventView<'a> {
    regarding: ReferenceView<'a>,
    #[serde(rename = "type")]
    event_type: EventType,
    reason: &'a str,
    message: &'a str,
}

/// A final [`Response`]: `{patches, events, requeueAfter}`, `requeueAfter` as a duration
/// (`1m30s`) or `null`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseView<'a> {
    patches: Vec<PatchView<'a>>,
    events: Vec<EventView<'a>>,
    requeue_after: Option<String>,
}

/// The view of an object reference.
pub fn reference(r: &ObjectRef) -> ReferenceView<'_> {
    ReferenceView {
        api_version: &r.api_version,
        kind: &r.kind,
        namespace: r.namespace.as_deref(),
        name: &r.name,
    }
}

/// The view of a kind reference.
pub fn kind(k: &KindRef) -> KindView<'_> {
    KindView {
        api_version: &k.api_version,
        kind: &k.kind,
        namespaced: k.namespaced,
    }
}

/// The view of a patch.
pub fn patch(p: &Patch) -> PatchView<'_> {
    PatchView {
        target: reference(&p.target),
        subresource: p.subresource,
        resource_version: p.resource_version.as_deref(),
        merge_patch: serde_json::from_str(&p.merge_patch)
            .unwrap_or_else(|_| Value::String(p.merge_patch.clone())),
    }
}

/// The view of an event.
pub fn event(e: &Event) -> EventView<'_> {
    EventView {
        regarding: reference(&e.regarding),
        event_type: e.event_type,
        reason: &e.reason,
        message: &e.message,
    }
}

/// The view of a response.
pub fn response(r: &Response) -> ResponseView<'_> {
    ResponseView {
        patches: r.patches.iter().map(patch).collect(),
        events: r.events.iter().map(event).collect(),
        requeue_after: r.requeue_after_millis.map(format_millis),
    }
}

/// A view as JSON, for matching.
pub fn to_json(view: &impl Serialize) -> Value {
    serde_json::to_value(view).expect("views serialize to JSON")
}

/// A view as YAML, for output.
pub fn to_yaml(view: &impl Serialize) -> String {
    serde_yaml_ng::to_string(view).unwrap_or_else(|e| format!("<cannot render as YAML: {e}>\n"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn patches_show_their_merge_patch_as_an_object() {
        let p = Patch {
            target: ObjectRef::new("v1", "ConfigMap", None, "c"),
            subresource: Subresource::Main,
            merge_patch: r#"{"data":{"k":"v"}}"#.into(),
            resource_version: Some("5".into()),
        };
        assert_eq!(
            to_json(&patch(&p)),
            json!({
                "target": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"},
                "subresource": "main",
                "resourceVersion": "5",
                "mergePatch": {"data": {"k": "v"}},
            })
        );
        assert!(to_yaml(&patch(&p)).starts_with("target:\n  apiVersion: v1\n"));
    }

    #[test]
    fn events_show_their_type_as_kubernetes_does() {
        let e = Event {
            regarding: ObjectRef::new("v1", "ConfigMap", Some("ns"), "c"),
            event_type: EventType::Warning,
            reason: "R".into(),
            message: "m".into(),
        };
        assert_eq!(to_json(&event(&e))["type"], "Warning");
    }

    #[test]
    fn responses_show_requeue_as_a_duration() {
        let r = Response {
            requeue_after_millis: Some(90_000),
            ..Response::default()
        };
        assert_eq!(to_json(&response(&r))["requeueAfter"], "1m30s");
        assert_eq!(
            to_json(&response(&Response::default()))["requeueAfter"],
            Value::Null
        );
    }
}
