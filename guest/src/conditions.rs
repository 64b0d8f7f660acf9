//! `metav1.Condition` lists with Kubernetes semantics: matched by type, new types appended,
//! `lastTransitionTime` changed only when `status` changes, `observedGeneration` always set.

use serde::Deserialize;
use serde::de::{Error as _, Unexpected};
use serde_json::{Map, Value};

use crate::message::bounded;
use crate::time::{Millis, format_timestamp, parse_timestamp};

/// A condition status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Status {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// One `metav1.Condition`.
///
/// Read and written by hand rather than with serde's derive: `extra` would need
/// `#[serde(flatten)]`, whose buffering code is a large and slow part of the component. The
/// reads call serde for every field and report errors exactly as the derive did.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The condition type (`type`), e.g. `Ready`.
    pub kind: String,
    /// True, False or Unknown.
    pub status: Status,
    /// CamelCase reason (empty when absent).
    pub reason: String,
    /// Human-readable message (empty when absent).
    pub message: String,
    /// When `status` last changed (empty when absent).
    pub last_transition_time: String,
    /// The object generation this condition was computed from.
    pub observed_generation: Option<i64>,
    /// Fields this policy does not know; kept as they are.
    pub extra: Map<String, Value>,
}

impl Condition {
    /// `lastTransitionTime` in epoch milliseconds, if it parses.
    pub fn since(&self) -> Option<Millis> {
        parse_timestamp(&self.last_transition_time)
    }

    /// Reads one condition of a list; unknown fields go to `extra`.
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let Value::Object(fields) = value else {
            return Err(invalid_type(value, "struct Condition"));
        };
        let (mut kind, mut status, mut observed_generation) = (None, None, None);
        let (mut reason, mut message, mut last_transition_time) = (None, None, None);
        let mut extra = Map::new();
        for (key, value) in fields {
            match key.as_str() {
                "type" => kind = Some(String::deserialize(value)?),
                "status" => status = Some(Status::deserialize(value)?),
                "reason" => reason = Some(String::deserialize(value)?),
                "message" => message = Some(String::deserialize(value)?),
                "lastTransitionTime" => last_transition_time = Some(String::deserialize(value)?),
                "observedGeneration" => observed_generation = Option::<i64>::deserialize(value)?,
                _ => {
                    extra.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(Self {
            kind: kind.ok_or_else(|| serde_json::Error::missing_field("type"))?,
            status: status.ok_or_else(|| serde_json::Error::missing_field("status"))?,
            reason: reason.unwrap_or_default(),
            message: message.unwrap_or_default(),
            last_transition_time: last_transition_time.unwrap_or_default(),
            observed_generation,
            extra,
        })
    }

    /// The condition as JSON: the known fields (`observedGeneration` only when set), then the
    /// unknown ones.
    fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("type".to_owned(), self.kind.as_str().into());
        map.insert("status".to_owned(), self.status.as_str().into());
        map.insert("reason".to_owned(), self.reason.as_str().into());
        map.insert("message".to_owned(), self.message.as_str().into());
        map.insert(
            "lastTransitionTime".to_owned(),
            self.last_transition_time.as_str().into(),
        );
        if let Some(generation) = self.observed_generation {
            map.insert("observedGeneration".to_owned(), generation.into());
        }
        map.extend(self.extra.clone());
        Value::Object(map)
    }
}

/// serde's "invalid type" error for `value`, as its derive reports it.
fn invalid_type(value: &Value, expected: &str) -> serde_json::Error {
    let unexpected = match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            (None, None) => Unexpected::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    };
    serde_json::Error::invalid_type(unexpected, &expected)
}

/// The condition list of one object being reconciled, with the time and generation that new
/// writes carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    list: Vec<Condition>,
    now: Millis,
    generation: i64,
}

impl Conditions {
    /// Parses `status.conditions` (absent is empty).
    pub fn parse(value: Option<&Value>, now: Millis, generation: i64) -> Result<Self, String> {
        let list = match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(Condition::from_json)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("status.conditions: {e}"))?,
            Some(other) => {
                return Err(format!(
                    "status.conditions: {}",
                    invalid_type(other, "a sequence")
                ));
            }
        };
        Ok(Self {
            list,
            now,
            generation,
        })
    }

    /// Changes the generation that later writes record.
    pub fn set_generation(&mut self, generation: i64) {
        self.generation = generation;
    }

    /// The condition of this type.
    pub fn get(&self, kind: &str) -> Option<&Condition> {
        self.list.iter().find(|c| c.kind == kind)
    }

    /// True when the condition exists with this status.
    pub fn is(&self, kind: &str, status: Status) -> bool {
        self.get(kind).is_some_and(|c| c.status == status)
    }

    /// Since when the condition has had this status (its `lastTransitionTime`), if it has it.
    pub fn since(&self, kind: &str, status: Status) -> Option<Millis> {
        self.get(kind)
            .filter(|c| c.status == status)
            .and_then(Condition::since)
    }

    /// Sets a condition: `lastTransitionTime` becomes now only when the status changes (or the
    /// condition is new, or its time is unreadable); reason, message and generation always update.
    /// The message is bounded ([`bounded`]); an empty one is replaced by the reason.
    pub fn set(&mut self, kind: &str, status: Status, reason: &str, message: &str) {
        let now = format_timestamp(self.now);
        let message = bounded(if message.is_empty() { reason } else { message });
        match self.list.iter_mut().find(|c| c.kind == kind) {
            Some(c) => {
                if c.status != status || c.since().is_none() {
                    c.last_transition_time = now;
                }
                c.status = status;
                c.reason = reason.to_owned();
                c.message = message.into_owned();
                c.observed_generation = Some(self.generation);
            }
            None => self.list.push(Condition {
                kind: kind.to_owned(),
                status,
                reason: reason.to_owned(),
                message: message.into_owned(),
                last_transition_time: now,
                observed_generation: Some(self.generation),
                extra: Map::new(),
            }),
        }
    }

    /// Changes only the reason and message of a condition, keeping its status (a new condition
    /// gets `status_if_new`).
    pub fn set_reason(&mut self, kind: &str, status_if_new: Status, reason: &str, message: &str) {
        let status = self.get(kind).map_or(status_if_new, |c| c.status);
        self.set(kind, status, reason, message);
    }

    /// The list as JSON.
    pub fn to_json(&self) -> Value {
        Value::Array(self.list.iter().map(Condition::to_json).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn transition_time_changes_only_with_status() {
        let mut c = Conditions::parse(None, T0, 1).unwrap();
        c.set("Ready", Status::False, "Waiting", "waiting");
        let mut later = Conditions::parse(Some(&c.to_json()), T0 + 60_000, 2).unwrap();
        later.set("Ready", Status::False, "Other", "other");
        assert_eq!(
            later.get("Ready").unwrap().last_transition_time,
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(later.get("Ready").unwrap().reason, "Other");
        assert_eq!(later.get("Ready").unwrap().observed_generation, Some(2));
        later.set("Ready", Status::True, "Done", "done");
        assert_eq!(
            later.get("Ready").unwrap().last_transition_time,
            "2026-01-01T00:01:00Z"
        );
        assert_eq!(later.since("Ready", Status::True), Some(T0 + 60_000));
        assert_eq!(later.since("Ready", Status::False), None);
    }

    #[test]
    fn order_and_unknown_fields_are_kept_and_messages_never_empty() {
        let existing = json!([{"type": "B", "status": "True", "reason": "R", "message": "m",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "severity": "Info"}]);
        let mut c = Conditions::parse(Some(&existing), T0, 1).unwrap();
        c.set("A", Status::Unknown, "Pending", "");
        let out = c.to_json();
        assert_eq!(out[0]["type"], "B");
        assert_eq!(out[0]["severity"], "Info");
        assert_eq!(out[1]["message"], "Pending");
    }

    #[test]
    fn set_reason_keeps_status_and_time() {
        let mut c = Conditions::parse(None, T0, 1).unwrap();
        c.set("Ready", Status::True, "Up", "up");
        c.set_reason("Ready", Status::False, "Paused", "paused");
        assert!(c.is("Ready", Status::True));
        assert_eq!(c.get("Ready").unwrap().reason, "Paused");
        c.set_reason("Other", Status::False, "Paused", "paused");
        assert!(c.is("Other", Status::False));
    }

    #[test]
    fn malformed_conditions_are_reported() {
        let err = Conditions::parse(Some(&json!([{"status": "True"}])), T0, 1).unwrap_err();
        assert!(err.contains("status.conditions"), "{err}");
        assert!(
            Conditions::parse(Some(&json!([{"type": "A", "status": "Maybe"}])), T0, 1).is_err()
        );
    }
}
