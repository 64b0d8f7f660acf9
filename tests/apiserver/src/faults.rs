//! Fault injection: conflicts, failures, hangs and latency on demand, matched against
//! requests (their verb, resource, subresource and `User-Agent`).

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::{ApiError, Reason};
use crate::stats::{RequestKey, Verb};

/// Which requests a fault applies to. The default matches every request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFilter {
    verb: Option<Verb>,
    resource: Option<String>,
    subresource: Option<Option<String>>,
    user_agent: Option<String>,
}

impl RequestFilter {
    /// Matches every request.
    pub fn any() -> Self {
        Self::default()
    }

    /// Only requests with this verb.
    pub fn verb(mut self, verb: Verb) -> Self {
        self.verb = Some(verb);
        self
    }

    /// Only requests on this resource (`plural` or `plural.group`).
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }

    /// Only requests on this subresource (`None`: only the main resource).
    pub fn subresource(mut self, subresource: Option<&str>) -> Self {
        self.subresource = Some(subresource.map(str::to_string));
        self
    }

    /// Only requests whose `User-Agent` contains `part` (e.g. one client's identity).
    pub fn user_agent(mut self, part: &str) -> Self {
        self.user_agent = Some(part.to_string());
        self
    }

    /// Whether the request `key`, sent with `user_agent`, matches.
    pub fn matches(&self, key: &RequestKey, user_agent: &str) -> bool {
        self.user_agent
            .as_deref()
            .is_none_or(|part| user_agent.contains(part))
            && self.verb.is_none_or(|v| v == key.verb)
            && self.resource.as_deref().is_none_or(|r| key.is_resource(r))
            && self
                .subresource
                .as_ref()
                .is_none_or(|s| *s == key.subresource)
    }
}

#[derive(Debug)]
struct Rule {
    remaining: u32,
    filter: RequestFilter,
    code: u16,
}

#[derive(Debug, Default)]
struct FaultState {
    conflicts: Vec<Rule>,
    failures: Vec<Rule>,
    latency: Duration,
}

/// The fault plan of a server; see [`Faults`](crate::Faults) for the public handle.
#[derive(Debug)]
pub(crate) struct FaultPlan {
    state: Mutex<FaultState>,
    /// Requests matching one of these filters wait until it is removed.
    hangs: watch::Sender<Vec<RequestFilter>>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            hangs: watch::Sender::new(Vec::new()),
        }
    }
}

fn take(rules: &mut Vec<Rule>, key: &RequestKey, user_agent: &str) -> Option<u16> {
    let rule = rules
        .iter_mut()
        .find(|r| r.filter.matches(key, user_agent))?;
    rule.remaining -= 1;
    let code = rule.code;
    rules.retain(|r| r.remaining > 0);
    Some(code)
}

impl FaultPlan {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn add_conflicts(&self, n: u32, filter: RequestFilter) {
        if n > 0 {
            self.lock().conflicts.push(Rule {
                remaining: n,
                filter,
                code: 409,
            });
        }
    }

    pub(crate) fn add_failures(&self, n: u32, code: u16, filter: RequestFilter) {
        if n > 0 {
            self.lock().failures.push(Rule {
                remaining: n,
                filter,
                code,
            });
        }
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    pub(crate) fn add_hang(&self, filter: RequestFilter) {
        self.hangs.send_modify(|hangs| hangs.push(filter));
    }

    /// Lets every hung request go on, and hangs no more.
    pub(crate) fn release_hangs(&self) {
        self.hangs.send_modify(Vec::clear);
    }

    /// Waits while a hang matches the request.
    pub(crate) async fn hang(&self, key: &RequestKey, user_agent: &str) {
        let mut hangs = self.hangs.subscribe();
        // The sender lives in `self`: waiting cannot fail.
        let _ = hangs
            .wait_for(|hangs| !hangs.iter().any(|f| f.matches(key, user_agent)))
            .await;
    }

    pub(crate) fn clear(&self) {
        *self.lock() = FaultState::default();
        self.release_hangs();
    }

    /// The injected error for this request, if any (failures first, then conflicts for
    /// writes); consumes one occurrence of the matching rule.
    pub(crate) fn check(&self, key: &RequestKey, name: &str, user_agent: &str) -> Option<ApiError> {
        let mut state = self.lock();
        if let Some(code) = take(&mut state.failures, key, user_agent) {
            let mut err = ApiError::new(
                code,
                Reason::for_code(code),
                format!(
                    "injected failure ({code}) for {} {}",
                    key.verb, key.resource
                ),
            );
            if matches!(code, 429 | 503 | 504) {
                err = err.with_retry_after(1);
            }
            return Some(err);
        }
        if key.verb.is_write() && take(&mut state.conflicts, key, user_agent).is_some() {
            return Some(ApiError::conflict(&key.group, &key.resource, name));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(verb: Verb, resource: &str) -> RequestKey {
        RequestKey {
            verb,
            group: String::new(),
            resource: resource.to_string(),
            subresource: None,
        }
    }

    #[test]
    fn conflicts_apply_to_matching_writes_only_and_run_out() {
        let plan = FaultPlan::default();
        plan.add_conflicts(2, RequestFilter::any().resource("configmaps"));
        assert!(plan.check(&key(Verb::Get, "configmaps"), "a", "").is_none());
        assert!(plan.check(&key(Verb::Patch, "secrets"), "a", "").is_none());
        assert_eq!(
            plan.check(&key(Verb::Patch, "configmaps"), "a", "")
                .unwrap()
                .code,
            409
        );
        assert_eq!(
            plan.check(&key(Verb::Update, "configmaps"), "a", "")
                .unwrap()
                .code,
            409
        );
        assert!(
            plan.check(&key(Verb::Patch, "configmaps"), "a", "")
                .is_none()
        );
    }

    #[test]
    fn failures_apply_to_any_matching_request() {
        let plan = FaultPlan::default();
        plan.add_failures(1, 500, RequestFilter::any().verb(Verb::List));
        assert!(plan.check(&key(Verb::Get, "pods"), "a", "").is_none());
        let err = plan.check(&key(Verb::List, "pods"), "", "").unwrap();
        assert_eq!(err.code, 500);
        assert_eq!(err.reason, Reason::InternalError);
        assert!(plan.check(&key(Verb::List, "pods"), "", "").is_none());
    }

    #[test]
    fn subresource_filter_and_clear() {
        let plan = FaultPlan::default();
        plan.add_conflicts(5, RequestFilter::any().subresource(Some("status")));
        assert!(plan.check(&key(Verb::Patch, "pods"), "a", "").is_none());
        let mut status = key(Verb::Patch, "pods");
        status.subresource = Some("status".to_string());
        assert!(plan.check(&status, "a", "").is_some());
        plan.set_latency(Duration::from_millis(5));
        plan.clear();
        assert!(plan.check(&status, "a", "").is_none());
        assert_eq!(plan.latency(), Duration::ZERO);
    }

    #[test]
    fn user_agent_filters_match_a_part_of_it() {
        let plan = FaultPlan::default();
        plan.add_failures(1, 503, RequestFilter::any().user_agent("(replica-a)"));
        let patch = key(Verb::Patch, "leases");
        assert!(
            plan.check(&patch, "a", "capt-host/0.1.0 (replica-b)")
                .is_none()
        );
        assert_eq!(
            plan.check(&patch, "a", "capt-host/0.1.0 (replica-a)")
                .map(|e| e.code),
            Some(503)
        );
    }

    #[tokio::test]
    async fn hung_requests_go_on_once_released() {
        let plan = std::sync::Arc::new(FaultPlan::default());
        plan.add_hang(RequestFilter::any().resource("leases"));
        // A request the hang does not match passes.
        plan.hang(&key(Verb::Get, "pods"), "").await;
        let hung = tokio::spawn({
            let plan = plan.clone();
            async move { plan.hang(&key(Verb::Update, "leases"), "").await }
        });
        tokio::task::yield_now().await;
        assert!(!hung.is_finished());
        plan.release_hangs();
        hung.await.expect("the hung request goes on");
    }
}
