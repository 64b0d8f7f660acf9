//! PUT, and what every write of an existing object shares: preparing and committing it.

use super::*;

impl State {
    /// Builds the new stored object of an update of `old` to `new` (both storage form):
    /// immutable metadata, status isolation, generation, defaulting, finalizer rules.
    pub(super) fn prepare_update(
        kind: &ResourceKind,
        old: &Value,
        mut new: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let name = meta_str(old, "name").unwrap_or_default().to_string();
        if part == Part::Status {
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
        if kind.behavior == Behavior::Crd && part == Part::Object {
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
    pub(super) fn commit_update(
        &mut self,
        kind: &ResourceKind,
        old: &Arc<Value>,
        new: Value,
        w: &Write,
        applied: Option<(&Value, Part)>,
    ) -> Result<Value, ApiError> {
        if w.dry_run {
            return Ok(to_served(kind, &new));
        }
        let ns = meta_str(old, "namespace").unwrap_or_default().to_string();
        let name = meta_str(old, "name").unwrap_or_default().to_string();
        let key = (kind.storage.clone(), ns.clone(), name.clone());
        let fields = self.fields.entry(key).or_default();
        match applied {
            Some((config, part)) => {
                fields.record_apply(&w.manager, Some(old), config, in_scope(kind, part));
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

    pub(super) fn check_rv(
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

    pub(super) fn check_name(body: &Value, name: &str) -> Result<(), ApiError> {
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
        part: Part,
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
        let new = Self::prepare_update(kind, &old, to_storage(kind, &body), part)?;
        self.commit_update(kind, &old, new, w, None)
    }
}
