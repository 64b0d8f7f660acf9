//! Shadow mode: a candidate that passed the canary computes every live policy call next to the
//! active module, for a while, before it is promoted. Its responses are compared with the
//! active module's and never applied.
//!
//! [`ShadowSlot::compare`] is called by [`super::supervised::Supervised`] after each call of the
//! active module, with the request that call got (the same gathered objects) and its result.
//! The candidate runs on a blocking thread of its own (the reconcile does not wait for it),
//! at most [`MAX_IN_FLIGHT`] at a time; calls beyond that are skipped (counted). A difference
//! is a call whose responses differ (patches, events, requirements, requeue) or where one
//! module failed and the other did not.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use capt_policy::{Request, Response};
use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};

use super::lock;
use capt_host_core::view;
use capt_host_core::{Policy, PolicyError};
use capt_host_runtime::WasmPolicy;

/// Shadow calls that may run at once; more are skipped. Each holds one instance slot of the
/// engine's pool next to the active module's calls.
pub const MAX_IN_FLIGHT: usize = 2;
/// Differences kept for the `/policy` report.
const RECENT: usize = 10;
/// The longest diff text kept per difference.
const DIFF_BYTES: usize = 4096;

/// Where the running shadow, if any, is found.
#[derive(Default)]
pub(crate) struct ShadowSlot {
    current: Mutex<Option<Arc<ShadowRun>>>,
}

impl ShadowSlot {
    /// Starts comparing with `run`.
    pub(crate) fn start(&self, run: Arc<ShadowRun>) {
        *lock(&self.current) = Some(run);
    }

    /// Stops comparing; the run that was going on.
    pub(crate) fn stop(&self) -> Option<Arc<ShadowRun>> {
        lock(&self.current).take()
    }

    /// The run going on.
    pub(crate) fn current(&self) -> Option<Arc<ShadowRun>> {
        lock(&self.current).clone()
    }

    /// Has the shadow candidate (if any) compute `request`, which the active module answered
    /// with `active`.
    pub(crate) fn compare(&self, request: &Request, active: &Result<Response, PolicyError>) {
        let Some(run) = self.current() else {
            return;
        };
        if run.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            run.in_flight.fetch_sub(1, Ordering::AcqRel);
            lock(&run.stats).skipped += 1;
            return;
        }
        let mut request = request.clone();
        request.settings.clone_from(&run.settings);
        let active = match active {
            Ok(response) => Ok(response.clone()),
            Err(error) => Err(capt_host_core::error_chain(error)),
        };
        let job = {
            let run = run.clone();
            move || {
                run.compare_now(&request, &active);
                run.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(job);
            }
            Err(_) => job(),
        }
    }
}

/// One candidate in shadow mode and what it found.
pub(crate) struct ShadowRun {
    candidate: Arc<WasmPolicy>,
    /// The candidate's merged settings (its defaults may differ from the active module's).
    settings: String,
    pub(crate) version: String,
    pub(crate) started: DateTime<Utc>,
    in_flight: AtomicUsize,
    stats: Mutex<ShadowStats>,
    comparisons: Counter,
    differences: Counter,
}

/// What a shadow run counted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ShadowStats {
    /// Calls computed by both modules and compared.
    pub comparisons: u64,
    /// Compared calls whose results differ.
    pub differences: u64,
    /// Compared calls the candidate failed and the active module answered.
    pub candidate_failures: u64,
    /// Calls not compared because [`MAX_IN_FLIGHT`] shadow calls were running.
    pub skipped: u64,
    /// The last differences, newest last.
    pub recent: VecDeque<Difference>,
    /// The last failure of the candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// One call where the candidate and the active module disagreed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Difference {
    /// When.
    #[serde(serialize_with = "super::status::rfc3339")]
    pub time: DateTime<Utc>,
    /// The trigger of the reconcile.
    pub trigger: String,
    /// A unified diff of the two results (`expected` = active, `actual` = candidate), cut.
    pub diff: String,
}

impl ShadowRun {
    pub(crate) fn new(
        candidate: Arc<WasmPolicy>,
        settings: String,
        version: String,
        comparisons: Counter,
        differences: Counter,
    ) -> Self {
        Self {
            candidate,
            settings,
            version,
            started: Utc::now(),
            in_flight: AtomicUsize::new(0),
            stats: Mutex::default(),
            comparisons,
            differences,
        }
    }

    /// The counts so far.
    pub(crate) fn stats(&self) -> ShadowStats {
        lock(&self.stats).clone()
    }

    fn compare_now(&self, request: &Request, active: &Result<Response, String>) {
        let shadow = self
            .candidate
            .reconcile(request)
            .map_err(|e| capt_host_core::error_chain(&e));
        let (expected, actual) = (rendering(active), rendering(&shadow));
        let mut stats = lock(&self.stats);
        stats.comparisons += 1;
        self.comparisons.inc();
        if let (Ok(_), Err(error)) = (active, &shadow) {
            stats.candidate_failures += 1;
            stats.last_failure = Some(error.clone());
        }
        if expected == actual {
            return;
        }
        stats.differences += 1;
        self.differences.inc();
        let mut diff = capt_host_core::scenario::matching::diff(&expected, &actual);
        if diff.len() > DIFF_BYTES {
            diff = format!(
                "{}\n(cut)",
                capt_host_core::text::truncate(&diff, DIFF_BYTES)
            );
        }
        tracing::info!(
            trigger = %request.trigger,
            candidate = %self.version,
            "shadow: the candidate's result differs from the active module's\n{diff}"
        );
        if stats.recent.len() == RECENT {
            stats.recent.pop_front();
        }
        stats.recent.push_back(Difference {
            time: Utc::now(),
            trigger: request.trigger.to_string(),
            diff,
        });
    }
}

/// A result as a comparable value: the response's view plus its requirements, or the error.
fn rendering(result: &Result<Response, String>) -> Value {
    match result {
        Ok(response) => {
            let mut value = view::to_json(&view::response(response));
            let mut requirements: Vec<String> = response
                .requirements
                .iter()
                .map(ToString::to_string)
                .collect();
            requirements.sort();
            if let Value::Object(fields) = &mut value
                && !requirements.is_empty()
            {
                fields.insert("requirements".into(), json!(requirements));
            }
            value
        }
        Err(error) => json!({ "error": error }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_render_with_sorted_requirements_and_errors() {
        let a = capt_policy::ObjectRef::new("v1", "Secret", Some("ns"), "a");
        let b = capt_policy::ObjectRef::new("v1", "Secret", Some("ns"), "b");
        let one = Response {
            requirements: vec![a.clone(), b.clone()],
            ..Response::default()
        };
        let other = Response {
            requirements: vec![b, a],
            ..Response::default()
        };
        assert_eq!(rendering(&Ok(one.clone())), rendering(&Ok(other)));
        assert_ne!(rendering(&Ok(one)), rendering(&Err("x".into())));
    }
}
