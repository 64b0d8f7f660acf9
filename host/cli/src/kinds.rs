//! kubectl-style resource names for the kinds a command knows of: `captcluster`,
//! `CAPTClusters`, a short name from a CustomResourceDefinition (`cc`), or any of them with
//! the group (`captclusters.infrastructure.cluster.x-k8s.io`); in any case.

use anyhow::bail;
use capt_policy::group_of;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// A kind and the names it answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    /// `group/version`, or `v1`.
    pub api_version: String,
    /// The kind, as spelled in manifests.
    pub kind: String,
    /// Whether its objects live in a namespace (`None`: not known).
    pub namespaced: Option<bool>,
    /// The lower-case plural.
    plural: String,
    /// The lower-case short names (from a CustomResourceDefinition).
    short_names: Vec<String>,
}

impl Kind {
    /// The kind's group (empty for the core group).
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }

    fn answers_to(&self, resource: &str, group: Option<&str>) -> bool {
        group.is_none_or(|group| group.eq_ignore_ascii_case(self.group()))
            && (self.kind.eq_ignore_ascii_case(resource)
                || self.plural.eq_ignore_ascii_case(resource)
                || self
                    .short_names
                    .iter()
                    .any(|short| short.eq_ignore_ascii_case(resource)))
    }

    fn label(&self) -> String {
        match self.group() {
            "" => self.kind.clone(),
            group => format!("{}.{group}", self.kind),
        }
    }
}

/// The kinds known to a command, each once per group.
#[derive(Debug, Default)]
pub struct Kinds(Vec<Kind>);

impl Kinds {
    /// Adds a kind (its plural made as the API server's discovery does for CRDs without
    /// one), or what is new about a kind already known.
    pub fn add(&mut self, api_version: &str, kind: &str, namespaced: Option<bool>) {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        let plural = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)).plural;
        self.merge(
            Kind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                namespaced,
                plural,
                short_names: Vec::new(),
            },
            false,
        );
    }

    /// Adds the kind an object is of, and the kind a CustomResourceDefinition defines with
    /// its plural and short names.
    pub fn add_object(&mut self, manifest: &Value) {
        let text = |value: &Value| value.as_str().map(str::to_owned);
        if let (Some(api_version), Some(kind)) =
            (text(&manifest["apiVersion"]), text(&manifest["kind"]))
        {
            let namespaced = manifest["metadata"]["namespace"]
                .as_str()
                .is_some_and(|ns| !ns.is_empty());
            // An object without a namespace may be namespaced all the same (the default).
            self.add(&api_version, &kind, namespaced.then_some(true));
            if kind == "CustomResourceDefinition" {
                self.add_crd(&manifest["spec"]);
            }
        }
    }

    fn add_crd(&mut self, spec: &Value) {
        let names = &spec["names"];
        let (Some(group), Some(kind)) = (spec["group"].as_str(), names["kind"].as_str()) else {
            return;
        };
        let versions = spec["versions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let Some(version) = versions
            .iter()
            .find(|v| v["storage"] == true)
            .or(versions.first())
            .and_then(|v| v["name"].as_str())
        else {
            return;
        };
        let lower = |value: &Value| value.as_str().map(str::to_ascii_lowercase);
        let kind = Kind {
            api_version: format!("{group}/{version}"),
            kind: kind.to_owned(),
            namespaced: spec["scope"].as_str().map(|scope| scope == "Namespaced"),
            plural: lower(&names["plural"]).unwrap_or_else(|| kind.to_ascii_lowercase()),
            short_names: names["shortNames"]
                .as_array()
                .map(|names| names.iter().filter_map(lower).collect())
                .unwrap_or_default(),
        };
        self.merge(kind, true);
    }

    /// Adds `new`, or what is new about it; `from_crd`: its plural, scope and short names are
    /// a CustomResourceDefinition's, which win over made ones.
    fn merge(&mut self, new: Kind, from_crd: bool) {
        match self
            .0
            .iter_mut()
            .find(|known| known.kind == new.kind && known.group() == new.group())
        {
            Some(known) => {
                if from_crd {
                    known.plural = new.plural;
                    known.namespaced = new.namespaced.or(known.namespaced);
                } else {
                    known.namespaced = known.namespaced.or(new.namespaced);
                }
                for short in new.short_names {
                    if !known.short_names.contains(&short) {
                        known.short_names.push(short);
                    }
                }
            }
            None => self.0.push(new),
        }
    }

    /// The kind `name` names: a kind, plural or short name, optionally followed by `.GROUP`.
    pub fn resolve(&self, name: &str) -> anyhow::Result<&Kind> {
        let candidates = |resource: &str, group: Option<&str>| -> Vec<&Kind> {
            self.0
                .iter()
                .filter(|kind| kind.answers_to(resource, group))
                .collect()
        };
        let mut found = candidates(name, None);
        if found.is_empty()
            && let Some((resource, group)) = name.split_once('.')
        {
            found = candidates(resource, Some(group));
        }
        match found.as_slice() {
            [one] => Ok(*one),
            [] => {
                let mut known: Vec<String> = self.0.iter().map(Kind::label).collect();
                known.sort();
                bail!(
                    "unknown resource type {name:?}; the objects are of: {}",
                    known.join(", ")
                )
            }
            many => bail!(
                "{name:?} is ambiguous: it names {}; add the group (e.g. {}.{})",
                many.iter()
                    .map(|kind| kind.label())
                    .collect::<Vec<_>>()
                    .join(", "),
                many[0].plural,
                many[0].group()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kinds() -> Kinds {
        let mut kinds = Kinds::default();
        kinds.add(
            "infrastructure.cluster.x-k8s.io/v1beta1",
            "CAPTCluster",
            Some(true),
        );
        kinds.add("v1", "ConfigMap", None);
        kinds.add_object(&json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "captclusters.infrastructure.cluster.x-k8s.io"},
            "spec": {
                "group": "infrastructure.cluster.x-k8s.io",
                "scope": "Namespaced",
                "names": {"kind": "CAPTCluster", "plural": "captclusters", "shortNames": ["cc"]},
                "versions": [{"name": "v1beta1", "storage": true}],
            },
        }));
        kinds.add("example.com/v1", "Policy", Some(false));
        kinds.add("other.io/v1", "Policy", Some(false));
        kinds
    }

    #[test]
    fn kinds_answer_to_their_kind_plural_and_short_names_in_any_case() {
        let kinds = kinds();
        for name in [
            "CAPTCluster",
            "captcluster",
            "captclusters",
            "CAPTClusters",
            "cc",
            "CC",
            "captclusters.infrastructure.cluster.x-k8s.io",
        ] {
            let kind = kinds.resolve(name).unwrap();
            assert_eq!(kind.kind, "CAPTCluster", "{name}");
            assert_eq!(kind.namespaced, Some(true), "{name}");
        }
        assert_eq!(kinds.resolve("configmaps").unwrap().kind, "ConfigMap");
        assert_eq!(
            kinds.resolve("cm").ok(),
            None,
            "no CRD gave it a short name"
        );
    }

    #[test]
    fn ambiguous_and_unknown_names_are_errors_that_say_what_is_known() {
        let kinds = kinds();
        let error = kinds.resolve("policies").unwrap_err().to_string();
        assert!(
            error.contains("Policy.example.com, Policy.other.io"),
            "{error}"
        );
        assert_eq!(
            kinds.resolve("policies.other.io").unwrap().api_version,
            "other.io/v1"
        );
        let error = kinds.resolve("captclustr").unwrap_err().to_string();
        assert!(error.contains("CAPTCluster.infrastructure"), "{error}");
    }
}
