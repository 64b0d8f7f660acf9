//! The canary: a candidate module runs the policy's scenario suite (the in-memory world of
//! [`capt_host_core::scenario`]) before it may serve; every scenario must pass.
//!
//! The suite is the default policy's (`policies/capt-status/scenarios`, embedded into the
//! binary at build time by `build.rs`), or the scenario files of a directory
//! (`--canary-scenarios DIR`, read again for every candidate). The run stops at the first
//! failing scenario: a module that loops fails in one deadline, not in one per scenario.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use capt_policy::{Metadata, Request, Response};

use super::error::SwapError;
use capt_host_core::{Policy, PolicyError};
use capt_host_core::scenario::{self, Scenario};

/// The scenario files of the default policy: `(path relative to the suite, content)`.
const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/canary-scenarios.rs"));

/// The policy the embedded suite is written for (the default policy's name).
pub const EMBEDDED_SUITE_POLICY: &str = "capt-status";

/// Which scenario suite a candidate must pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Canary {
    /// The suite of the default policy, embedded in the binary; used only for a policy named
    /// [`EMBEDDED_SUITE_POLICY`] (other policies skip the canary, with a warning).
    #[default]
    Embedded,
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
    /// Where the suite came from: `embedded` or the directory.
    pub suite: String,
}

/// How many scenarios the embedded suite has.
pub fn embedded_suite_len() -> usize {
    EMBEDDED.len()
}

impl Canary {
    /// Runs the suite against `policy` (named `name`). `Ok(None)` when there is no suite for
    /// it (off, or the embedded suite and another policy).
    pub(crate) fn run(&self, policy: &dyn Policy) -> Result<Option<CanaryReport>, SwapError> {
        let start = Instant::now();
        let (suite, scenarios) = match self {
            Self::Off => return Ok(None),
            Self::Embedded if policy.metadata().name != EMBEDDED_SUITE_POLICY => {
                return Ok(None);
            }
            Self::Embedded => ("embedded".to_owned(), embedded()?),
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

fn embedded() -> Result<Vec<(String, Scenario)>, SwapError> {
    EMBEDDED
        .iter()
        .map(|(file, text)| {
            serde_yaml_ng::from_str(text)
                .map(|scenario| ((*file).to_owned(), scenario))
                .map_err(|e| SwapError::CanarySuite(format!("embedded {file}: {e}")))
        })
        .collect()
}

fn from_dir(dir: &std::path::Path) -> Result<Vec<(String, Scenario)>, SwapError> {
    let unusable = |e: &dyn std::error::Error| SwapError::CanarySuite(capt_host_core::error_chain(e));
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
    first_error: Cell<Option<&'static str>>,
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
    fn the_embedded_suite_is_the_default_policys_and_parses() {
        let scenarios = embedded().unwrap();
        assert!(scenarios.len() > 10, "{} scenarios", scenarios.len());
        assert!(scenarios.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    }
}
