//! # Hot-swapping the policy module: validated, atomic, reversible, sandboxed
//!
//! `capt-host run --module FILE` watches the module file (and the settings file) and replaces
//! the running policy when they change, without a restart. A mounted ConfigMap updated with
//! `kubectl apply` is the intended source (see `docs/hot-swap.md`).
//!
//! ```text
//!  files ──events (parent dirs)──▶ Changes (debounce, periodic re-read)
//!                                     │
//!   job (one task) ◀──────────────────┘        ┌──────── rollback requests ◀── Probation
//!    │ 1 read: size limit; same digests as the active module: nothing to do      ▲
//!    │   a recorded verdict (Verdicts): a rejection stops here, an acceptance    │
//!    │   skips the canary; else this replica's verdict is recorded after step 4  │
//!    │ 2 compile on a blocking thread (compile cache by digest + engine)         │
//!    │ 3 contract (imports, exports, version, metadata() within limits);         │
//!    │   same policy name and watched kinds                                      │
//!    │ 4 canary: the scenario suite, every scenario must pass                    │
//!    │   shadow (optional): next to the active module on live calls, compared   │
//!    │ 5 promote: PolicySlot::replace, then every trigger reconciled again ──────┘
//!    │ 6 any failure: keep the active module, report (log, metric, event, /policy)
//!    ▼
//!  PolicySlot ──▶ reconciles (each takes the module current at its start)
//! ```
//!
//! States of the job: **idle** (serving the active module, watching), **checking** a
//! candidate (steps 1-4, on a blocking thread; the active module serves meanwhile),
//! **shadowing** a candidate (for `shadow` after the canary; a newer file supersedes it), then
//! back to idle with the candidate promoted or rejected. A promoted module is on
//! **probation** for its first reconciles: if too many fail ([`RollbackPolicy`]) it is rolled
//! back to the module it replaced, and its digest is remembered as bad (the same file is not
//! tried again). Swaps never change the watched kinds: the caches and watches are set up from
//! the module present at start, so a module watching other kinds is refused
//! (`kinds_changed`) and applied by a restart.
//!
//! One module per job: [`source`](self) (files and watching), `pipeline` (the checks),
//! `canary`, `shadow`, `supervised` (the policy wrapper: probation and shadow calls), `job`
//! (the state machine), `status` (`/policy` and metrics), `report` (Kubernetes events),
//! `verdict` (the verdicts every replica follows: [`Verdicts`], [`VerdictStore`],
//! [`ConfigMapVerdicts`]), `error` ([`SwapError`] and its reason labels).

mod canary;
mod error;
mod job;
mod pipeline;
mod report;
mod shadow;
mod source;
mod status;
mod supervised;
mod verdict;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use capt_host_core::Policy as _;
use capt_host_operator::OperatorBuilder;
use capt_host_runtime::CompileCache;
use capt_host_runtime::Engine;
use capt_host_runtime::PolicySlot;
use capt_host_runtime::{Compilation, WasmPolicy};

pub use self::canary::{Canary, CanaryReport, Suite};
pub use self::error::SwapError;
pub use self::report::EventTarget;
pub use self::shadow::{Difference, MAX_IN_FLIGHT as MAX_SHADOW_CALLS, ShadowStats};
pub use self::status::{
    ModuleReport, PolicyReport, PolicyStatus, RejectionReport, RollbackReport, ShadowReport,
    SwapMetrics, SwapTimings,
};
pub use self::supervised::{ProbationReport, ProbationState};
pub use self::verdict::{
    ConfigMapVerdicts, Decision, MAX_ENTRIES as MAX_VERDICTS, MemoryVerdicts, Recorded, Verdict,
    VerdictKey, VerdictStore, VerdictStoreError, Verdicts,
};

use self::job::Job;

/// How hot swaps work. [`SwapConfig::new`] gives the defaults documented on each field.
#[derive(Debug, Clone)]
pub struct SwapConfig {
    /// The module file.
    pub module: PathBuf,
    /// The settings file (a YAML object of overrides), if any.
    pub settings: Option<PathBuf>,
    /// Watch the files and swap on changes. Default true. Without it, the module is only
    /// loaded (with the compile cache).
    pub watch: bool,
    /// How long the files must be quiet after an event before they are read. Default 500 ms.
    pub debounce: Duration,
    /// Re-read the files this often even without events (file systems without inotify).
    /// Default 60 s; `None`: never.
    pub rescan: Option<Duration>,
    /// Modules larger than this are refused without being read. Default 16 MiB.
    pub max_module_bytes: u64,
    /// Where compiled modules are kept; `None`: compile every time. Default `None`.
    pub compile_cache: Option<CompileCache>,
    /// The scenario suite a candidate must pass. Default: none.
    pub canary: Canary,
    /// How long a candidate runs in shadow mode before it is promoted; zero: no shadow run.
    /// Default zero.
    pub shadow: Duration,
    /// When a promoted module is rolled back.
    pub rollback: RollbackPolicy,
    /// The object swap events are recorded about; `None`: no events (logs, metrics and
    /// `/policy` only).
    pub events: Option<EventTarget>,
    /// The module served when, at start, the module file is missing, cannot be loaded, or
    /// fails its canary (the module embedded in the binary); the file is then watched as
    /// usual and its module swapped in once it passes. With a fallback, the module file's
    /// module runs the canary at start too. `None`: such a start fails. Default `None`.
    pub fallback: Option<Fallback>,
    /// Where the replicas record their verdicts on candidates, so that they all run the same
    /// module (see [`Verdicts`]); `None`: each judges on its own. Default `None`. Looked up
    /// and written on blocking threads: [`Swapper::load`] must not run in an async task then.
    pub verdicts: Option<Verdicts>,
}

/// A module to serve when the module file cannot be used at start (see
/// [`SwapConfig::fallback`]).
#[derive(Clone)]
pub struct Fallback {
    /// The module's bytes.
    pub bytes: &'static [u8],
    /// How logs name it, e.g. `embedded default`.
    pub label: String,
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback")
            .field("label", &self.label)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl SwapConfig {
    /// The defaults, for the module at `module`.
    pub fn new(module: impl Into<PathBuf>) -> Self {
        Self {
            module: module.into(),
            settings: None,
            watch: true,
            debounce: Duration::from_millis(500),
            rescan: Some(Duration::from_secs(60)),
            max_module_bytes: 16 << 20,
            compile_cache: None,
            canary: Canary::Off,
            shadow: Duration::ZERO,
            rollback: RollbackPolicy::default(),
            events: None,
            fallback: None,
            verdicts: None,
        }
    }
}

/// When a promoted module is rolled back: once at least `min_failures` of its reconciles
/// failed and they are more than `ratio` of them, within its probation (its first
/// `probation_reconciles` reconciles, or its first `probation` of time, whichever ends first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollbackPolicy {
    /// Failures needed before a rollback; 0 disables rollbacks. Default 5.
    pub min_failures: u64,
    /// The share of failed reconciles that must be exceeded. Default 0.5.
    pub ratio: f64,
    /// The probation's length in reconciles. Default 200.
    pub probation_reconciles: u64,
    /// The probation's length in time. Default 10 minutes.
    pub probation: Duration,
}

/// The policy module of an operator, hot-swappable: the initial module loaded from
/// [`SwapConfig::module`], and the job that swaps it (plugged into an operator with
/// [`Swapper::attach`]).
pub struct Swapper {
    config: Arc<SwapConfig>,
    engine: Engine,
    slot: PolicySlot,
    shadow: Arc<shadow::ShadowSlot>,
    status: Arc<PolicyStatus>,
    active: pipeline::Module,
    start_failure: Option<StartFailure>,
}

/// Why the module file could not be used at start, when the fallback serves instead.
pub(crate) struct StartFailure {
    pub(crate) error: SwapError,
    pub(crate) digest: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) key: Option<(String, String)>,
    /// The settings read, for the fallback (the defaults when they are what failed).
    settings: source::Settings,
}

impl std::fmt::Debug for Swapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swapper")
            .field("module", &self.config.module)
            .field("active", &self.active.report.label)
            .finish_non_exhaustive()
    }
}

/// What [`Swapper::check`] found for a candidate that passed.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The candidate's module digest.
    pub digest: String,
    /// Its policy version.
    pub version: String,
    /// How its code was obtained; `None` when the compiled module was reused from memory.
    pub compilation: Option<Compilation>,
    /// The canary it passed; `None` when it ran none.
    pub canary: Option<CanaryReport>,
}

impl Swapper {
    /// Loads the module and settings files (through the compile cache) into `engine`. Without
    /// a [`SwapConfig::fallback`], the initial module gets no canary (it is what the operator
    /// starts with) and any failure fails the start. With one, the module file's module must
    /// also pass the canary, and when the file is missing, does not load or fails the
    /// canary, the fallback serves instead: logged, reported on `/policy` (`fallback`) and in
    /// metrics (`policy_fallback`); the file is watched and its module swapped in once it
    /// passes. With [`SwapConfig::verdicts`], the recorded verdict on the file's module is
    /// followed (a rejection is not loaded, an acceptance skips the canary), else this
    /// replica's is recorded.
    pub fn load(engine: &Engine, config: SwapConfig) -> Result<Self, SwapError> {
        let start = Instant::now();
        let (module, compilation, start_failure) = match load_file(engine, &config) {
            Ok((module, compilation)) => (module, compilation, None),
            Err(failure) => match &config.fallback {
                None => return Err(failure.error),
                Some(fallback) => {
                    let module = load_fallback(engine, &config, fallback, &failure.settings)?;
                    let compilation = module.policy.compilation();
                    let error = capt_host_core::error_chain(&failure.error);
                    if failure.error.is_missing_file() {
                        tracing::info!(
                            module = %config.module.display(),
                            fallback = %fallback.label,
                            "no policy module file; serving the fallback until it appears"
                        );
                    } else {
                        tracing::error!(
                            module = %config.module.display(),
                            reason = failure.error.reason(),
                            %error,
                            fallback = %fallback.label,
                            "the policy module file cannot be used; serving the fallback until it changes"
                        );
                    }
                    (module, compilation, Some(*failure))
                }
            },
        };
        let shadow = Arc::new(shadow::ShadowSlot::default());
        let active = module.active(None, shadow.clone(), &config)?;
        tracing::info!(
            module = %module.report.source.as_deref().unwrap_or("(fallback)"),
            policy = %module.report.name,
            version = %module.report.version,
            sha256 = %module.report.digest,
            from_cache = compilation.from_cache,
            load_ms = start.elapsed().as_millis(),
            "policy module loaded"
        );
        let status = PolicyStatus::with_shadow(module.report.clone(), shadow.clone());
        status.update(|state| {
            if config.watch {
                state.watching = std::iter::once(&config.module)
                    .chain(config.settings.as_ref())
                    .map(|p| p.display().to_string())
                    .collect();
            }
            state.fallback = start_failure.as_ref().map(|failure| RejectionReport {
                digest: failure.digest.clone(),
                version: failure.version.clone(),
                reason: failure.error.reason().to_owned(),
                message: capt_host_core::error_chain(&failure.error),
                verdict: failure.error.recorded().cloned(),
                time: chrono::Utc::now(),
            });
        });
        Ok(Self {
            slot: PolicySlot::new(active),
            config: Arc::new(config),
            engine: engine.clone(),
            shadow,
            status: Arc::new(status),
            active: module,
            start_failure,
        })
    }

    /// Records swap events about `target` (`None`: no events).
    pub fn with_events(mut self, target: Option<EventTarget>) -> Self {
        Arc::make_mut(&mut self.config).events = target;
        self
    }

    /// The slot holding the active module.
    pub fn slot(&self) -> &PolicySlot {
        &self.slot
    }

    /// The `/policy` report's source.
    pub fn status(&self) -> Arc<PolicyStatus> {
        self.status.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &SwapConfig {
        &self.config
    }

    /// Plugs the swaps into `operator` (which must run [`Swapper::slot`]): the job runs beside
    /// it, its metrics join the operator's, `/policy` serves its status, and every promotion or
    /// rollback reconciles every trigger object again. Returns the status `/policy` serves.
    pub fn attach(self, operator: &mut OperatorBuilder) -> Arc<PolicyStatus> {
        let status = self.status();
        let metrics = SwapMetrics::register(operator.metrics_registry());
        operator.status_provider(status.clone());
        let config = operator.config();
        let job = Job::new(
            self,
            operator.client().clone(),
            &config.reporter,
            &config.identity,
            metrics,
            operator.reconcile_all(),
        );
        operator.run_beside("swap", move |shutdown| job.run(shutdown));
        status
    }

    /// Reads the files now and checks what they hold against the active module (steps 1 to 4
    /// of the protocol, without the shadow run), promoting nothing. `Ok(None)`: they hold the
    /// active module. Blocking (compiles, runs the canary).
    pub fn check(&self) -> Result<Option<CheckReport>, SwapError> {
        let known = pipeline::Known {
            active: self.active.clone(),
            compiled: vec![],
            shadowing: None,
            last_rejected: None,
            bad: Default::default(),
        };
        match pipeline::check(&self.config, &self.engine, &known) {
            pipeline::Checked::Unchanged | pipeline::Checked::Reverted => Ok(None),
            pipeline::Checked::Rejected { error, .. } => Err(error),
            pipeline::Checked::Passed(passed) => Ok(Some(CheckReport {
                digest: passed.module.report.digest.clone(),
                version: passed.module.report.version.clone(),
                compilation: passed.compilation,
                canary: passed.canary,
            })),
        }
    }
}

/// Loads the module file's module at start: read, then (unless a recorded verdict rejects it)
/// compile, contract, settings and, when there is a fallback (another module) and no recorded
/// acceptance, the canary; the verdict is recorded when the start judged.
fn load_file(
    engine: &Engine,
    config: &SwapConfig,
) -> Result<(pipeline::Module, Compilation), Box<StartFailure>> {
    let fail = |error, settings: &source::Settings, digest, version, key| {
        Box::new(StartFailure {
            error,
            digest,
            version,
            key,
            settings: settings.clone(),
        })
    };
    let defaults = source::Settings::default();
    let settings = source::read_settings(config.settings.as_deref())
        .map_err(|error| fail(error, &defaults, None, None, None))?;
    let bytes = source::read_module(&config.module, config.max_module_bytes)
        .map_err(|error| fail(error, &settings, None, None, None))?;
    let candidate = source::Candidate::new(bytes, &settings);
    let (digest, key) = (Some(candidate.sha256.clone()), Some(candidate.key()));
    // Without a fallback the start judges nothing (no canary): nothing to record.
    let judged = verdict::follow(
        config.verdicts.as_ref(),
        &candidate.key(),
        config.fallback.is_some(),
        |accepted| load_candidate(engine, config, &candidate, accepted),
        |failed| &failed.error,
    );
    judged.map_err(|refused| match refused {
        verdict::Refused::Recorded(error) => fail(error, &settings, digest, None, key),
        verdict::Refused::Failed(failed) => {
            // The settings are what failed: the fallback runs with the defaults.
            let settings = if failed.settings {
                &defaults
            } else {
                &settings
            };
            fail(failed.error, settings, digest, failed.version, key)
        }
    })
}

/// Why a module file's module failed at start.
struct Failed {
    error: SwapError,
    /// Its policy version, once it loaded.
    version: Option<String>,
    /// True when the settings are what failed.
    settings: bool,
}

/// Loads `candidate` at start: compile, contract, settings and, when there is a fallback
/// (another module) and no recorded acceptance, the canary.
fn load_candidate(
    engine: &Engine,
    config: &SwapConfig,
    candidate: &source::Candidate,
    accepted: bool,
) -> Result<(pipeline::Module, Compilation), Failed> {
    let policy =
        WasmPolicy::load_with_cache(engine, &candidate.bytes, config.compile_cache.as_ref())
            .map_err(|error| Failed {
                error: SwapError::Load(error),
                version: None,
                settings: false,
            })?;
    let compilation = policy.compilation();
    let version = Some(policy.metadata().version.clone());
    let module = pipeline::Module::new(Arc::new(policy), candidate, config);
    // From here the module has loaded: a failure names its version too.
    let failed = |error, settings| Failed {
        error,
        version: version.clone(),
        settings,
    };
    module
        .merged_settings(config)
        .map_err(|error| failed(error, true))?;
    // The canary judges the file's module against the fallback; the fallback itself needs none.
    if !accepted
        && config
            .fallback
            .as_ref()
            .is_some_and(|fallback| fallback.bytes != candidate.bytes.as_slice())
    {
        config
            .canary
            .run(&*module.policy)
            .map_err(|error| failed(error, false))?;
    }
    Ok((module, compilation))
}

/// Loads the fallback module with `settings` (no canary: it is the binary's own); with its
/// defaults when it rejects them.
fn load_fallback(
    engine: &Engine,
    config: &SwapConfig,
    fallback: &Fallback,
    settings: &source::Settings,
) -> Result<pipeline::Module, SwapError> {
    let policy = Arc::new(
        WasmPolicy::load_with_cache(engine, fallback.bytes, config.compile_cache.as_ref())
            .map_err(SwapError::Load)?,
    );
    let with = |settings: &source::Settings| {
        let candidate = source::Candidate {
            sha256: policy.sha256().to_owned(),
            bytes: vec![],
            settings: settings.file.clone(),
            settings_sha256: settings.sha256.clone(),
        };
        let mut module = pipeline::Module::new(policy.clone(), &candidate, config);
        module.report.source = None;
        module
    };
    let module = with(settings);
    match module.merged_settings(config) {
        Ok(_) => Ok(module),
        Err(error) => {
            tracing::warn!(
                error = %capt_host_core::error_chain(&error),
                fallback = %fallback.label,
                "the fallback rejects the settings file; it runs with its default settings"
            );
            Ok(with(&source::Settings::default()))
        }
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves the data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
