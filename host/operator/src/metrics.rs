//! The operator's metrics: one registry per operator (two operators in one process count
//! apart), prefixed `capt_host_`, with each family registered by the module that measures it
//! ([`super::reconcile`], [`super::gather`], [`super::apply`], [`super::events`],
//! [`super::leader`], [`super::poison`]), and the families others plug in through
//! [`crate::OperatorBuilder::metrics_registry`]. `/metrics` serves [`Metrics::encode`].

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

use super::apply::ApplyMetrics;
use super::events::EventMetrics;
use super::gather::GuestMetrics;
use super::leader::LeaderMetrics;
use super::poison::PoisonMetrics;
use super::reconcile::ReconcileMetrics;

/// The prefix of every metric name.
pub const PREFIX: &str = "capt_host";

/// The content type of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of one operator.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) reconcile: ReconcileMetrics,
    pub(crate) guest: GuestMetrics,
    pub(crate) apply: ApplyMetrics,
    pub(crate) events: EventMetrics,
    pub(crate) leader: LeaderMetrics,
    pub(crate) poison: PoisonMetrics,
}

impl Metrics {
    /// A registry with every family registered, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        Self {
            reconcile: ReconcileMetrics::register(&mut registry),
            guest: GuestMetrics::register(&mut registry),
            apply: ApplyMetrics::register(&mut registry),
            events: EventMetrics::register(&mut registry),
            leader: LeaderMetrics::register(&mut registry),
            poison: PoisonMetrics::register(&mut registry),
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
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
