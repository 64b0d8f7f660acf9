//! Kubernetes-style JSON views of contract values (`apiVersion`, `type`, merge patches as
//! objects rather than JSON strings), for output and for scenario expectations.

use capt_policy::{Event, EventType, ObjectRef, Patch, Response, Subresource};
use serde_json::{Map, Value, json};

use crate::scenario::duration::format_millis;

/// `{apiVersion, kind, namespace?, name}`.
pub fn reference(r: &ObjectRef) -> Value {
    let mut view = Map::new();
    view.insert("apiVersion".into(), json!(r.api_version));
    view.insert("kind".into(), json!(r.kind));
    if let Some(namespace) = &r.namespace {
        view.insert("namespace".into(), json!(namespace));
    }
    view.insert("name".into(), json!(r.name));
    Value::Object(view)
}

/// `{target, subresource, resourceVersion?, mergePatch}`; the merge patch parsed (kept as a
/// string if it is not valid JSON).
pub fn patch(p: &Patch) -> Value {
    let merge_patch = serde_json::from_str(&p.merge_patch).unwrap_or_else(|_| json!(p.merge_patch));
    let mut view = Map::new();
    view.insert("target".into(), reference(&p.target));
    view.insert(
        "subresource".into(),
        json!(match p.subresource {
            Subresource::Status => "status",
            Subresource::Main => "main",
        }),
    );
    if let Some(version) = &p.resource_version {
        view.insert("resourceVersion".into(), json!(version));
    }
    view.insert("mergePatch".into(), merge_patch);
    Value::Object(view)
}

/// `{regarding, type, reason, message}`, `type` being `Normal` or `Warning`.
pub fn event(e: &Event) -> Value {
    json!({
        "regarding": reference(&e.regarding),
        "type": match e.event_type {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        },
        "reason": e.reason,
        "message": e.message,
    })
}

/// `{patches, events, requeueAfter}`, `requeueAfter` as a duration (`90s`) or `null`.
pub fn response(r: &Response) -> Value {
    json!({
        "patches": r.patches.iter().map(patch).collect::<Vec<_>>(),
        "events": r.events.iter().map(event).collect::<Vec<_>>(),
        "requeueAfter": r.requeue_after_millis.map(format_millis),
    })
}

#[cfg(test)]
mod tests {
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
            patch(&p),
            json!({
                "target": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"},
                "subresource": "main",
                "resourceVersion": "5",
                "mergePatch": {"data": {"k": "v"}},
            })
        );
    }

    #[test]
    fn responses_show_requeue_as_a_duration() {
        let r = Response {
            requeue_after_millis: Some(90_000),
            ..Response::default()
        };
        assert_eq!(response(&r)["requeueAfter"], "1m30s");
        assert_eq!(response(&Response::default())["requeueAfter"], Value::Null);
    }
}
