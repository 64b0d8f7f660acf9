//! The built-in kinds and their small pieces of server-side behaviour (defaulting,
//! `stringData`, the `events.k8s.io/v1` <-> core `v1` Event conversion).

use serde_json::{Map, Value, json};

use crate::registry::{Behavior, Conversion, ResourceKind, StorageKey};
use crate::util::base64_encode;

/// The kinds every server serves.
pub(crate) fn builtin_kinds() -> Vec<ResourceKind> {
    let core_events = StorageKey::new("", "events");
    vec![
        ResourceKind::cluster("", "v1", "Namespace", "namespaces")
            .with_status()
            .with_short_names(["ns"])
            .builtin(Behavior::Namespace),
        ResourceKind::namespaced("", "v1", "ConfigMap", "configmaps")
            .with_short_names(["cm"])
            .builtin(Behavior::Generic),
        ResourceKind::namespaced("", "v1", "Secret", "secrets").builtin(Behavior::Secret),
        ResourceKind::namespaced("", "v1", "Event", "events")
            .with_short_names(["ev"])
            .builtin(Behavior::Generic),
        ResourceKind::namespaced("", "v1", "Pod", "pods")
            .with_status()
            .with_short_names(["po"])
            .builtin(Behavior::Pod),
        ResourceKind::namespaced("", "v1", "ServiceAccount", "serviceaccounts")
            .with_short_names(["sa"])
            .builtin(Behavior::Generic),
        ResourceKind::namespaced("events.k8s.io", "v1", "Event", "events")
            .with_short_names(["ev"])
            .builtin(Behavior::Generic)
            .stored_in(core_events, Conversion::EventsV1),
        ResourceKind::namespaced("coordination.k8s.io", "v1", "Lease", "leases")
            .builtin(Behavior::Generic),
        ResourceKind::cluster(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        )
        .with_status()
        .with_short_names(["crd", "crds"])
        .builtin(Behavior::Crd),
    ]
}

/// Defaulting applied to a new object (already in storage form).
pub(crate) fn default_on_create(kind: &ResourceKind, obj: &mut Value) {
    match kind.behavior {
        Behavior::Namespace => {
            obj["status"] = json!({"phase": "Active"});
        }
        Behavior::Pod => {
            obj["status"] = json!({"phase": "Pending"});
        }
        Behavior::Secret => {
            fold_string_data(obj);
            if obj.get("type").is_none_or(Value::is_null) {
                obj["type"] = json!("Opaque");
            }
        }
        Behavior::Crd | Behavior::Generic => {}
    }
}

/// Defaulting applied to an updated object (already in storage form).
pub(crate) fn default_on_update(kind: &ResourceKind, obj: &mut Value) {
    if kind.behavior == Behavior::Secret {
        fold_string_data(obj);
    }
}

/// Moves `stringData` into `data` (base64), as the real server does for Secrets.
fn fold_string_data(obj: &mut Value) {
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = Value::Object(Map::new());
    }
    if let Some(Value::Object(data)) = obj.get_mut("data") {
        for (key, value) in string_data {
            if let Value::String(s) = value {
                data.insert(key, Value::String(base64_encode(s.as_bytes())));
            }
        }
    }
}

/// The `status` the server sets on a CustomResourceDefinition it accepted.
pub(crate) fn crd_status(crd: &Value) -> Value {
    let now = crate::util::now_rfc3339();
    let names = crd
        .get("spec")
        .and_then(|s| s.get("names"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let stored: Vec<Value> = crd
        .get("spec")
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            }
        ],
    })
}

/// `(events.k8s.io/v1 field, core v1 field)` pairs that differ between the two Event
/// representations; all other fields have the same name.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename_fields(obj: &mut Value, to_core: bool) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for (events_name, core_name) in EVENT_FIELDS {
        let (from, to) = if to_core {
            (events_name, core_name)
        } else {
            (core_name, events_name)
        };
        if let Some(value) = map.remove(*from) {
            map.insert((*to).to_string(), value);
        }
    }
}

/// A stored object (storage form) as served by `kind`.
pub(crate) fn to_served(kind: &ResourceKind, stored: &Value) -> Value {
    let mut obj = stored.clone();
    if kind.conversion == Conversion::EventsV1 {
        rename_fields(&mut obj, false);
    }
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".to_string(), json!(kind.api_version()));
        map.insert("kind".to_string(), json!(kind.kind));
    }
    obj
}

/// A served object (as sent by a client of `kind`) in storage form.
pub(crate) fn to_storage(kind: &ResourceKind, served: &Value) -> Value {
    let mut obj = served.clone();
    if kind.conversion == Conversion::EventsV1 {
        rename_fields(&mut obj, true);
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".to_string(), json!("v1"));
            map.insert("kind".to_string(), json!("Event"));
        }
    } else if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".to_string(), json!(kind.api_version()));
        map.insert("kind".to_string(), json!(kind.kind));
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(group: &str) -> ResourceKind {
        builtin_kinds()
            .into_iter()
            .find(|k| k.group == group && k.plural == "events")
            .unwrap()
    }

    #[test]
    fn events_convert_both_ways() {
        let served = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "e1", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "p"},
            "note": "hello",
            "reason": "Started",
            "reportingController": "ctl",
        });
        let stored = to_storage(&kind("events.k8s.io"), &served);
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "hello");
        assert_eq!(stored["reportingComponent"], "ctl");
        assert_eq!(stored["reason"], "Started");
        let core = to_served(&kind(""), &stored);
        assert_eq!(core["message"], "hello");
        let back = to_served(&kind("events.k8s.io"), &stored);
        assert_eq!(back, served);
    }

    #[test]
    fn secrets_fold_string_data() {
        let secret = builtin_kinds()
            .into_iter()
            .find(|k| k.plural == "secrets")
            .unwrap();
        let mut obj = json!({"stringData": {"a": "foo"}, "data": {"b": "YmFy"}});
        default_on_create(&secret, &mut obj);
        assert_eq!(
            obj,
            json!({"data": {"a": "Zm9v", "b": "YmFy"}, "type": "Opaque"})
        );
    }

    #[test]
    fn crd_status_is_established() {
        let crd = json!({"spec": {"names": {"plural": "xs", "kind": "X"},
            "versions": [{"name": "v1", "storage": true}]}});
        let status = crd_status(&crd);
        assert_eq!(status["conditions"][1]["type"], "Established");
        assert_eq!(status["storedVersions"][0], "v1");
        assert_eq!(status["acceptedNames"]["kind"], "X");
    }
}
