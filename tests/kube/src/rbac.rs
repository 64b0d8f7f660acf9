//! The operator's grants as `deploy/` ships them: the objects its `kustomization.yaml` lists
//! that carry RBAC (the ServiceAccount, its Namespace, the roles and their bindings), with the
//! kustomization's namespace applied as `kubectl apply -k` would. Read from the files at test
//! time, never copied.

use serde_json::Value;

use crate::{Error, crds};

/// The kinds taken from `deploy/`.
const KINDS: [&str; 6] = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// One rule of one role: the role's position in [`Grants::objects`] and the rule's in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef {
    /// The role's index in [`Grants::objects`].
    pub object: usize,
    /// The rule's index in the role's `rules`.
    pub rule: usize,
}

/// The RBAC objects of `deploy/`.
#[derive(Debug, Clone)]
pub struct Grants {
    /// The objects, in the kustomization's order.
    pub objects: Vec<Value>,
    /// The namespace the kustomization puts them in (`capt-system`).
    pub namespace: String,
}

impl Grants {
    /// Reads `deploy/kustomization.yaml` and the files it lists.
    pub fn from_deploy() -> Result<Self, Error> {
        let dir = crds::repository().join("deploy");
        let kustomization = crds::parse_file(&dir.join("kustomization.yaml"))?
            .into_iter()
            .next()
            .unwrap_or_default();
        let namespace = kustomization["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let mut objects = Vec::new();
        for file in crds::kustomization_resources(&dir)? {
            for mut object in crds::parse_file(&file)? {
                if !KINDS.contains(&object["kind"].as_str().unwrap_or_default()) {
                    continue;
                }
                apply_namespace(&mut object, &namespace);
                objects.push(object);
            }
        }
        Ok(Self { objects, namespace })
    }

    /// The name of the ServiceAccount the roles are bound to.
    pub fn service_account(&self) -> &str {
        self.objects
            .iter()
            .find(|o| o["kind"] == "ServiceAccount")
            .and_then(|o| o["metadata"]["name"].as_str())
            .unwrap_or_default()
    }

    /// Every rule of every role, in order.
    pub fn rules(&self) -> Vec<RuleRef> {
        self.objects
            .iter()
            .enumerate()
            .flat_map(|(object, o)| {
                let count = o["rules"].as_array().map_or(0, Vec::len);
                (0..count).map(move |rule| RuleRef { object, rule })
            })
            .collect()
    }

    /// The rule `rule` refers to.
    pub fn rule(&self, rule: RuleRef) -> &Value {
        &self.objects[rule.object]["rules"][rule.rule]
    }

    /// These grants without `rule`.
    pub fn without(&self, rule: RuleRef) -> Self {
        let mut grants = self.clone();
        if let Some(rules) = grants.objects[rule.object]["rules"].as_array_mut() {
            rules.remove(rule.rule);
        }
        grants
    }
}

/// Sets `namespace` on a namespaced object without one, and on ServiceAccount subjects of a
/// binding, as kustomize's `namespace` field does.
fn apply_namespace(object: &mut Value, namespace: &str) {
    let kind = object["kind"].as_str().unwrap_or_default();
    if matches!(kind, "ServiceAccount" | "Role" | "RoleBinding") {
        object["metadata"]["namespace"] = Value::from(namespace);
    }
    if let Some(subjects) = object["subjects"].as_array_mut() {
        for subject in subjects
            .iter_mut()
            .filter(|s| s["kind"] == "ServiceAccount")
        {
            subject["namespace"] = Value::from(namespace);
        }
    }
}
