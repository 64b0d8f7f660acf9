//! The swap job: one task per operator, the only writer of the slot after start. It waits for
//! a file change, a rollback request from the active module's probation, or the end of a
//! shadow run, and handles one at a time (see the module docs of [`super`] for the protocol).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kube::Client;
use tokio::sync::{mpsc, watch};

use super::error::SwapError;
use super::pipeline::{self, Checked, Known, Module, Passed};
use super::report::SwapEvents;
use super::shadow::{ShadowRun, ShadowSlot};
use super::source::Changes;
use super::status::{
    PolicyStatus, RejectionReport, RollbackReport, ShadowReport, SwapMetrics, SwapTimings,
};
use super::supervised::{Probation, RollbackRequest};
use super::{StartFailure, SwapConfig, Swapper};
use capt_host_operator::ReconcileAll;
use capt_host_runtime::Engine;
use capt_host_runtime::PolicySlot;

/// A candidate in shadow mode, waiting for its promotion.
struct Shadowing {
    passed: Box<Passed>,
    run: Arc<ShadowRun>,
    deadline: tokio::time::Instant,
    first_event: Instant,
    debounce: Duration,
    checked: Instant,
}

/// The swap job. See the module docs.
pub(crate) struct Job {
    config: Arc<SwapConfig>,
    engine: Engine,
    slot: PolicySlot,
    shadow: Arc<ShadowSlot>,
    status: Arc<PolicyStatus>,
    metrics: SwapMetrics,
    events: Option<SwapEvents>,
    reconcile_all: ReconcileAll,
    active: Module,
    last_good: Option<Module>,
    bad: HashSet<String>,
    last_rejected: Option<(String, String)>,
    shadowing: Option<Shadowing>,
    rollback_sender: mpsc::UnboundedSender<RollbackRequest>,
    rollbacks: mpsc::UnboundedReceiver<RollbackRequest>,
    start_failure: Option<StartFailure>,
}

impl Job {
    /// The job of `swapper`, recording events with `client` as `reporter`/`identity`,
    /// counting into `metrics` and requesting reconciles of every trigger with
    /// `reconcile_all`.
    pub(crate) fn new(
        swapper: Swapper,
        client: Client,
        reporter: &str,
        identity: &str,
        metrics: SwapMetrics,
        reconcile_all: ReconcileAll,
    ) -> Self {
        let Swapper {
            config,
            engine,
            slot,
            shadow,
            status,
            active,
            start_failure,
        } = swapper;
        let events = config
            .events
            .as_ref()
            .map(|target| SwapEvents::new(client, reporter, identity, target));
        metrics.set_active(&active.report);
        let (rollback_sender, rollbacks) = mpsc::unbounded_channel();
        Self {
            config,
            engine,
            slot,
            shadow,
            status,
            metrics,
            events,
            reconcile_all,
            active,
            last_good: None,
            bad: HashSet::new(),
            last_rejected: None,
            shadowing: None,
            rollback_sender,
            rollbacks,
            start_failure,
        }
    }

    /// Runs until `shutdown` turns true.
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.config.watch.then(|| {
            let files: Vec<&std::path::Path> = std::iter::once(self.config.module.as_path())
                .chain(self.config.settings.as_deref())
                .collect();
            Changes::watch(&files, self.config.debounce, self.config.rescan)
        });
        if changes.is_some() {
            tracing::info!(module = %self.config.module.display(), "watching the policy module for changes");
        }
        if let Some(failure) = self.start_failure.take() {
            self.metrics.fallback.set(1);
            // A missing file is no rejection: there is nothing to reject yet.
            if !failure.error.is_missing_file() {
                self.reject(&failure.error, failure.digest, failure.version, failure.key)
                    .await;
            }
        }
        loop {
            let shadow_deadline = self.shadowing.as_ref().map(|s| s.deadline);
            tokio::select! {
                first_event = next_change(&mut changes) => self.on_change(first_event).await,
                Some(request) = self.rollbacks.recv() => self.on_rollback(request).await,
                () = sleep_until(shadow_deadline) => self.finish_shadow().await,
                () = stopping(&mut shutdown) => break,
            }
        }
        self.shadow.stop();
    }

    /// Checks what the files hold now, then starts a shadow run or promotes it.
    async fn on_change(&mut self, first_event: Instant) {
        let debounce = first_event.elapsed();
        let known = Known {
            active: self.active.clone(),
            compiled: std::iter::once(&self.active)
                .chain(&self.last_good)
                .map(|m| m.policy.clone())
                .collect(),
            shadowing: self.shadowing.as_ref().map(|s| s.passed.module.key()),
            last_rejected: self.last_rejected.clone(),
            bad: self.bad.clone(),
        };
        let (config, engine) = (self.config.clone(), self.engine.clone());
        let checked =
            tokio::task::spawn_blocking(move || pipeline::check(&config, &engine, &known))
                .await
                .unwrap_or_else(|error| Checked::Rejected {
                    error: SwapError::Internal(format!("the check task failed: {error}")),
                    digest: None,
                    version: None,
                    key: None,
                });
        let passed = match checked {
            Checked::Unchanged => {
                tracing::debug!("policy files changed, but not the module or settings");
                return;
            }
            Checked::Reverted => {
                tracing::info!("the policy files hold the active module again");
                self.supersede_shadow().await;
                return;
            }
            Checked::Rejected {
                error,
                digest,
                version,
                key,
            } => {
                // New content (it was read) replaces a candidate in shadow mode, even if it is
                // rejected: what the files hold is what the operator should run.
                if key.is_some() {
                    self.supersede_shadow().await;
                }
                self.reject(&error, digest, version, key).await;
                return;
            }
            Checked::Passed(passed) => passed,
        };
        self.supersede_shadow().await;
        let checked = Instant::now();
        if self.config.shadow.is_zero() {
            self.promote(passed, first_event, debounce, Duration::ZERO)
                .await;
        } else {
            self.start_shadow(passed, first_event, debounce, checked)
                .await;
        }
    }

    /// Abandons the candidate in shadow mode, if any.
    async fn supersede_shadow(&mut self) {
        if let Some(superseded) = self.shadowing.take() {
            self.shadow.stop();
            let module = superseded.passed.module;
            self.reject(
                &SwapError::Superseded,
                Some(module.report.digest.clone()),
                Some(module.report.version.clone()),
                None,
            )
            .await;
        }
    }

    async fn start_shadow(
        &mut self,
        passed: Box<Passed>,
        first_event: Instant,
        debounce: Duration,
        checked: Instant,
    ) {
        let settings = match passed.module.merged_settings(&self.config) {
            Ok(settings) => settings,
            Err(error) => {
                let key = passed.module.key();
                let report = &passed.module.report;
                self.reject(
                    &error,
                    Some(report.digest.clone()),
                    Some(report.version.clone()),
                    Some(key),
                )
                .await;
                return;
            }
        };
        let duration = self.config.shadow;
        let until = Utc::now() + chrono::Duration::from_std(duration).unwrap_or_default();
        let run = Arc::new(ShadowRun::new(
            passed.module.policy.clone(),
            settings,
            passed.module.report.label.clone(),
            self.metrics.shadow_comparisons.clone(),
            self.metrics.shadow_differences.clone(),
        ));
        self.shadow.start(run.clone());
        let candidate = passed.module.report.clone();
        self.status.update(|state| {
            state.shadow = Some(ShadowReport {
                state: "running",
                candidate: candidate.clone(),
                started: run.started,
                until,
                stats: Default::default(),
            });
            state.shadow_run = Some(run.clone());
        });
        let note = format!(
            "{} (sha256:{}) computes live reconciles next to {} for {duration:?}; its results are compared, not applied",
            candidate.label, candidate.digest, self.active.report.label
        );
        tracing::info!(candidate = %candidate.label, sha256 = %candidate.digest, ?duration, "shadow run started");
        self.event(false, "PolicyShadowStarted", &note).await;
        self.shadowing = Some(Shadowing {
            passed,
            run,
            deadline: tokio::time::Instant::now() + duration,
            first_event,
            debounce,
            checked,
        });
    }

    /// Ends the shadow run: the candidate is promoted unless it failed too many live calls.
    async fn finish_shadow(&mut self) {
        let Some(shadowing) = self.shadowing.take() else {
            return;
        };
        self.shadow.stop();
        let stats = shadowing.run.stats();
        tracing::info!(
            candidate = %shadowing.passed.module.report.label,
            comparisons = stats.comparisons,
            differences = stats.differences,
            candidate_failures = stats.candidate_failures,
            skipped = stats.skipped,
            "shadow run finished"
        );
        if self
            .config
            .rollback
            .exceeded(stats.candidate_failures, stats.comparisons)
        {
            let module = &shadowing.passed.module;
            let error = SwapError::ShadowFailures {
                failures: stats.candidate_failures,
                calls: stats.comparisons,
                last: stats.last_failure,
            };
            self.reject(
                &error,
                Some(module.report.digest.clone()),
                Some(module.report.version.clone()),
                Some(module.key()),
            )
            .await;
            return;
        }
        let shadow_time = shadowing.checked.elapsed();
        self.promote(
            shadowing.passed,
            shadowing.first_event,
            shadowing.debounce,
            shadow_time,
        )
        .await;
    }

    /// Makes `passed` the active module (step 5).
    async fn promote(
        &mut self,
        passed: Box<Passed>,
        first_event: Instant,
        debounce: Duration,
        shadow: Duration,
    ) {
        let Passed {
            mut module,
            canary,
            read,
            load,
            compilation,
            canary_time,
        } = *passed;
        let probation = (self.config.rollback.min_failures > 0).then(|| {
            Arc::new(Probation::new(
                &module.report.digest,
                self.config.rollback,
                self.rollback_sender.clone(),
            ))
        });
        let active = match module.active(probation.clone(), self.shadow.clone(), &self.config) {
            Ok(active) => active,
            Err(error) => {
                let key = module.key();
                let report = &module.report;
                self.reject(
                    &error,
                    Some(report.digest.clone()),
                    Some(report.version.clone()),
                    Some(key),
                )
                .await;
                return;
            }
        };
        module.report.since = Utc::now();
        self.slot.replace(active);
        let timings = SwapTimings {
            debounce,
            read,
            load,
            from_cache: compilation.is_some_and(|c| c.from_cache),
            reused: compilation.is_none(),
            canary: canary_time,
            shadow,
            total: first_event.elapsed(),
        };
        let previous = std::mem::replace(&mut self.active, module);
        self.metrics.swaps.inc();
        self.metrics.fallback.set(0);
        self.metrics.set_active(&self.active.report);
        self.metrics
            .swap_duration
            .observe(timings.total.as_secs_f64());
        let (new, old) = (self.active.report.clone(), previous.report.clone());
        tracing::info!(
            version = %new.version,
            sha256 = %new.digest,
            replaced = %old.label,
            total_ms = timings.total.as_millis(),
            load_ms = timings.load.as_millis(),
            from_cache = timings.from_cache,
            canary_ms = timings.canary.as_millis(),
            canary_scenarios = canary.as_ref().map_or(0, |c| c.scenarios),
            "policy module promoted"
        );
        self.status.update(|state| {
            state.active = new.clone();
            state.probation = probation;
            state.last_good = Some(old.clone());
            if canary.is_some() {
                state.last_canary = canary.clone();
            }
            state.last_swap = Some(timings);
            state.fallback = None;
            state.swaps += 1;
        });
        self.last_good = Some(previous);
        self.last_rejected = None;
        let note = format!(
            "{} (sha256:{}) from {} replaces {}{}",
            new.label,
            new.digest,
            self.config.module.display(),
            old.label,
            canary
                .as_ref()
                .map(|c| format!(" after a canary of {} scenarios", c.scenarios))
                .unwrap_or_default()
        );
        self.event(false, "PolicySwapped", &note).await;
        self.reconcile_all.reconcile_all();
    }

    /// Rolls the active module back to the last good one, if `request` is still about it.
    async fn on_rollback(&mut self, request: RollbackRequest) {
        if request.digest != self.active.report.digest {
            return;
        }
        let Some(mut good) = self.last_good.take() else {
            tracing::error!(message = %request.message, "the policy module fails, and there is no module to roll back to");
            return;
        };
        let active = match good.active(None, self.shadow.clone(), &self.config) {
            Ok(active) => active,
            Err(error) => {
                tracing::error!(error = %capt_host_core::error_chain(&error), "cannot roll back");
                self.last_good = Some(good);
                return;
            }
        };
        good.report.since = Utc::now();
        self.slot.replace(active);
        let failed = std::mem::replace(&mut self.active, good);
        self.bad.insert(failed.report.digest.clone());
        self.last_rejected = Some(failed.key());
        self.metrics.rollbacks.inc();
        self.metrics.set_active(&self.active.report);
        let (from, to) = (failed.report.clone(), self.active.report.clone());
        tracing::error!(
            from = %from.label,
            to = %to.label,
            reason = %request.message,
            "policy module rolled back"
        );
        let now = Utc::now();
        self.status.update(|state| {
            state.active = to.clone();
            state.probation = None;
            state.last_good = None;
            state.last_rollback = Some(RollbackReport {
                from: from.clone(),
                to: to.clone(),
                message: request.message.clone(),
                time: now,
            });
            state.last_rejected = Some(RejectionReport {
                digest: Some(from.digest.clone()),
                version: Some(from.version.clone()),
                reason: "rolled_back".into(),
                message: request.message.clone(),
                verdict: None,
                time: now,
            });
            state.rollbacks += 1;
        });
        let note = format!(
            "{} (sha256:{}) rolled back to {}: {}; it is not tried again until the file changes",
            from.label, from.digest, to.label, request.message
        );
        self.event(true, "PolicyRolledBack", &note).await;
        self.reconcile_all.reconcile_all();
    }

    /// Reports a rejected candidate (step 6); the active module stays.
    async fn reject(
        &mut self,
        error: &SwapError,
        digest: Option<String>,
        version: Option<String>,
        key: Option<(String, String)>,
    ) {
        let reason = error.reason();
        let message = capt_host_core::error_chain(error);
        self.metrics.rejected(reason);
        tracing::warn!(
            reason,
            error = %message,
            sha256 = digest.as_deref().unwrap_or(""),
            active = %self.active.report.label,
            "policy module rejected; the active module keeps serving"
        );
        if !error.is_transient() {
            self.last_rejected = key;
        }
        let active = self.active.report.label.clone();
        self.status.update(|state| {
            state.last_rejected = Some(RejectionReport {
                digest: digest.clone(),
                version,
                reason: reason.to_owned(),
                message: message.clone(),
                verdict: error.recorded().cloned(),
                time: Utc::now(),
            });
            state.rejections += 1;
        });
        let note = format!(
            "{reason}: {}{message}; {active} keeps serving",
            digest.map(|d| format!("sha256:{d}: ")).unwrap_or_default()
        );
        self.event(true, "PolicyRejected", &note).await;
    }

    async fn event(&self, warning: bool, reason: &str, note: &str) {
        if let Some(events) = &self.events {
            if warning {
                events.warning(reason, note).await;
            } else {
                events.normal(reason, note).await;
            }
        }
    }
}

/// Resolves when shutdown is asked (or the operator is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn next_change(changes: &mut Option<Changes>) -> Instant {
    match changes {
        Some(changes) => changes.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
