//! The four patch types the API server accepts, applied to JSON objects.
//!
//! * `application/merge-patch+json`: RFC 7396 JSON merge patch.
//! * `application/json-patch+json`: RFC 6902 JSON patch (all or nothing); like the real
//!   server, a `test` for `null` at a missing path succeeds.
//! * `application/strategic-merge-patch+json`: approximated by a merge patch after dropping
//!   the `$patch`/`$retainKeys`/`$setElementOrder`/`$deleteFromPrimitiveList` directives;
//!   lists are replaced rather than merged by key.
//! * `application/apply-patch+yaml` (server-side apply): approximated by a merge patch of the
//!   applied configuration (YAML or JSON); field ownership is not tracked, so there are no
//!   apply conflicts and fields dropped from a later apply are not removed.

use serde_json::Value;

use crate::error::ApiError;

/// A patch type, from the request's `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7396 merge patch.
    Merge,
    /// RFC 6902 JSON patch.
    Json,
    /// Strategic merge patch (approximated).
    Strategic,
    /// Server-side apply (approximated).
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header value; `None` when it is not a patch type.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Parses a body as JSON, or as YAML when `yaml_allowed` (JSON is tried first).
pub(crate) fn parse_body(body: &[u8], yaml_allowed: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => Ok(value),
        Err(json_err) if yaml_allowed => {
            serde_yaml_ng::from_slice::<Value>(body).map_err(|yaml_err| {
                ApiError::bad_request(format!(
                    "error decoding YAML: {yaml_err} (as JSON: {json_err})"
                ))
            })
        }
        Err(err) => Err(ApiError::bad_request(format!(
            "the body of the request was in an unknown format: {err}"
        ))),
    }
}

/// Drops strategic-merge-patch directives (keys starting with `$`) recursively.
fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Applies a patch of type `kind` with raw body `body` to `target`, returning the patched
/// document. Malformed patches are 400 BadRequest; a failing JSON patch operation is 422.
pub fn apply_patch(kind: PatchType, target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let mut doc = target.clone();
    match kind {
        PatchType::Merge => {
            let patch = parse_body(body, false)?;
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(&mut doc, &patch);
        }
        PatchType::Strategic => {
            let mut patch = parse_body(body, false)?;
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be a JSON object",
                ));
            }
            strip_directives(&mut patch);
            json_patch::merge(&mut doc, &patch);
        }
        PatchType::Apply => {
            let patch = parse_body(body, true)?;
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "apply configuration must be an object",
                ));
            }
            json_patch::merge(&mut doc, &patch);
        }
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the JSON patch could not be decoded: {e}"))
            })?;
            for op in &patch.0 {
                // Like the real server (evanphx/json-patch), testing a missing path for null
                // succeeds: kube's finalizer helper relies on it.
                if let json_patch::PatchOperation::Test(test) = op
                    && test.value.is_null()
                    && doc.pointer(test.path.as_str()).is_none()
                {
                    continue;
                }
                json_patch::patch(&mut doc, std::slice::from_ref(op)).map_err(|e| {
                    ApiError::new(
                        422,
                        crate::error::Reason::Invalid,
                        format!("the JSON patch could not be applied: {e}"),
                    )
                })?;
            }
        }
    }
    if !doc.is_object() {
        return Err(ApiError::bad_request("the patched object is not an object"));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json"),
            Some(PatchType::Strategic)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }

    #[test]
    fn merge_patch_follows_rfc7396() {
        let target = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        let out = apply_patch(
            PatchType::Merge,
            &target,
            br#"{"b": {"c": null, "e": 4}, "l": [3]}"#,
        )
        .unwrap();
        assert_eq!(out, json!({"a": 1, "b": {"d": 3, "e": 4}, "l": [3]}));
    }

    #[test]
    fn json_patch_follows_rfc6902_and_is_atomic() {
        let target = json!({"a": 1, "l": [1]});
        let out = apply_patch(
            PatchType::Json,
            &target,
            br#"[{"op":"add","path":"/l/-","value":2},{"op":"replace","path":"/a","value":5}]"#,
        )
        .unwrap();
        assert_eq!(out, json!({"a": 5, "l": [1, 2]}));
        let err = apply_patch(
            PatchType::Json,
            &target,
            br#"[{"op":"test","path":"/a","value":2}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn testing_a_missing_path_for_null_succeeds() {
        let target = json!({"metadata": {"name": "a"}});
        let out = apply_patch(
            PatchType::Json,
            &target,
            br#"[{"op":"test","path":"/metadata/finalizers","value":null},
                 {"op":"add","path":"/metadata/finalizers","value":["f"]}]"#,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
        let err = apply_patch(
            PatchType::Json,
            &out,
            br#"[{"op":"test","path":"/metadata/finalizers","value":null}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn strategic_patch_drops_directives() {
        let target = json!({"spec": {"a": 1}});
        let out = apply_patch(
            PatchType::Strategic,
            &target,
            br#"{"$retainKeys": ["a"], "spec": {"b": 2, "$patch": "merge"}}"#,
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"a": 1, "b": 2}}));
    }

    #[test]
    fn apply_accepts_yaml_and_json() {
        let target = json!({});
        let out = apply_patch(PatchType::Apply, &target, b"spec:\n  a: 1\n").unwrap();
        assert_eq!(out, json!({"spec": {"a": 1}}));
        let out = apply_patch(PatchType::Apply, &target, br#"{"spec":{"a":2}}"#).unwrap();
        assert_eq!(out, json!({"spec": {"a": 2}}));
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        let target = json!({});
        assert_eq!(
            apply_patch(PatchType::Merge, &target, b"{not json")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            apply_patch(PatchType::Json, &target, b"{}")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            apply_patch(PatchType::Merge, &target, b"[1]")
                .unwrap_err()
                .code,
            400
        );
    }
}
