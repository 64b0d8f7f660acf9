//! The operator's metrics, one set per operator (two operators in one process count apart),
//! each family registered by the module that measures it. Two registries:
//! - the families users of controller-runtime operators already chart, under their names:
//!   `controller_runtime_*` and `workqueue_*` ([`super::queue`]), `leader_election_master_status`
//!   ([`super::leader`]), `rest_client_*` ([`super::client`]) and `process_*`
//!   ([`super::process`]);
//! - the policy's own, prefixed `capt_host_` ([`super::reconcile`], [`super::gather`],
//!   [`super::apply`], [`super::output`], [`super::contention`], [`super::events`],
//!   [`super::poison`]), with the families others plug in through
//!   [`crate::OperatorBuilder::metrics_registry`].
//!
//! `/metrics` serves [`Metrics::encode`].

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::registry::Registry;

use super::apply::ApplyMetrics;
use super::client::RestClientMetrics;
use super::contention::ContentionMetrics;
use super::events::EventMetrics;
use super::gather::GuestMetrics;
use super::leader::LeaderMetrics;
use super::output::OutputMetrics;
use super::poison::PoisonMetrics;
use super::process::ProcessCollector;
use super::queue::ControllerMetrics;
use super::reconcile::ReconcileMetrics;

/// The prefix of the policy's own metric names.
pub const PREFIX: &str = "capt_host";

/// The content type of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of one operator.
#[derive(Debug)]
pub struct Metrics {
    /// The families named as controller-runtime and client-go name them.
    common: Registry,
    /// The policy's own families, prefixed.
    registry: Registry,
    pub(crate) controllers: ControllerMetrics,
    pub(crate) rest: RestClientMetrics,
    pub(crate) reconcile: ReconcileMetrics,
    pub(crate) guest: GuestMetrics,
    pub(crate) apply: ApplyMetrics,
    pub(crate) output: OutputMetrics,
    pub(crate) contention: ContentionMetrics,
    pub(crate) events: EventMetrics,
    pub(crate) leader: LeaderMetrics,
    pub(crate) poison: PoisonMetrics,
}

impl Metrics {
    /// A registry with every family registered, all at zero.
    pub fn new() -> Self {
        let mut common = Registry::default();
        let mut registry = Registry::with_prefix(PREFIX);
        common.register_collector(Box::new(ProcessCollector));
        Self {
            controllers: ControllerMetrics::register(&mut common),
            rest: RestClientMetrics::register(&mut common),
            leader: LeaderMetrics::register(&mut common),
            reconcile: ReconcileMetrics::register(&mut registry),
            guest: GuestMetrics::register(&mut registry),
            apply: ApplyMetrics::register(&mut registry),
            output: OutputMetrics::register(&mut registry),
            contention: ContentionMetrics::register(&mut registry),
            events: EventMetrics::register(&mut registry),
            poison: PoisonMetrics::register(&mut registry),
            common,
            registry,
        }
    }

    /// The registry, for families registered by others before the operator starts.
    pub(crate) fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The current values in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut text, &self.common)
            .and_then(|()| encode_registry(&mut text, &self.registry))
            .and_then(|()| encode_eof(&mut text));
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leader::LeaderGate;

    #[test]
    fn every_family_is_served_before_anything_happens() {
        let metrics = Metrics::new();
        metrics.controllers.controller("captcluster", 4);
        let _gate = LeaderGate::new(&metrics.leader, Some("capt-status"));
        let text = metrics.encode();
        let controller = r#"controller="captcluster""#;
        let queue = r#"{name="captcluster",controller="captcluster"}"#;
        let mut expected: Vec<String> = ["success", "error", "requeue", "requeue_after"]
            .iter()
            .map(|result| {
                format!(r#"controller_runtime_reconcile_total{{{controller},result="{result}"}} 0"#)
            })
            .collect();
        expected.extend([
            format!("controller_runtime_reconcile_errors_total{{{controller}}} 0"),
            format!("controller_runtime_reconcile_time_seconds_count{{{controller}}} 0"),
            format!("controller_runtime_active_workers{{{controller}}} 0"),
            format!("controller_runtime_max_concurrent_reconciles{{{controller}}} 4"),
            r#"leader_election_master_status{name="capt-status"} 0"#.to_owned(),
        ]);
        for family in [
            "workqueue_depth",
            "workqueue_adds_total",
            "workqueue_retries_total",
            "workqueue_queue_duration_seconds_count",
            "workqueue_work_duration_seconds_count",
            "workqueue_unfinished_work_seconds",
            "workqueue_longest_running_processor_seconds",
        ] {
            expected.push(format!("{family}{queue} 0"));
        }
        for family in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            expected.push(format!("\n{family} "));
        }
        for line in expected {
            assert!(text.contains(&line), "{line:?} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "one end, after both registries");
    }
}
