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
