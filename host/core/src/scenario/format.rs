//! The scenario file format (YAML, one scenario per file). Unknown keys are errors, so a typo
//! never silently skips an expectation.
//!
//! ```yaml
//! name: human readable name
//! settings: {key: value}           # optional overrides of the policy's default settings
//! objects: [...manifests...]       # the initial world
//! steps:
//!   - at: "2026-01-01T00:00:00Z"   # or `after: 90s` (relative to the previous step)
//!     apply: [...manifests...]     # create, or JSON-merge into the existing object
//!     delete: [{apiVersion, kind, namespace, name}]
//!     reconcile: {kind, namespace, name}   # one, a list, [] for none; omitted: every trigger
//!     expect:
//!       objects: [...partial manifests...]
//!       absent: [{kind, namespace, name}]
//!       requeueAfter: none | "10s" | {min: "5s", max: "5m"}
//!       events: [{type: Warning, reason: Reason}]
//!       patches: 0
//!       error: "substring"
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use capt_policy::duration;

/// One scenario: an initial world and steps that change it, reconcile and check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A human-readable name.
    pub name: String,
    /// Overrides of the policy's default settings (merged with RFC 7396).
    #[serde(default)]
    pub settings: Option<Value>,
    /// The initial objects (full manifests).
    #[serde(default)]
    pub objects: Vec<Value>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One step: move the clock, change the world, reconcile, check.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The step's time (RFC 3339). The first step needs it.
    #[serde(default, deserialize_with = "time")]
    pub at: Option<DateTime<Utc>>,
    /// The step's time, relative to the previous step's (a Go duration).
    #[serde(default, deserialize_with = "go_duration")]
    pub after: Option<Duration>,
    /// Manifests to create, or to merge into existing objects (status included).
    #[serde(default)]
    pub apply: Vec<Value>,
    /// Objects to delete.
    #[serde(default)]
    pub delete: Vec<Selector>,
    /// What to reconcile; `None` (omitted): every object of every trigger kind.
    #[serde(default, deserialize_with = "one_or_many")]
    pub reconcile: Option<Vec<Selector>>,
    /// What must hold after the step.
    #[serde(default)]
    pub expect: Expect,
}

/// Names an object. `apiVersion` (only its group matters) and `namespace` may be left out
/// when kind and name are unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    /// `group/version`, or `v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The kind.
    pub kind: String,
    /// The namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// The expectations of one step; every one is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// Partial manifests, each matching the object it names after the step.
    #[serde(default)]
    pub objects: Vec<Value>,
    /// Objects that must not exist after the step.
    #[serde(default)]
    pub absent: Vec<Selector>,
    /// The requeue of the step's last reconcile.
    #[serde(default, deserialize_with = "requeue")]
    pub requeue_after: Option<Requeue>,
    /// Partial events, each matching a distinct event emitted in the step.
    #[serde(default)]
    pub events: Option<Vec<Value>>,
    /// The number of patches emitted in the step.
    #[serde(default)]
    pub patches: Option<usize>,
    /// A reconcile of the step must fail with this in its message.
    #[serde(default)]
    pub error: Option<String>,
}

/// An expected requeue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeue {
    /// `none`: no requeue.
    Never,
    /// `"10s"`: exactly this.
    Exactly(Duration),
    /// `{min: "5s", max: "5m"}`: within these bounds (inclusive; either may be left out).
    Between {
        /// The lower bound.
        min: Option<Duration>,
        /// The upper bound.
        max: Option<Duration>,
    },
}

impl Requeue {
    /// Whether a response's `requeue-after-millis` meets this expectation.
    pub fn accepts(&self, millis: Option<u64>) -> bool {
        let actual = millis.map(Duration::from_millis);
        match (self, actual) {
            (Self::Never, None) => true,
            (Self::Exactly(d), Some(actual)) => *d == actual,
            (Self::Between { min, max }, Some(actual)) => {
                min.is_none_or(|min| actual >= min) && max.is_none_or(|max| actual <= max)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Requeue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |d: &Option<Duration>| {
            d.map_or("-".to_owned(), |d| {
                duration::format_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            })
        };
        match self {
            Self::Never => write!(f, "none"),
            Self::Exactly(d) => write!(f, "{}", show(&Some(*d))),
            Self::Between { min, max } => write!(f, "between {} and {}", show(min), show(max)),
        }
    }
}

fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| {
            D::Error::custom(format!(
                "invalid time {text:?} ({e}); expected RFC 3339, e.g. 2026-01-01T00:00:00Z"
            ))
        })
}

fn go_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    duration::parse(&text).map(Some).map_err(D::Error::custom)
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Selector>>, D::Error> {
    let value = Value::deserialize(d)?;
    let selectors = match value {
        Value::Array(_) => serde_json::from_value(value),
        one => serde_json::from_value(one).map(|s| vec![s]),
    };
    selectors.map(Some).map_err(|e| {
        D::Error::custom(format!(
            "invalid `reconcile` ({e}); expected {{kind, namespace, name}} or a list of them"
        ))
    })
}

fn requeue<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Requeue>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Bounds {
            min: Option<String>,
            max: Option<String>,
        },
    }
    let parse = |text: Option<String>| text.as_deref().map(duration::parse).transpose();
    let requeue = match Raw::deserialize(d)? {
        Raw::Text(text) if text == "none" => Requeue::Never,
        Raw::Text(text) => Requeue::Exactly(duration::parse(&text).map_err(D::Error::custom)?),
        Raw::Bounds { min, max } => Requeue::Between {
            min: parse(min).map_err(D::Error::custom)?,
            max: parse(max).map_err(D::Error::custom)?,
        },
    };
    Ok(Some(requeue))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Scenario, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_scenario_parses() {
        let scenario = parse(
            r#"
name: demo
settings: {a: 1}
objects:
  - {apiVersion: v1, kind: ConfigMap, metadata: {namespace: default, name: c}}
steps:
  - at: "2026-01-01T00:00:00Z"
    reconcile: {kind: ConfigMap, namespace: default, name: c}
    expect:
      requeueAfter: none
      patches: 0
  - after: 90s
    delete: [{kind: ConfigMap, name: c}]
    reconcile: []
    expect:
      requeueAfter: {min: 5s, max: 5m}
      absent: [{kind: ConfigMap, namespace: default, name: c}]
  - expect: {requeueAfter: 10s, error: boom, events: [{type: Warning}]}
"#,
        )
        .unwrap();
        assert_eq!(scenario.steps.len(), 3);
        let [first, second, third] = &scenario.steps[..] else {
            unreachable!()
        };
        assert_eq!(first.at.unwrap().timestamp(), 1_767_225_600);
        assert_eq!(first.reconcile.as_ref().unwrap()[0].name, "c");
        assert_eq!(first.expect.requeue_after, Some(Requeue::Never));
        assert_eq!(second.after, Some(Duration::from_secs(90)));
        assert_eq!(second.reconcile, Some(vec![]));
        assert_eq!(third.reconcile, None);
        assert_eq!(
            third.expect.requeue_after,
            Some(Requeue::Exactly(Duration::from_secs(10)))
        );
    }

    #[test]
    fn mistakes_are_reported_with_their_cause() {
        let err = parse("name: x\nsteps: [{at: yesterday}]").unwrap_err();
        assert!(err.contains("invalid time \"yesterday\""), "{err}");
        let err = parse("name: x\nsteps: [{after: 5d}]").unwrap_err();
        assert!(err.contains("unknown unit"), "{err}");
        let err = parse("name: x\nsteps: [{expect: {patchez: 0}}]").unwrap_err();
        assert!(err.contains("unknown field `patchez`"), "{err}");
        let err = parse("name: x\nsteps: [{reconcile: {kind: A}}]").unwrap_err();
        assert!(err.contains("missing field `name`"), "{err}");
    }

    #[test]
    fn requeue_expectations_accept_what_they_say() {
        let secs = Duration::from_secs;
        assert!(Requeue::Never.accepts(None));
        assert!(!Requeue::Never.accepts(Some(1)));
        assert!(Requeue::Exactly(secs(10)).accepts(Some(10_000)));
        assert!(!Requeue::Exactly(secs(10)).accepts(None));
        let range = Requeue::Between {
            min: Some(secs(5)),
            max: None,
        };
        assert!(range.accepts(Some(5_000)));
        assert!(!range.accepts(Some(4_999)));
        assert_eq!(range.to_string(), "between 5s and -");
    }
}
