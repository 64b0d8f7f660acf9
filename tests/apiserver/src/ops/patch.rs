//! PATCH: JSON, merge and strategic merge patches, and server-side apply.

use super::*;

impl State {
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
        part: Part,
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
                if part == Part::Status {
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
                        in_scope(kind, Part::Object),
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
        let new = Self::prepare_update(kind, &old, to_storage(kind, &patched), part)?;
        if let Some(config) = &applied_config
            && !w.force
        {
            let key = (kind.storage.clone(), ns.to_string(), name.to_string());
            let conflicts = self
                .fields
                .get(&key)
                .map(|f| f.conflicts(&w.manager, &old, config, in_scope(kind, part)))
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
        let applied = applied_config.as_ref().map(|c| (c, part));
        Ok((self.commit_update(kind, &old, new, w, applied)?, false))
    }
}
