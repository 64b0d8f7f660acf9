//! Settings files: the overrides an operator gives a policy (`--settings FILE`, a scenario's
//! `settings`), read with the position of every key ([`SettingsFile`]), and checked by the
//! policy itself before anything runs ([`check`]).
//!
//! The host does not know a policy's settings; the policy does, and rejects invalid ones with
//! `invalid-input` when it is called. [`check`] calls it once with the merged settings and a
//! probe object of its first trigger kind, the same probe with its default settings telling
//! what a rejection caused by the object alone looks like. When the settings are rejected,
//! each key of the file is tried alone (an object's keys one by one in turn), so that the
//! error names the keys at fault and where they are in the user's own file, not in the merged
//! document the policy parsed.

use std::fmt;
use std::path::{Path, PathBuf};

use capt_policy::{Error as ContractError, ObjectRef, ObservedObject, Request};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::policy::{Policy, PolicyError};
use crate::rounds::{self, RoundError};

/// Why settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("could not read the settings {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{} is not valid YAML", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// The file holds something else than a mapping of keys to values.
    #[error("{}: the settings must be a mapping of keys to values", .path.display())]
    NotAMapping {
        /// The file.
        path: PathBuf,
    },
    /// The settings do not merge with the policy's defaults (a defect of the policy).
    #[error("the settings cannot be merged with the policy's defaults")]
    Merge(#[source] RoundError),
    /// The policy rejects the settings.
    #[error("{}: the policy `{policy}` rejects these settings:{}", .path.display(), list(.problems))]
    Rejected {
        /// The file.
        path: PathBuf,
        /// The policy's name.
        policy: String,
        /// The keys at fault (the file as a whole when no key alone is).
        problems: Vec<Problem>,
    },
}

/// One key the policy rejects, where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key's path from the top of the file, `.`-separated (empty for the whole file).
    pub key: String,
    /// Its 1-based line and column in the file (the file's start for the whole file).
    pub position: Position,
    /// The policy's message.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key.as_str() {
            "" => write!(f, "{}: {}", self.position, self.message),
            key => write!(f, "{}: `{key}`: {}", self.position, self.message),
        }
    }
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line, from 1.
    pub line: u64,
    /// The column, from 1.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

/// A settings file: its overrides, and where each of its keys is.
#[derive(Debug, Clone)]
pub struct SettingsFile {
    path: PathBuf,
    root: Located,
}

impl SettingsFile {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text`, the content of the file at `path`. An empty file overrides nothing.
    pub fn parse(path: &Path, text: &str) -> Result<Self, SettingsError> {
        Self::new(path, located(path, text)?.unwrap_or_else(Located::empty))
    }

    /// The settings under `key` of a YAML file (e.g. a scenario's `settings`), with positions
    /// in that file; `None` when the file has no such key.
    pub fn parse_key(path: &Path, text: &str, key: &str) -> Result<Option<Self>, SettingsError> {
        located(path, text)?
            .and_then(|root| root.keys.into_iter().find(|entry| entry.key == key))
            .filter(|entry| !entry.node.value.is_null())
            .map(|entry| Self::new(path, entry.node))
            .transpose()
    }

    fn new(path: &Path, root: Located) -> Result<Self, SettingsError> {
        if !root.value.is_object() {
            return Err(SettingsError::NotAMapping {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            root,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The overrides, a JSON object.
    pub fn overrides(&self) -> &Value {
        &self.root.value
    }
}

/// The YAML document `text` of the file at `path`, with positions; `None` when it is empty.
fn located(path: &Path, text: &str) -> Result<Option<Located>, SettingsError> {
    serde_saphyr::from_str(text).map_err(|source| SettingsError::Syntax {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// The settings `policy` runs with, its defaults merged with `file`'s overrides, as JSON
/// text; an error naming the keys of `file` the policy rejects, and where they are.
///
/// A policy that triggers on nothing, or that fails the probe for another reason than
/// rejecting its input, cannot be asked: its settings are taken as they are.
pub fn check(policy: &dyn Policy, file: Option<&SettingsFile>) -> Result<String, SettingsError> {
    let defaults = &policy.metadata().default_settings;
    let merged = rounds::merge_settings(defaults, file.map(SettingsFile::overrides))
        .map_err(SettingsError::Merge)?;
    let (Some(file), Some(probe)) = (file, Probe::new(policy)) else {
        return Ok(merged);
    };
    if probe.rejection(&merged).is_none() {
        return Ok(merged);
    }
    let mut problems = Vec::new();
    probe.blame(&file.root, &mut Vec::new(), &mut problems);
    if problems.is_empty() {
        problems.push(Problem {
            key: String::new(),
            position: file.root.position,
            message: probe.rejection(&merged).unwrap_or_default(),
        });
    }
    Err(SettingsError::Rejected {
        path: file.path.clone(),
        policy: policy.metadata().name.clone(),
        problems,
    })
}

/// One call of a policy on an object of its first trigger kind with only a name, which tells
/// whether settings are rejected.
struct Probe<'a> {
    policy: &'a dyn Policy,
    defaults: &'a str,
    request: Request,
    /// What the policy answers with its default settings.
    baseline: Result<(), ContractError>,
}

impl<'a> Probe<'a> {
    fn new(policy: &'a dyn Policy) -> Option<Self> {
        let kind = policy.metadata().triggers.first()?;
        let namespace = kind.namespaced.then_some("default");
        let trigger = ObjectRef::new(&kind.api_version, &kind.kind, namespace, "settings-check");
        let mut metadata = Map::new();
        metadata.insert("name".into(), trigger.name.clone().into());
        if let Some(namespace) = namespace {
            metadata.insert("namespace".into(), namespace.into());
        }
        let manifest = serde_json::json!({
            "apiVersion": trigger.api_version,
            "kind": trigger.kind,
            "metadata": metadata,
        });
        let defaults = policy.metadata().default_settings.as_str();
        let mut probe = Self {
            policy,
            defaults,
            request: Request {
                trigger: trigger.clone(),
                now_epoch_millis: 0,
                objects: vec![ObservedObject {
                    reference: trigger,
                    manifest: manifest.to_string(),
                }],
                missing: vec![],
                settings: String::new(),
            },
            baseline: Ok(()),
        };
        probe.baseline = probe.call(defaults)?;
        Some(probe)
    }

    /// The policy's answer with `settings`: `None` when it failed without answering (a trap,
    /// a limit), so that nothing can be learnt from it.
    fn call(&self, settings: &str) -> Option<Result<(), ContractError>> {
        let request = Request {
            settings: settings.to_owned(),
            ..self.request.clone()
        };
        match self.policy.reconcile(&request) {
            Ok(_) => Some(Ok(())),
            Err(PolicyError::Rejected(error)) => Some(Err(error)),
            Err(error) => {
                tracing::debug!(
                    error = %crate::error_chain(&error),
                    "the settings probe failed; the settings are not checked"
                );
                None
            }
        }
    }

    /// The policy's message when it rejects `settings` as invalid input and does not reject
    /// its defaults so: the settings are at fault.
    fn rejection(&self, settings: &str) -> Option<String> {
        match self.call(settings)? {
            Err(ContractError::InvalidInput(message))
                if self.baseline != Err(ContractError::InvalidInput(message.clone())) =>
            {
                Some(message)
            }
            _ => None,
        }
    }

    /// Adds to `problems` the keys under `node` (at `path`) that the policy rejects alone,
    /// the deepest ones: a mapping whose keys are each fine alone is named itself.
    fn blame(&self, node: &Located, path: &mut Vec<String>, problems: &mut Vec<Problem>) {
        for entry in &node.keys {
            path.push(entry.key.clone());
            let mut only = entry.node.value.clone();
            for key in path.iter().rev() {
                only = Value::Object(Map::from_iter([(key.clone(), only)]));
            }
            let message = rounds::merge_settings(self.defaults, Some(&only))
                .ok()
                .and_then(|settings| self.rejection(&settings));
            if let Some(message) = message {
                let before = problems.len();
                self.blame(&entry.node, path, problems);
                if problems.len() == before {
                    problems.push(Problem {
                        key: path.join("."),
                        position: entry.position,
                        message,
                    });
                }
            }
            path.pop();
        }
    }
}

/// A YAML node as JSON, with the position of each of its mapping's keys.
#[derive(Debug, Clone)]
struct Located {
    value: Value,
    /// Where the node starts.
    position: Position,
    /// A mapping's entries, in the file's order.
    keys: Vec<Entry>,
}

/// A mapping's entry.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    position: Position,
    node: Located,
}

impl Located {
    fn empty() -> Self {
        Self {
            value: Value::Object(Map::new()),
            position: Position { line: 1, column: 1 },
            keys: Vec::new(),
        }
    }
}

impl<'de> Deserialize<'de> for Located {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<Node>::deserialize(deserializer)?;
        Ok(Self {
            value: spanned.value.value,
            position: position(&spanned.referenced),
            keys: spanned.value.keys,
        })
    }
}

fn position(location: &serde_saphyr::Location) -> Position {
    Position {
        line: location.line().max(1),
        column: location.column().max(1),
    }
}

/// A node without its own position (see [`Located`]).
struct Node {
    value: Value,
    keys: Vec<Entry>,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl NodeVisitor {
    fn leaf<E>(value: impl Into<Value>) -> Result<Node, E> {
        Ok(Node {
            value: value.into(),
            keys: Vec::new(),
        })
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Self::leaf(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Self::leaf(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Self::leaf(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        serde_json::Number::from_f64(v)
            .map(|n| Node {
                value: Value::Number(n),
                keys: Vec::new(),
            })
            .ok_or_else(|| E::custom(format!("{v} is not a finite number")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Self::leaf(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Self::leaf(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Self::leaf(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Self::leaf(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Self::leaf(items)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut value = Map::new();
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<serde_saphyr::Spanned<String>>()? {
            let node: Located = map.next_value()?;
            value.insert(key.value.clone(), node.value.clone());
            keys.push(Entry {
                key: key.value,
                position: position(&key.referenced),
                node,
            });
        }
        Ok(Node {
            value: Value::Object(value),
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use capt_policy::{KindRef, Metadata, Response};
    use serde_json::json;

    use super::*;

    /// A policy whose settings are `{"limit": number, "nested": {"a": bool, "b": bool}}`,
    /// rejecting anything else, and `limit` under `floor`, as invalid input.
    struct Strict(Metadata);

    impl Strict {
        fn new() -> Self {
            Self(Metadata {
                name: "strict".into(),
                version: "1".into(),
                triggers: vec![KindRef {
                    api_version: "example.com/v1".into(),
                    kind: "Thing".into(),
                    namespaced: true,
                }],
                reads: vec![],
                default_settings: r#"{"limit": 5, "floor": 1, "nested": {"a": true, "b": true}}"#
                    .into(),
            })
        }
    }

    impl Policy for Strict {
        fn metadata(&self) -> &Metadata {
            &self.0
        }

        fn reconcile(&self, request: &Request) -> Result<Response, PolicyError> {
            let reject = |m: String| PolicyError::Rejected(ContractError::InvalidInput(m));
            let settings: Value = serde_json::from_str(&request.settings).unwrap();
            for (key, value) in settings.as_object().unwrap() {
                let ok = match key.as_str() {
                    "limit" | "floor" => value.is_u64(),
                    "nested" => value.as_object().unwrap().values().all(Value::is_boolean),
                    _ => false,
                };
                if !ok {
                    return Err(reject(format!("bad `{key}` at line 1 column 9")));
                }
            }
            if settings["limit"].as_u64() < settings["floor"].as_u64() {
                return Err(reject("limit under floor".into()));
            }
            // The probe object has no spec: rejected with the defaults too, so not the
            // settings' fault.
            Err(reject("no spec".into()))
        }
    }

    fn check_text(text: &str) -> Result<String, SettingsError> {
        let file = SettingsFile::parse(Path::new("my-settings.yaml"), text)?;
        check(&Strict::new(), Some(&file))
    }

    fn problems(text: &str) -> Vec<(String, Position)> {
        match check_text(text) {
            Err(SettingsError::Rejected { problems, .. }) => {
                problems.into_iter().map(|p| (p.key, p.position)).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    fn at(line: u64, column: u64) -> Position {
        Position { line, column }
    }

    #[test]
    fn valid_settings_are_merged_into_the_defaults() {
        let merged: Value = serde_json::from_str(&check_text("limit: 9\n").unwrap()).unwrap();
        assert_eq!(
            merged,
            json!({"limit": 9, "floor": 1, "nested": {"a": true, "b": true}})
        );
        assert!(check_text("").is_ok(), "an empty file overrides nothing");
        assert!(check(&Strict::new(), None).is_ok());
    }

    #[test]
    fn rejected_keys_are_named_at_their_place_in_the_users_file() {
        let text = "# my settings\nlimit: 9\nlimt: 3\nnested:\n  a: true\n  b: \"yes\"\n";
        assert_eq!(
            problems(text),
            [("limt".into(), at(3, 1)), ("nested.b".into(), at(6, 3))]
        );
        let error = check_text(text).unwrap_err().to_string();
        assert_eq!(
            error,
            "my-settings.yaml: the policy `strict` rejects these settings:\n  \
             3:1: `limt`: bad `limt` at line 1 column 9\n  \
             6:3: `nested.b`: bad `nested` at line 1 column 9"
        );
    }

    #[test]
    fn a_rejection_no_key_causes_alone_names_the_keys_that_cause_it_with_the_defaults() {
        assert_eq!(problems("floor: 7\n"), [("floor".into(), at(1, 1))]);
        assert_eq!(
            problems("floor: 3\nlimit: 2\n"),
            [(String::new(), at(1, 1))],
            "each is fine alone: the file as a whole"
        );
    }

    #[test]
    fn the_settings_of_a_key_of_a_larger_file_have_positions_in_that_file() {
        let text = "name: x\nsettings:\n  limit: -1\nsteps: []\n";
        let file = SettingsFile::parse_key(Path::new("s.yaml"), text, "settings")
            .unwrap()
            .unwrap();
        let Err(SettingsError::Rejected { problems, .. }) = check(&Strict::new(), Some(&file))
        else {
            panic!("accepted");
        };
        assert_eq!(problems[0].position, at(3, 3));
        assert!(
            SettingsFile::parse_key(Path::new("s.yaml"), "name: x\n", "settings")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn files_that_are_not_mappings_are_errors_with_their_place() {
        let error = check_text("- a\n- b\n").unwrap_err();
        assert!(
            matches!(error, SettingsError::NotAMapping { .. }),
            "{error}"
        );
        let error = check_text("limit: [1\n").unwrap_err();
        assert!(matches!(error, SettingsError::Syntax { .. }), "{error}");
        assert!(
            crate::error_chain(&error).contains("line"),
            "{}",
            crate::error_chain(&error)
        );
    }
}
