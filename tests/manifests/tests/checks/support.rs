//! Paths and YAML loading shared by the checks.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The repository root (this crate is `tests/manifests`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A path relative to the repository root.
pub fn path(relative: &str) -> PathBuf {
    repo().join(relative)
}

/// A path shown relative to the repository root, for messages.
pub fn show(path: &Path) -> String {
    let root = repo().canonicalize().expect("the repository root exists");
    let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    full.strip_prefix(&root)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

/// The file's text; panics with the path when it cannot be read.
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", show(path)))
}

/// Every YAML document of the file, as JSON values; empty documents (comments only) are skipped.
pub fn documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut out = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let value = Value::deserialize(document).unwrap_or_else(|e| {
            panic!(
                "{}: document {} is not valid YAML: {e}",
                show(path),
                index + 1
            )
        });
        if !value.is_null() {
            out.push(value);
        }
    }
    out
}

/// The single YAML document of the file.
pub fn document(path: &Path) -> Value {
    let mut all = documents(path);
    assert_eq!(
        all.len(),
        1,
        "{} must hold exactly one document",
        show(path)
    );
    all.remove(0)
}

/// Every file under `dir` (recursively) whose name ends with one of `extensions`, sorted.
pub fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", show(&dir)));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every YAML file under `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    files(dir, &["yaml", "yml"])
}

/// `a.b.c` inside a JSON value.
pub fn at<'v>(value: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted
        .split('.')
        .try_fold(value, |v, key| v.as_object()?.get(key))
}

/// `a.b.c` inside a JSON value, as a string.
pub fn str_at<'v>(value: &'v Value, dotted: &str) -> Option<&'v str> {
    at(value, dotted)?.as_str()
}

/// `kind namespace/name` of a manifest, for messages.
pub fn describe(object: &Value) -> String {
    let kind = str_at(object, "kind").unwrap_or("?");
    let name = str_at(object, "metadata.name").unwrap_or("?");
    match str_at(object, "metadata.namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}
