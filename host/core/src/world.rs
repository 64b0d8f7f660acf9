//! An in-memory API server: manifests keyed by (group, kind, namespace, name), written the way
//! the Kubernetes API server writes them.
//!
//! Rules (each has a unit test below):
//! - writes are JSON merge patches (RFC 7396);
//! - a status-subresource patch changes only `status` (the rest of the patch is ignored);
//!   a main patch never changes `status`;
//! - a change to anything but `metadata` and `status` bumps `metadata.generation`;
//! - every write that changes something sets `metadata.resourceVersion` to the next value of
//!   one global counter; a write that changes nothing leaves it alone;
//! - a patch whose resourceVersion precondition is stale fails with [`WorldError::Conflict`];
//!   patches of one response on one object are chained ([`World::apply_response`]);
//! - server-managed metadata (`uid`, `creationTimestamp`, `resourceVersion`, `generation`,
//!   `name`, `namespace`) cannot be changed by a write; creating fills whichever is missing.

use std::collections::{BTreeMap, HashMap};

use capt_policy::{ObjectRef, Patch, Subresource};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::policy::BoxError;
use crate::rounds::ObjectSource;

/// Metadata fields only the server writes.
const SERVER_MANAGED: [&str; 6] = [
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "name",
    "namespace",
];

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The manifest lacks `apiVersion`, `kind` or `metadata.name`, or is not an object.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// The patch's merge patch is not a JSON object.
    #[error("invalid merge patch for {target}: {reason}")]
    InvalidPatch {
        /// The patched object.
        target: Box<ObjectRef>,
        /// What is wrong.
        reason: String,
    },
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(ObjectRef),
    /// The object changed since the version the patch was computed from. Transient: re-read
    /// and reconcile again.
    #[error(
        "conflict: the patch of {target} requires resourceVersion {expected}, but the object is at {actual}"
    )]
    Conflict {
        /// The patched object.
        target: Box<ObjectRef>,
        /// The version the patch was conditioned on.
        expected: String,
        /// The object's current version.
        actual: String,
    },
}

/// Identity of a stored object: versions of one API group are the same object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    group: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl Key {
    fn of(reference: &ObjectRef) -> Self {
        Self {
            group: reference.group().to_owned(),
            kind: reference.kind.clone(),
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
        }
    }
}

/// The in-memory store of manifests. See the module documentation for its write rules.
#[derive(Debug, Default, Clone)]
pub struct World {
    objects: BTreeMap<Key, Value>,
    /// The last resourceVersion handed out.
    resource_version: u64,
    /// The last uid suffix handed out.
    uids: u64,
}

impl World {
    /// An empty world.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates the object, or merges `manifest` into the existing one (status included), as
    /// another controller or a user would. Returns the object's reference.
    ///
    /// Creating fills missing `metadata.uid`, `resourceVersion`, `generation` (1) and
    /// `creationTimestamp` (`now`).
    pub fn apply(&mut self, manifest: Value, now: DateTime<Utc>) -> Result<ObjectRef, WorldError> {
        let reference = object_ref_of(&manifest)?;
        let key = Key::of(&reference);
        match self.objects.get(&key) {
            Some(old) => {
                let mut new = old.clone();
                json_patch::merge(&mut new, &manifest);
                self.commit(key, new);
            }
            None => self.create(key, manifest, now),
        }
        Ok(reference)
    }

    /// Deletes the object; false if it did not exist.
    pub fn delete(&mut self, reference: &ObjectRef) -> bool {
        self.objects.remove(&Key::of(reference)).is_some()
    }

    /// The object's manifest.
    pub fn get(&self, reference: &ObjectRef) -> Option<&Value> {
        self.objects.get(&Key::of(reference))
    }

    /// Every object with its reference (the stored `apiVersion`), in key order.
    pub fn objects(&self) -> impl Iterator<Item = (ObjectRef, &Value)> {
        self.objects.iter().map(|(key, manifest)| {
            let api_version = manifest["apiVersion"].as_str().unwrap_or_default();
            let reference =
                ObjectRef::new(api_version, &key.kind, key.namespace.as_deref(), &key.name);
            (reference, manifest)
        })
    }

    /// Applies one patch, if the object is at `precondition` (when given). Returns the
    /// object's resourceVersion after the patch.
    pub fn patch(
        &mut self,
        patch: &Patch,
        precondition: Option<&str>,
    ) -> Result<String, WorldError> {
        let target = &patch.target;
        let key = Key::of(target);
        let merge_patch: Value =
            serde_json::from_str(&patch.merge_patch).map_err(|e| WorldError::InvalidPatch {
                target: Box::new(target.clone()),
                reason: e.to_string(),
            })?;
        if !merge_patch.is_object() {
            return Err(WorldError::InvalidPatch {
                target: Box::new(target.clone()),
                reason: "not a JSON object".into(),
            });
        }
        let old = self
            .objects
            .get(&key)
            .ok_or_else(|| WorldError::NotFound(target.clone()))?;
        let actual = resource_version(old);
        if let Some(expected) = precondition
            && expected != actual
        {
            return Err(WorldError::Conflict {
                target: Box::new(target.clone()),
                expected: expected.to_owned(),
                actual: actual.to_owned(),
            });
        }
        let mut merged = old.clone();
        json_patch::merge(&mut merged, &merge_patch);
        let new = match patch.subresource {
            Subresource::Status => with_status_of(old.clone(), &merged),
            Subresource::Main => with_status_of(merged, old),
        };
        Ok(self.commit(key, new))
    }

    /// Applies the patches of one response in order. A patch on an object an earlier patch of
    /// this response already wrote is conditioned on the version that write produced, not on
    /// the observed version it carries (see `patch.resource-version` in `policy.wit`).
    /// Stops at the first failure; earlier patches stay applied, as on an API server.
    pub fn apply_response(&mut self, patches: &[Patch]) -> Result<(), WorldError> {
        let mut produced: HashMap<Key, String> = HashMap::new();
        for patch in patches {
            let key = Key::of(&patch.target);
            let precondition = patch
                .resource_version
                .as_deref()
                .map(|observed| produced.get(&key).map_or(observed, String::as_str));
            let version = self.patch(patch, precondition)?;
            produced.insert(key, version);
        }
        Ok(())
    }

    fn create(&mut self, key: Key, mut manifest: Value, now: DateTime<Utc>) {
        // Keep numeric versions given in a manifest below the counter, so the counter never
        // hands out a version an object already had.
        if let Some(given) = manifest["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
        {
            self.resource_version = self.resource_version.max(given);
        }
        self.uids += 1;
        let uid = format!("00000000-0000-0000-0000-{:012x}", self.uids);
        self.resource_version += 1;
        let defaults = [
            ("uid", json!(uid)),
            ("resourceVersion", json!(self.resource_version.to_string())),
            ("generation", json!(1)),
            (
                "creationTimestamp",
                json!(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
            ),
        ];
        let metadata = metadata_mut(&mut manifest);
        for (field, value) in defaults {
            metadata.entry(field).or_insert(value);
        }
        self.objects.insert(key, manifest);
    }

    /// Stores `new` in place of the object at `key`, keeping server-managed metadata and
    /// bumping generation and resourceVersion as the API server would. Returns the
    /// resourceVersion after the write.
    fn commit(&mut self, key: Key, mut new: Value) -> String {
        let old = &self.objects[&key];
        let old_metadata = old["metadata"].as_object().cloned().unwrap_or_default();
        let metadata = metadata_mut(&mut new);
        for field in SERVER_MANAGED {
            match old_metadata.get(field) {
                Some(value) => metadata.insert(field.to_owned(), value.clone()),
                None => metadata.remove(field),
            };
        }
        if &new == old {
            return resource_version(old).to_owned();
        }
        if without_metadata_and_status(&new) != without_metadata_and_status(old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            metadata_mut(&mut new).insert("generation".into(), json!(generation));
        }
        self.resource_version += 1;
        let version = self.resource_version.to_string();
        metadata_mut(&mut new).insert("resourceVersion".into(), json!(version));
        self.objects.insert(key, new);
        version
    }
}

impl ObjectSource for World {
    fn get(&self, reference: &ObjectRef) -> Result<Option<String>, BoxError> {
        Ok(World::get(self, reference).map(Value::to_string))
    }
}

/// The identity inside a manifest: `apiVersion`, `kind`, `metadata.namespace` (absent for
/// cluster-scoped objects) and `metadata.name`.
pub fn object_ref_of(manifest: &Value) -> Result<ObjectRef, WorldError> {
    let field = |value: &Value, path: &str| {
        value
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                WorldError::InvalidManifest(format!("`{path}` is missing or not a string"))
            })
    };
    if !manifest.is_object() {
        return Err(WorldError::InvalidManifest(format!(
            "not a mapping: {manifest}"
        )));
    }
    Ok(ObjectRef {
        api_version: field(&manifest["apiVersion"], "apiVersion")?,
        kind: field(&manifest["kind"], "kind")?,
        namespace: manifest["metadata"]["namespace"]
            .as_str()
            .map(str::to_owned),
        name: field(&manifest["metadata"]["name"], "metadata.name")?,
    })
}

fn resource_version(manifest: &Value) -> &str {
    manifest["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
}

/// `target` with its `status` replaced by `source`'s (removed if `source` has none).
fn with_status_of(mut target: Value, source: &Value) -> Value {
    if let Some(object) = target.as_object_mut() {
        match source.get("status") {
            Some(status) => object.insert("status".into(), status.clone()),
            None => object.remove("status"),
        };
    }
    target
}

fn without_metadata_and_status(manifest: &Value) -> Map<String, Value> {
    let mut rest = manifest.as_object().cloned().unwrap_or_default();
    rest.remove("metadata");
    rest.remove("status");
    rest
}

/// The manifest's `metadata` object, created if missing. `manifest` must be an object.
fn metadata_mut(manifest: &mut Value) -> &mut Map<String, Value> {
    let metadata = &mut manifest["metadata"];
    if !metadata.is_object() {
        *metadata = json!({});
    }
    metadata.as_object_mut().expect("just made an object")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn thing() -> ObjectRef {
        ObjectRef::new("example.com/v1", "Thing", Some("ns"), "a")
    }

    fn world_with_thing() -> World {
        let mut world = World::new();
        world
            .apply(
                json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": {"namespace": "ns", "name": "a"},
                    "spec": {"size": 1}, "status": {"phase": "New"}
                }),
                now(),
            )
            .unwrap();
        world
    }

    fn patch(subresource: Subresource, merge_patch: Value, rv: Option<&str>) -> Patch {
        Patch {
            target: thing(),
            subresource,
            merge_patch: merge_patch.to_string(),
            resource_version: rv.map(str::to_owned),
        }
    }

    fn get<'a>(world: &'a World, pointer: &str) -> &'a Value {
        world
            .get(&thing())
            .unwrap()
            .pointer(pointer)
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn creating_fills_server_managed_metadata() {
        let world = world_with_thing();
        assert_eq!(get(&world, "/metadata/resourceVersion"), "1");
        assert_eq!(get(&world, "/metadata/generation"), 1);
        assert_eq!(
            get(&world, "/metadata/creationTimestamp"),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            get(&world, "/metadata/uid"),
            "00000000-0000-0000-0000-000000000001"
        );
    }

    #[test]
    fn creating_keeps_given_metadata_and_never_reuses_a_given_version() {
        let mut world = World::new();
        let manifest = json!({
            "apiVersion": "example.com/v1", "kind": "Thing",
            "metadata": {"namespace": "ns", "name": "a", "resourceVersion": "41", "generation": 3}
        });
        world.apply(manifest, now()).unwrap();
        assert_eq!(get(&world, "/metadata/resourceVersion"), "41");
        assert_eq!(get(&world, "/metadata/generation"), 3);
        world
            .apply(
                json!({"apiVersion": "example.com/v1", "kind": "Thing",
                          "metadata": {"namespace": "ns", "name": "a"}, "spec": {"x": 1}}),
                now(),
            )
            .unwrap();
        assert_eq!(get(&world, "/metadata/resourceVersion"), "43");
    }

    #[test]
    fn a_status_patch_changes_only_status() {
        let mut world = world_with_thing();
        let p = patch(
            Subresource::Status,
            json!({"spec": {"size": 9}, "metadata": {"labels": {"x": "y"}}, "status": {"ready": true}}),
            None,
        );
        world.patch(&p, None).unwrap();
        assert_eq!(get(&world, "/spec/size"), 1);
        assert_eq!(get(&world, "/metadata/labels"), &Value::Null);
        assert_eq!(
            get(&world, "/status"),
            &json!({"phase": "New", "ready": true})
        );
        assert_eq!(
            get(&world, "/metadata/generation"),
            1,
            "status does not bump generation"
        );
        assert_eq!(get(&world, "/metadata/resourceVersion"), "2");
    }

    #[test]
    fn a_main_patch_never_changes_status() {
        let mut world = world_with_thing();
        let p = patch(
            Subresource::Main,
            json!({"status": null, "metadata": {"labels": {"x": "y"}}}),
            None,
        );
        world.patch(&p, None).unwrap();
        assert_eq!(get(&world, "/status/phase"), "New");
        assert_eq!(get(&world, "/metadata/labels/x"), "y");
        assert_eq!(
            get(&world, "/metadata/generation"),
            1,
            "metadata does not bump generation"
        );
        assert_eq!(get(&world, "/metadata/resourceVersion"), "2");
    }

    #[test]
    fn a_spec_change_bumps_generation() {
        let mut world = world_with_thing();
        world
            .patch(
                &patch(Subresource::Main, json!({"spec": {"size": 2}}), None),
                None,
            )
            .unwrap();
        assert_eq!(get(&world, "/metadata/generation"), 2);
        assert_eq!(get(&world, "/spec/size"), 2);
    }

    #[test]
    fn a_write_that_changes_nothing_keeps_the_resource_version() {
        let mut world = world_with_thing();
        let version = world
            .patch(
                &patch(
                    Subresource::Status,
                    json!({"status": {"phase": "New"}}),
                    None,
                ),
                None,
            )
            .unwrap();
        assert_eq!(version, "1");
        assert_eq!(get(&world, "/metadata/resourceVersion"), "1");
    }

    #[test]
    fn server_managed_metadata_cannot_be_written() {
        let mut world = world_with_thing();
        let p = patch(
            Subresource::Main,
            json!({"metadata": {"uid": "x", "generation": 7, "resourceVersion": "99"}}),
            None,
        );
        world.patch(&p, None).unwrap();
        assert_eq!(get(&world, "/metadata/generation"), 1);
        assert_eq!(get(&world, "/metadata/resourceVersion"), "1");
    }

    #[test]
    fn a_stale_precondition_is_a_conflict() {
        let mut world = world_with_thing();
        let p = patch(
            Subresource::Status,
            json!({"status": {"phase": "Ready"}}),
            Some("1"),
        );
        world.patch(&p, Some("1")).unwrap();
        let err = world.patch(&p, Some("1")).unwrap_err();
        assert!(matches!(err, WorldError::Conflict { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "conflict: the patch of Thing/ns/a requires resourceVersion 1, but the object is at 2"
        );
    }

    #[test]
    fn patches_of_one_response_are_chained_on_the_same_object() {
        let mut world = world_with_thing();
        let patches = [
            patch(
                Subresource::Main,
                json!({"metadata": {"labels": {"x": "y"}}}),
                Some("1"),
            ),
            patch(
                Subresource::Status,
                json!({"status": {"phase": "Ready"}}),
                Some("1"),
            ),
        ];
        world.apply_response(&patches).unwrap();
        assert_eq!(get(&world, "/status/phase"), "Ready");
        assert_eq!(get(&world, "/metadata/resourceVersion"), "3");
        // The same response again is stale: the object moved on.
        let err = world.apply_response(&patches).unwrap_err();
        assert!(matches!(err, WorldError::Conflict { .. }));
    }

    #[test]
    fn patching_a_missing_object_or_with_a_non_object_patch_fails() {
        let mut world = World::new();
        let p = patch(Subresource::Main, json!({}), None);
        assert!(matches!(
            world.patch(&p, None),
            Err(WorldError::NotFound(_))
        ));
        let mut world = world_with_thing();
        let p = patch(Subresource::Main, json!([1]), None);
        assert!(matches!(
            world.patch(&p, None),
            Err(WorldError::InvalidPatch { .. })
        ));
    }

    #[test]
    fn apply_merges_into_the_existing_object_status_included() {
        let mut world = world_with_thing();
        world
            .apply(
                json!({"apiVersion": "example.com/v1", "kind": "Thing",
                       "metadata": {"namespace": "ns", "name": "a", "annotations": {"k": "v"}},
                       "status": {"phase": "Failed"}}),
                now(),
            )
            .unwrap();
        assert_eq!(get(&world, "/status/phase"), "Failed");
        assert_eq!(get(&world, "/metadata/annotations/k"), "v");
        assert_eq!(get(&world, "/spec/size"), 1);
        assert_eq!(get(&world, "/metadata/generation"), 1);
        assert_eq!(get(&world, "/metadata/resourceVersion"), "2");
    }

    #[test]
    fn versions_of_one_group_are_the_same_object_and_delete_removes_it() {
        let mut world = world_with_thing();
        let other_version = ObjectRef::new("example.com/v2", "Thing", Some("ns"), "a");
        assert!(world.get(&other_version).is_some());
        assert!(world.delete(&other_version));
        assert!(world.get(&thing()).is_none());
        assert!(!world.delete(&thing()));
    }

    #[test]
    fn manifests_without_identity_are_rejected() {
        let mut world = World::new();
        let err = world
            .apply(json!({"kind": "Thing", "metadata": {"name": "a"}}), now())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid manifest: `apiVersion` is missing or not a string"
        );
    }
}
