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
//!
//! Any JSON reads as a `CachedObject`: one whose metadata does not have its Kubernetes types
//! is kept as [`Unreadable`] (see `poison`), so that no object can fail its kind's list or watch.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::ApiResource;
use kube::core::{DynamicResourceScope, Resource};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::json;
use serde_json::value::{RawValue, to_raw_value};

/// The fields of a JSON object, each kept as raw text (in key order, as `serde_json::Map`).
type Fields = BTreeMap<String, Box<RawValue>>;

/// Why the operator cannot read an object it was served (a "poison" object). The object is
/// still cached, under whatever identity could be read, and only its own reconciles fail.
///
/// A real API server serves only objects whose metadata has its Kubernetes types; a test
/// double, a broken aggregated API or a defect may serve others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// The manifest is JSON, but not a JSON object.
    #[error("the manifest is not a JSON object")]
    NotAnObject,
    /// The manifest has no `metadata`, or it is not a JSON object.
    #[error("the manifest has no metadata object")]
    NoMetadata,
    /// A field of `metadata` does not have its Kubernetes type (e.g. `labels` as a list).
    #[error("metadata.{field}: {message}")]
    Metadata {
        /// The field, e.g. `labels`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// One object: its manifest as JSON text and the metadata the operator reads. Clones share
/// one allocation.
///
/// [`Resource::meta`] holds only `name`, `namespace`, `resourceVersion` and `ownerReferences`
/// without their uids (kube's reflector, watcher and controller need no more); every other
/// field, metadata included, is in the [`manifest`](CachedObject::manifest) only.
///
/// Any JSON text reads as a `CachedObject`, so that one object never fails the list or the
/// watch of its whole kind: an object whose metadata cannot be read is kept with the identity
/// fields that can, and the reason ([`CachedObject::unreadable`]).
#[derive(Debug, Clone)]
pub struct CachedObject(Arc<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    metadata: ObjectMeta,
    /// The manifest's JSON text, LZ4 block-compressed with its length prepended.
    compressed: Box<[u8]>,
    /// True when the manifest has both `apiVersion` and `kind` (list items may lack them).
    typed: bool,
    /// Why the object cannot be read, if it cannot (boxed: such objects are rare).
    unreadable: Option<Box<Unreadable>>,
}

impl CachedObject {
    /// The object whose manifest is the JSON text `text`, without its `metadata.managedFields`.
    /// Fails only when `text` is not JSON: a manifest whose metadata the operator cannot read
    /// is an object that is [`unreadable`](CachedObject::unreadable).
    ///
    /// Only the top level and `metadata` are parsed; every other field is kept as the raw text
    /// it is, which serde_json reads without its nesting limit of 128 levels. So an object
    /// nested deeper than that (Kubernetes accepts thousands of levels in free-form fields) is
    /// cached like any other, and only what reads it (its own reconciles) meets the problem.
    pub fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        let Ok(mut fields) = serde_json::from_str::<Fields>(text) else {
            // Not an object; an error if not JSON either.
            serde_json::from_str::<IgnoredAny>(text)?;
            return Ok(Self::poison(text, Unreadable::NotAnObject));
        };
        let metadata = fields
            .get("metadata")
            .and_then(|metadata| serde_json::from_str::<Fields>(metadata.get()).ok());
        let Some(mut metadata) = metadata else {
            return Ok(Self::poison(text, Unreadable::NoMetadata));
        };
        if metadata.remove("managedFields").is_some() {
            fields.insert("metadata".to_owned(), to_raw_value(&metadata)?);
        }
        let typed = fields.contains_key("apiVersion") && fields.contains_key("kind");
        let read = fields
            .get("metadata")
            .map(|metadata| serde_json::from_str::<ObjectMeta>(metadata.get()));
        let (identity, unreadable) = match read {
            Some(Ok(full)) => (
                ObjectMeta {
                    name: full.name,
                    namespace: full.namespace,
                    resource_version: full.resource_version,
                    owner_references: full.owner_references,
                    ..ObjectMeta::default()
                },
                None,
            ),
            _ => (
                lenient_identity(&metadata),
                Some(Box::new(diagnose(&metadata))),
            ),
        };
        Ok(Self(Arc::new(Inner {
            metadata: without_owner_uids(identity),
            compressed: compress(&serde_json::to_string(&fields)?),
            typed,
            unreadable,
        })))
    }

    /// An object of unknown identity whose manifest `text` cannot be read.
    fn poison(text: &str, unreadable: Unreadable) -> Self {
        Self(Arc::new(Inner {
            metadata: ObjectMeta::default(),
            compressed: compress(text),
            typed: false,
            unreadable: Some(Box::new(unreadable)),
        }))
    }

    /// Why the operator cannot read this object; `None` for every object a real API server
    /// serves. Such an object's reconciles fail; it holds up nothing else.
    pub fn unreadable(&self) -> Option<&Unreadable> {
        self.0.unreadable.as_deref()
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

/// `metadata` without the uids of its owner references (kube's stores do not need them).
fn without_owner_uids(metadata: ObjectMeta) -> ObjectMeta {
    let owner_references = metadata.owner_references.map(|owners| {
        owners
            .into_iter()
            .map(|owner| OwnerReference {
                uid: String::new(),
                ..owner
            })
            .collect()
    });
    ObjectMeta {
        owner_references,
        ..metadata
    }
}

/// The identity fields of metadata that does not read as an `ObjectMeta`: each one that has
/// its type.
fn lenient_identity(metadata: &Fields) -> ObjectMeta {
    fn field<T: DeserializeOwned>(metadata: &Fields, name: &str) -> Option<T> {
        serde_json::from_str(metadata.get(name)?.get()).ok()
    }
    ObjectMeta {
        name: field(metadata, "name"),
        namespace: field(metadata, "namespace"),
        resource_version: field(metadata, "resourceVersion"),
        owner_references: field(metadata, "ownerReferences"),
        ..ObjectMeta::default()
    }
}

/// Which field of `metadata` (which does not read as an `ObjectMeta`) is wrong, and how.
fn diagnose(metadata: &Fields) -> Unreadable {
    for (field, value) in metadata {
        // One field at a time: `ObjectMeta` skips the fields it does not know, at any depth.
        let alone = to_raw_value(&BTreeMap::from([(field, value)]))
            .and_then(|alone| serde_json::from_str::<ObjectMeta>(alone.get()));
        if let Err(error) = alone {
            // Read again from a parsed value, the same failure has no line and column (of a
            // text built for the purpose); a value too deep to parse keeps the first message.
            let again = serde_json::from_str::<serde_json::Value>(value.get())
                .ok()
                .and_then(|value| ObjectMeta::deserialize(json!({ field: value })).err());
            return Unreadable::Metadata {
                field: field.clone(),
                message: again.unwrap_or(error).to_string(),
            };
        }
    }
    // Every field reads alone, so together they do not: a field is repeated.
    Unreadable::Metadata {
        field: "*".to_owned(),
        message: "a field is repeated".to_owned(),
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

    fn unreadable(manifest: Value) -> CachedObject {
        let object: CachedObject = serde_json::from_value(manifest.clone()).unwrap();
        assert!(object.unreadable().is_some(), "unreadable: {manifest}");
        object
    }

    #[test]
    fn a_manifest_without_metadata_or_not_an_object_is_unreadable_and_anonymous() {
        for (manifest, reason) in [
            (json!({"kind": "X"}), Unreadable::NoMetadata),
            (json!({"metadata": ["x"]}), Unreadable::NoMetadata),
            (json!(["x"]), Unreadable::NotAnObject),
            (json!("x"), Unreadable::NotAnObject),
        ] {
            let object = unreadable(manifest.clone());
            assert_eq!(object.unreadable(), Some(&reason));
            assert_eq!(object.meta().name, None);
            assert_eq!(
                serde_json::from_str::<Value>(&object.manifest()).unwrap(),
                manifest,
                "kept as it is"
            );
        }
        assert!(CachedObject::from_text("{").is_err(), "not JSON");
    }

    #[test]
    fn metadata_of_the_wrong_types_is_unreadable_with_the_identity_that_can_be_read() {
        let owner = json!({"apiVersion": "v1", "kind": "X", "name": "o", "uid": "ou"});
        let cases = [
            (json!({"labels": ["a"]}), "labels"),
            (json!({"annotations": {"a": 1}}), "annotations"),
            (json!({"ownerReferences": "o"}), "ownerReferences"),
            (json!({"uid": 7}), "uid"),
            (json!({"generation": "one"}), "generation"),
            (
                json!({"creationTimestamp": "yesterday"}),
                "creationTimestamp",
            ),
            (json!({"finalizers": "f"}), "finalizers"),
        ];
        for (bad, field) in cases {
            let mut metadata = json!({"name": "s", "namespace": "ns", "resourceVersion": "7",
                                      "ownerReferences": [owner.clone()]});
            for (key, value) in bad.as_object().unwrap() {
                metadata[key] = value.clone();
            }
            let object = unreadable(json!({"metadata": metadata, "spec": {}}));
            let Some(Unreadable::Metadata {
                field: found,
                message,
            }) = object.unreadable()
            else {
                panic!("{field}: {:?}", object.unreadable());
            };
            assert_eq!(found, field);
            assert!(!message.contains("line"), "no position in {message:?}");
            assert_eq!(
                (
                    object.name_any(),
                    object.namespace(),
                    object.resource_version()
                ),
                ("s".into(), Some("ns".into()), Some("7".into())),
                "{field}: the identity is kept"
            );
            let owners = object.owner_references();
            if field == "ownerReferences" {
                assert!(owners.is_empty(), "unreadable owners are left out");
            } else {
                assert_eq!(owners[0].name, "o", "{field}: the owners are kept");
            }
        }
        let nameless = unreadable(json!({"metadata": {"name": 3, "namespace": "ns"}}));
        assert_eq!(nameless.meta().name, None);
        assert_eq!(nameless.namespace().as_deref(), Some("ns"));
    }

    #[test]
    fn deep_metadata_is_read_when_unknown_and_unreadable_when_known() {
        let mut deep = "0".to_owned();
        for _ in 0..10_000 {
            deep = format!("[{deep}]");
        }
        let unknown = format!(r#"{{"metadata":{{"name":"a","x":{deep}}}}}"#);
        let object = CachedObject::from_text(&unknown).unwrap();
        assert_eq!(object.unreadable(), None);
        assert_eq!(object.name_any(), "a");

        let known = format!(r#"{{"metadata":{{"name":"a","labels":{deep}}}}}"#);
        let object = CachedObject::from_text(&known).unwrap();
        assert!(
            matches!(object.unreadable(), Some(Unreadable::Metadata { field, .. }) if field == "labels"),
            "{:?}",
            object.unreadable()
        );
        assert_eq!(object.manifest(), known);
    }
}

/// Property tests: any bytes or JSON give an object or an error, never a panic, and what is
/// accepted round-trips.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    /// Any JSON value, with keys that are often metadata fields.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            // Floats that print and parse back exactly (serde_json's parsing is best-effort).
            prop::sample::select(vec![0.5, -1.25]).prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            let key = prop_oneof![
                prop::sample::select(vec![
                    "metadata",
                    "name",
                    "namespace",
                    "uid",
                    "resourceVersion",
                    "labels",
                    "annotations",
                    "ownerReferences",
                    "managedFields",
                    "apiVersion",
                    "kind",
                    "generation",
                    "creationTimestamp",
                    "finalizers",
                ])
                .prop_map(str::to_owned),
                any::<String>(),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..5)
                    .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    /// A manifest with a metadata object of arbitrary fields.
    fn manifest() -> impl Strategy<Value = Value> {
        (json_value(), json_value()).prop_map(|(metadata, spec)| {
            let metadata = match metadata {
                Value::Object(map) => Value::Object(map),
                other => serde_json::json!({"name": "n", "labels": other}),
            };
            serde_json::json!({"apiVersion": "v1", "kind": "K", "metadata": metadata, "spec": spec})
        })
    }

    // 256 cases of each (cheap) property, unless `PROPTEST_CASES` says otherwise.
    proptest! {
        #[test]
        fn any_bytes_are_an_object_or_a_json_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let text = String::from_utf8_lossy(&bytes);
            let is_json = serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
            prop_assert_eq!(CachedObject::from_text(&text).is_ok(), is_json);
        }

        #[test]
        fn any_json_is_cached_and_a_readable_object_round_trips(value in prop_oneof![json_value(), manifest()]) {
            let text = value.to_string();
            let object = CachedObject::from_text(&text).expect("JSON is always cached");
            let manifest: Value = serde_json::from_str(&object.manifest()).expect("the manifest is JSON");
            let mut expected = value.clone();
            let readable_metadata = value
                .get("metadata")
                .filter(|metadata| metadata.is_object())
                .map(|metadata| {
                    let mut metadata = metadata.clone();
                    metadata.as_object_mut().map(|m| m.remove("managedFields"));
                    serde_json::from_value::<ObjectMeta>(metadata).is_ok()
                });
            if let Some(metadata) = expected.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("managedFields");
            }
            prop_assert_eq!(&manifest, &expected, "the manifest is kept, without managedFields");
            prop_assert_eq!(object.unreadable().is_none(), readable_metadata == Some(true));
            if object.unreadable().is_none() {
                prop_assert_eq!(object.meta().name.as_deref(), value["metadata"]["name"].as_str());
                let again = CachedObject::from_text(&object.manifest()).unwrap();
                prop_assert_eq!(again.manifest(), object.manifest(), "stable");
            }
        }
    }
}
