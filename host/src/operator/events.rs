//! Recording Kubernetes events (`events.k8s.io/v1`) through kube's [`Recorder`], reporting as
//! the operator's `reporter` and `identity`: the policy's events, and the host's Warning events
//! about failed reconciles. The recorder turns a repeated event into a series (one patch of a
//! counter) instead of a new object; the reconciler additionally records a repeated failure
//! only once ([`super::index::TriggerIndex::warn`]).

use capt_policy::{Event, EventType, ObjectRef};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::leader::LeaderGate;
use crate::engine::truncate;

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

/// Recorders an [`EventPublisher`] spreads its events over, by the object they are about.
///
/// kube's [`Recorder`] remembers every event it recorded for six minutes (to turn repeats
/// into series) and walks that whole cache on every publish: with one recorder, recording the
/// events of N objects costs O(N²). Each object's events always go to the same recorder, so
/// series work as before, and each walk covers 1/`RECORDER_SHARDS` of the events.
const RECORDER_SHARDS: usize = 256;

/// Publishes events, if this replica may write.
pub(crate) struct EventPublisher {
    recorders: Vec<Recorder>,
    gate: LeaderGate,
}

impl EventPublisher {
    /// A publisher reporting as `reporter` (the controller) and `identity` (the instance).
    pub(crate) fn new(client: Client, reporter: &str, identity: &str, gate: LeaderGate) -> Self {
        let reporter = Reporter {
            controller: reporter.to_owned(),
            instance: Some(identity.to_owned()),
        };
        Self {
            recorders: (0..RECORDER_SHARDS)
                .map(|_| Recorder::new(client.clone(), reporter.clone()))
                .collect(),
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
        let event_type = match event.event_type {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        };
        self.record(
            &event.regarding,
            uid,
            event_type,
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
        self.record(
            regarding,
            uid,
            KubeEventType::Warning,
            reason,
            message,
            metrics,
        )
        .await
    }

    async fn record(
        &self,
        regarding: &ObjectRef,
        uid: Option<String>,
        event_type: KubeEventType,
        reason: &str,
        message: &str,
        metrics: &EventMetrics,
    ) -> Result<(), EventError> {
        if !self.gate.is_open() {
            return Err(EventError::NotLeader);
        }
        let reference = ObjectReference {
            api_version: Some(regarding.api_version.clone()),
            kind: Some(regarding.kind.clone()),
            namespace: regarding.namespace.clone(),
            name: Some(regarding.name.clone()),
            uid,
            ..ObjectReference::default()
        };
        let event = KubeEvent {
            type_: event_type,
            reason: reason.to_owned(),
            note: Some(truncate(message, NOTE_BYTES).to_owned()),
            action: ACTION.to_owned(),
            secondary: None,
        };
        let type_label = match event_type {
            KubeEventType::Normal => "Normal",
            KubeEventType::Warning => "Warning",
        };
        self.recorder(regarding)
            .publish(&event, &reference)
            .await
            .map_err(EventError::Api)?;
        metrics
            .events
            .get_or_create(&TypeLabels { r#type: type_label })
            .inc();
        Ok(())
    }
}

impl EventPublisher {
    /// The recorder of the events about `regarding`.
    fn recorder(&self, regarding: &ObjectRef) -> &Recorder {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::hash::DefaultHasher::new();
        regarding.hash(&mut hasher);
        // The remainder is below RECORDER_SHARDS: the cast cannot truncate.
        &self.recorders[(hasher.finish() % RECORDER_SHARDS as u64) as usize]
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
