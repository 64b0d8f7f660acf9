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
//! `error` ([`SwapError`] and its reason labels).

mod canary;
mod error;
mod job;
mod pipeline;
mod report;
mod shadow;
mod source;
mod status;
mod supervised;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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
    /// Loads the module and settings files (through the compile cache) into `engine`. The
    /// initial module gets no canary: it is what the operator starts with.
    pub fn load(engine: &Engine, config: SwapConfig) -> Result<Self, SwapError> {
        let start = Instant::now();
        let candidate = source::read(
            &config.module,
            config.settings.as_deref(),
            config.max_module_bytes,
        )?;
        let policy =
            WasmPolicy::load_with_cache(engine, &candidate.bytes, config.compile_cache.as_ref())
                .map_err(SwapError::Load)?;
        let compilation = policy.compilation();
        let module = pipeline::Module::new(Arc::new(policy), &candidate, &config);
        module.merged_settings(&config)?;
        let shadow = Arc::new(shadow::ShadowSlot::default());
        let active = module.active(None, shadow.clone(), &config)?;
        tracing::info!(
            module = %config.module.display(),
            policy = %module.report.name,
            version = %module.report.version,
            sha256 = %module.report.digest,
            from_cache = compilation.from_cache,
            load_ms = start.elapsed().as_millis(),
            "policy module loaded"
        );
        let status = PolicyStatus::with_shadow(module.report.clone(), shadow.clone());
        if config.watch {
            status.update(|state| {
                state.watching = std::iter::once(&config.module)
                    .chain(config.settings.as_ref())
                    .map(|p| p.display().to_string())
                    .collect();
            });
        }
        Ok(Self {
            slot: PolicySlot::new(active),
            config: Arc::new(config),
            engine: engine.clone(),
            shadow,
            status: Arc::new(status),
            active: module,
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

/// Locks `mutex`, ignoring poisoning: every critical section leaves the data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
