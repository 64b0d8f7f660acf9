//! The smallest RFC 7396 JSON merge patch that turns one document into another.

use serde_json::{Map, Value};

/// The merge patch from `old` to `new`, or `None` when they are equal. Objects are diffed key by
/// key (removed keys become `null`); any other change replaces the value whole, as RFC 7396
/// requires for arrays. `new` must not contain `null` values (they could not be written).
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => diff_objects(old, new),
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// [`diff`] of two objects, for callers that hold maps (no copies into a [`Value`] needed).
pub fn diff_objects(old: &Map<String, Value>, new: &Map<String, Value>) -> Option<Value> {
    let mut patch = Map::new();
    for (key, old_value) in old {
        match new.get(key) {
            None => {
                patch.insert(key.clone(), Value::Null);
            }
            Some(new_value) => {
                if let Some(p) = diff(old_value, new_value) {
                    patch.insert(key.clone(), p);
                }
            }
        }
    }
    for (key, new_value) in new {
        if !old.contains_key(key) {
            patch.insert(key.clone(), new_value.clone());
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7396 MergePatch, applied to check that `diff` round-trips.
    fn apply(target: &Value, patch: &Value) -> Value {
        match patch {
            Value::Object(p) => {
                let mut out = target.as_object().cloned().unwrap_or_default();
                for (k, v) in p {
                    if v.is_null() {
                        out.remove(k);
                    } else {
                        let merged = apply(out.get(k).unwrap_or(&Value::Null), v);
                        out.insert(k.clone(), merged);
                    }
                }
                Value::Object(out)
            }
            _ => patch.clone(),
        }
    }

    #[test]
    fn equal_documents_need_no_patch() {
        let v = json!({"a": {"b": [1, 2]}, "c": true});
        assert_eq!(diff(&v, &v), None);
    }

    #[test]
    fn patches_are_minimal_and_round_trip() {
        let old = json!({"ready": false, "keep": 1, "gone": "x", "nested": {"a": 1, "b": 2}, "list": [1, 2]});
        let new = json!({"ready": true, "keep": 1, "nested": {"a": 1, "b": 3}, "list": [1], "added": {"x": 1}});
        let patch = diff(&old, &new).unwrap();
        assert_eq!(
            patch,
            json!({"ready": true, "gone": null, "nested": {"b": 3}, "list": [1], "added": {"x": 1}})
        );
        assert_eq!(apply(&old, &patch), new);
    }

    #[test]
    fn a_missing_document_is_patched_whole() {
        let new = json!({"ready": false});
        assert_eq!(diff(&Value::Null, &new), Some(new.clone()));
        assert_eq!(diff(&json!({}), &new), Some(new));
    }
}
