//! Mutated inputs for property tests of a policy ("fuzzing"): arbitrary JSON values, and
//! manifests and settings with some of their values replaced or removed.
//!
//! Self-contained (serde_json and proptest only): the guest's own tests use it natively, and
//! the host's tests use it through the wasm component (`host/cli/tests/all/fuzz.rs`, by
//! `#[path]`).

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use serde_json::{Number, Value};

/// Nesting deeper than serde_json parses by default (128 levels).
const DEEP: usize = 200;

/// The paths a host reads to identify an object: a host never calls a policy with an object
/// it cannot identify, so mutations leave them alone (and `metadata` itself, which holds them).
const IDENTITY: [&str; 5] = [
    "/apiVersion",
    "/kind",
    "/metadata",
    "/metadata/name",
    "/metadata/namespace",
];

/// The property-test configuration: `default_cases` cases unless `PROPTEST_CASES` says
/// otherwise (a bounded run sets it), failures persisted next to the test's source.
pub fn config(default_cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    config
}

/// Strings that mean something to a status policy: condition values, timestamps (valid, out
/// of range, invalid), durations (valid, negative, overflowing), names, JSON in a string.
fn meaningful() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        "True",
        "False",
        "Unknown",
        "Ready",
        "Synced",
        "Applied",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.123456789+09:00",
        "1970-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "+262143-12-31T23:59:59Z",
        "2026-13-45T99:99:99Z",
        "1h",
        "0s",
        "-5m",
        "1.5h",
        "9223372036854775807s",
        "99999999999999999999h",
        "vpc-123",
        "10.0.0.1:6443",
        "https://example.com:443",
        "dnBjLTQ1Ng==",
        "!!not base64",
        "default",
        "{}",
        "null",
    ])
    .prop_map(str::to_owned)
}

/// A key for a generated JSON object: one a policy may read, or any string.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "status", "spec", "conditions", "type", "status", "reason", "message",
            "lastTransitionTime", "outputs", "name", "namespace", "kind", "apiVersion", "phase",
            "ready", "data", "applied", "failureReason", "observedGeneration",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Any JSON value: edge-case numbers, meaningful and arbitrary strings, small containers of
/// them, and (rarely) arrays nested deeper than JSON parsers accept.
pub fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, -1, 0, 1]).prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        3 => meaningful().prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
    ];
    let nested = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    });
    prop_oneof![
        30 => nested,
        1 => (DEEP - 10..DEEP + 10).prop_map(deep),
    ]
}

/// `0` inside `depth` arrays.
pub fn deep(depth: usize) -> Value {
    (0..depth).fold(Value::from(0), |inner, _| Value::Array(vec![inner]))
}

/// One change to one of a set of documents: the value at one of its paths (both chosen by
/// index among those that exist) replaced, or removed when `value` is `None`.
#[derive(Debug, Clone)]
pub struct Mutation {
    document: Index,
    path: Index,
    value: Option<Value>,
}

/// Between one and `max` mutations.
pub fn mutations(max: usize) -> impl Strategy<Value = Vec<Mutation>> {
    let mutation = (
        any::<Index>(),
        any::<Index>(),
        prop::option::weighted(0.9, value()),
    )
        .prop_map(|(document, path, value)| Mutation {
            document,
            path,
            value,
        });
    prop::collection::vec(mutation, 1..=max)
}

/// Applies `mutations` to `documents`, in order. The identity of an object (`apiVersion`,
/// `kind`, `metadata.name`, `metadata.namespace`) is left alone.
pub fn apply(documents: &mut [Value], mutations: &[Mutation]) {
    if documents.is_empty() {
        return;
    }
    for mutation in mutations {
        let document = &mut documents[mutation.document.index(documents.len())];
        let paths = paths(document);
        if paths.is_empty() {
            continue;
        }
        let path = &paths[mutation.path.index(paths.len())];
        set(document, path, mutation.value.clone());
    }
}

/// The JSON pointer of every value inside `document` that mutations change: all but the
/// identity.
pub fn paths(document: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    collect_paths(document, String::new(), &mut paths);
    paths.retain(|path| !IDENTITY.contains(&path.as_str()));
    paths
}

/// The JSON pointer of every value inside `value` (not of `value` itself).
fn collect_paths(value: &Value, at: String, paths: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, child)| (key.replace('~', "~0").replace('/', "~1"), child))
            .collect(),
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(index, child)| (index.to_string(), child))
            .collect(),
        _ => return,
    };
    for (token, child) in children {
        let path = format!("{at}/{token}");
        paths.push(path.clone());
        collect_paths(child, path, paths);
    }
}

/// Replaces (or removes, with `None`) the value at `path`, a pointer `collect_paths` gave.
fn set(document: &mut Value, path: &str, value: Option<Value>) {
    let Some((parent, token)) = path.rsplit_once('/') else {
        return;
    };
    let token = token.replace("~1", "/").replace("~0", "~");
    match (document.pointer_mut(parent), value) {
        (Some(Value::Object(map)), Some(value)) => {
            map.insert(token, value);
        }
        (Some(Value::Object(map)), None) => {
            map.remove(&token);
        }
        (Some(Value::Array(list)), value) => {
            if let Ok(index) = token.parse::<usize>()
                && index < list.len()
            {
                match value {
                    Some(value) => list[index] = value,
                    None => {
                        list.remove(index);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn mutations_reach_every_path_but_the_identity() {
        let document = json!({"apiVersion": "v1", "kind": "K",
            "metadata": {"name": "n", "namespace": "ns", "labels": {"a/b": "c"}},
            "spec": {"list": [1, 2]}});
        assert_eq!(
            paths(&document),
            [
                "/metadata/labels",
                "/metadata/labels/a~1b",
                "/spec",
                "/spec/list",
                "/spec/list/0",
                "/spec/list/1"
            ]
        );
        let mut changed = document.clone();
        set(&mut changed, "/metadata/labels/a~1b", Some(json!(5)));
        set(&mut changed, "/spec/list/0", None);
        assert_eq!(changed["metadata"]["labels"]["a/b"], 5);
        assert_eq!(changed["spec"]["list"], json!([2]));
        assert_eq!(deep(3), json!([[[0]]]));
    }
}
