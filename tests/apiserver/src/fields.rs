//! Field ownership for server-side apply: which field manager last set which field, so that
//! a non-forced apply changing a field owned by another manager is a 409 Conflict.
//!
//! Simplified from the real structured-merge-diff: fields are the leaf paths of objects
//! (lists and scalars are atomic leaves, lists are not merged by key); managers are keyed by
//! name only (not by operation); ownership is kept beside the object, not in
//! `metadata.managedFields`; fields a manager stops applying are released but not removed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A field: the keys from the object root to a leaf.
pub(crate) type FieldPath = Vec<String>;

/// Fields that are never owned (identity and server-managed metadata).
fn ignored(path: &[String]) -> bool {
    match path {
        [top] if top == "apiVersion" || top == "kind" => true,
        [meta, field, ..] if meta == "metadata" => matches!(
            field.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
        ),
        _ => false,
    }
}

fn collect(value: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                prefix.push(key.clone());
                if !ignored(prefix) {
                    collect(child, prefix, out);
                }
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() && !value.is_null() {
                out.insert(prefix.clone());
            }
        }
    }
}

/// The leaf fields set (non-null) in `value`.
pub(crate) fn leaf_paths(value: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    collect(value, &mut Vec::new(), &mut out);
    out
}

fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |cur, key| cur.as_object()?.get(key))
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `.spec.holderIdentity`, as the real server prints field paths.
pub(crate) fn display(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

/// Which manager owns which fields of one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ManagedFields {
    owners: BTreeMap<String, BTreeSet<FieldPath>>,
}

impl ManagedFields {
    /// The conflicts `(other manager, field)` of `manager` applying `applied` onto `current`:
    /// fields the apply would change that another manager owns.
    pub(crate) fn conflicts(
        &self,
        manager: &str,
        current: &Value,
        applied: &Value,
        in_scope: impl Fn(&[String]) -> bool,
    ) -> Vec<(String, FieldPath)> {
        let mut out = Vec::new();
        for path in leaf_paths(applied).into_iter().filter(|p| in_scope(p)) {
            if value_at(current, &path) == value_at(applied, &path) {
                continue;
            }
            for (owner, fields) in &self.owners {
                if owner != manager && fields.iter().any(|f| overlaps(f, &path)) {
                    out.push((owner.clone(), path.clone()));
                }
            }
        }
        out
    }

    /// Records an apply onto `current` (`None`: the apply created the object): `manager` owns
    /// exactly the applied fields in scope. Fields it changed are taken from any other
    /// manager (as a forced apply does); fields applied with their current value are shared.
    pub(crate) fn record_apply(
        &mut self,
        manager: &str,
        current: Option<&Value>,
        applied: &Value,
        in_scope: impl Fn(&[String]) -> bool,
    ) {
        let fields: BTreeSet<FieldPath> = leaf_paths(applied)
            .into_iter()
            .filter(|p| in_scope(p))
            .collect();
        let changed: Vec<&FieldPath> = fields
            .iter()
            .filter(|p| current.and_then(|c| value_at(c, p)) != value_at(applied, p))
            .collect();
        for (owner, owned) in self.owners.iter_mut() {
            if owner != manager {
                owned.retain(|f| !changed.iter().any(|p| overlaps(f, p)));
            }
        }
        let mine = self.owners.entry(manager.to_string()).or_default();
        mine.retain(|f| !in_scope(f));
        mine.extend(fields);
        self.owners.retain(|_, owned| !owned.is_empty());
    }

    /// Records a non-apply write from `old` to `new` by `manager`: it owns the fields it
    /// set or changed; fields that disappeared are owned by no one.
    pub(crate) fn record_update(&mut self, manager: &str, old: Option<&Value>, new: &Value) {
        let new_fields = leaf_paths(new);
        let changed: BTreeSet<FieldPath> = new_fields
            .iter()
            .filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p))
            .cloned()
            .collect();
        for owned in self.owners.values_mut() {
            owned.retain(|f| new_fields.contains(f) && !changed.iter().any(|c| overlaps(f, c)));
        }
        if !changed.is_empty() {
            self.owners
                .entry(manager.to_string())
                .or_default()
                .extend(changed);
        }
        self.owners.retain(|_, owned| !owned.is_empty());
    }

    /// The fields `manager` owns.
    #[cfg(test)]
    pub(crate) fn owned_by(&self, manager: &str) -> BTreeSet<FieldPath> {
        self.owners.get(manager).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn leaves_skip_identity_and_nulls() {
        let v = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"k": "v"}},
            "spec": {"a": 1, "b": [1, 2], "c": null, "d": {}}});
        let leaves = leaf_paths(&v);
        assert_eq!(
            leaves,
            BTreeSet::from([
                p("metadata.labels.k"),
                p("spec.a"),
                p("spec.b"),
                p("spec.d")
            ])
        );
    }

    #[test]
    fn apply_conflicts_only_on_changed_fields_owned_by_others() {
        let mut mf = ManagedFields::default();
        let all = |_: &[String]| true;
        mf.record_apply(
            "a",
            None,
            &json!({"spec": {"holder": "a", "renew": 1}}),
            all,
        );
        let current = json!({"spec": {"holder": "a", "renew": 1}});
        // Same values: no conflict.
        assert!(
            mf.conflicts("b", &current, &json!({"spec": {"holder": "a"}}), all)
                .is_empty()
        );
        // Changed value owned by `a`: conflict.
        let c = mf.conflicts("b", &current, &json!({"spec": {"holder": "b"}}), all);
        assert_eq!(c, vec![("a".to_string(), p("spec.holder"))]);
        // A's own apply never conflicts with itself.
        assert!(
            mf.conflicts("a", &current, &json!({"spec": {"holder": "z"}}), all)
                .is_empty()
        );
        // Applying a current value shares the field.
        mf.record_apply("c", Some(&current), &json!({"spec": {"renew": 1}}), all);
        assert_eq!(mf.owned_by("c"), BTreeSet::from([p("spec.renew")]));
        assert!(mf.owned_by("a").contains(&p("spec.renew")));
        // Forcing (recording) a change moves ownership.
        mf.record_apply("b", Some(&current), &json!({"spec": {"holder": "b"}}), all);
        assert_eq!(mf.owned_by("a"), BTreeSet::from([p("spec.renew")]));
        assert_eq!(mf.owned_by("b"), BTreeSet::from([p("spec.holder")]));
    }

    #[test]
    fn updates_take_changed_fields_and_drop_removed_ones() {
        let mut mf = ManagedFields::default();
        let all = |_: &[String]| true;
        mf.record_apply("a", None, &json!({"spec": {"x": 1, "y": 1}}), all);
        let old = json!({"spec": {"x": 1, "y": 1}});
        let new = json!({"spec": {"x": 2}});
        mf.record_update("u", Some(&old), &new);
        assert_eq!(mf.owned_by("u"), BTreeSet::from([p("spec.x")]));
        assert!(mf.owned_by("a").is_empty());
        assert!(
            mf.conflicts("a", &new, &json!({"spec": {"x": 3}}), all)
                .len()
                == 1
        );
        assert_eq!(display(&p("spec.x")), ".spec.x");
    }

    #[test]
    fn scope_limits_apply() {
        let mut mf = ManagedFields::default();
        let status_only = |f: &[String]| f.first().is_some_and(|s| s == "status");
        mf.record_apply(
            "a",
            None,
            &json!({"spec": {"x": 1}, "status": {"ok": true}}),
            status_only,
        );
        assert_eq!(mf.owned_by("a"), BTreeSet::from([p("status.ok")]));
    }
}
