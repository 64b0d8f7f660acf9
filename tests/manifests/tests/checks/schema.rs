//! The CRDs of this repository, and validation of objects against them with the API server's
//! semantics.
//!
//! A CRD's `openAPIV3Schema` is turned into a JSON Schema (draft 4, which OpenAPI v3.0 schemas
//! follow) that accepts exactly what the API server would store unchanged:
//!
//! - **pruning**: an object node without `x-kubernetes-preserve-unknown-fields: true` gets
//!   `additionalProperties: false` (unless it declares `additionalProperties`), so a field that
//!   the API server would silently drop is an error here. Under a preserving node, declared
//!   properties are still checked against their own schema;
//! - `nullable`, `x-kubernetes-int-or-string` and `format: int32` become JSON Schema; `date-time`
//!   formats are checked;
//! - the root `metadata` is checked against the fields of `ObjectMeta`;
//! - for partial manifests (the `expect.objects` of scenarios) `required`, `minItems` and
//!   `minProperties` are ignored and `null` values (meaning "absent") are removed first.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::support;

/// The directory of the CRDs that `deploy/` installs.
pub const CRDS: &str = "policies/capt-status/crds";
/// The directory of the CRDs for tests and the demo only.
pub const TEST_ONLY_CRDS: &str = "policies/capt-status/crds/test-only";

/// One CRD file.
#[derive(Debug)]
pub struct Crd {
    /// Where it was read from.
    pub path: PathBuf,
    /// The whole manifest.
    pub manifest: Value,
    /// True for the CRDs under `test-only/`.
    pub test_only: bool,
}

impl Crd {
    /// `spec.group`.
    pub fn group(&self) -> &str {
        support::str_at(&self.manifest, "spec.group").expect("spec.group")
    }

    /// `spec.names.kind`.
    pub fn kind(&self) -> &str {
        support::str_at(&self.manifest, "spec.names.kind").expect("spec.names.kind")
    }

    /// `spec.scope`.
    pub fn scope(&self) -> &str {
        support::str_at(&self.manifest, "spec.scope").expect("spec.scope")
    }

    /// `metadata.labels`, or an empty map.
    pub fn labels(&self) -> Map<String, Value> {
        support::at(&self.manifest, "metadata.labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// `spec.versions`.
    pub fn versions(&self) -> &[Value] {
        support::at(&self.manifest, "spec.versions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The version named `name`.
    pub fn version(&self, name: &str) -> Option<&Value> {
        self.versions()
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
    }

    /// The `openAPIV3Schema` of the version named `name`.
    pub fn schema(&self, name: &str) -> Option<&Value> {
        self.version(name)
            .and_then(|v| support::at(v, "schema.openAPIV3Schema"))
    }

    /// The file name, for messages.
    pub fn file(&self) -> String {
        support::show(&self.path)
    }
}

/// Every CRD of the repository (the installed ones and the test-only ones), read once.
pub fn crds() -> &'static [Crd] {
    static ALL: OnceLock<Vec<Crd>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut out = Vec::new();
        for path in support::yaml_files(&support::path(CRDS)) {
            if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
                continue;
            }
            let test_only = path.parent() == Some(support::path(TEST_ONLY_CRDS).as_path());
            for manifest in support::documents(&path) {
                out.push(Crd {
                    path: path.clone(),
                    manifest,
                    test_only,
                });
            }
        }
        out
    })
}

/// The CRDs that `deploy/` installs (not the test-only ones).
pub fn installed_crds() -> impl Iterator<Item = &'static Crd> {
    crds().iter().filter(|c| !c.test_only)
}

/// The CRD of `kind` in `group`.
pub fn crd(group: &str, kind: &str) -> Option<&'static Crd> {
    crds()
        .iter()
        .find(|c| c.group() == group && c.kind() == kind)
}

/// `(group, version)` of an `apiVersion`; the core group is `""`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// How strictly a manifest is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A complete object, as stored: every `required` field must be there.
    Full,
    /// A partial manifest (a subset of an object): `required` and minimum counts are ignored,
    /// `null` means "absent".
    Partial,
}

/// What validating an object found.
#[derive(Debug)]
pub enum Outcome {
    /// No CRD here for the object's group and kind (core kinds such as Secret, for example).
    NoCrd,
    /// Validated; every problem, one line each (empty when valid).
    Checked(Vec<String>),
}

/// Validates `object` against the CRD of its `apiVersion` and `kind`.
pub fn validate(object: &Value, mode: Mode) -> Outcome {
    let api_version = support::str_at(object, "apiVersion").unwrap_or_default();
    let kind = support::str_at(object, "kind").unwrap_or_default();
    let (group, version) = split_api_version(api_version);
    let Some(crd) = crd(group, kind) else {
        return Outcome::NoCrd;
    };
    let mut problems = Vec::new();
    if crd.schema(version).is_none() {
        problems.push(format!(
            "{} has no version {version} (apiVersion {api_version})",
            crd.file()
        ));
        return Outcome::Checked(problems);
    }
    let namespace = support::at(object, "metadata.namespace");
    if crd.scope() == "Cluster" && namespace.is_some_and(|n| !n.is_null()) {
        problems.push(format!(
            "{kind} is cluster-scoped: metadata.namespace must not be set"
        ));
    }
    let validator = validator(crd, version, mode);
    let instance = match mode {
        Mode::Full => object.clone(),
        Mode::Partial => without_nulls(object),
    };
    for error in validator.iter_errors(&instance) {
        let at = error.instance_path().to_string();
        let at = if at.is_empty() { "/".to_owned() } else { at };
        problems.push(format!("at {at}: {error}"));
    }
    Outcome::Checked(problems)
}

/// The compiled validator of a CRD version, per mode (compiled once).
fn validator(crd: &'static Crd, version: &str, mode: Mode) -> &'static jsonschema::Validator {
    type Cache =
        std::sync::Mutex<BTreeMap<(String, String, String, bool), &'static jsonschema::Validator>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (
        crd.group().to_owned(),
        crd.kind().to_owned(),
        version.to_owned(),
        mode == Mode::Full,
    );
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = cache.get(&key) {
        return found;
    }
    let schema = json_schema(crd.schema(version).expect("the version exists"), mode)
        .unwrap_or_else(|e| panic!("{}: {e}", crd.file()));
    let compiled = jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{}: the converted schema does not compile: {e}", crd.file()));
    let compiled: &'static jsonschema::Validator = Box::leak(Box::new(compiled));
    cache.insert(key, compiled);
    compiled
}

/// The JSON Schema (draft 4) that accepts what the API server stores unchanged for a CRD's
/// `openAPIV3Schema`. Errors name an unsupported keyword, with its path.
pub fn json_schema(root: &Value, mode: Mode) -> Result<Value, String> {
    let mut schema = convert(root, mode, "")?;
    let properties = schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .ok_or("the root schema has no properties")?;
    properties.insert("metadata".into(), object_meta(mode));
    Ok(schema)
}

fn convert(node: &Value, mode: Mode, path: &str) -> Result<Value, String> {
    let node = node
        .as_object()
        .ok_or_else(|| format!("the schema at {path} is not an object"))?;
    let flag = |key: &str| node.get(key).and_then(Value::as_bool).unwrap_or(false);
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    let mut out = Map::new();
    for (key, value) in node {
        let here = format!("{path}/{key}");
        match key.as_str() {
            "properties" => {
                let mut properties = Map::new();
                for (name, sub) in value.as_object().ok_or(format!("{here} is not a map"))? {
                    properties.insert(name.clone(), convert(sub, mode, &format!("{here}/{name}"))?);
                }
                out.insert(key.clone(), Value::Object(properties));
            }
            "additionalProperties" | "items" | "not" => {
                let converted = match value {
                    Value::Bool(_) => value.clone(),
                    _ => convert(value, mode, &here)?,
                };
                out.insert(key.clone(), converted);
            }
            "allOf" | "anyOf" | "oneOf" => {
                let all = value
                    .as_array()
                    .ok_or(format!("{here} is not a list"))?
                    .iter()
                    .enumerate()
                    .map(|(i, sub)| convert(sub, mode, &format!("{here}/{i}")))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert(key.clone(), Value::Array(all));
            }
            "required" | "minItems" | "minProperties" => {
                if mode == Mode::Full {
                    out.insert(key.clone(), value.clone());
                }
            }
            "enum" | "pattern" | "minimum" | "maximum" | "exclusiveMinimum"
            | "exclusiveMaximum" | "minLength" | "maxLength" | "maxItems" | "maxProperties"
            | "multipleOf" | "uniqueItems" => {
                out.insert(key.clone(), value.clone());
            }
            "format" => match value.as_str() {
                Some("date-time") => {
                    out.insert(key.clone(), value.clone());
                }
                Some("int32") => {
                    out.entry("minimum").or_insert(json!(i32::MIN));
                    out.entry("maximum").or_insert(json!(i32::MAX));
                }
                Some("int64" | "byte" | "double" | "float" | "date" | "duration") => {}
                other => return Err(format!("unsupported format {other:?} at {here}")),
            },
            "type" | "nullable" | "description" | "default" | "example" | "title" => {}
            k if k.starts_with("x-kubernetes-") => {}
            other => return Err(format!("unsupported schema keyword {other:?} at {path}")),
        }
    }
    if flag("x-kubernetes-int-or-string") {
        out.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    } else if let Some(kind) = node.get("type") {
        let kind = if flag("nullable") {
            json!([kind, "null"])
        } else {
            kind.clone()
        };
        out.insert("type".into(), kind);
    }
    if flag("x-kubernetes-embedded-resource") {
        let properties = out
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("properties is a map");
        properties
            .entry("apiVersion")
            .or_insert(json!({"type": "string"}));
        properties
            .entry("kind")
            .or_insert(json!({"type": "string"}));
        properties.entry("metadata").or_insert(object_meta(mode));
    }
    let is_object = node.get("type").and_then(Value::as_str) == Some("object");
    if is_object && !preserve && !out.contains_key("additionalProperties") {
        // The API server prunes every field its schema does not declare.
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Ok(Value::Object(out))
}

/// The fields of `ObjectMeta` a manifest may carry.
fn object_meta(mode: Mode) -> Value {
    let strings = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let mut owner = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "name": {"type": "string"},
            "uid": {"type": "string"},
            "controller": {"type": "boolean"},
            "blockOwnerDeletion": {"type": "boolean"}
        }
    });
    if mode == Mode::Full {
        owner["required"] = json!(["apiVersion", "kind", "name", "uid"]);
    }
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "maxLength": 253},
            "generateName": {"type": "string"},
            "namespace": {"type": "string", "maxLength": 63},
            "uid": {"type": "string"},
            "resourceVersion": {"type": "string"},
            "generation": {"type": "integer", "minimum": 0},
            "creationTimestamp": {"type": "string", "format": "date-time"},
            "deletionTimestamp": {"type": "string", "format": "date-time"},
            "deletionGracePeriodSeconds": {"type": "integer"},
            "labels": strings.clone(),
            "annotations": strings,
            "ownerReferences": {"type": "array", "items": owner},
            "finalizers": {"type": "array", "items": {"type": "string"}},
            "managedFields": {"type": "array", "items": {"type": "object"}}
        }
    })
}

/// The value with every `null` map entry removed, recursively (in a partial manifest `null`
/// means "absent or null").
pub fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The schema node a printer column's `jsonPath` (`.status.conditions[?(@.type=='Ready')].status`)
/// leads to, if the path exists. `.metadata.*` paths are checked against `ObjectMeta`.
pub fn schema_at<'s>(schema: &'s Value, json_path: &str) -> Option<SchemaNode<'s>> {
    let path = json_path.strip_prefix('.')?;
    let mut node = SchemaNode::Crd(schema);
    for segment in segments(path) {
        let (name, indexed) = match segment.find('[') {
            Some(i) if segment.ends_with(']') => (&segment[..i], true),
            Some(_) => return None,
            None => (segment, false),
        };
        node = node.child(name)?;
        if indexed {
            node = node.items()?;
        }
    }
    Some(node)
}

/// The `.`-separated segments of a JSONPath, keeping `[...]` filters (which may hold dots) whole.
fn segments(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0_usize, 0);
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&path[start..]);
    out
}

/// A position in a CRD schema, or in the well-known `ObjectMeta`.
#[derive(Debug, Clone, Copy)]
pub enum SchemaNode<'s> {
    /// A node of the CRD's schema.
    Crd(&'s Value),
    /// `metadata` of the root object.
    ObjectMeta,
    /// A field of `ObjectMeta`, of this JSON type.
    ObjectMetaField(&'static str),
}

impl<'s> SchemaNode<'s> {
    fn child(self, name: &str) -> Option<Self> {
        match self {
            Self::Crd(node) => {
                let properties = node.get("properties")?;
                if name == "metadata" && properties.get("apiVersion").is_some() {
                    return Some(Self::ObjectMeta);
                }
                properties.get(name).map(Self::Crd)
            }
            Self::ObjectMeta => Some(Self::ObjectMetaField(match name {
                "creationTimestamp" | "deletionTimestamp" => "date-time",
                "name" | "generateName" | "namespace" | "uid" | "resourceVersion" => "string",
                "generation" | "deletionGracePeriodSeconds" => "integer",
                "labels" | "annotations" => "object",
                "ownerReferences" | "finalizers" | "managedFields" => "array",
                _ => return None,
            })),
            Self::ObjectMetaField(_) => None,
        }
    }

    fn items(self) -> Option<Self> {
        match self {
            Self::Crd(node) => node.get("items").map(Self::Crd),
            _ => None,
        }
    }

    /// The node's `type`, or `format` for strings with a format (`date-time`).
    pub fn kind(&self) -> Option<&str> {
        match self {
            Self::Crd(node) => node
                .get("format")
                .filter(|_| node.get("type").and_then(Value::as_str) == Some("string"))
                .or_else(|| node.get("type"))
                .and_then(Value::as_str),
            Self::ObjectMeta => Some("object"),
            Self::ObjectMetaField(kind) => Some(kind),
        }
    }
}

/// Every `path` of `schema` (dotted, `[]` for list items) with its node, in order.
pub fn walk(schema: &Value) -> Vec<(String, &Value)> {
    fn go<'v>(node: &'v Value, path: String, out: &mut Vec<(String, &'v Value)>) {
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (name, sub) in properties {
                let here = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                out.push((here.clone(), sub));
                go(sub, here, out);
            }
        }
        if let Some(items) = node.get("items") {
            let here = format!("{path}[]");
            out.push((here.clone(), items));
            go(items, here, out);
        }
        if let Some(extra) = node.get("additionalProperties").filter(|v| v.is_object()) {
            let here = format!("{path}{{}}");
            out.push((here.clone(), extra));
            go(extra, here, out);
        }
    }
    let mut out = Vec::new();
    go(schema, String::new(), &mut out);
    out
}
