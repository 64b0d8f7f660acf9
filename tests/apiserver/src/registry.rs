//! Resource types served by the server (built-in, registered from Rust, or from
//! CustomResourceDefinitions) and the discovery documents describing them.

use std::cmp::Reverse;

use kube::core::Version;
use serde_json::{Value, json};

use crate::error::ApiError;

/// Where the objects of a resource are stored: every served version (and, for events, both
/// API groups) of one resource shares one storage.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    /// API group of the storage (`""` for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl StorageKey {
    /// A storage key.
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

/// How a served representation converts from and to storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conversion {
    /// Same fields; only `apiVersion` is rewritten.
    None,
    /// `events.k8s.io/v1` Event served from core `v1` Event storage.
    EventsV1,
}

/// Server-side behaviour attached to a built-in kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behavior {
    /// No special behaviour.
    Generic,
    /// Namespaces: `status.phase`, content deletion on delete.
    Namespace,
    /// Pods: `status.phase` Pending on create.
    Pod,
    /// Secrets: `stringData` folded into `data`, `type` defaulted.
    Secret,
    /// CustomResourceDefinitions: registration of the defined kinds, `status` conditions.
    Crd,
}

/// Where a kind comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Built into the server.
    Builtin,
    /// Registered through the Rust API.
    Registered,
    /// Defined by the CustomResourceDefinition of this name.
    Crd(String),
}

/// A resource type served at one group/version.
#[derive(Clone, Debug)]
pub struct ResourceKind {
    /// API group (`""` for core).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// Kind (`ConfigMap`).
    pub kind: String,
    /// Plural resource name, used in URLs (`configmaps`).
    pub plural: String,
    /// Singular resource name (`configmap`).
    pub singular: String,
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
    /// Short names listed in discovery.
    pub short_names: Vec<String>,
    /// Categories listed in discovery.
    pub categories: Vec<String>,
    /// Whether the kind has a `status` subresource (and so `status` is isolated from the
    /// main resource and the other way round).
    pub status_subresource: bool,
    /// Whether strategic merge patches are accepted (built-ins yes; custom resources are
    /// answered 415 like the real server).
    pub strategic_merge: bool,
    pub(crate) storage: StorageKey,
    pub(crate) conversion: Conversion,
    pub(crate) behavior: Behavior,
    pub(crate) origin: Origin,
}

impl ResourceKind {
    fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            strategic_merge: false,
            storage: StorageKey::new(group, plural),
            conversion: Conversion::None,
            behavior: Behavior::Generic,
            origin: Origin::Registered,
        }
    }

    /// A namespaced kind `group/version` `kind`, served at `plural`.
    pub fn namespaced(group: &str, version: &str, kind: &str, plural: &str) -> Self {
        Self::new(group, version, kind, plural, true)
    }

    /// A cluster-scoped kind.
    pub fn cluster(group: &str, version: &str, kind: &str, plural: &str) -> Self {
        Self::new(group, version, kind, plural, false)
    }

    /// The kind of a Rust type implementing [`kube::Resource`] (with static type information),
    /// namespaced or not.
    pub fn of<K>(namespaced: bool) -> Self
    where
        K: kube::Resource<DynamicType = ()>,
    {
        Self::new(
            &K::group(&()),
            &K::version(&()),
            &K::kind(&()),
            &K::plural(&()),
            namespaced,
        )
    }

    /// Adds the `status` subresource.
    pub fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    /// Sets the short names.
    pub fn with_short_names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.short_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the singular name (default: the kind in lower case).
    pub fn with_singular(mut self, singular: &str) -> Self {
        self.singular = singular.to_string();
        self
    }

    /// Accepts strategic merge patches (approximated by merge patches), like a built-in.
    pub fn with_strategic_merge(mut self) -> Self {
        self.strategic_merge = true;
        self
    }

    pub(crate) fn builtin(mut self, behavior: Behavior) -> Self {
        self.origin = Origin::Builtin;
        self.behavior = behavior;
        self.strategic_merge = true;
        self
    }

    pub(crate) fn stored_in(mut self, storage: StorageKey, conversion: Conversion) -> Self {
        self.storage = storage;
        self.conversion = conversion;
        self
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The verbs of the main resource, as listed in discovery.
    pub fn verbs() -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.version.is_empty() || self.kind.is_empty() || self.plural.is_empty() {
            return Err(format!("{self:?}: version, kind and plural are required"));
        }
        if self.plural.contains('/') || self.plural != self.plural.to_ascii_lowercase() {
            return Err(format!("{}: plural must be lower case", self.plural));
        }
        Ok(())
    }
}

/// The set of served kinds.
#[derive(Clone, Debug, Default)]
pub(crate) struct Registry {
    kinds: Vec<ResourceKind>,
}

impl Registry {
    /// Adds a kind, replacing one with the same group, version and plural.
    pub(crate) fn register(&mut self, kind: ResourceKind) {
        if let Some(existing) = self
            .kinds
            .iter_mut()
            .find(|k| k.group == kind.group && k.version == kind.version && k.plural == kind.plural)
        {
            *existing = kind;
        } else {
            self.kinds.push(kind);
        }
    }

    /// The kind served at `group/version/plural`.
    pub(crate) fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    /// Any kind stored in `storage` (the first registered).
    pub(crate) fn any_for_storage(&self, storage: &StorageKey) -> Option<&ResourceKind> {
        self.kinds.iter().find(|k| &k.storage == storage)
    }

    /// Removes every kind defined by the CRD `crd_name`, returning their storage keys.
    pub(crate) fn remove_crd(&mut self, crd_name: &str) -> Vec<StorageKey> {
        let mut removed = Vec::new();
        self.kinds.retain(|k| {
            let from_crd = matches!(&k.origin, Origin::Crd(n) if n == crd_name);
            if from_crd && !removed.contains(&k.storage) {
                removed.push(k.storage.clone());
            }
            !from_crd
        });
        removed
    }

    /// Whether a kind that is not from the CRD `crd_name` serves `group`/`plural`.
    pub(crate) fn taken_by_other(&self, group: &str, plural: &str, crd_name: &str) -> bool {
        self.kinds.iter().any(|k| {
            k.group == group
                && k.plural == plural
                && !matches!(&k.origin, Origin::Crd(n) if n == crd_name)
        })
    }

    /// The versions served in `group`, highest priority first.
    fn versions_of(&self, group: &str) -> Vec<String> {
        let mut versions: Vec<String> = Vec::new();
        for k in self.kinds.iter().filter(|k| k.group == group) {
            if !versions.contains(&k.version) {
                versions.push(k.version.clone());
            }
        }
        versions.sort_by_cached_key(|v| Reverse(Version::parse(v).priority()));
        versions
    }

    /// The non-core groups, in registration order.
    fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        for k in self.kinds.iter().filter(|k| !k.group.is_empty()) {
            if !groups.contains(&k.group) {
                groups.push(k.group.clone());
            }
        }
        groups
    }

    fn kinds_in(&self, group: &str, version: &str) -> impl Iterator<Item = &ResourceKind> {
        self.kinds
            .iter()
            .filter(move |k| k.group == group && k.version == version)
    }

    /// `/api`: `APIVersions`.
    pub(crate) fn core_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": self.versions_of(""),
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        })
    }

    fn group_doc(&self, group: &str) -> Value {
        let versions: Vec<Value> = self
            .versions_of(group)
            .iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        let preferred = versions.first().cloned().unwrap_or(Value::Null);
        json!({
            "name": group,
            "versions": versions,
            "preferredVersion": preferred,
        })
    }

    /// `/apis`: `APIGroupList`.
    pub(crate) fn group_list(&self) -> Value {
        let groups: Vec<Value> = self.groups().iter().map(|g| self.group_doc(g)).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/apis/{group}`: `APIGroup`, if the group is served.
    pub(crate) fn group(&self, group: &str) -> Option<Value> {
        if !self.groups().iter().any(|g| g == group) {
            return None;
        }
        let mut doc = self.group_doc(group);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        Some(doc)
    }

    /// `/api/{v}` or `/apis/{group}/{v}`: `APIResourceList`, if the group/version is served.
    pub(crate) fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let mut resources = Vec::new();
        for k in self.kinds_in(group, version) {
            let mut main = json!({
                "name": k.plural,
                "singularName": k.singular,
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ResourceKind::verbs(),
            });
            if !k.short_names.is_empty() {
                main["shortNames"] = json!(k.short_names);
            }
            if !k.categories.is_empty() {
                main["categories"] = json!(k.categories);
            }
            resources.push(main);
            if k.status_subresource {
                resources.push(json!({
                    "name": format!("{}/status", k.plural),
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "kind": k.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        if resources.is_empty() {
            return None;
        }
        let group_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }))
    }

    /// Aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) for the core
    /// group (`core == true`, served at `/api`) or for all other groups (`/apis`).
    pub(crate) fn aggregated(&self, core: bool) -> Value {
        let groups: Vec<String> = if core {
            vec![String::new()]
        } else {
            self.groups()
        };
        let items: Vec<Value> = groups
            .iter()
            .map(|group| {
                let versions: Vec<Value> = self
                    .versions_of(group)
                    .iter()
                    .map(|version| {
                        let resources: Vec<Value> = self
                            .kinds_in(group, version)
                            .map(|k| {
                                let gvk =
                                    json!({"group": k.group, "version": k.version, "kind": k.kind});
                                let subresources: Vec<Value> = if k.status_subresource {
                                    vec![json!({
                                        "subresource": "status",
                                        "responseKind": gvk,
                                        "verbs": ["get", "patch", "update"],
                                    })]
                                } else {
                                    Vec::new()
                                };
                                json!({
                                    "resource": k.plural,
                                    "responseKind": gvk,
                                    "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
                                    "singularResource": k.singular,
                                    "verbs": ResourceKind::verbs(),
                                    "shortNames": k.short_names,
                                    "categories": k.categories,
                                    "subresources": subresources,
                                })
                            })
                            .collect();
                        json!({"version": version, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                json!({"metadata": {"name": group}, "versions": versions})
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })
    }
}

/// The kinds a CustomResourceDefinition object defines (one per served version), after
/// validating it like the real server does (422 Invalid otherwise).
pub(crate) fn kinds_from_crd(crd: &Value) -> Result<Vec<ResourceKind>, ApiError> {
    const G: &str = "apiextensions.k8s.io";
    const K: &str = "CustomResourceDefinition";
    let name = crd
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let invalid = |field: &str, detail: &str| ApiError::invalid(G, K, name, field, detail);
    let spec = crd
        .get("spec")
        .ok_or_else(|| invalid("spec", "Required value"))?;
    let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let group = str_at(spec, "group").ok_or_else(|| invalid("spec.group", "Required value"))?;
    let names = spec
        .get("names")
        .ok_or_else(|| invalid("spec.names", "Required value"))?;
    let plural =
        str_at(names, "plural").ok_or_else(|| invalid("spec.names.plural", "Required value"))?;
    let kind = str_at(names, "kind").ok_or_else(|| invalid("spec.names.kind", "Required value"))?;
    let singular = str_at(names, "singular").unwrap_or_else(|| kind.to_ascii_lowercase());
    let short_names: Vec<String> = names
        .get("shortNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let categories: Vec<String> = names
        .get("categories")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            "metadata.name",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => {
            return Err(invalid(
                "spec.scope",
                "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
            ));
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid("spec.versions", "Required value"))?;
    let storage_count = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage_count != 1 {
        return Err(invalid(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let mut kinds = Vec::new();
    for v in versions {
        let version =
            str_at(v, "name").ok_or_else(|| invalid("spec.versions.name", "Required value"))?;
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let status = v
            .get("subresources")
            .and_then(|s| s.get("status"))
            .is_some_and(|s| !s.is_null());
        let mut k = ResourceKind::new(&group, &version, &kind, &plural, namespaced);
        k.singular = singular.clone();
        k.short_names = short_names.clone();
        k.categories = categories.clone();
        k.status_subresource = status;
        k.origin = Origin::Crd(name.to_string());
        kinds.push(k);
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1alpha1", "served": false, "storage": false}
                ]
            }
        })
    }

    #[test]
    fn crd_defines_one_kind_per_served_version() {
        let kinds = kinds_from_crd(&crd()).unwrap();
        assert_eq!(kinds.len(), 2);
        assert!(kinds[0].status_subresource);
        assert!(!kinds[1].status_subresource);
        assert_eq!(kinds[0].storage, kinds[1].storage);
        assert_eq!(kinds[0].short_names, vec!["wd"]);
    }

    #[test]
    fn crd_name_must_match() {
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        assert_eq!(kinds_from_crd(&bad).unwrap_err().code, 422);
        let mut bad = crd();
        bad["spec"]["scope"] = json!("Everywhere");
        assert_eq!(kinds_from_crd(&bad).unwrap_err().code, 422);
        let mut bad = crd();
        bad["spec"]["versions"][1]["storage"] = json!(true);
        assert_eq!(kinds_from_crd(&bad).unwrap_err().code, 422);
    }

    #[test]
    fn discovery_documents() {
        let mut reg = Registry::default();
        for k in kinds_from_crd(&crd()).unwrap() {
            reg.register(k);
        }
        reg.register(ResourceKind::namespaced(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
        ));
        let groups = reg.group_list();
        assert_eq!(groups["groups"][0]["name"], "example.com");
        assert_eq!(groups["groups"][0]["preferredVersion"]["version"], "v1");
        assert_eq!(groups["groups"][0]["versions"][1]["version"], "v1beta1");
        let list = reg.resource_list("example.com", "v1").unwrap();
        assert_eq!(list["resources"][0]["name"], "widgets");
        assert_eq!(list["resources"][1]["name"], "widgets/status");
        assert!(reg.resource_list("example.com", "v2").is_none());
        assert_eq!(reg.core_versions("x")["versions"][0], "v1");
        let agg = reg.aggregated(false);
        assert_eq!(
            agg["items"][0]["versions"][0]["resources"][0]["scope"],
            "Namespaced"
        );
        assert_eq!(reg.remove_crd("widgets.example.com").len(), 1);
        assert!(reg.find("example.com", "v1", "widgets").is_none());
    }
}
