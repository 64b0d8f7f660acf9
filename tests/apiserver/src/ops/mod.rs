//! API semantics on top of the store: create, get, list, update, patch, delete and
//! deletecollection, with metadata management, the status subresource, resourceVersion
//! preconditions, generation, finalizers, garbage collection, namespace lifecycle and
//! CustomResourceDefinition registration.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::builtin::{crd_status, default_on_create, default_on_update, to_served, to_storage};
use crate::error::{ApiError, Reason, qualified};
use crate::fields::{ManagedFields, display};
use crate::patch::{PatchType, apply_patch};
use crate::registry::{Behavior, Origin, Registry, ResourceKind, StorageKey, kinds_from_crd};
use crate::selectors::Selectors;
use crate::store::{ObjectKey, Store};
use crate::util::{
    is_dns1123_label, is_dns1123_subdomain, is_label_value, label_key_error, meta_str,
    metadata_mut, name_suffix, new_uid, now_rfc3339,
};

/// Options of a list request.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListOptions {
    pub selectors: Selectors,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// Options of a delete request (query parameters and `DeleteOptions` body).
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOptions {
    pub dry_run: bool,
    pub orphan: bool,
    pub precondition_rv: Option<String>,
    pub precondition_uid: Option<String>,
}

/// Who writes and how: the `dryRun`, `fieldManager` and `force` parameters of a write.
#[derive(Clone, Debug)]
pub(crate) struct Write {
    pub dry_run: bool,
    pub manager: String,
    pub force: bool,
}

impl Default for Write {
    fn default() -> Self {
        Self {
            dry_run: false,
            manager: "unknown".to_string(),
            force: false,
        }
    }
}

impl Write {
    /// A dry-run write.
    #[cfg(test)]
    pub(crate) fn dry() -> Self {
        Self {
            dry_run: true,
            ..Self::default()
        }
    }

    /// A write by `manager`.
    #[cfg(test)]
    pub(crate) fn by(manager: &str) -> Self {
        Self {
            manager: manager.to_string(),
            ..Self::default()
        }
    }
}

/// The part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// The object itself (its main resource).
    Object,
    /// Its status subresource.
    Status,
}

/// The fields a write may touch: `status` only for the status subresource, everything but
/// `status` for the main resource of a kind with a status subresource, else everything.
fn in_scope(kind: &ResourceKind, part: Part) -> impl Fn(&[String]) -> bool + use<> {
    let has_status = kind.status_subresource;
    move |path: &[String]| {
        let is_status = path.first().is_some_and(|s| s == "status");
        if part == Part::Status {
            is_status
        } else {
            !has_status || !is_status
        }
    }
}

/// The outcome of a delete.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// Deletion is pending (finalizers or namespace content): the object as it is now.
    Pending(Value),
    /// The object is gone: a `Status` of success.
    Gone(Value),
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

enum Work {
    /// Delete (honouring finalizers) unless `force`.
    Delete {
        storage: StorageKey,
        namespace: String,
        name: String,
        force: bool,
    },
    /// Remove now, with this last state.
    Remove {
        storage: StorageKey,
        namespace: String,
        name: String,
        last: Value,
    },
}

/// Registry and store together, behind one lock.
pub(crate) struct State {
    pub registry: Registry,
    pub store: Store,
    pub enforce_namespaces: bool,
    /// Field ownership (server-side apply) per stored object.
    fields: HashMap<(StorageKey, String, String), ManagedFields>,
}

fn namespaces_key() -> StorageKey {
    StorageKey::new("", "namespaces")
}

fn rv_of(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion").filter(|s| !s.is_empty())
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn is_deleting(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null())
}

/// The object without `metadata` (and without `status` when `skip_status`), `apiVersion`
/// and `kind`: what `metadata.generation` tracks.
fn generation_view(obj: &Value, skip_status: bool) -> Value {
    let mut map = obj.as_object().cloned().unwrap_or_default();
    map.remove("metadata");
    map.remove("apiVersion");
    map.remove("kind");
    if skip_status {
        map.remove("status");
    }
    Value::Object(map)
}

/// 422 Invalid when `metadata.labels` has an invalid key or value, or is not a map of
/// strings.
fn validate_labels(kind: &ResourceKind, obj: &Value) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").unwrap_or_default();
    let invalid = |detail: String| {
        ApiError::invalid(&kind.group, &kind.kind, name, "metadata.labels", &detail)
    };
    let Some(labels) = obj.get("metadata").and_then(|m| m.get("labels")) else {
        return Ok(());
    };
    let labels = match labels {
        Value::Null => return Ok(()),
        Value::Object(map) => map,
        _ => {
            return Err(invalid(
                "Invalid value: must be a map of strings".to_string(),
            ));
        }
    };
    for (key, value) in labels {
        if let Some(why) = label_key_error(key) {
            return Err(invalid(format!("Invalid value: {key:?}: {why}")));
        }
        match value.as_str() {
            Some(v) if is_label_value(v) => {}
            _ => {
                return Err(invalid(format!(
                    "Invalid value: {value}: a valid label must be an empty string or consist \
                     of alphanumeric characters, '-', '_' or '.', and must start and end with \
                     an alphanumeric character (at most 63 characters)"
                )));
            }
        }
    }
    Ok(())
}

/// The object without `metadata.resourceVersion`: equal views mean a no-op write.
fn change_view(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.remove("resourceVersion");
    }
    obj
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            map.insert(key.to_string(), v);
        }
        None => {
            map.remove(key);
        }
    }
}

fn success_status(kind: &ResourceKind, name: &str, uid: Option<&str>) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": name,
            "group": kind.group,
            "kind": kind.plural,
            "uid": uid.unwrap_or_default(),
        },
    })
}

mod create;
mod delete;
mod patch;
mod read;
#[cfg(test)]
mod tests;
mod update;

impl State {
    /// A state serving the built-in kinds plus `extra`, with the given namespaces created.
    pub(crate) fn new(
        extra: Vec<ResourceKind>,
        history: usize,
        namespaces: &[String],
        enforce_namespaces: bool,
    ) -> Result<Self, ApiError> {
        let mut registry = Registry::default();
        for kind in crate::builtin::builtin_kinds().into_iter().chain(extra) {
            registry.register(kind);
        }
        let mut state = Self {
            registry,
            store: Store::new(history),
            enforce_namespaces,
            fields: HashMap::new(),
        };
        let ns_kind = state
            .registry
            .find("", "v1", "namespaces")
            .cloned()
            .ok_or_else(ApiError::resource_not_found)?;
        for ns in namespaces {
            state.create(
                &ns_kind,
                "",
                json!({"metadata": {"name": ns}}),
                &Write::default(),
            )?;
        }
        Ok(state)
    }

    fn stored(&self, kind: &ResourceKind, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.store
            .get(&kind.storage, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&kind.group, &kind.plural, name))
    }

    fn check_namespace(&self, kind: &ResourceKind, ns: &str) -> Result<(), ApiError> {
        if !kind.namespaced || !self.enforce_namespaces {
            return Ok(());
        }
        match self.store.get(&namespaces_key(), "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(obj) if is_deleting(obj) => Err(ApiError::forbidden(format!(
                "{} is forbidden: unable to create new content in namespace {ns} because it \
                 is being terminated",
                qualified(&kind.group, &kind.plural)
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Checks `apiVersion`/`kind` of a request body against the served kind.
    fn check_type(kind: &ResourceKind, body: &Value) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the object provided is unrecognized in request body (not a JSON object)",
            ));
        }
        if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
            && av != kind.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                kind.api_version()
            )));
        }
        if let Some(k) = body.get("kind").and_then(Value::as_str)
            && k != kind.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                kind.kind
            )));
        }
        Ok(())
    }

    fn check_body_namespace(kind: &ResourceKind, body: &Value, ns: &str) -> Result<(), ApiError> {
        match meta_str(body, "namespace").filter(|s| !s.is_empty()) {
            Some(body_ns) if kind.namespaced && body_ns != ns => Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the \
                 request",
            )),
            _ => Ok(()),
        }
    }
}

/// The CRD's `spec.names` when they changed between `old` and `new`.
fn new_names(old: &Value, new: &Value) -> Option<Value> {
    let names = |v: &Value| v.get("spec").and_then(|s| s.get("names")).cloned();
    let n = names(new)?;
    (names(old).as_ref() != Some(&n)).then_some(n)
}
