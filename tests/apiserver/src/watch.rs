//! Watch streams: newline-delimited JSON watch events in a chunked response, with selector
//! filtering, bookmarks, the 410 Expired error, timeouts and clean shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::builtin::to_served;
use crate::error::ApiError;
use crate::registry::ResourceKind;
use crate::selectors::Selectors;
use crate::server::Shared;
use crate::store::{Change, EventType, WatchMsg, WatchStart};

/// How a watch request asked to be served.
#[derive(Clone, Debug)]
pub(crate) struct WatchOptions {
    pub selectors: Selectors,
    pub allow_bookmarks: bool,
    pub timeout: Duration,
    pub metadata_only: bool,
    pub bookmark_interval: Duration,
}

/// Only the metadata of an object, as `meta.k8s.io/v1` `PartialObjectMetadata`.
pub(crate) fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

struct Renderer {
    kind: ResourceKind,
    opts: WatchOptions,
}

impl Renderer {
    fn present(&self, stored: &Value) -> Value {
        let served = to_served(&self.kind, stored);
        if self.opts.metadata_only {
            partial_metadata(&served)
        } else {
            served
        }
    }

    /// One watch event as a line of JSON, `type` before `object` as kube-apiserver writes it
    /// (a `metav1.WatchEvent` struct): clients may read the object straight from the stream
    /// only once they know its type (kube-rs does; the operator relies on it).
    fn line(event: &str, object: Value) -> Bytes {
        #[derive(serde::Serialize)]
        struct WatchEvent<'a> {
            r#type: &'a str,
            object: Value,
        }
        let mut bytes = serde_json::to_vec(&WatchEvent {
            r#type: event,
            object,
        })
        .unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }

    /// The event a change produces for this watch, taking selector transitions into
    /// account (an object leaving the selection is `DELETED`, entering it is `ADDED`).
    fn change(&self, change: &Change) -> Option<Bytes> {
        let served_new = to_served(&self.kind, &change.object);
        let matches_new = self.opts.selectors.matches(&served_new);
        let matches_old = change
            .old
            .as_ref()
            .is_some_and(|o| self.opts.selectors.matches(&to_served(&self.kind, o)));
        let event = match change.event {
            EventType::Added if matches_new => EventType::Added,
            EventType::Modified if matches_new && matches_old => EventType::Modified,
            EventType::Modified if matches_new => EventType::Added,
            EventType::Modified if matches_old => EventType::Deleted,
            EventType::Deleted if matches_new || matches_old => EventType::Deleted,
            _ => return None,
        };
        Some(Self::line(event.as_str(), self.present(&change.object)))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Option<Bytes> {
        if !self.opts.allow_bookmarks {
            return None;
        }
        let (kind, api_version) = if self.opts.metadata_only {
            (
                "PartialObjectMetadata".to_string(),
                "meta.k8s.io/v1".to_string(),
            )
        } else {
            (self.kind.kind.clone(), self.kind.api_version())
        };
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        Some(Self::line(
            "BOOKMARK",
            json!({"kind": kind, "apiVersion": api_version, "metadata": metadata}),
        ))
    }

    fn expired(message: &str) -> Bytes {
        Self::line("ERROR", ApiError::expired(message).to_status())
    }
}

/// Unregisters the watch when the response body is dropped (client gone or stream over).
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.lock().store.unwatch(self.id);
        tracing::debug!(watch = self.id, "watch closed");
    }
}

struct StreamState {
    rx: mpsc::UnboundedReceiver<WatchMsg>,
    renderer: Renderer,
    deadline: Instant,
    bookmarks: Option<Interval>,
    registration: Registration,
    done: bool,
}

impl StreamState {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            let tick = async {
                match self.bookmarks.as_mut() {
                    Some(interval) => {
                        interval.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    None => return None,
                    Some(WatchMsg::Change(change)) => {
                        if let Some(bytes) = self.renderer.change(&change) {
                            return Some(bytes);
                        }
                    }
                    Some(WatchMsg::Bookmark { rv, initial_end }) => {
                        if let Some(bytes) = self.renderer.bookmark(rv, initial_end) {
                            return Some(bytes);
                        }
                    }
                    Some(WatchMsg::Expired(message)) => {
                        self.done = true;
                        return Some(Renderer::expired(&message));
                    }
                },
                () = tokio::time::sleep_until(self.deadline) => return None,
                () = tick => {
                    let id = self.registration.id;
                    self.registration.shared.lock().store.bookmark(id);
                }
            }
        }
    }
}

/// Opens a watch on `kind` (optionally one namespace) from `start` and returns the
/// streaming response body.
pub(crate) fn open(
    shared: &Arc<Shared>,
    kind: ResourceKind,
    namespace: Option<&str>,
    start: WatchStart,
    opts: WatchOptions,
) -> Body {
    let (id, rx) = shared.lock().store.watch(&kind.storage, namespace, start);
    tracing::debug!(watch = id, resource = %kind.plural, ?start, "watch opened");
    let bookmarks = opts.allow_bookmarks.then(|| {
        let period = opts.bookmark_interval.max(Duration::from_millis(10));
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        interval
    });
    let state = StreamState {
        rx,
        deadline: Instant::now() + opts.timeout,
        renderer: Renderer { kind, opts },
        bookmarks,
        registration: Registration {
            shared: shared.clone(),
            id,
        },
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        let bytes = state.next().await?;
        Some((Ok::<_, Infallible>(bytes), state))
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::StorageKey;
    use crate::selectors::LabelSelector;

    fn renderer(selector: &str, metadata_only: bool) -> Renderer {
        Renderer {
            kind: ResourceKind::namespaced("", "v1", "ConfigMap", "configmaps"),
            opts: WatchOptions {
                selectors: Selectors {
                    labels: LabelSelector::parse(selector).unwrap(),
                    ..Default::default()
                },
                allow_bookmarks: true,
                timeout: Duration::from_secs(1),
                metadata_only,
                bookmark_interval: Duration::from_secs(1),
            },
        }
    }

    fn change(event: EventType, old: Option<&str>, new: &str) -> Change {
        let obj = |app: &str| {
            Arc::new(
                json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": app}}, "data": {}}),
            )
        };
        Change {
            rv: 5,
            storage: StorageKey::new("", "configmaps"),
            namespace: "ns".to_string(),
            event,
            object: obj(new),
            old: old.map(obj),
        }
    }

    fn parse(bytes: Bytes) -> Value {
        assert_eq!(bytes.last(), Some(&b'\n'));
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn an_event_line_names_its_type_before_its_object_as_kube_apiserver_does() {
        let r = renderer("", false);
        let line = r.change(&change(EventType::Added, None, "web")).unwrap();
        assert!(
            line.starts_with(br#"{"type":"ADDED","object":{"#),
            "{}",
            String::from_utf8_lossy(&line)
        );
    }

    #[test]
    fn selector_transitions() {
        let r = renderer("app=web", false);
        let ev = parse(
            r.change(&change(EventType::Modified, Some("db"), "web"))
                .unwrap(),
        );
        assert_eq!(ev["type"], "ADDED");
        assert_eq!(ev["object"]["kind"], "ConfigMap");
        let ev = parse(
            r.change(&change(EventType::Modified, Some("web"), "db"))
                .unwrap(),
        );
        assert_eq!(ev["type"], "DELETED");
        let ev = parse(
            r.change(&change(EventType::Modified, Some("web"), "web"))
                .unwrap(),
        );
        assert_eq!(ev["type"], "MODIFIED");
        assert!(r.change(&change(EventType::Added, None, "db")).is_none());
    }

    #[test]
    fn metadata_only_and_bookmarks() {
        let r = renderer("", true);
        let ev = parse(r.change(&change(EventType::Added, None, "web")).unwrap());
        assert_eq!(ev["object"]["kind"], "PartialObjectMetadata");
        assert!(ev["object"].get("data").is_none());
        let bm = parse(r.bookmark(7, true).unwrap());
        assert_eq!(bm["type"], "BOOKMARK");
        assert_eq!(bm["object"]["metadata"]["resourceVersion"], "7");
        assert_eq!(
            bm["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        let err = parse(Renderer::expired("too old"));
        assert_eq!(err["type"], "ERROR");
        assert_eq!(err["object"]["code"], 410);
        assert_eq!(err["object"]["reason"], "Expired");
    }
}
