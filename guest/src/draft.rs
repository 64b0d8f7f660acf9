//! The status of the trigger object under construction, and the patch that writes it.

use serde_json::{Map, Value, json};

use crate::conditions::Conditions;
use crate::contract::{Error, ObjectRef, Patch, Subresource};
use crate::endpoint::Endpoint;
use crate::inputs::Fields;
use crate::merge;
use crate::time::Millis;

/// The `Ready` condition type, common to both kinds.
pub const READY: &str = "Ready";

/// A recorded terminal failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// `status.failureReason`.
    pub reason: String,
    /// `status.failureMessage`.
    pub message: String,
}

/// The new status of the trigger object, starting as a copy of the observed one.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    /// The observed status (`None` when the object has none), borrowed from the request.
    old: Option<&'a Map<String, Value>>,
    /// The status fields (conditions are kept apart until [`Draft::patches`]).
    pub status: Map<String, Value>,
    /// The status conditions.
    pub conditions: Conditions,
    /// A merge patch on the object itself (its spec), if the policy changes it.
    pub spec_patch: Option<Value>,
    /// `metadata.generation` as observed.
    pub generation: i64,
    /// The control-plane endpoint the object knows (not serialized; for propagation).
    pub endpoint: Option<Endpoint>,
}

impl<'a> Draft<'a> {
    /// Starts from the observed object's status.
    pub fn new(me: Fields<'a>, now: Millis) -> Result<Self, Error> {
        let generation = me.generation()?;
        let old = me.object("status")?;
        let mut status = old.cloned().unwrap_or_default();
        let conditions = Conditions::parse(status.remove("conditions").as_ref(), now, generation)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", me.owner)))?;
        Ok(Self {
            old,
            status,
            conditions,
            spec_patch: None,
            generation,
            endpoint: None,
        })
    }

    /// Records that a spec patch in this response will bump `metadata.generation` (the API
    /// server does so for every spec change), so the status written with it records the
    /// generation it will describe and the next reconcile is a no-op.
    pub fn expect_generation_bump(&mut self) {
        self.generation += 1;
        self.conditions.set_generation(self.generation);
    }

    /// Sets a status field.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.status.insert(key.to_owned(), value.into());
    }

    /// Removes a status field.
    pub fn remove(&mut self, key: &str) {
        self.status.remove(key);
    }

    /// A status field as a non-empty string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.status
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A boolean status field (absent is false).
    pub fn flag(&self, key: &str) -> bool {
        self.status
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Sets one field of a nested status object, creating it.
    pub fn set_in(&mut self, object: &str, key: &str, value: impl Into<Value>) {
        let entry = self
            .status
            .entry(object.to_owned())
            .or_insert_with(|| json!({}));
        if !entry.is_object() {
            *entry = json!({});
        }
        if let Some(map) = entry.as_object_mut() {
            map.insert(key.to_owned(), value.into());
        }
    }

    /// The recorded terminal failure, if any.
    pub fn failure(&self) -> Option<Failure> {
        Some(Failure {
            reason: self.str("failureReason")?.to_owned(),
            message: self.str("failureMessage").unwrap_or_default().to_owned(),
        })
    }

    /// The terminal failure the observed status recorded, before this reconcile.
    pub fn observed_failure(&self) -> Option<Failure> {
        let text = |key| {
            self.old?
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        Some(Failure {
            reason: text("failureReason")?.to_owned(),
            message: text("failureMessage").unwrap_or_default().to_owned(),
        })
    }

    /// The writes for the trigger object: the spec patch (if any), then the status patch (if
    /// anything changed), each conditioned on the observed `resourceVersion`.
    pub fn patches(mut self, target: &ObjectRef, resource_version: Option<String>) -> Vec<Patch> {
        let mut patches = Vec::new();
        if let Some(spec) = self.spec_patch.take() {
            patches.push(Patch {
                target: target.clone(),
                subresource: Subresource::Main,
                merge_patch: json!({"spec": spec}).to_string(),
                resource_version: resource_version.clone(),
            });
        }
        self.status
            .insert("conditions".to_owned(), self.conditions.to_json());
        let diff = match self.old {
            Some(old) => merge::diff_objects(old, &self.status),
            None => Some(Value::Object(self.status)),
        };
        if let Some(diff) = diff {
            patches.push(Patch {
                target: target.clone(),
                subresource: Subresource::Status,
                merge_patch: json!({"status": diff}).to_string(),
                resource_version,
            });
        }
        patches
    }
}
