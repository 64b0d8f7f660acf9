//! Kubernetes events about swaps (`events.k8s.io/v1`, through kube's [`Recorder`]), about the
//! object [`EventTarget`] names: the operator's own Pod when `POD_NAME`/`POD_NAMESPACE` are
//! set (what `capt-host run` chooses), else its Lease. Every replica records its own: each
//! watches its own files and swaps its own module, leader or not.
//!
//! | reason | type | when |
//! |---|---|---|
//! | `PolicySwapped` | Normal | a module was promoted |
//! | `PolicyShadowStarted` | Normal | a candidate started its shadow run |
//! | `PolicyRejected` | Warning | a candidate was rejected (the note starts with the reason label) |
//! | `PolicyRolledBack` | Warning | a promoted module was rolled back |

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use capt_host_core::text::truncate;

/// The longest note an event may carry (the API limit is 1 kB).
const NOTE_BYTES: usize = 1024;

/// The object swap events are recorded about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTarget {
    /// Its `apiVersion`.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its uid, when known (`kubectl describe` matches events by uid).
    pub uid: Option<String>,
}

impl EventTarget {
    /// The Pod `name` in `namespace`.
    pub fn pod(namespace: &str, name: &str, uid: Option<String>) -> Self {
        Self {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some(namespace.into()),
            name: name.into(),
            uid,
        }
    }

    /// The Lease `name` in `namespace` (`coordination.k8s.io/v1`).
    pub fn lease(namespace: &str, name: &str) -> Self {
        Self {
            api_version: "coordination.k8s.io/v1".into(),
            kind: "Lease".into(),
            namespace: Some(namespace.into()),
            name: name.into(),
            uid: None,
        }
    }
}

/// Records swap events.
pub(crate) struct SwapEvents {
    recorder: Recorder,
    reference: ObjectReference,
}

impl SwapEvents {
    pub(crate) fn new(
        client: Client,
        reporter: &str,
        identity: &str,
        target: &EventTarget,
    ) -> Self {
        let reporter = Reporter {
            controller: reporter.to_owned(),
            instance: Some(identity.to_owned()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
            reference: ObjectReference {
                api_version: Some(target.api_version.clone()),
                kind: Some(target.kind.clone()),
                namespace: target.namespace.clone(),
                name: Some(target.name.clone()),
                uid: target.uid.clone(),
                ..ObjectReference::default()
            },
        }
    }

    pub(crate) async fn normal(&self, reason: &str, note: &str) {
        self.record(EventType::Normal, reason, note).await;
    }

    pub(crate) async fn warning(&self, reason: &str, note: &str) {
        self.record(EventType::Warning, reason, note).await;
    }

    async fn record(&self, type_: EventType, reason: &str, note: &str) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, NOTE_BYTES).to_owned()),
            action: "SwapPolicy".to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &self.reference).await {
            tracing::warn!(error = %capt_host_core::error_chain(&error), reason, "swap event not recorded");
        }
    }
}
