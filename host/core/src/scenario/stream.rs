//! The patch stream: one canonical JSON line per final reconcile of a scenario run, so that
//! different hosts of the same policy can be compared byte for byte (`docs/embedding.md`,
//! "The patch stream", defines the format).

use capt_policy::{EventType, ObjectRef, Subresource};
use serde_json::{Value, json};

use super::Record;

/// The stream line of `record`, for the scenario at `file` (relative, `/`-separated). Every key
/// is present; object keys are sorted at every level (`serde_json` without `preserve_order`).
pub fn line(file: &str, record: &Record) -> String {
    let (patches, events, requeue, error) = match &record.result {
        Ok(response) => (
            response
                .patches
                .iter()
                .map(|p| {
                    json!({
                        "target": reference(&p.target),
                        "subresource": match p.subresource {
                            Subresource::Status => "status",
                            Subresource::Main => "main",
                        },
                        "mergePatch": serde_json::from_str::<Value>(&p.merge_patch)
                            .unwrap_or_else(|_| Value::String(p.merge_patch.clone())),
                        "resourceVersion": p.resource_version,
                    })
                })
                .collect(),
            response
                .events
                .iter()
                .map(|e| {
                    json!({
                        "regarding": reference(&e.regarding),
                        "type": match e.event_type {
                            EventType::Normal => "Normal",
                            EventType::Warning => "Warning",
                        },
                        "reason": e.reason,
                        "message": e.message,
                    })
                })
                .collect(),
            response.requeue_after_millis,
            None,
        ),
        Err(message) => (Vec::new(), Vec::new(), None, Some(message.as_str())),
    };
    json!({
        "file": file,
        "step": record.step - 1,
        "trigger": reference(&record.trigger),
        "patches": patches,
        "events": events,
        "requeueAfterMillis": requeue,
        "error": error,
    })
    .to_string()
}

fn reference(r: &ObjectRef) -> Value {
    json!({"apiVersion": r.api_version, "kind": r.kind, "namespace": r.namespace, "name": r.name})
}

#[cfg(test)]
mod tests {
    use capt_policy::{Event, Patch, Response};

    use super::*;

    #[test]
    fn lines_are_compact_sorted_and_complete() {
        let target = ObjectRef::new("example.com/v1", "Thing", None, "a");
        let record = Record {
            step: 1,
            trigger: target.clone(),
            result: Ok(Response {
                patches: vec![Patch {
                    target: target.clone(),
                    subresource: Subresource::Status,
                    merge_patch: r#"{"status":{"z":1,"a":true}}"#.into(),
                    resource_version: None,
                }],
                events: vec![Event {
                    regarding: target,
                    event_type: EventType::Warning,
                    reason: "R".into(),
                    message: "é".into(),
                }],
                requeue_after_millis: Some(5000),
                requirements: vec![],
            }),
        };
        assert_eq!(
            line("dir/x.yaml", &record),
            r#"{"error":null,"events":[{"message":"é","reason":"R","regarding":{"apiVersion":"example.com/v1","kind":"Thing","name":"a","namespace":null},"type":"Warning"}],"file":"dir/x.yaml","patches":[{"mergePatch":{"status":{"a":true,"z":1}},"resourceVersion":null,"subresource":"status","target":{"apiVersion":"example.com/v1","kind":"Thing","name":"a","namespace":null}}],"requeueAfterMillis":5000,"step":0,"trigger":{"apiVersion":"example.com/v1","kind":"Thing","name":"a","namespace":null}}"#
        );
    }

    #[test]
    fn errors_have_empty_lists_and_no_requeue() {
        let record = Record {
            step: 3,
            trigger: ObjectRef::new("v1", "Thing", Some("ns"), "a"),
            result: Err("the policy failed".into()),
        };
        let value: Value = serde_json::from_str(&line("x.yaml", &record)).unwrap();
        assert_eq!(value["error"], "the policy failed");
        assert_eq!(value["patches"], json!([]));
        assert_eq!(value["requeueAfterMillis"], Value::Null);
        assert_eq!(value["step"], 2);
    }
}
