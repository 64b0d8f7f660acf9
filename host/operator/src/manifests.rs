//! Kubernetes manifests as YAML text: [`parse`] reads them (documents, lists and `List`
//! objects, flattened), [`create`] creates them through any API server: CustomResourceDefinitions
//! first, each waited for until established, then the other objects in order, each kind
//! resolved by discovery.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::{self, Scope};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt as _};
use serde::Deserialize as _;
use serde_json::Value;

/// How long a new CustomResourceDefinition may take to be established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why manifests could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML.
    #[error("invalid YAML")]
    Yaml(#[source] serde_yaml_ng::Error),
    /// A manifest cannot be sent as it is.
    #[error("invalid manifest {name}: {reason}")]
    Invalid {
        /// The manifest's name, or `?`.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The API server does not serve the manifest's kind.
    #[error("the API server does not serve {api_version} {kind}")]
    NotServed {
        /// The manifest's `apiVersion`.
        api_version: String,
        /// The manifest's `kind`.
        kind: String,
        /// What discovery answered.
        #[source]
        source: kube::Error,
    },
    /// The API server refused an object.
    #[error("creating {kind} {name} failed")]
    Create {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A CustomResourceDefinition was not established within 30 s.
    #[error("the CustomResourceDefinition {0} was not established within 30 s")]
    NotEstablished(String),
}

/// Every manifest in a YAML text: documents, lists of manifests and `List` objects are
/// flattened; empty documents are skipped.
pub fn parse(text: &str) -> Result<Vec<Value>, ManifestError> {
    let mut manifests = vec![];
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(ManifestError::Yaml)?;
        match value {
            Value::Null => {}
            Value::Array(items) => manifests.extend(items),
            Value::Object(mut list)
                if list.get("items").is_some_and(Value::is_array)
                    && list
                        .get("kind")
                        .and_then(Value::as_str)
                        .is_some_and(|k| k.ends_with("List")) =>
            {
                if let Some(Value::Array(items)) = list.remove("items") {
                    manifests.extend(items);
                }
            }
            manifest => manifests.push(manifest),
        }
    }
    Ok(manifests)
}

/// Creates `manifests`: CustomResourceDefinitions first (each waited for until established),
/// then the others in order, namespaced ones in their `metadata.namespace` or the client's
/// default namespace. Returns the created objects (CRDs excluded), as the server answered.
pub async fn create(
    client: &Client,
    manifests: &[Value],
) -> Result<Vec<DynamicObject>, ManifestError> {
    let (crds, objects): (Vec<&Value>, Vec<&Value>) = manifests.iter().partition(|m| is_crd(m));
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for manifest in crds {
        let crd: CustomResourceDefinition =
            serde_json::from_value(manifest.clone()).map_err(|e| ManifestError::Invalid {
                name: name_of(manifest),
                reason: e.to_string(),
            })?;
        let name = crd.name_any();
        crd_api
            .create(&PostParams::default(), &crd)
            .await
            .map_err(|source| ManifestError::Create {
                kind: "CustomResourceDefinition".into(),
                name: name.clone(),
                source,
            })?;
        let established = await_condition(crd_api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISH_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            _ => return Err(ManifestError::NotEstablished(name)),
        }
    }
    let mut created = Vec::with_capacity(objects.len());
    for manifest in objects {
        created.push(create_object(client, manifest).await?);
    }
    Ok(created)
}

async fn create_object(client: &Client, manifest: &Value) -> Result<DynamicObject, ManifestError> {
    let field = |name: &str| {
        manifest
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let object: DynamicObject =
        serde_json::from_value(manifest.clone()).map_err(|e| ManifestError::Invalid {
            name: name_of(manifest),
            reason: e.to_string(),
        })?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) =
        discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|source| ManifestError::NotServed {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                source,
            })?;
    let api: Api<DynamicObject> = if capabilities.scope == Scope::Namespaced {
        let namespace = object
            .namespace()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        Api::namespaced_with(client.clone(), &namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    api.create(&PostParams::default(), &object)
        .await
        .map_err(|source| ManifestError::Create {
            kind: kind.to_owned(),
            name: object.name_any(),
            source,
        })
}

fn is_crd(manifest: &Value) -> bool {
    manifest.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
        && manifest
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
}

fn name_of(manifest: &Value) -> String {
    manifest
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn documents_lists_and_list_objects_are_flattened() {
        let text = "a: 1\n---\n- b: 2\n- c: 3\n---\n---\nkind: ConfigMapList\nitems:\n- d: 4\n";
        assert_eq!(
            parse(text).unwrap(),
            [
                json!({"a": 1}),
                json!({"b": 2}),
                json!({"c": 3}),
                json!({"d": 4})
            ]
        );
        assert!(parse("a: [").is_err());
    }

    #[test]
    fn crds_are_recognised_by_kind_and_group() {
        assert!(is_crd(
            &json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"})
        ));
        assert!(!is_crd(
            &json!({"apiVersion": "example.com/v1", "kind": "CustomResourceDefinition"})
        ));
    }
}
