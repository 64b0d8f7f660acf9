//! [`CachedObject`]: an object as the operator holds it, in its caches and from its reads and
//! writes: the manifest as JSON text, LZ4-compressed, and a copy of the few metadata fields
//! the operator itself uses.
//!
//! The caches hold every watched object, so this form decides the operator's memory
//! (BENCHMARKS.md, "Operator at scale"). A `DynamicObject`'s `serde_json::Value` tree costs
//! ~8.9 KB of heap for an object of ~1 KB of JSON; the text is what the policy receives
//! anyway, and compressed it is about half again (decompressing the few objects of a reconcile
//! costs microseconds). For the same reason `metadata.managedFields` (often larger than the
//! rest of an object, and of no use to a status policy) is left out, clones share one
//! allocation (kube's stores and the dispatcher clone objects), and so do the kind handles in
//! kube's per-object store keys ([`Resource::DynamicType`] is an `Arc`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::ApiResource;
use kube::core::{DynamicResourceScope, Resource};
use serde::{Deserialize, Deserializer};
use serde_json::value::{RawValue, to_raw_value};

/// The fields of a JSON object, each kept as raw text (in key order, as `serde_json::Map`).
type Fields = BTreeMap<String, Box<RawValue>>;

/// One object: its manifest as JSON text and the metadata the operator reads. Clones share
/// one allocation.
///
/// [`Resource::meta`] holds only `name`, `namespace`, `resourceVersion` and `ownerReferences`
/// without their uids (kube's reflector, watcher and controller need no more); every other
/// field, metadata included, is in the [`manifest`](CachedObject::manifest) only.
#[derive(Debug, Clone)]
pub struct CachedObject(Arc<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    metadata: ObjectMeta,
    /// The manifest's JSON text, LZ4 block-compressed with its length prepended.
    compressed: Box<[u8]>,
    /// True when the manifest has both `apiVersion` and `kind` (list items may lack them).
    typed: bool,
}

/// The metadata fields [`CachedObject`] keeps; the others are skipped while reading.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl CachedObject {
    /// The object whose manifest is the JSON text `text` (a JSON object with `metadata`),
    /// without its `metadata.managedFields`.
    ///
    /// Only the top level and `metadata` are parsed; every other field is kept as the raw text
    /// it is, which serde_json reads without its nesting limit of 128 levels. So an object
    /// nested deeper than that (Kubernetes accepts thousands of levels in free-form fields) is
    /// cached like any other, and only what reads it (its own reconciles) meets the problem.
    pub fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        let mut fields: Fields = serde_json::from_str(text)?;
        let Some(metadata) = fields.get("metadata") else {
            return Err(serde::de::Error::missing_field("metadata"));
        };
        let identity: Identity = serde_json::from_str(metadata.get())?;
        let mut metadata: Fields = serde_json::from_str(metadata.get())?;
        if metadata.remove("managedFields").is_some() {
            fields.insert("metadata".to_owned(), to_raw_value(&metadata)?);
        }
        let typed = fields.contains_key("apiVersion") && fields.contains_key("kind");
        let owners = identity.owner_references.map(|owners| {
            owners
                .into_iter()
                .map(|owner| OwnerReference {
                    uid: String::new(),
                    ..owner
                })
                .collect()
        });
        Ok(Self(Arc::new(Inner {
            metadata: ObjectMeta {
                name: identity.name,
                namespace: identity.namespace,
                resource_version: identity.resource_version,
                owner_references: owners,
                ..ObjectMeta::default()
            },
            compressed: compress(&serde_json::to_string(&fields)?),
            typed,
        })))
    }

    /// The manifest, as JSON text.
    pub fn manifest(&self) -> String {
        decompress(&self.0.compressed)
    }

    /// `metadata.uid`, read from the manifest.
    pub fn uid(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Manifest {
            metadata: Uid,
        }
        #[derive(Deserialize)]
        struct Uid {
            uid: Option<String>,
        }
        let manifest: Manifest = serde_json::from_str(&self.manifest()).ok()?;
        manifest.metadata.uid
    }

    /// Fills in `apiVersion` and `kind` from `resource` when the manifest lacks them, as items
    /// of a list may (the policy is promised complete manifests).
    pub fn fill_type(&mut self, resource: &ApiResource) {
        if self.0.typed {
            return;
        }
        let Ok(mut fields) = serde_json::from_str::<Fields>(&self.manifest()) else {
            return;
        };
        for (field, value) in [
            ("apiVersion", &resource.api_version),
            ("kind", &resource.kind),
        ] {
            if !fields.contains_key(field)
                && let Ok(value) = to_raw_value(value)
            {
                fields.insert(field.to_owned(), value);
            }
        }
        let Ok(text) = serde_json::to_string(&fields) else {
            return;
        };
        let inner = Arc::make_mut(&mut self.0);
        inner.compressed = compress(&text);
        inner.typed = true;
    }
}

fn compress(text: &str) -> Box<[u8]> {
    lz4_flex::compress_prepend_size(text.as_bytes()).into_boxed_slice()
}

/// The text [`compress`] compressed. It cannot fail on what `compress` wrote; if it ever did,
/// the manifest reads as `{}` (the policy then reports an invalid object) rather than the
/// operator panicking.
fn decompress(compressed: &[u8]) -> String {
    lz4_flex::decompress_size_prepended(compressed)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| {
            tracing::error!("a cached manifest could not be decompressed");
            "{}".to_owned()
        })
}

impl<'de> Deserialize<'de> for CachedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // As raw text, which serde_json skips over without a nesting limit (see
        // `from_text`). The API server writes a watch event's `type` before its `object`, so
        // serde reads the object straight from the response, not from a buffer (which could
        // not give raw text).
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Self::from_text(raw.get()).map_err(serde::de::Error::custom)
    }
}

impl Resource for CachedObject {
    type DynamicType = Arc<ApiResource>;
    type Scope = DynamicResourceScope;

    fn kind(resource: &Arc<ApiResource>) -> Cow<'_, str> {
        Cow::Borrowed(&resource.kind)
    }

    fn group(resource: &Arc<ApiResource>) -> Cow<'_, str> {
        Cow::Borrowed(&resource.group)
    }

    fn version(resource: &Arc<ApiResource>) -> Cow<'_, str> {
        Cow::Borrowed(&resource.version)
    }

    fn api_version(resource: &Arc<ApiResource>) -> Cow<'_, str> {
        Cow::Borrowed(&resource.api_version)
    }

    fn plural(resource: &Arc<ApiResource>) -> Cow<'_, str> {
        Cow::Borrowed(&resource.plural)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut Arc::make_mut(&mut self.0).metadata
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt as _;
    use serde_json::{Value, json};

    use super::*;

    fn secrets() -> ApiResource {
        ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Secret".into(),
            plural: "secrets".into(),
        }
    }

    #[test]
    fn keeps_the_whole_manifest_as_text_and_the_identity_as_metadata() {
        let manifest = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": "s", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"a": "b"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "ou"}],
            },
            "data": {"k": "dg=="},
        });
        let object: CachedObject = serde_json::from_value(manifest.clone()).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&object.manifest()).unwrap(),
            manifest
        );
        assert_eq!(
            (object.name_any(), object.namespace(), object.uid()),
            ("s".into(), Some("ns".into()), Some("u".into()))
        );
        assert_eq!(object.resource_version().as_deref(), Some("7"));
        assert_eq!(object.owner_references()[0].name, "o");
        assert!(
            object.owner_references()[0].uid.is_empty(),
            "owners without uids"
        );
        assert!(object.labels().is_empty(), "only the identity is copied");
    }

    #[test]
    fn managed_fields_are_left_out() {
        let object: CachedObject = serde_json::from_value(json!({
            "metadata": {"name": "s", "managedFields": [{"manager": "kubectl"}]},
            "data": {},
        }))
        .unwrap();
        assert_eq!(object.manifest(), r#"{"data":{},"metadata":{"name":"s"}}"#);
    }

    #[test]
    fn fills_in_the_type_only_when_it_is_missing() {
        let mut item: CachedObject =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {}})).unwrap();
        item.fill_type(&secrets());
        let filled: Value = serde_json::from_str(&item.manifest()).unwrap();
        assert_eq!(
            (&filled["apiVersion"], &filled["kind"]),
            (&json!("v1"), &json!("Secret"))
        );

        let text = r#"{"apiVersion":"v2","kind":"Other","metadata":{"name":"s"}}"#;
        let mut typed: CachedObject = serde_json::from_str(text).unwrap();
        typed.fill_type(&secrets());
        assert_eq!(typed.manifest(), text, "a typed manifest is left as it is");
    }

    #[test]
    fn an_object_nested_far_deeper_than_serde_json_parses_is_cached_whole() {
        let mut deep = "0".to_owned();
        for _ in 0..10_000 {
            deep = format!("[{deep}]");
        }
        let text = format!(
            r#"{{"metadata":{{"name":"deep","uid":"u","managedFields":[{{"manager":"x"}}]}},"spec":{{"v":{deep}}}}}"#
        );
        assert!(
            serde_json::from_str::<Value>(&text).is_err(),
            "deeper than serde_json reads"
        );
        let mut object: CachedObject = serde_json::from_str(&text).unwrap();
        assert_eq!(object.name_any(), "deep");
        assert_eq!(object.uid().as_deref(), Some("u"));
        object.fill_type(&secrets());
        let manifest = object.manifest();
        assert!(
            manifest.contains(&format!(r#""spec":{{"v":{deep}}}"#)),
            "kept whole"
        );
        assert!(manifest.starts_with(r#"{"apiVersion":"v1","kind":"Secret","metadata":{"#));
        assert!(!manifest.contains("managedFields"));
    }

    #[test]
    fn a_manifest_without_metadata_or_not_an_object_is_an_error() {
        assert!(serde_json::from_value::<CachedObject>(json!({"kind": "X"})).is_err());
        assert!(serde_json::from_value::<CachedObject>(json!(["x"])).is_err());
        assert!(serde_json::from_value::<CachedObject>(json!({"metadata": {"name": 3}})).is_err());
    }
}
