//! `metav1.Condition` lists with Kubernetes semantics: matched by type, new types appended,
//! `lastTransitionTime` changed only when `status` changes, `observedGeneration` always set.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::{Millis, format_timestamp, parse_timestamp};

/// A condition status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

/// One `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub kind: String,
    /// True, False or Unknown.
    pub status: Status,
    /// CamelCase reason.
    #[serde(default)]
    pub reason: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed.
    #[serde(default)]
    pub last_transition_time: String,
    /// The object generation this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Fields this policy does not know; kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Condition {
    /// `lastTransitionTime` in epoch milliseconds, if it parses.
    pub fn since(&self) -> Option<Millis> {
        parse_timestamp(&self.last_transition_time)
    }
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
            Some(v) => {
                Vec::<Condition>::deserialize(v).map_err(|e| format!("status.conditions: {e}"))?
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
    pub fn set(&mut self, kind: &str, status: Status, reason: &str, message: &str) {
        let now = format_timestamp(self.now);
        let message = if message.is_empty() { reason } else { message };
        match self.list.iter_mut().find(|c| c.kind == kind) {
            Some(c) => {
                if c.status != status || c.since().is_none() {
                    c.last_transition_time = now;
                }
                c.status = status;
                c.reason = reason.to_owned();
                c.message = message.to_owned();
                c.observed_generation = Some(self.generation);
            }
            None => self.list.push(Condition {
                kind: kind.to_owned(),
                status,
                reason: reason.to_owned(),
                message: message.to_owned(),
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
        serde_json::to_value(&self.list).unwrap_or(Value::Null)
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
