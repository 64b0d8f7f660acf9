//! The checks a candidate passes before it may serve (steps 1 to 4 of the protocol, without
//! the shadow run): read (size limit), skip if unchanged, compile (compile cache), contract,
//! same policy and kinds, settings, canary. Blocking: the job runs it on a blocking thread.

use std::collections::BTreeSet;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capt_policy::{KindRef, Metadata};
use chrono::Utc;

use super::SwapConfig;
use super::canary::CanaryReport;
use super::error::SwapError;
use super::shadow::ShadowSlot;
use super::source::{self, Candidate};
use super::status::ModuleReport;
use super::supervised::{Probation, Supervised};
use super::verdict;
use capt_host_core::Policy;
use capt_host_core::settings::{self, SettingsFile};
use capt_host_runtime::ActivePolicy;
use capt_host_runtime::Engine;
use capt_host_runtime::{Compilation, WasmPolicy};

/// A module that loaded, with its settings: the active one, the last good one, or a checked
/// candidate.
#[derive(Clone)]
pub(crate) struct Module {
    pub(crate) policy: Arc<WasmPolicy>,
    pub(crate) settings: Option<SettingsFile>,
    pub(crate) settings_sha256: String,
    pub(crate) report: ModuleReport,
}

impl Module {
    pub(crate) fn new(policy: Arc<WasmPolicy>, candidate: &Candidate, config: &SwapConfig) -> Self {
        let metadata = policy.metadata();
        let digest = policy.sha256().to_owned();
        let label = format!(
            "{}+{}",
            metadata.version,
            digest.get(..12).unwrap_or(&digest)
        );
        Self {
            report: ModuleReport {
                name: metadata.name.clone(),
                version: metadata.version.clone(),
                digest,
                label,
                source: Some(config.module.display().to_string()),
                settings_source: config.settings.as_ref().map(|p| p.display().to_string()),
                since: Utc::now(),
            },
            settings: candidate.settings.clone(),
            settings_sha256: candidate.settings_sha256.clone(),
            policy,
        }
    }

    /// What makes two modules the same: the module's and the settings' digests.
    pub(crate) fn key(&self) -> (String, String) {
        (
            self.policy.sha256().to_owned(),
            self.settings_sha256.clone(),
        )
    }

    /// The module ready for the slot, watched by `probation` (if any) and `shadow`.
    pub(crate) fn active(
        &self,
        probation: Option<Arc<Probation>>,
        shadow: Arc<ShadowSlot>,
        config: &SwapConfig,
    ) -> Result<ActivePolicy, SwapError> {
        let supervised = Supervised::new(self.policy.clone(), probation, shadow);
        ActivePolicy::new(
            Arc::new(supervised),
            self.policy.sha256(),
            self.settings.as_ref().map(SettingsFile::overrides),
        )
        .map_err(|e| SwapError::Settings {
            path: config.settings.clone(),
            message: e.to_string(),
        })
    }

    /// The settings a call of this module gets, checked by the module: settings it rejects
    /// reject the module.
    pub(crate) fn merged_settings(&self, config: &SwapConfig) -> Result<String, SwapError> {
        settings::check(&*self.policy, self.settings.as_ref()).map_err(|e| SwapError::Settings {
            path: config.settings.clone(),
            message: capt_host_core::error_chain(&e),
        })
    }
}

/// What a check found.
pub(crate) enum Checked {
    /// The files hold the active module (or the last rejected one): nothing to do.
    Unchanged,
    /// The files hold the active module again while another one is in shadow mode.
    Reverted,
    /// The candidate failed; its digest and version when known.
    Rejected {
        error: SwapError,
        digest: Option<String>,
        version: Option<String>,
        key: Option<(String, String)>,
    },
    /// The candidate passed.
    Passed(Box<Passed>),
}

/// A candidate that passed the checks.
pub(crate) struct Passed {
    pub(crate) module: Module,
    pub(crate) canary: Option<CanaryReport>,
    pub(crate) read: Duration,
    pub(crate) load: Duration,
    pub(crate) compilation: Option<Compilation>,
    pub(crate) canary_time: Duration,
}

/// What the check compares a candidate with.
pub(crate) struct Known {
    /// The active module.
    pub(crate) active: Module,
    /// Modules whose compiled code may be reused (the active one, the last good one).
    pub(crate) compiled: Vec<Arc<WasmPolicy>>,
    /// The key of a candidate that is being run in shadow mode: skipped like the active one.
    pub(crate) shadowing: Option<(String, String)>,
    /// The key of the last rejected candidate (not transient): skipped.
    pub(crate) last_rejected: Option<(String, String)>,
    /// Digests of modules rolled back.
    pub(crate) bad: HashSet<String>,
}

/// Reads the files and checks the candidate against `known`.
pub(crate) fn check(config: &SwapConfig, engine: &Engine, known: &Known) -> Checked {
    let start = Instant::now();
    let candidate = match source::read(
        &config.module,
        config.settings.as_deref(),
        config.max_module_bytes,
    ) {
        Ok(candidate) => candidate,
        Err(error) => {
            return Checked::Rejected {
                error,
                digest: None,
                version: None,
                key: None,
            };
        }
    };
    let read = start.elapsed();
    let key = candidate.key();
    if key == known.active.key() && known.shadowing.is_some() {
        return Checked::Reverted;
    }
    if key == known.active.key()
        || Some(&key) == known.shadowing.as_ref()
        || Some(&key) == known.last_rejected.as_ref()
    {
        return Checked::Unchanged;
    }
    let rejected = |error: SwapError, version: Option<String>| Checked::Rejected {
        error,
        digest: Some(candidate.sha256.clone()),
        version,
        key: Some(key.clone()),
    };
    if known.bad.contains(&candidate.sha256) {
        return rejected(
            SwapError::KnownBad {
                digest: candidate.sha256.clone(),
            },
            None,
        );
    }
    let judged = verdict::follow(
        config.verdicts.as_ref(),
        &key,
        true,
        |accepted| judge(config, engine, known, &candidate, read, accepted),
        |(error, _)| error,
    );
    match judged {
        Ok(passed) => Checked::Passed(Box::new(passed)),
        Err(verdict::Refused::Recorded(error)) => rejected(error, None),
        Err(verdict::Refused::Failed((error, version))) => rejected(error, version),
    }
}

/// Compiles `candidate` (or reuses a compiled module) and checks it: contract, same policy,
/// settings and, unless it is `accepted` by a recorded verdict, the canary. A failure comes
/// with the version of the module when it loaded.
fn judge(
    config: &SwapConfig,
    engine: &Engine,
    known: &Known,
    candidate: &Candidate,
    read: Duration,
    accepted: bool,
) -> Result<Passed, (SwapError, Option<String>)> {
    let load_start = Instant::now();
    let reused = known
        .compiled
        .iter()
        .find(|policy| policy.sha256() == candidate.sha256)
        .cloned();
    let (policy, compilation) = match reused {
        Some(policy) => (policy, None),
        None => match WasmPolicy::load_with_cache(
            engine,
            &candidate.bytes,
            config.compile_cache.as_ref(),
        ) {
            Ok(policy) => {
                let compilation = policy.compilation();
                (Arc::new(policy), Some(compilation))
            }
            Err(error) => return Err((SwapError::Load(error), None)),
        },
    };
    let load = load_start.elapsed();
    let version = Some(policy.metadata().version.clone());
    same_policy(known.active.policy.metadata(), policy.metadata())
        .map_err(|error| (error, version.clone()))?;
    let module = Module::new(policy.clone(), candidate, config);
    module
        .merged_settings(config)
        .map_err(|error| (error, version.clone()))?;
    // The canary depends on the module alone (each scenario has its settings): a new
    // settings file with the active module's code needs no new canary.
    let canary_start = Instant::now();
    let canary = if accepted || policy.sha256() == known.active.policy.sha256() {
        None
    } else {
        config
            .canary
            .run(&*policy)
            .map_err(|error| (error, version.clone()))?
    };
    Ok(Passed {
        module,
        canary,
        read,
        load,
        compilation,
        canary_time: canary_start.elapsed(),
    })
}

/// Checks that `candidate` is the same policy as `running`, watching the same kinds.
pub(crate) fn same_policy(running: &Metadata, candidate: &Metadata) -> Result<(), SwapError> {
    if running.name != candidate.name {
        return Err(SwapError::NameChanged {
            running: running.name.clone(),
            found: candidate.name.clone(),
        });
    }
    let mut details = Vec::new();
    for (what, old, new) in [
        ("triggers", &running.triggers, &candidate.triggers),
        ("reads", &running.reads, &candidate.reads),
    ] {
        let set = |kinds: &[KindRef]| -> BTreeSet<String> {
            kinds
                .iter()
                .map(|k| {
                    let scope = if k.namespaced { "" } else { " (cluster)" };
                    format!("{}/{}{scope}", k.api_version, k.kind)
                })
                .collect()
        };
        let (old, new) = (set(old), set(new));
        let added: Vec<_> = new.difference(&old).map(|k| format!("+{k}")).collect();
        let removed: Vec<_> = old.difference(&new).map(|k| format!("-{k}")).collect();
        if !added.is_empty() || !removed.is_empty() {
            details.push(format!(
                "{what}: {}",
                removed
                    .into_iter()
                    .chain(added)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if details.is_empty() {
        Ok(())
    } else {
        Err(SwapError::KindsChanged {
            details: details.join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(triggers: &[&str], reads: &[&str]) -> Metadata {
        let kinds = |names: &[&str]| {
            names
                .iter()
                .map(|kind| KindRef {
                    api_version: "example.com/v1".into(),
                    kind: (*kind).into(),
                    namespaced: true,
                })
                .collect()
        };
        Metadata {
            name: "p".into(),
            version: "1".into(),
            triggers: kinds(triggers),
            reads: kinds(reads),
            default_settings: "{}".into(),
        }
    }

    #[test]
    fn the_same_kinds_in_another_order_are_the_same_policy() {
        let running = metadata(&["A", "B"], &["C"]);
        assert!(same_policy(&running, &metadata(&["B", "A"], &["C"])).is_ok());
    }

    #[test]
    fn another_name_or_other_kinds_are_refused_with_what_differs() {
        let running = metadata(&["A"], &["C"]);
        let mut renamed = running.clone();
        renamed.name = "q".into();
        assert_eq!(
            same_policy(&running, &renamed).unwrap_err().reason(),
            "name_changed"
        );
        let error = same_policy(&running, &metadata(&["A"], &["D"])).unwrap_err();
        assert_eq!(error.reason(), "kinds_changed");
        assert!(
            error
                .to_string()
                .contains("reads: -example.com/v1/C, +example.com/v1/D"),
            "{error}"
        );
    }
}
