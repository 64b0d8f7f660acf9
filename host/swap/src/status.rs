//! What the host tells about its policy module: [`PolicyStatus`] (the `/policy` endpoint's
//! JSON, [`PolicyReport`]) and [`SwapMetrics`] (the `policy_*` metric families).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

use super::canary::CanaryReport;
use super::lock;
use super::shadow::{ShadowSlot, ShadowStats};
use super::supervised::{Probation, ProbationReport};
use capt_host_operator::{OperatorBuilder, StatusProvider};
use capt_host_runtime::ActivePolicy;

/// Serializes a duration as whole milliseconds.
pub(crate) fn millis<S: serde::Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Serializes a time as RFC 3339 (UTC, milliseconds).
pub(crate) fn rfc3339<S: serde::Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A module, as reports name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleReport {
    /// The policy's name.
    pub name: String,
    /// The policy's own version (`metadata().version`).
    pub version: String,
    /// The SHA-256 of the module's bytes (hex).
    pub digest: String,
    /// The module version label of logs and metrics (`version+digest prefix`).
    pub label: String,
    /// The module file; `None` for the module embedded in the binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The settings file, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings_source: Option<String>,
    /// Since when it is active (or was, for the last good module).
    #[serde(serialize_with = "rfc3339")]
    pub since: DateTime<Utc>,
}

impl ModuleReport {
    /// The report of `active`, active since now.
    pub fn of(active: &ActivePolicy) -> Self {
        Self {
            name: active.metadata().name.clone(),
            version: active.metadata().version.clone(),
            digest: active.sha256().to_owned(),
            label: active.version().to_owned(),
            source: None,
            settings_source: None,
            since: Utc::now(),
        }
    }
}

/// The last rejected module.
#[derive(Debug, Clone, Serialize)]
pub struct RejectionReport {
    /// Its SHA-256, when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Its policy version, when it loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The reason label ([`super::SwapError::reason`]).
    pub reason: String,
    /// The error and its causes.
    pub message: String,
    /// The recorded verdict it follows (reason `recorded_rejection`): the original reason and
    /// who judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<super::Verdict>,
    /// When.
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
}

/// The last rollback.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// The module rolled back.
    pub from: ModuleReport,
    /// The module restored.
    pub to: ModuleReport,
    /// Why.
    pub message: String,
    /// When.
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
}

/// How long the last promotion took, from the first file event to the swap of the slot.
#[derive(Debug, Clone, Serialize)]
pub struct SwapTimings {
    /// From the first file event to the start of the check (the debounce).
    #[serde(serialize_with = "millis")]
    pub debounce: Duration,
    /// Reading the files.
    #[serde(serialize_with = "millis")]
    pub read: Duration,
    /// Compiling (or reading the compile cache), linking and `metadata()`.
    #[serde(serialize_with = "millis")]
    pub load: Duration,
    /// True when the compiled code came from the compile cache.
    pub from_cache: bool,
    /// True when the compiled module was already in memory (a settings change, a swap back).
    pub reused: bool,
    /// The canary run.
    #[serde(serialize_with = "millis")]
    pub canary: Duration,
    /// The shadow run.
    #[serde(serialize_with = "millis")]
    pub shadow: Duration,
    /// In all, from the first file event to the promotion.
    #[serde(serialize_with = "millis")]
    pub total: Duration,
}

/// The shadow run going on, or the last one.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowReport {
    /// `running` or `finished`.
    pub state: &'static str,
    /// The candidate.
    pub candidate: ModuleReport,
    /// When it started.
    #[serde(serialize_with = "rfc3339")]
    pub started: DateTime<Utc>,
    /// When it ends (or ended).
    #[serde(serialize_with = "rfc3339")]
    pub until: DateTime<Utc>,
    /// The comparisons.
    #[serde(flatten)]
    pub stats: ShadowStats,
}

/// The `/policy` report.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    /// The module serving now.
    pub active: ModuleReport,
    /// The probation of the active module, if it was promoted by a swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probation: Option<ProbationReport>,
    /// The module a rollback would restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_good: Option<ModuleReport>,
    /// The last module rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rejected: Option<RejectionReport>,
    /// Why the active module is the fallback (the module embedded in the binary): the module
    /// file could not be used at start. Cleared when a module from the file is promoted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<RejectionReport>,
    /// The last rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rollback: Option<RollbackReport>,
    /// The shadow run going on, or the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowReport>,
    /// The last canary passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_canary: Option<CanaryReport>,
    /// The timings of the last promotion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_swap: Option<SwapTimings>,
    /// The files watched for new modules (empty: no hot swaps).
    pub watching: Vec<String>,
    /// Promotions since start.
    pub swaps: u64,
    /// Rejections since start.
    pub rejections: u64,
    /// Rollbacks since start.
    pub rollbacks: u64,
}

/// The live state behind `/policy`. Cheap to share (`Arc`).
pub struct PolicyStatus {
    state: Mutex<State>,
    shadow: Arc<ShadowSlot>,
}

pub(crate) struct State {
    pub(crate) active: ModuleReport,
    pub(crate) probation: Option<Arc<Probation>>,
    pub(crate) last_good: Option<ModuleReport>,
    pub(crate) last_rejected: Option<RejectionReport>,
    pub(crate) fallback: Option<RejectionReport>,
    pub(crate) last_rollback: Option<RollbackReport>,
    pub(crate) shadow: Option<ShadowReport>,
    pub(crate) shadow_run: Option<Arc<super::shadow::ShadowRun>>,
    pub(crate) last_canary: Option<CanaryReport>,
    pub(crate) last_swap: Option<SwapTimings>,
    pub(crate) watching: Vec<String>,
    pub(crate) swaps: u64,
    pub(crate) rejections: u64,
    pub(crate) rollbacks: u64,
}

impl std::fmt::Debug for PolicyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStatus")
            .field("active", &lock(&self.state).active)
            .finish_non_exhaustive()
    }
}

impl PolicyStatus {
    /// The status of `active` alone, with no swaps.
    pub fn new(active: ModuleReport) -> Self {
        Self::with_shadow(active, Arc::default())
    }

    pub(crate) fn with_shadow(active: ModuleReport, shadow: Arc<ShadowSlot>) -> Self {
        Self {
            state: Mutex::new(State {
                active,
                probation: None,
                last_good: None,
                last_rejected: None,
                fallback: None,
                last_rollback: None,
                shadow: None,
                shadow_run: None,
                last_canary: None,
                last_swap: None,
                watching: vec![],
                swaps: 0,
                rejections: 0,
                rollbacks: 0,
            }),
            shadow,
        }
    }

    /// Reports the module of an operator that never swaps it, as a swapping one would:
    /// `/policy` serves its status, the `policy_*` metric families join the operator's.
    pub fn attach_fixed(operator: &mut OperatorBuilder) -> Arc<Self> {
        let status = Arc::new(Self::new(ModuleReport::of(&operator.policy().current())));
        SwapMetrics::register(operator.metrics_registry()).set_active(&status.report().active);
        operator.status_provider(status.clone());
        status
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut lock(&self.state));
    }

    /// The report, as of now.
    pub fn report(&self) -> PolicyReport {
        let state = lock(&self.state);
        let shadow = state.shadow.clone().map(|mut report| {
            if let Some(run) = &state.shadow_run {
                report.stats = run.stats();
                let running = self
                    .shadow
                    .current()
                    .is_some_and(|current| Arc::ptr_eq(&current, run));
                report.state = if running { "running" } else { "finished" };
            }
            report
        });
        PolicyReport {
            active: state.active.clone(),
            probation: state.probation.as_ref().map(|p| p.report()),
            last_good: state.last_good.clone(),
            last_rejected: state.last_rejected.clone(),
            fallback: state.fallback.clone(),
            last_rollback: state.last_rollback.clone(),
            shadow,
            last_canary: state.last_canary.clone(),
            last_swap: state.last_swap.clone(),
            watching: state.watching.clone(),
            swaps: state.swaps,
            rejections: state.rejections,
            rollbacks: state.rollbacks,
        }
    }
}

impl StatusProvider for PolicyStatus {
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.report()).unwrap_or_else(
            |error| serde_json::json!({"error": format!("the report does not serialize: {error}")}),
        )
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActiveLabels {
    digest: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The `policy_*` metric families. Cheap to clone; clones share the values.
#[derive(Debug, Clone)]
pub struct SwapMetrics {
    active: Family<ActiveLabels, Gauge>,
    pub(crate) swaps: Counter,
    rejections: Family<ReasonLabels, Counter>,
    pub(crate) rollbacks: Counter,
    pub(crate) fallback: Gauge,
    pub(crate) shadow_comparisons: Counter,
    pub(crate) shadow_differences: Counter,
    pub(crate) swap_duration: Histogram,
}

impl SwapMetrics {
    /// Registers `policy_active_info`, `policy_swaps_total`, `policy_rejections_total`,
    /// `policy_rollbacks_total`, `policy_fallback`, `policy_shadow_comparisons_total`,
    /// `policy_shadow_differences_total` and `policy_swap_duration_seconds`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            active: Family::default(),
            swaps: Counter::default(),
            rejections: Family::default(),
            rollbacks: Counter::default(),
            fallback: Gauge::default(),
            shadow_comparisons: Counter::default(),
            shadow_differences: Counter::default(),
            // 10 ms to about 80 s: a cached module and the canary take well under a second,
            // a compile a few seconds; a shadow run adds its duration.
            swap_duration: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
        };
        registry.register(
            "policy_active_info",
            "The policy module serving now (value 1), by SHA-256 digest and policy version",
            metrics.active.clone(),
        );
        registry.register(
            "policy_swaps",
            "Policy modules promoted by a hot swap",
            metrics.swaps.clone(),
        );
        registry.register(
            "policy_rejections",
            "Candidate policy modules rejected, by reason",
            metrics.rejections.clone(),
        );
        registry.register(
            "policy_rollbacks",
            "Promoted policy modules rolled back after failing live reconciles",
            metrics.rollbacks.clone(),
        );
        registry.register(
            "policy_fallback",
            "1 while the fallback module (embedded in the binary) serves because the module file \
             could not be used at start",
            metrics.fallback.clone(),
        );
        registry.register(
            "policy_shadow_comparisons",
            "Live policy calls computed by a candidate in shadow mode and compared",
            metrics.shadow_comparisons.clone(),
        );
        registry.register(
            "policy_shadow_differences",
            "Live policy calls where a candidate in shadow mode and the active module disagreed",
            metrics.shadow_differences.clone(),
        );
        registry.register(
            "policy_swap_duration_seconds",
            "Time from a module file change to the promotion of the new module",
            metrics.swap_duration.clone(),
        );
        metrics
    }

    /// Marks `module` as the one serving (and no other).
    pub fn set_active(&self, module: &ModuleReport) {
        self.active.clear();
        self.active
            .get_or_create(&ActiveLabels {
                digest: module.digest.clone(),
                version: module.version.clone(),
            })
            .set(1);
    }

    pub(crate) fn rejected(&self, reason: &'static str) {
        self.rejections
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}
