//! Label and field selectors, parsed from the `labelSelector` and `fieldSelector` query
//! parameters and matched against objects.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ApiError;
use crate::util::{scalar_string, value_at_path};

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value` (also matches objects without the label).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also matches objects without the label).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed label selector: all requirements must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(input: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
}

fn valid_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

fn valid_label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_set(key: &str, rest: &str, raw: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad_label(raw, "set must be parenthesised"))?;
    let values: Vec<String> = inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(bad_label(
            raw,
            &format!("for 'in', 'notin' operators, values set can't be empty (key {key})"),
        ));
    }
    if let Some(v) = values.iter().find(|v| !valid_label_value(v)) {
        return Err(bad_label(raw, &format!("invalid label value: {v:?}")));
    }
    Ok(values)
}

fn bad_label(raw: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: found '{raw}', {why}"))
}

impl LabelSelector {
    /// Parses the label selector syntax (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`).
    pub fn parse(input: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for raw in split_top_level(input) {
            let part = raw.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_string())
            } else if let Some((key, value)) = part.split_once("!=") {
                LabelRequirement::NotEquals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, value)) = part.split_once("==") {
                LabelRequirement::Equals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, value)) = part.split_once('=') {
                LabelRequirement::Equals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, rest)) = part.split_once(" notin ") {
                let key = key.trim();
                LabelRequirement::NotIn(key.to_string(), parse_set(key, rest, raw)?)
            } else if let Some((key, rest)) = part.split_once(" in ") {
                let key = key.trim();
                LabelRequirement::In(key.to_string(), parse_set(key, rest, raw)?)
            } else {
                LabelRequirement::Exists(part.to_string())
            };
            let (key, value) = match &req {
                LabelRequirement::Equals(k, v) | LabelRequirement::NotEquals(k, v) => (k, Some(v)),
                LabelRequirement::In(k, _)
                | LabelRequirement::NotIn(k, _)
                | LabelRequirement::Exists(k)
                | LabelRequirement::DoesNotExist(k) => (k, None),
            };
            if !valid_label_key(key) {
                return Err(bad_label(raw, &format!("invalid label key {key:?}")));
            }
            if let Some(v) = value
                && !valid_label_value(v)
            {
                return Err(bad_label(raw, &format!("invalid label value: {v:?}")));
            }
            requirements.push(req);
        }
        Ok(Self { requirements })
    }

    /// Whether the selector has no requirement (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|req| match req {
            LabelRequirement::Equals(k, v) => labels.get(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => labels.get(k) != Some(v),
            LabelRequirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            LabelRequirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            LabelRequirement::Exists(k) => labels.contains_key(k),
            LabelRequirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// Whether the object's `metadata.labels` satisfy the selector.
    pub fn matches(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let labels: BTreeMap<String, String> = obj
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        self.matches_labels(&labels)
    }
}

/// One requirement of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldRequirement {
    /// `path=value` or `path==value`.
    Equals(String, String),
    /// `path!=value`.
    NotEquals(String, String),
}

/// A parsed field selector. Any dotted path is accepted (the real server only allows a
/// per-type list, always including `metadata.name` and `metadata.namespace`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `a=b,c!=d` (also `==`).
    pub fn parse(input: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let req = if let Some((k, v)) = part.split_once("!=") {
                FieldRequirement::NotEquals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                FieldRequirement::Equals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                FieldRequirement::Equals(k.trim().to_string(), v.trim().to_string())
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                )));
            };
            let (FieldRequirement::Equals(k, _) | FieldRequirement::NotEquals(k, _)) = &req;
            if k.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{input}'; empty field name"
                )));
            }
            requirements.push(req);
        }
        Ok(Self { requirements })
    }

    /// Whether the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|req| match req {
            FieldRequirement::Equals(path, v) => scalar_string(value_at_path(obj, path)) == *v,
            FieldRequirement::NotEquals(path, v) => scalar_string(value_at_path(obj, path)) != *v,
        })
    }
}

/// Both selectors of a list or watch request.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Whether the object matches both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n1", "namespace": "ns", "labels": labels}, "spec": {"x": 1}})
    }

    #[test]
    fn equality_operators() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        assert!(LabelSelector::parse("app=web").unwrap().matches(&o));
        assert!(LabelSelector::parse("app==web").unwrap().matches(&o));
        assert!(!LabelSelector::parse("app!=web").unwrap().matches(&o));
        assert!(LabelSelector::parse("app!=db").unwrap().matches(&o));
        assert!(LabelSelector::parse("missing!=x").unwrap().matches(&o));
        assert!(
            LabelSelector::parse("app=web,tier=front")
                .unwrap()
                .matches(&o)
        );
        assert!(
            !LabelSelector::parse("app=web,tier=back")
                .unwrap()
                .matches(&o)
        );
    }

    #[test]
    fn set_operators() {
        let o = obj(json!({"app": "web"}));
        assert!(
            LabelSelector::parse("app in (db, web)")
                .unwrap()
                .matches(&o)
        );
        assert!(!LabelSelector::parse("app in (db)").unwrap().matches(&o));
        assert!(LabelSelector::parse("app notin (db)").unwrap().matches(&o));
        assert!(
            !LabelSelector::parse("app notin (db,web)")
                .unwrap()
                .matches(&o)
        );
        assert!(
            LabelSelector::parse("other notin (db)")
                .unwrap()
                .matches(&o)
        );
        assert!(
            LabelSelector::parse("app in (db,web),!other")
                .unwrap()
                .matches(&o)
        );
    }

    #[test]
    fn existence_operators() {
        let o = obj(json!({"app": "web"}));
        assert!(LabelSelector::parse("app").unwrap().matches(&o));
        assert!(!LabelSelector::parse("!app").unwrap().matches(&o));
        assert!(LabelSelector::parse("!other").unwrap().matches(&o));
        assert!(
            !LabelSelector::parse("other")
                .unwrap()
                .matches(&obj(json!(null)))
        );
    }

    #[test]
    fn bad_label_selectors_are_rejected() {
        assert_eq!(LabelSelector::parse("app in ()").unwrap_err().code, 400);
        assert_eq!(LabelSelector::parse("app in db").unwrap_err().code, 400);
        assert_eq!(LabelSelector::parse("a b=c").unwrap_err().code, 400);
        assert!(LabelSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        assert!(
            FieldSelector::parse("metadata.name=n1")
                .unwrap()
                .matches(&o)
        );
        assert!(
            FieldSelector::parse("metadata.name==n1")
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=n1")
                .unwrap()
                .matches(&o)
        );
        assert!(
            FieldSelector::parse("metadata.namespace=ns,metadata.name!=x")
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.x=1").unwrap().matches(&o));
        assert_eq!(FieldSelector::parse("nonsense").unwrap_err().code, 400);
    }
}
