//! The host's layers hold their dependency rules (README, "Architecture"), read from
//! `cargo metadata`: what each crate may not depend on, directly or through others (normal
//! dependencies; dev and build dependencies are not shipped):
//! - `capt-host-core`: no wasm runtime, no Kubernetes client, no async runtime;
//! - `capt-host-runtime`: no Kubernetes client;
//! - `capt-host-operator`: not the hot swaps (they plug into it, not the other way round);
//! - no library crate outside `tests/`: the in-process API server (a test double);
//! - the operator image (the `cargo build` of the Dockerfile, with its features): neither the
//!   test double nor the simulated CAPT world.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates a package must not depend on: `(package, forbidden, why)`.
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "capt-host-core",
        &["wasmtime", "kube", "kube-client", "kube-runtime", "tokio"],
        "core depends on no wasm runtime, Kubernetes client or async runtime",
    ),
    (
        "capt-host-runtime",
        &["kube", "kube-client", "kube-runtime"],
        "the runtime knows no Kubernetes",
    ),
    (
        "capt-host-operator",
        &["capt-host-swap"],
        "the operator knows nothing of hot swaps",
    ),
];

/// The test double no shipped crate may depend on.
const TEST_DOUBLE: &str = "inproc-apiserver";
/// What the operator image must not contain.
const NOT_IN_IMAGE: &[&str] = &[TEST_DOUBLE, "capt-status-sim"];
/// The package the image builds.
const BINARY: &str = "capt-host";

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(workspace().join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// The workspace's packages that are no test code: `(name, has a library target)`.
fn shipped_packages(metadata: &Value) -> Vec<(String, bool)> {
    let root = metadata["workspace_root"].as_str().unwrap_or_default();
    let tests = Path::new(root).join("tests");
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    packages(metadata)
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(id)))
        .filter(|p| {
            p["manifest_path"]
                .as_str()
                .is_some_and(|m| !Path::new(m).starts_with(&tests))
        })
        .map(|p| {
            let is_lib = p["targets"].as_array().into_iter().flatten().any(|t| {
                t["kind"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k == "lib" || k == "rlib")
            });
            (p["name"].as_str().unwrap_or_default().to_owned(), is_lib)
        })
        .collect()
}

fn packages(metadata: &Value) -> impl Iterator<Item = &Value> {
    metadata["packages"].as_array().into_iter().flatten()
}

/// Every package `name` depends on through normal dependencies, by name (from the resolved
/// graph: with the workspace's default features).
fn normal_closure(metadata: &Value, name: &str) -> BTreeSet<String> {
    let names: BTreeMap<&str, &str> = packages(metadata)
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let mut todo: Vec<&str> = names
        .iter()
        .filter(|(_, n)| **n == name)
        .map(|(id, _)| *id)
        .collect();
    let mut seen = BTreeSet::new();
    let mut found = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes
            .get(id)
            .and_then(|n| n["deps"].as_array())
            .into_iter()
            .flatten()
        {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            if let (true, Some(pkg)) = (normal, dep["pkg"].as_str()) {
                found.insert(names.get(pkg).copied().unwrap_or(pkg).to_owned());
                todo.push(pkg);
            }
        }
    }
    found
}

/// The rules broken by the workspace `metadata` describes, one line each.
fn violations(metadata: &Value) -> Vec<String> {
    let mut broken = Vec::new();
    for (package, forbidden, why) in RULES {
        let closure = normal_closure(metadata, package);
        for name in forbidden.iter().filter(|f| closure.contains(**f)) {
            broken.push(format!("{package} depends on {name}: {why}"));
        }
    }
    for (package, is_lib) in shipped_packages(metadata) {
        if is_lib
            && package != TEST_DOUBLE
            && normal_closure(metadata, &package).contains(TEST_DOUBLE)
        {
            broken.push(format!(
                "the library {package} depends on the test double {TEST_DOUBLE}"
            ));
        }
    }
    broken
}

/// The features the Dockerfile's `cargo build` enables: `None` for the defaults, else the
/// features named with `--features`.
fn image_features(dockerfile: &str) -> Option<BTreeSet<String>> {
    let build = dockerfile
        .lines()
        .find(|l| l.contains("cargo build") && l.contains(BINARY))
        .expect("the Dockerfile builds capt-host with `cargo build`");
    let words: Vec<&str> = build.split_whitespace().collect();
    if !words.contains(&"--no-default-features") {
        return None;
    }
    let mut features = BTreeSet::new();
    for pair in words.windows(2) {
        if pair[0] == "--features" || pair[0] == "-F" {
            features.extend(pair[1].split(',').map(str::to_owned));
        }
    }
    Some(features)
}

/// The workspace packages `BINARY` links when built with `features` (`None`: the defaults),
/// through normal dependencies, direct or not, optional ones only when a feature enables them.
fn image_packages(metadata: &Value, features: Option<BTreeSet<String>>) -> BTreeSet<String> {
    let binary = packages(metadata)
        .find(|p| p["name"] == BINARY)
        .expect("the binary's package");
    let feature_map = binary["features"].as_object().cloned().unwrap_or_default();
    let mut enabled = features.unwrap_or_else(|| BTreeSet::from(["default".to_owned()]));
    let mut todo: Vec<String> = enabled.iter().cloned().collect();
    while let Some(feature) = todo.pop() {
        for implied in feature_map
            .get(&feature)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if enabled.insert(implied.to_owned()) {
                todo.push(implied.to_owned());
            }
        }
    }
    let mut linked = BTreeSet::new();
    for dep in binary["dependencies"].as_array().into_iter().flatten() {
        let name = dep["name"].as_str().unwrap_or_default();
        let optional = dep["optional"].as_bool().unwrap_or(false);
        if !dep["kind"].is_null() || (optional && !enabled.contains(&format!("dep:{name}"))) {
            continue;
        }
        linked.insert(name.to_owned());
        linked.extend(normal_closure(metadata, name));
    }
    linked
}

#[test]
fn every_layer_keeps_to_its_dependencies() {
    let metadata = metadata();
    let names: Vec<String> = shipped_packages(&metadata)
        .into_iter()
        .map(|p| p.0)
        .collect();
    for (package, ..) in RULES {
        assert!(names.iter().any(|n| n == package), "{package} is checked");
    }
    assert_eq!(violations(&metadata), Vec::<String>::new());
}

#[test]
fn the_operator_image_has_no_test_double_and_no_simulation() {
    let metadata = metadata();
    let dockerfile =
        std::fs::read_to_string(workspace().join("Dockerfile")).expect("the Dockerfile");
    let linked = image_packages(&metadata, image_features(&dockerfile));
    assert!(linked.contains("capt-host-operator"), "{linked:?}");
    for name in NOT_IN_IMAGE {
        assert!(!linked.contains(*name), "the image links {name}");
    }
    // The demo's build (the defaults) does link them: the check sees optional dependencies.
    let demo = image_packages(&metadata, None);
    assert!(NOT_IN_IMAGE.iter().all(|n| demo.contains(*n)), "{demo:?}");
}

#[test]
fn a_broken_rule_is_reported() {
    // A workspace of two members, where core depends on tokio through a helper and a library
    // depends on the test double.
    let package = |name: &str, deps: &[&str]| {
        serde_json::json!({
            "id": name, "name": name,
            "manifest_path": format!("/ws/{name}/Cargo.toml"),
            "targets": [{"kind": ["lib"]}],
            "dependencies": deps.iter().map(|d| serde_json::json!({"name": d, "kind": null})).collect::<Vec<_>>(),
            "features": {},
        })
    };
    let node = |name: &str, deps: &[&str]| {
        serde_json::json!({
            "id": name,
            "deps": deps.iter().map(|d| serde_json::json!({"pkg": d, "dep_kinds": [{"kind": null}]})).collect::<Vec<_>>(),
        })
    };
    let metadata = serde_json::json!({
        "workspace_root": "/ws",
        "workspace_members": ["capt-host-core", "helper"],
        "packages": [package("capt-host-core", &["helper"]), package("helper", &["tokio", TEST_DOUBLE]),
                     package("tokio", &[]), package(TEST_DOUBLE, &[])],
        "resolve": {"nodes": [node("capt-host-core", &["helper"]), node("helper", &["tokio", TEST_DOUBLE]),
                              node("tokio", &[]), node(TEST_DOUBLE, &[])]},
    });
    let broken = violations(&metadata);
    assert!(
        broken
            .iter()
            .any(|b| b.starts_with("capt-host-core depends on tokio")),
        "{broken:?}"
    );
    assert!(
        broken
            .iter()
            .any(|b| b.contains("helper depends on the test double")),
        "{broken:?}"
    );
    assert_eq!(image_features("RUN cargo build -p capt-host"), None);
    assert_eq!(
        image_features("RUN cargo build -p capt-host --no-default-features --features a,b"),
        Some(BTreeSet::from(["a".to_owned(), "b".to_owned()]))
    );
}
