//! POST: creating objects.

use super::*;

impl State {
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
}
