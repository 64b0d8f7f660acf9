//! DELETE of one object and of a collection, and running deletions to completion
//! (finalizers, namespace content, garbage collection, CRD cleanup).

use super::*;

impl State {
    pub(super) fn namespace_has_content(&self, ns: &str) -> bool {
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
    pub(super) fn run(&mut self, work: Vec<Work>, orphan: bool) -> Option<Arc<Value>> {
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
