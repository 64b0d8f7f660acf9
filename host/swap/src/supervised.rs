//! [`Supervised`]: the policy the slot holds while hot swaps are on. It runs the module and,
//! after each call, reports the result to the module's [`Probation`] (a promoted module's
//! first reconciles, which can ask for a rollback) and to the [`ShadowSlot`] (a candidate
//! computing the same call next to it).
//!
//! Both see the policy calls themselves, so they need nothing from the operator: a shadow call
//! gets exactly the request the active module got (the same gathered objects, round by round).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capt_policy::{Metadata, Request, Response};
use tokio::sync::mpsc;

use super::RollbackPolicy;
use super::lock;
use super::shadow::ShadowSlot;
use capt_host_core::{Policy, PolicyError};
use capt_host_runtime::WasmPolicy;

/// The active module, watched.
pub(crate) struct Supervised {
    module: Arc<WasmPolicy>,
    probation: Option<Arc<Probation>>,
    shadow: Arc<ShadowSlot>,
}

impl Supervised {
    pub(crate) fn new(
        module: Arc<WasmPolicy>,
        probation: Option<Arc<Probation>>,
        shadow: Arc<ShadowSlot>,
    ) -> Self {
        Self {
            module,
            probation,
            shadow,
        }
    }
}

impl Policy for Supervised {
    fn metadata(&self) -> &Metadata {
        self.module.metadata()
    }

    fn reconcile(&self, request: &Request) -> Result<Response, PolicyError> {
        let result = self.module.reconcile(request);
        if let Some(probation) = &self.probation {
            probation.observe(&result);
        }
        self.shadow.compare(request, &result);
        result
    }
}

/// A request to roll a module back, sent by its [`Probation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RollbackRequest {
    /// The module's SHA-256.
    pub(crate) digest: String,
    /// Why: the counts.
    pub(crate) message: String,
}

/// How a probation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbationState {
    /// Counting.
    Running,
    /// Ended without reaching the threshold: the module is the last good one from now on.
    Passed,
    /// Reached the threshold: a rollback was asked for.
    Failed,
}

/// What a probation counted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbationReport {
    /// Running, passed or failed.
    pub state: ProbationState,
    /// Reconciles of the module counted (finished policy runs, failed ones included).
    pub reconciles: u64,
    /// Those that failed in the policy.
    pub failures: u64,
    /// The last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// The first reconciles of a promoted module: counts its policy failures and asks for a
/// rollback when they reach the [`RollbackPolicy`] threshold before the probation ends.
///
/// A reconcile is counted when a call returns a final response (no requirements left) or an
/// error; calls that ask for more objects are intermediate rounds. `Instantiate` errors (no
/// free instance slot: the host's problem) are not the module's failures.
pub(crate) struct Probation {
    digest: String,
    policy: RollbackPolicy,
    started: Instant,
    counts: Mutex<ProbationReport>,
    rollback: mpsc::UnboundedSender<RollbackRequest>,
}

impl Probation {
    pub(crate) fn new(
        digest: &str,
        policy: RollbackPolicy,
        rollback: mpsc::UnboundedSender<RollbackRequest>,
    ) -> Self {
        Self {
            digest: digest.to_owned(),
            policy,
            started: Instant::now(),
            counts: Mutex::new(ProbationReport {
                state: ProbationState::Running,
                reconciles: 0,
                failures: 0,
                last_failure: None,
            }),
            rollback,
        }
    }

    /// The counts so far.
    pub(crate) fn report(&self) -> ProbationReport {
        let mut report = lock(&self.counts).clone();
        if report.state == ProbationState::Running && self.expired() {
            report.state = ProbationState::Passed;
        }
        report
    }

    fn expired(&self) -> bool {
        self.started.elapsed() >= self.policy.probation
    }

    fn observe(&self, result: &Result<Response, PolicyError>) {
        let mut counts = lock(&self.counts);
        if counts.state != ProbationState::Running {
            return;
        }
        match result {
            Ok(response) if !response.requirements.is_empty() => return,
            Ok(_) => counts.reconciles += 1,
            Err(PolicyError::Instantiate(_)) => return,
            Err(error) => {
                counts.reconciles += 1;
                counts.failures += 1;
                counts.last_failure = Some(capt_host_core::error_chain(error));
            }
        }
        if self.policy.exceeded(counts.failures, counts.reconciles) {
            counts.state = ProbationState::Failed;
            let message = format!(
                "{} of its first {} reconciles failed (threshold: at least {} and more than {:.0}%){}",
                counts.failures,
                counts.reconciles,
                self.policy.min_failures,
                self.policy.ratio * 100.0,
                counts
                    .last_failure
                    .as_ref()
                    .map(|e| format!("; last: {e}"))
                    .unwrap_or_default()
            );
            // The job may be gone (shutting down): nothing to roll back then.
            let _ = self.rollback.send(RollbackRequest {
                digest: self.digest.clone(),
                message,
            });
        } else if counts.reconciles >= self.policy.probation_reconciles || self.expired() {
            counts.state = ProbationState::Passed;
        }
    }
}

impl RollbackPolicy {
    /// True when `failures` of `reconciles` reach the threshold.
    pub(crate) fn exceeded(&self, failures: u64, reconciles: u64) -> bool {
        self.min_failures > 0
            && failures >= self.min_failures
            && failures as f64 > self.ratio * reconciles as f64
    }

    /// Rollback off.
    pub fn disabled() -> Self {
        Self {
            min_failures: 0,
            ..Self::default()
        }
    }
}

impl Default for RollbackPolicy {
    fn default() -> Self {
        Self {
            min_failures: 5,
            ratio: 0.5,
            probation_reconciles: 200,
            probation: Duration::from_secs(600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn final_response() -> Result<Response, PolicyError> {
        Ok(Response::default())
    }

    fn failure() -> Result<Response, PolicyError> {
        Err(PolicyError::Rejected(capt_policy::Error::Internal(
            "boom".into(),
        )))
    }

    fn probation(policy: RollbackPolicy) -> (Probation, mpsc::UnboundedReceiver<RollbackRequest>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Probation::new("abc", policy, tx), rx)
    }

    #[test]
    fn a_module_failing_most_reconciles_is_rolled_back_once_the_minimum_is_reached() {
        let (probation, mut requests) = probation(RollbackPolicy::default());
        probation.observe(&final_response());
        for _ in 0..4 {
            probation.observe(&failure());
        }
        assert!(
            requests.try_recv().is_err(),
            "4 failures are under the minimum"
        );
        probation.observe(&failure());
        let request = requests.try_recv().expect("a rollback request");
        assert_eq!(request.digest, "abc");
        assert!(
            request
                .message
                .starts_with("5 of its first 6 reconciles failed"),
            "{}",
            request.message
        );
        probation.observe(&failure());
        assert!(requests.try_recv().is_err(), "asked once");
        assert_eq!(probation.report().state, ProbationState::Failed);
    }

    #[test]
    fn failures_in_a_minority_and_intermediate_rounds_do_not_count() {
        let (probation, mut requests) = probation(RollbackPolicy::default());
        let intermediate = Ok(Response {
            requirements: vec![capt_policy::ObjectRef::new("v1", "Secret", Some("ns"), "s")],
            ..Response::default()
        });
        for _ in 0..6 {
            probation.observe(&failure());
            probation.observe(&final_response());
            probation.observe(&final_response());
            probation.observe(&intermediate);
        }
        assert!(requests.try_recv().is_err());
        let report = probation.report();
        assert_eq!((report.reconciles, report.failures), (18, 6));
    }

    #[test]
    fn the_probation_passes_after_its_reconciles_and_then_ignores_failures() {
        let policy = RollbackPolicy {
            probation_reconciles: 3,
            ..RollbackPolicy::default()
        };
        let (probation, mut requests) = probation(policy);
        for _ in 0..3 {
            probation.observe(&final_response());
        }
        assert_eq!(probation.report().state, ProbationState::Passed);
        for _ in 0..10 {
            probation.observe(&failure());
        }
        assert!(requests.try_recv().is_err());
    }

    #[test]
    fn a_zero_minimum_disables_rollbacks() {
        assert!(!RollbackPolicy::disabled().exceeded(100, 100));
        assert!(RollbackPolicy::default().exceeded(5, 9));
        assert!(!RollbackPolicy::default().exceeded(5, 10));
    }
}
