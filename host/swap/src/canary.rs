//! The canary: a candidate module runs the policy's scenario suite (the in-memory world of
//! [`capt_host_core::scenario`]) before it may serve; every scenario must pass.
//!
//! The suite is handed in as data (a [`Suite`]: the binary embeds its default policy's), or
//! the scenario files of a directory (`--canary-scenarios DIR`, read again for every
//! candidate). The run stops at the first
//! failing scenario: a module that loops fails in one deadline, not in one per scenario.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capt_policy::{Metadata, Request, Response};

use super::error::SwapError;
use capt_host_core::scenario::{self, Scenario};
use capt_host_core::{Policy, PolicyError, PolicyErrorKind};

/// A scenario suite handed in as data, written for one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// The name of the policy the suite is written for; candidates of other policies skip it.
    pub policy: String,
    /// Where the suite comes from, as reports name it (say `embedded`).
    pub label: String,
    /// The scenario files: `(path relative to the suite, content)`.
    pub files: Vec<(String, String)>,
}

/// Which scenario suite a candidate must pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canary {
    /// A suite handed in, used only for a policy of [`Suite::policy`]'s name (other policies
    /// skip the canary).
    Suite(Arc<Suite>),
    /// The scenario files (`.yaml`, `.yml`) under a directory, read for each candidate.
    Dir(PathBuf),
    /// No canary.
    Off,
}

/// What a passed canary ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CanaryReport {
    /// Scenarios run (all passed).
    pub scenarios: usize,
    /// How long the run took.
    #[serde(serialize_with = "super::status::millis")]
    pub duration: Duration,
    /// Where the suite came from: the [`Suite::label`] or the directory.
    pub suite: String,
}

impl Canary {
    /// Runs the suite against `policy` (named `name`). `Ok(None)` when there is no suite for
    /// it (off, or the embedded suite and another policy).
    pub(crate) fn run(&self, policy: &dyn Policy) -> Result<Option<CanaryReport>, SwapError> {
        let start = Instant::now();
        let (suite, scenarios) = match self {
            Self::Off => return Ok(None),
            Self::Suite(suite) if policy.metadata().name != suite.policy => return Ok(None),
            Self::Suite(suite) => (suite.label.clone(), suite.parse()?),
            Self::Dir(dir) => (dir.display().to_string(), from_dir(dir)?),
        };
        if scenarios.is_empty() {
            return Err(SwapError::CanarySuite(format!("{suite} has no scenario")));
        }
        for (file, scenario) in &scenarios {
            let recording = Recording::new(policy);
            let outcome = scenario::run(scenario, &recording);
            if let Some(failure) = outcome.failures.first() {
                let place = match failure.step {
                    0 => "setup".to_owned(),
                    n => format!("step {n}"),
                };
                return Err(SwapError::Canary {
                    scenario: format!("{} ({file})", outcome.name),
                    message: format!("{place}: {}", failure.message),
                    policy_error: recording.first_error.get(),
                });
            }
        }
        Ok(Some(CanaryReport {
            scenarios: scenarios.len(),
            duration: start.elapsed(),
            suite,
        }))
    }
}

impl Suite {
    /// The scenarios, parsed.
    pub fn parse(&self) -> Result<Vec<(String, Scenario)>, SwapError> {
        self.files
            .iter()
            .map(|(file, text)| {
                serde_yaml_ng::from_str(text)
                    .map(|scenario| (file.clone(), scenario))
                    .map_err(|e| SwapError::CanarySuite(format!("{} {file}: {e}", self.label)))
            })
            .collect()
    }
}

fn from_dir(dir: &std::path::Path) -> Result<Vec<(String, Scenario)>, SwapError> {
    let unusable =
        |e: &dyn std::error::Error| SwapError::CanarySuite(capt_host_core::error_chain(e));
    let files = scenario::files(&[dir.to_owned()]).map_err(|e| unusable(&e))?;
    files
        .iter()
        .map(|file| {
            let scenario = scenario::load(file).map_err(|e| unusable(&e))?;
            let name = file.strip_prefix(dir).unwrap_or(file).display().to_string();
            Ok((name, scenario))
        })
        .collect()
}

/// A policy that remembers the kind of the first error it returned.
struct Recording<'a> {
    policy: &'a dyn Policy,
    first_error: Cell<Option<PolicyErrorKind>>,
}

impl<'a> Recording<'a> {
    fn new(policy: &'a dyn Policy) -> Self {
        Self {
            policy,
            first_error: Cell::new(None),
        }
    }
}

impl Policy for Recording<'_> {
    fn metadata(&self) -> &Metadata {
        self.policy.metadata()
    }

    fn reconcile(&self, request: &Request) -> Result<Response, PolicyError> {
        let result = self.policy.reconcile(request);
        if let Err(error) = &result
            && self.first_error.get().is_none()
        {
            self.first_error.set(Some(error.kind()));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suite_that_does_not_parse_names_its_file() {
        let suite = Suite {
            policy: "p".into(),
            label: "handed in".into(),
            files: vec![("a.yaml".into(), "name: [".into())],
        };
        let error = suite.parse().unwrap_err().to_string();
        assert!(error.contains("handed in a.yaml"), "{error}");
    }
}
