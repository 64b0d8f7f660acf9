//! Recording Kubernetes events (`events.k8s.io/v1`), reporting as the operator's `reporter`
//! and `identity`: the policy's events, and the host's Warning events about failed reconciles.
//!
//! Each event is one create, named like kube's `Recorder` names them. The recorder is not used:
//! to turn repeats into series it keeps every event it recorded for six minutes (~2.3 KB each,
//! and the whole cache is walked on every publish), which at 10,000 clusters was the largest
//! part of the operator's memory after its caches (BENCHMARKS.md). Repeats are rare here anyway:
//! a policy emits events on transitions, and the reconciler records a repeated failure only once
//! ([`super::index::TriggerIndex::warn`]).

use capt_policy::{Event, EventType, ObjectRef};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::leader::LeaderGate;
use capt_host_core::text::truncate;

/// The `action` of every event: what the operator was doing.
const ACTION: &str = "Reconcile";
/// The longest note an event may carry (the API limit is 1 kB).
const NOTE_BYTES: usize = 1024;

/// Why an event was not recorded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EventError {
    /// This replica does not hold the Lease: it does not write.
    #[error("not the leader: events are not recorded")]
    NotLeader,
    /// The API server refused or failed the write.
    #[error("recording the event failed")]
    Api(#[source] kube::Error),
}

/// Publishes events, if this replica may write.
pub(crate) struct EventPublisher {
    client: Client,
    reporter: String,
    identity: String,
    gate: LeaderGate,
}

impl EventPublisher {
    /// A publisher reporting as `reporter` (the controller) and `identity` (the instance).
    pub(crate) fn new(client: Client, reporter: &str, identity: &str, gate: LeaderGate) -> Self {
        Self {
            client,
            reporter: reporter.to_owned(),
            identity: identity.to_owned(),
            gate,
        }
    }

    /// Records `event` (a policy's) about its `regarding` object, whose uid is `uid` if known.
    pub(crate) async fn publish(
        &self,
        event: &Event,
        uid: Option<String>,
        metrics: &EventMetrics,
    ) -> Result<(), EventError> {
        self.record(
            &event.regarding,
            uid,
            event.event_type,
            &event.reason,
            &event.message,
            metrics,
        )
        .await
    }

    /// Records a Warning with `reason` and `message` about `regarding`.
    pub(crate) async fn warn(
        &self,
        regarding: &ObjectRef,
        uid: Option<String>,
        reason: &str,
        message: &str,
        metrics: &EventMetrics,
    ) -> Result<(), EventError> {
        self.record(regarding, uid, EventType::Warning, reason, message, metrics)
            .await
    }

    async fn record(
        &self,
        regarding: &ObjectRef,
        uid: Option<String>,
        event_type: EventType,
        reason: &str,
        message: &str,
        metrics: &EventMetrics,
    ) -> Result<(), EventError> {
        if !self.gate.is_open() {
            return Err(EventError::NotLeader);
        }
        let type_label = match event_type {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let now = Timestamp::now();
        // Events of cluster-scoped objects go to `default`, as kube's recorder puts them.
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let event = KubeEvent {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", regarding.name, now.as_nanosecond())),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            action: Some(ACTION.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(truncate(message, NOTE_BYTES).to_owned()),
            type_: Some(type_label.to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(ObjectReference {
                api_version: Some(regarding.api_version.clone()),
                kind: Some(regarding.kind.clone()),
                namespace: regarding.namespace.clone(),
                name: Some(regarding.name.clone()),
                uid,
                ..ObjectReference::default()
            }),
            reporting_controller: Some(self.reporter.clone()),
            reporting_instance: Some(self.identity.clone()),
            ..KubeEvent::default()
        };
        Api::<KubeEvent>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &event)
            .await
            .map_err(EventError::Api)?;
        metrics
            .events
            .get_or_create(&TypeLabels { r#type: type_label })
            .inc();
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: &'static str,
}

/// Metrics of the events.
#[derive(Debug)]
pub(crate) struct EventMetrics {
    events: Family<TypeLabels, Counter>,
}

impl EventMetrics {
    /// Registers `events_total`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let events = Family::default();
        registry.register(
            "events",
            "Events recorded, by type (Normal or Warning)",
            events.clone(),
        );
        Self { events }
    }
}
