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

/// The fields a write may touch: `status` only for the status subresource, everything but
/// `status` for the main resource of a kind with a status subresource, else everything.
fn in_scope(kind: &ResourceKind, status_only: bool) -> impl Fn(&[String]) -> bool + use<> {
    let has_status = kind.status_subresource;
    move |path: &[String]| {
        let is_status = path.first().is_some_and(|s| s == "status");
        if status_only {
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

    /// GET of one object, served form.
    pub(crate) fn get(&self, kind: &ResourceKind, ns: &str, name: &str) -> Result<Value, ApiError> {
        let stored = self.stored(kind, ns, name)?;
        Ok(to_served(kind, &stored))
    }

    /// A list (`<Kind>List`), served form.
    pub(crate) fn list(
        &self,
        kind: &ResourceKind,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<Value, ApiError> {
        let current = self.store.current_rv();
        let mut snapshot_rv = current;
        let mut after: Option<ObjectKey> = None;
        if let Some(token) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let token: ContinueToken = crate::util::hex_decode(token)
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            if token.rv < self.store.floor() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list \
                     result. You can start a new list without the continue parameter, or use \
                     the continue token in this response to retrieve the remainder of the \
                     results. Continuing with the provided token results in an inconsistent \
                     list - objects that were created, modified, or deleted between the time \
                     the first chunk was returned and now may show up in the list.",
                ));
            }
            snapshot_rv = token.rv;
            after = Some((token.ns, token.name));
        } else if let Some(rv) = opts.resource_version.as_deref().filter(|rv| !rv.is_empty()) {
            let requested: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{rv}\"")))?;
            if requested > current {
                let mut err = ApiError::new(
                    504,
                    Reason::Timeout,
                    format!("Too large resource version: {requested}, current: {current}"),
                );
                err = err.with_retry_after(1);
                return Err(err);
            }
            if opts.resource_version_match.as_deref() == Some("Exact") && requested != current {
                return Err(ApiError::expired(format!(
                    "too old resource version: {requested} ({current}): the in-process server \
                     only serves exact lists at the current resourceVersion"
                )));
            }
        }
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last_key: Option<ObjectKey> = None;
        let mut remaining = 0usize;
        for (key, obj) in self.store.list(&kind.storage, ns, after.as_ref()) {
            let served = to_served(kind, obj);
            if !opts.selectors.matches(&served) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            last_key = Some(key.clone());
            items.push(served);
        }
        let mut metadata = json!({"resourceVersion": snapshot_rv.to_string()});
        if remaining > 0
            && let Some((ns, name)) = last_key
        {
            let token = ContinueToken {
                rv: snapshot_rv,
                ns,
                name,
            };
            let bytes = serde_json::to_vec(&token).unwrap_or_default();
            metadata["continue"] = json!(crate::util::hex_encode(&bytes));
            metadata["remainingItemCount"] = json!(remaining);
        }
        Ok(json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": metadata,
            "items": items,
        }))
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

    /// POST: creates an object; returns it (served form).
    pub(crate) fn create(
        &mut self,
        kind: &ResourceKind,
        ns: &str,
        body: Value,
        w: &Write,
    ) -> Result<Value, ApiError> {
        Self::check_type(kind, &body)?;
        Self::check_body_namespace(kind, &body, ns)?;
        let mut obj = to_storage(kind, &body);
        validate_labels(kind, &obj)?;
        let meta = metadata_mut(&mut obj);
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(name) => name.to_string(),
            None => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let mut candidate = format!("{prefix}{}", name_suffix());
                    while self.store.get(&kind.storage, ns, &candidate).is_some() {
                        candidate = format!("{prefix}{}", name_suffix());
                    }
                    candidate
                }
                _ => {
                    return Err(ApiError::invalid(
                        &kind.group,
                        &kind.kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            },
        };
        let valid_name = if kind.behavior == Behavior::Namespace {
            is_dns1123_label(&name)
        } else {
            is_dns1123_subdomain(&name)
        };
        if !valid_name {
            return Err(ApiError::invalid(
                &kind.group,
                &kind.kind,
                &name,
                "metadata.name",
                &format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of \
                     lower case alphanumeric characters, '-' or '.'"
                ),
            ));
        }
        meta.insert("name".to_string(), json!(name));
        if kind.namespaced {
            meta.insert("namespace".to_string(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
        meta.insert("uid".to_string(), json!(new_uid()));
        meta.insert("creationTimestamp".to_string(), json!(now_rfc3339()));
        meta.insert("generation".to_string(), json!(1));
        if kind.status_subresource
            && let Some(map) = obj.as_object_mut()
        {
            map.remove("status");
        }
        default_on_create(kind, &mut obj);
        let crd_kinds = if kind.behavior == Behavior::Crd {
            let kinds = kinds_from_crd(&obj)?;
            if let Some(k) = kinds
                .iter()
                .find(|k| self.registry.taken_by_other(&k.group, &k.plural, &name))
            {
                return Err(ApiError::invalid(
                    &kind.group,
                    &kind.kind,
                    &name,
                    "spec.names.plural",
                    &format!("Invalid value: \"{}\": already served", k.plural),
                ));
            }
            obj["status"] = crd_status(&obj);
            Some(kinds)
        } else {
            None
        };
        self.check_namespace(kind, ns)?;
        if self.store.get(&kind.storage, ns, &name).is_some() {
            return Err(ApiError::already_exists(&kind.group, &kind.plural, &name));
        }
        if w.dry_run {
            return Ok(to_served(kind, &obj));
        }
        let stored = self.store.put(&kind.storage, obj);
        let mut fields = ManagedFields::default();
        fields.record_update(&w.manager, None, &stored);
        self.fields
            .insert((kind.storage.clone(), ns.to_string(), name.clone()), fields);
        if let Some(kinds) = crd_kinds {
            for k in kinds {
                self.registry.register(k);
            }
        }
        Ok(to_served(kind, &stored))
    }

    /// Builds the new stored object of an update of `old` to `new` (both storage form):
    /// immutable metadata, status isolation, generation, defaulting, finalizer rules.
    fn prepare_update(
        kind: &ResourceKind,
        old: &Value,
        mut new: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let name = meta_str(old, "name").unwrap_or_default().to_string();
        if status_only {
            let status = new.get("status").cloned();
            new = old.clone();
            if let Some(map) = new.as_object_mut() {
                set_or_remove(map, "status", status);
            }
        } else if kind.status_subresource {
            let status = old.get("status").cloned();
            if let Some(map) = new.as_object_mut() {
                set_or_remove(map, "status", status);
            }
        }
        let old_meta = old
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let meta = metadata_mut(&mut new);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "generateName",
            "resourceVersion",
        ] {
            set_or_remove(meta, field, old_meta.get(field).cloned());
        }
        meta.remove("managedFields");
        meta.remove("selfLink");
        if is_deleting(old) {
            let before = finalizers(old);
            if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &kind.group,
                    &kind.kind,
                    &name,
                    "metadata.finalizers",
                    &format!(
                        "Forbidden: no new finalizers can be added if the object is being \
                         deleted, found new finalizers [\"{added}\"]"
                    ),
                ));
            }
        }
        default_on_update(kind, &mut new);
        validate_labels(kind, &new)?;
        if kind.behavior == Behavior::Crd && !status_only {
            kinds_from_crd(&new)?;
            if let Some(names) = new_names(old, &new)
                && let Some(status) = new.get_mut("status").and_then(Value::as_object_mut)
            {
                status.insert("acceptedNames".to_string(), names);
            }
        }
        if generation_view(old, kind.status_subresource)
            != generation_view(&new, kind.status_subresource)
        {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            metadata_mut(&mut new).insert("generation".to_string(), json!(generation + 1));
        }
        Ok(new)
    }

    /// Commits an update prepared by [`Self::prepare_update`]; a no-op write changes nothing
    /// (but an apply still records its field ownership). `applied` is the applied
    /// configuration (storage form) of a server-side apply.
    fn commit_update(
        &mut self,
        kind: &ResourceKind,
        old: &Arc<Value>,
        new: Value,
        w: &Write,
        applied: Option<(&Value, bool)>,
    ) -> Result<Value, ApiError> {
        if w.dry_run {
            return Ok(to_served(kind, &new));
        }
        let ns = meta_str(old, "namespace").unwrap_or_default().to_string();
        let name = meta_str(old, "name").unwrap_or_default().to_string();
        let key = (kind.storage.clone(), ns.clone(), name.clone());
        let fields = self.fields.entry(key).or_default();
        match applied {
            Some((config, status_only)) => {
                fields.record_apply(&w.manager, Some(old), config, in_scope(kind, status_only));
            }
            None => fields.record_update(&w.manager, Some(old), &new),
        }
        if change_view(old) == change_view(&new) {
            return Ok(to_served(kind, old));
        }
        if is_deleting(&new)
            && finalizers(&new).is_empty()
            && !(kind.behavior == Behavior::Namespace && self.namespace_has_content(&name))
        {
            let removed = self.run(
                vec![Work::Remove {
                    storage: kind.storage.clone(),
                    namespace: ns,
                    name,
                    last: new.clone(),
                }],
                false,
            );
            return Ok(to_served(kind, removed.as_deref().unwrap_or(&new)));
        }
        let stored = self.store.put(&kind.storage, new);
        if kind.behavior == Behavior::Crd
            && let Ok(kinds) = kinds_from_crd(&stored)
        {
            self.registry.remove_crd(&name);
            for k in kinds {
                self.registry.register(k);
            }
        }
        Ok(to_served(kind, &stored))
    }

    fn check_rv(
        kind: &ResourceKind,
        name: &str,
        body: &Value,
        current: &Value,
    ) -> Result<(), ApiError> {
        if let Some(rv) = rv_of(body)
            && Some(rv) != rv_of(current)
        {
            return Err(ApiError::conflict(&kind.group, &kind.plural, name));
        }
        Ok(())
    }

    fn check_name(body: &Value, name: &str) -> Result<(), ApiError> {
        match meta_str(body, "name") {
            Some(n) if n == name => Ok(()),
            Some(n) => Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            ))),
            None => Err(ApiError::bad_request(format!(
                "the name of the object () does not match the name on the URL ({name})"
            ))),
        }
    }

    /// PUT of an object or of its status.
    pub(crate) fn update(
        &mut self,
        kind: &ResourceKind,
        ns: &str,
        name: &str,
        body: Value,
        status_only: bool,
        w: &Write,
    ) -> Result<Value, ApiError> {
        Self::check_type(kind, &body)?;
        Self::check_name(&body, name)?;
        Self::check_body_namespace(kind, &body, ns)?;
        let old = self.stored(kind, ns, name)?;
        if kind.origin != Origin::Builtin && rv_of(&body).is_none() {
            // Custom resources do not allow unconditional updates.
            return Err(ApiError::invalid(
                &kind.group,
                &kind.kind,
                name,
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            ));
        }
        Self::check_rv(kind, name, &body, &old)?;
        let new = Self::prepare_update(kind, &old, to_storage(kind, &body), status_only)?;
        self.commit_update(kind, &old, new, w, None)
    }

    /// PATCH of an object or of its status; returns the object and whether it was created
    /// (server-side apply of a missing object).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &mut self,
        kind: &ResourceKind,
        ns: &str,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        status_only: bool,
        w: &Write,
    ) -> Result<(Value, bool), ApiError> {
        if patch_type == PatchType::Strategic && !kind.strategic_merge {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types \
                 include: application/json-patch+json, application/merge-patch+json, \
                 application/apply-patch+yaml (strategic merge patch is not supported for \
                 {})",
                qualified(&kind.group, &kind.plural)
            )));
        }
        let mut applied_config = None;
        if patch_type == PatchType::Apply {
            let applied = crate::patch::parse_body(body, true)?;
            if applied.get("apiVersion").and_then(Value::as_str).is_none()
                || applied.get("kind").and_then(Value::as_str).is_none()
            {
                return Err(ApiError::bad_request(
                    "apiVersion and kind must be set in a server-side apply request",
                ));
            }
            Self::check_type(kind, &applied)?;
            if let Some(n) = meta_str(&applied, "name")
                && n != name
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            if self.store.get(&kind.storage, ns, name).is_none() {
                if status_only {
                    return Err(ApiError::not_found(&kind.group, &kind.plural, name));
                }
                let mut seed = json!({
                    "apiVersion": kind.api_version(),
                    "kind": kind.kind,
                    "metadata": {"name": name},
                });
                if kind.namespaced {
                    seed["metadata"]["namespace"] = json!(ns);
                }
                let mut obj = apply_patch(PatchType::Apply, &seed, body)?;
                if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
                    meta.remove("resourceVersion");
                }
                let created = self.create(kind, ns, obj, w)?;
                if !w.dry_run {
                    let mut fields = ManagedFields::default();
                    fields.record_apply(
                        &w.manager,
                        None,
                        &to_storage(kind, &applied),
                        in_scope(kind, false),
                    );
                    self.fields.insert(
                        (kind.storage.clone(), ns.to_string(), name.to_string()),
                        fields,
                    );
                }
                return Ok((created, true));
            }
            applied_config = Some(to_storage(kind, &applied));
        }
        let old = self.stored(kind, ns, name)?;
        let served = to_served(kind, &old);
        let patched = apply_patch(patch_type, &served, body)?;
        Self::check_type(kind, &patched)?;
        Self::check_rv(kind, name, &patched, &old)?;
        if meta_str(&patched, "name") != Some(name) {
            return Err(ApiError::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        Self::check_body_namespace(kind, &patched, ns)?;
        let new = Self::prepare_update(kind, &old, to_storage(kind, &patched), status_only)?;
        if let Some(config) = &applied_config
            && !w.force
        {
            let key = (kind.storage.clone(), ns.to_string(), name.to_string());
            let conflicts = self
                .fields
                .get(&key)
                .map(|f| f.conflicts(&w.manager, &old, config, in_scope(kind, status_only)))
                .unwrap_or_default();
            if !conflicts.is_empty() {
                let conflicts: Vec<(String, String)> = conflicts
                    .into_iter()
                    .map(|(manager, path)| (manager, display(&path)))
                    .collect();
                return Err(ApiError::apply_conflicts(
                    &kind.group,
                    &kind.plural,
                    name,
                    &kind.api_version(),
                    &conflicts,
                ));
            }
        }
        let applied = applied_config.as_ref().map(|c| (c, status_only));
        Ok((self.commit_update(kind, &old, new, w, applied)?, false))
    }

    fn namespace_has_content(&self, ns: &str) -> bool {
        self.store
            .storages()
            .iter()
            .any(|sk| self.store.list(sk, Some(ns), None).next().is_some())
    }

    /// DELETE of one object.
    pub(crate) fn delete(
        &mut self,
        kind: &ResourceKind,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let old = self.stored(kind, ns, name)?;
        if let Some(rv) = opts.precondition_rv.as_deref()
            && Some(rv) != rv_of(&old)
        {
            return Err(ApiError::conflict_msg(
                &kind.group,
                &kind.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, \
                     ResourceVersion in record: {}: the object might have been modified",
                    rv_of(&old).unwrap_or_default()
                ),
            ));
        }
        if let Some(uid) = opts.precondition_uid.as_deref()
            && Some(uid) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict_msg(
                &kind.group,
                &kind.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or_default()
                ),
            ));
        }
        let uid = meta_str(&old, "uid").map(str::to_string);
        let pending = !finalizers(&old).is_empty()
            || (kind.behavior == Behavior::Namespace && self.namespace_has_content(name));
        if opts.dry_run {
            return Ok(if pending {
                let mut obj = (*old).clone();
                if !is_deleting(&obj) {
                    metadata_mut(&mut obj)
                        .insert("deletionTimestamp".to_string(), json!(now_rfc3339()));
                }
                Deleted::Pending(to_served(kind, &obj))
            } else {
                Deleted::Gone(success_status(kind, name, uid.as_deref()))
            });
        }
        self.run(
            vec![Work::Delete {
                storage: kind.storage.clone(),
                namespace: ns.to_string(),
                name: name.to_string(),
                force: false,
            }],
            opts.orphan,
        );
        Ok(match self.store.get(&kind.storage, ns, name) {
            Some(obj) => Deleted::Pending(to_served(kind, obj)),
            None => Deleted::Gone(success_status(kind, name, uid.as_deref())),
        })
    }

    /// DELETE of a collection: deletes every matching object; returns the list of them.
    pub(crate) fn delete_collection(
        &mut self,
        kind: &ResourceKind,
        ns: Option<&str>,
        selectors: &Selectors,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let targets: Vec<(ObjectKey, Value)> = self
            .store
            .list(&kind.storage, ns, None)
            .map(|(k, o)| (k.clone(), to_served(kind, o)))
            .filter(|(_, served)| selectors.matches(served))
            .collect();
        let mut items = Vec::new();
        for ((obj_ns, name), served) in targets {
            let single = DeleteOptions {
                precondition_rv: None,
                precondition_uid: None,
                ..opts.clone()
            };
            match self.delete(kind, &obj_ns, &name, &single)? {
                Deleted::Pending(obj) => items.push(obj),
                Deleted::Gone(_) => items.push(served),
            }
        }
        Ok(json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": {"resourceVersion": self.store.current_rv().to_string()},
            "items": items,
        }))
    }

    /// Runs deletions to completion: finalizers, namespace content, garbage collection of
    /// dependents (unless `orphan`), CRD cleanup.
    /// Returns the first object removed, if any.
    fn run(&mut self, work: Vec<Work>, orphan: bool) -> Option<Arc<Value>> {
        let mut first_removed = None;
        let mut queue: VecDeque<Work> = work.into();
        // Bounded: every step removes an object or marks one as deleting.
        let mut budget = 1_000_000usize;
        while let Some(item) = queue.pop_front() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                tracing::warn!("deletion cascade did not settle");
                break;
            }
            let (storage, ns, name, last) = match item {
                Work::Delete {
                    storage,
                    namespace,
                    name,
                    force,
                } => {
                    let Some(obj) = self.store.get(&storage, &namespace, &name).cloned() else {
                        continue;
                    };
                    let is_ns = storage == namespaces_key();
                    let has_content = is_ns && self.namespace_has_content(&name);
                    if !force && (!finalizers(&obj).is_empty() || has_content) {
                        if !is_deleting(&obj) {
                            let mut marked = (*obj).clone();
                            let meta = metadata_mut(&mut marked);
                            meta.insert("deletionTimestamp".to_string(), json!(now_rfc3339()));
                            meta.insert("deletionGracePeriodSeconds".to_string(), json!(0));
                            if is_ns {
                                marked["status"] = json!({"phase": "Terminating"});
                            }
                            self.store.put(&storage, marked);
                            if is_ns {
                                for sk in self.store.storages() {
                                    let names: Vec<String> = self
                                        .store
                                        .list(&sk, Some(&name), None)
                                        .map(|(k, _)| k.1.clone())
                                        .collect();
                                    for n in names {
                                        queue.push_back(Work::Delete {
                                            storage: sk.clone(),
                                            namespace: name.clone(),
                                            name: n,
                                            force: false,
                                        });
                                    }
                                }
                                // Re-check once the content is gone.
                                queue.push_back(Work::Delete {
                                    storage,
                                    namespace,
                                    name,
                                    force: false,
                                });
                            }
                        }
                        continue;
                    }
                    (storage, namespace, name, None)
                }
                Work::Remove {
                    storage,
                    namespace,
                    name,
                    last,
                } => (storage, namespace, name, Some(last)),
            };
            let Some(removed) = self.store.remove(&storage, &ns, &name, last) else {
                continue;
            };
            self.fields
                .remove(&(storage.clone(), ns.clone(), name.clone()));
            if first_removed.is_none() {
                first_removed = Some(removed.clone());
            }
            // CustomResourceDefinition: stop serving its kinds and drop their objects.
            if self
                .registry
                .any_for_storage(&storage)
                .is_some_and(|k| k.behavior == Behavior::Crd)
            {
                for sk in self.registry.remove_crd(&name) {
                    let keys: Vec<ObjectKey> = self
                        .store
                        .list(&sk, None, None)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for (n_ns, n) in keys {
                        queue.push_back(Work::Delete {
                            storage: sk.clone(),
                            namespace: n_ns,
                            name: n,
                            force: true,
                        });
                    }
                }
            }
            // Garbage collection of dependents.
            if !orphan && let Some(uid) = meta_str(&removed, "uid") {
                for sk in self.store.storages() {
                    let dependents: Vec<ObjectKey> = self
                        .store
                        .list(&sk, None, None)
                        .filter(|(_, o)| owned_by(o, uid))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for (d_ns, d) in dependents {
                        queue.push_back(Work::Delete {
                            storage: sk.clone(),
                            namespace: d_ns,
                            name: d,
                            force: false,
                        });
                    }
                }
            }
            // A terminating namespace goes once it is empty.
            if !ns.is_empty()
                && self
                    .store
                    .get(&namespaces_key(), "", &ns)
                    .is_some_and(|n| is_deleting(n))
            {
                queue.push_back(Work::Delete {
                    storage: namespaces_key(),
                    namespace: String::new(),
                    name: ns.clone(),
                    force: false,
                });
            }
        }
        first_removed
    }
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        })
}

/// The CRD's `spec.names` when they changed between `old` and `new`.
fn new_names(old: &Value, new: &Value) -> Option<Value> {
    let names = |v: &Value| v.get("spec").and_then(|s| s.get("names")).cloned();
    let n = names(new)?;
    (names(old).as_ref() != Some(&n)).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let widget =
            ResourceKind::namespaced("example.com", "v1", "Widget", "widgets").with_status();
        State::new(vec![widget], 1000, &["default".to_string()], true).unwrap()
    }

    fn widget(state: &State) -> ResourceKind {
        state
            .registry
            .find("example.com", "v1", "widgets")
            .unwrap()
            .clone()
    }

    fn kind(state: &State, group: &str, plural: &str) -> ResourceKind {
        let version = "v1";
        state.registry.find(group, version, plural).unwrap().clone()
    }

    #[test]
    fn create_sets_metadata_and_drops_status() {
        let mut s = state();
        let w = widget(&s);
        let obj = s
            .create(
                &w,
                "default",
                json!({"metadata": {"name": "a", "uid": "x"}, "spec": {"n": 1}, "status": {"ok": true}}), &Write::default())
            .unwrap();
        assert_eq!(obj["apiVersion"], "example.com/v1");
        assert_eq!(obj["kind"], "Widget");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert_ne!(obj["metadata"]["uid"], "x");
        assert!(obj.get("status").is_none());
        let err = s
            .create(
                &w,
                "default",
                json!({"metadata": {"name": "a"}}),
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.reason, Reason::AlreadyExists);
        let err = s
            .create(&w, "default", json!({"metadata": {}}), &Write::default())
            .unwrap_err();
        assert_eq!(err.code, 422);
        let err = s
            .create(
                &w,
                "missing",
                json!({"metadata": {"name": "b"}}),
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.code, 404);
        let gen_named = s
            .create(
                &w,
                "default",
                json!({"metadata": {"generateName": "w-"}}),
                &Write::default(),
            )
            .unwrap();
        assert!(
            gen_named["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("w-")
        );
    }

    #[test]
    fn invalid_labels_are_rejected() {
        let mut s = state();
        let cm = kind(&s, "", "configmaps");
        let err = s
            .create(
                &cm,
                "default",
                json!({"metadata": {"name": "a", "labels": {"k": "bad value"}}}),
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.code, 422);
        let err = s
            .create(
                &cm,
                "default",
                json!({"metadata": {"name": "a", "labels": {"-k": "v"}}}),
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.code, 422);
        s.create(
            &cm,
            "default",
            json!({"metadata": {"name": "a", "labels": {"example.com/k": ""}}}),
            &Write::default(),
        )
        .unwrap();
        let err = s
            .patch(
                &cm,
                "default",
                "a",
                PatchType::Merge,
                br#"{"metadata":{"labels":{"k":5}}}"#,
                false,
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn dry_run_create_does_not_persist() {
        let mut s = state();
        let w = widget(&s);
        let rv = s.store.current_rv();
        s.create(
            &w,
            "default",
            json!({"metadata": {"name": "a"}}),
            &Write::dry(),
        )
        .unwrap();
        assert_eq!(s.store.current_rv(), rv);
        assert!(s.get(&w, "default", "a").is_err());
    }

    #[test]
    fn status_isolation_and_generation() {
        let mut s = state();
        let w = widget(&s);
        s.create(
            &w,
            "default",
            json!({"metadata": {"name": "a"}, "spec": {"n": 1}}),
            &Write::default(),
        )
        .unwrap();
        let (obj, _) = s
            .patch(
                &w,
                "default",
                "a",
                PatchType::Merge,
                br#"{"status": {"ok": true}}"#,
                false,
                &Write::default(),
            )
            .unwrap();
        assert!(obj.get("status").is_none());
        let (obj, _) = s
            .patch(
                &w,
                "default",
                "a",
                PatchType::Merge,
                br#"{"status": {"ok": true}, "spec": {"n": 5}}"#,
                true,
                &Write::default(),
            )
            .unwrap();
        assert_eq!(obj["status"]["ok"], true);
        assert_eq!(obj["spec"]["n"], 1);
        assert_eq!(obj["metadata"]["generation"], 1);
        let (obj, _) = s
            .patch(
                &w,
                "default",
                "a",
                PatchType::Merge,
                br#"{"spec": {"n": 2}}"#,
                false,
                &Write::default(),
            )
            .unwrap();
        assert_eq!(obj["metadata"]["generation"], 2);
        assert_eq!(obj["status"]["ok"], true);
        let (obj, _) = s
            .patch(
                &w,
                "default",
                "a",
                PatchType::Merge,
                br#"{"metadata": {"labels": {"a": "b"}}}"#,
                false,
                &Write::default(),
            )
            .unwrap();
        assert_eq!(obj["metadata"]["generation"], 2);
    }

    #[test]
    fn noop_patch_keeps_resource_version() {
        let mut s = state();
        let w = widget(&s);
        let created = s
            .create(
                &w,
                "default",
                json!({"metadata": {"name": "a"}, "spec": {"n": 1}}),
                &Write::default(),
            )
            .unwrap();
        let (obj, _) = s
            .patch(
                &w,
                "default",
                "a",
                PatchType::Merge,
                br#"{"spec": {"n": 1}}"#,
                false,
                &Write::default(),
            )
            .unwrap();
        assert_eq!(
            obj["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn custom_resources_require_a_resource_version_on_update() {
        let mut s = state();
        let w = widget(&s);
        s.create(
            &w,
            "default",
            json!({"metadata": {"name": "a"}}),
            &Write::default(),
        )
        .unwrap();
        let body = json!({"metadata": {"name": "a"}, "spec": {"n": 2}});
        let err = s
            .update(&w, "default", "a", body, false, &Write::default())
            .unwrap_err();
        assert_eq!(err.code, 422);
        let cm = kind(&s, "", "configmaps");
        s.create(
            &cm,
            "default",
            json!({"metadata": {"name": "c"}}),
            &Write::default(),
        )
        .unwrap();
        let body = json!({"metadata": {"name": "c"}, "data": {"k": "v"}});
        s.update(&cm, "default", "c", body, false, &Write::default())
            .unwrap();
    }

    #[test]
    fn stale_resource_version_conflicts() {
        let mut s = state();
        let w = widget(&s);
        let created = s
            .create(
                &w,
                "default",
                json!({"metadata": {"name": "a"}, "spec": {"n": 1}}),
                &Write::default(),
            )
            .unwrap();
        s.patch(
            &w,
            "default",
            "a",
            PatchType::Merge,
            br#"{"spec": {"n": 2}}"#,
            false,
            &Write::default(),
        )
        .unwrap();
        let err = s
            .update(
                &w,
                "default",
                "a",
                created.clone(),
                false,
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.reason, Reason::Conflict);
        let body = format!(
            r#"{{"metadata": {{"resourceVersion": "{}"}}, "spec": {{"n": 3}}}}"#,
            created["metadata"]["resourceVersion"].as_str().unwrap()
        );
        let err = s
            .patch(
                &w,
                "default",
                "a",
                PatchType::Merge,
                body.as_bytes(),
                false,
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.code, 409);
    }

    #[test]
    fn finalizers_delay_deletion() {
        let mut s = state();
        let w = widget(&s);
        s.create(
            &w,
            "default",
            json!({"metadata": {"name": "a", "finalizers": ["x/y"]}}),
            &Write::default(),
        )
        .unwrap();
        let Deleted::Pending(obj) = s
            .delete(&w, "default", "a", &DeleteOptions::default())
            .unwrap()
        else {
            panic!("expected pending deletion");
        };
        assert!(obj["metadata"]["deletionTimestamp"].is_string());
        let err = s
            .patch(
                &w,
                "default",
                "a",
                PatchType::Merge,
                br#"{"metadata": {"finalizers": ["x/y", "z"]}}"#,
                false,
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.code, 422);
        s.patch(
            &w,
            "default",
            "a",
            PatchType::Merge,
            br#"{"metadata": {"finalizers": null}}"#,
            false,
            &Write::default(),
        )
        .unwrap();
        assert!(s.get(&w, "default", "a").is_err());
    }

    #[test]
    fn owner_references_cascade() {
        let mut s = state();
        let w = widget(&s);
        let cm = kind(&s, "", "configmaps");
        let owner = s
            .create(
                &w,
                "default",
                json!({"metadata": {"name": "o"}}),
                &Write::default(),
            )
            .unwrap();
        let uid = owner["metadata"]["uid"].clone();
        s.create(
            &cm,
            "default",
            json!({"metadata": {"name": "dep", "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Widget", "name": "o", "uid": uid}]}}), &Write::default())
        .unwrap();
        s.delete(&w, "default", "o", &DeleteOptions::default())
            .unwrap();
        assert!(s.get(&cm, "default", "dep").is_err());
    }

    #[test]
    fn namespace_deletion_removes_content() {
        let mut s = state();
        let ns = kind(&s, "", "namespaces");
        let cm = kind(&s, "", "configmaps");
        s.create(
            &ns,
            "",
            json!({"metadata": {"name": "t"}}),
            &Write::default(),
        )
        .unwrap();
        s.create(
            &cm,
            "t",
            json!({"metadata": {"name": "c", "finalizers": ["f"]}}),
            &Write::default(),
        )
        .unwrap();
        let Deleted::Pending(obj) = s.delete(&ns, "", "t", &DeleteOptions::default()).unwrap()
        else {
            panic!("expected a terminating namespace");
        };
        assert_eq!(obj["status"]["phase"], "Terminating");
        let err = s
            .create(
                &cm,
                "t",
                json!({"metadata": {"name": "d"}}),
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.code, 403);
        s.patch(
            &cm,
            "t",
            "c",
            PatchType::Merge,
            br#"{"metadata": {"finalizers": []}}"#,
            false,
            &Write::default(),
        )
        .unwrap();
        assert!(s.get(&ns, "", "t").is_err());
    }

    #[test]
    fn pagination_and_expired_continue() {
        let mut s = state();
        let cm = kind(&s, "", "configmaps");
        for i in 0..5 {
            s.create(
                &cm,
                "default",
                json!({"metadata": {"name": format!("c{i}")}}),
                &Write::default(),
            )
            .unwrap();
        }
        let mut opts = ListOptions {
            limit: Some(2),
            ..Default::default()
        };
        let page = s.list(&cm, Some("default"), &opts).unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        assert_eq!(page["metadata"]["remainingItemCount"], 3);
        let token = page["metadata"]["continue"].as_str().unwrap().to_string();
        opts.continue_token = Some(token.clone());
        let page2 = s.list(&cm, Some("default"), &opts).unwrap();
        assert_eq!(page2["items"][0]["metadata"]["name"], "c2");
        assert_eq!(
            page2["metadata"]["resourceVersion"],
            page["metadata"]["resourceVersion"]
        );
        s.store.expire_history();
        let err = s.list(&cm, Some("default"), &opts).unwrap_err();
        assert_eq!(err.code, 410);
        opts.continue_token = Some("zz".to_string());
        assert_eq!(s.list(&cm, Some("default"), &opts).unwrap_err().code, 400);
    }

    #[test]
    fn crd_registers_and_unregisters_kinds() {
        let mut s = state();
        let crd_kind = kind(&s, "apiextensions.k8s.io", "customresourcedefinitions");
        let crd = json!({
            "metadata": {"name": "gadgets.example.org"},
            "spec": {"group": "example.org", "scope": "Cluster",
                "names": {"plural": "gadgets", "kind": "Gadget"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}
        });
        let created = s.create(&crd_kind, "", crd, &Write::default()).unwrap();
        assert_eq!(created["status"]["conditions"][1]["type"], "Established");
        let gadget = kind(&s, "example.org", "gadgets");
        assert!(!gadget.namespaced);
        s.create(
            &gadget,
            "",
            json!({"metadata": {"name": "g"}}),
            &Write::default(),
        )
        .unwrap();
        s.delete(
            &crd_kind,
            "",
            "gadgets.example.org",
            &DeleteOptions::default(),
        )
        .unwrap();
        assert!(s.registry.find("example.org", "v1", "gadgets").is_none());
        assert!(s.store.get(&gadget.storage, "", "g").is_none());
    }

    #[test]
    fn apply_conflicts_with_other_managers_unless_forced() {
        let mut s = state();
        let w = widget(&s);
        let apply = |size: i64| {
            format!("apiVersion: example.com/v1\nkind: Widget\nspec:\n  size: {size}\n")
        };
        let patch = |s: &mut State, body: String, write: Write| {
            s.patch(
                &w,
                "default",
                "a",
                PatchType::Apply,
                body.as_bytes(),
                false,
                &write,
            )
        };
        patch(&mut s, apply(1), Write::by("a")).unwrap();
        // The same value from another manager shares the field.
        patch(&mut s, apply(1), Write::by("b")).unwrap();
        let err = patch(&mut s, apply(2), Write::by("b")).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("conflict with \"a\""),
            "{}",
            err.message
        );
        assert!(err.message.contains(".spec.size"), "{}", err.message);
        let forced = Write {
            force: true,
            ..Write::by("b")
        };
        patch(&mut s, apply(2), forced).unwrap();
        let err = patch(&mut s, apply(3), Write::by("a")).unwrap_err();
        assert_eq!(err.code, 409);
        // A non-apply write takes the fields it changes.
        s.patch(
            &w,
            "default",
            "a",
            PatchType::Merge,
            br#"{"spec":{"size":4}}"#,
            false,
            &Write::by("c"),
        )
        .unwrap();
        let err = patch(&mut s, apply(5), Write::by("b")).unwrap_err();
        assert!(
            err.message.contains("conflict with \"c\""),
            "{}",
            err.message
        );
        // Deleting the object forgets its managers.
        s.delete(&w, "default", "a", &DeleteOptions::default())
            .unwrap();
        patch(&mut s, apply(6), Write::by("b")).unwrap();
        patch(&mut s, apply(7), Write::by("b")).unwrap();
    }

    #[test]
    fn apply_creates_and_strategic_is_rejected_for_custom_kinds() {
        let mut s = state();
        let w = widget(&s);
        let (obj, created) = s
            .patch(
                &w,
                "default",
                "a",
                PatchType::Apply,
                b"apiVersion: example.com/v1\nkind: Widget\nspec:\n  n: 1\n",
                false,
                &Write::default(),
            )
            .unwrap();
        assert!(created);
        assert_eq!(obj["spec"]["n"], 1);
        let err = s
            .patch(
                &w,
                "default",
                "a",
                PatchType::Apply,
                b"spec:\n  n: 1\n",
                false,
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.code, 400);
        let err = s
            .patch(
                &w,
                "default",
                "a",
                PatchType::Strategic,
                b"{}",
                false,
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.code, 415);
        let err = s
            .patch(
                &w,
                "default",
                "zz",
                PatchType::Merge,
                b"{}",
                false,
                &Write::default(),
            )
            .unwrap_err();
        assert_eq!(err.code, 404);
    }
}
