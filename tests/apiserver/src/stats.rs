//! Request counters: how many requests the server received, per verb, resource and
//! subresource, so tests can count API writes; and the request log: each resource request
//! with its `User-Agent`, when it arrived and when it was answered, so tests can tell who
//! wrote when.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

/// A Kubernetes API verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
}

impl Verb {
    /// Whether the verb writes (create, update, patch, delete, deletecollection).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    }

    /// The verb as Kubernetes spells it (`deletecollection`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request was about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey {
    /// The verb.
    pub verb: Verb,
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`), if any.
    pub subresource: Option<String>,
}

impl RequestKey {
    /// Whether `resource` names this key's resource: either `plural` (any group) or
    /// `plural.group` (like kubectl).
    pub fn is_resource(&self, resource: &str) -> bool {
        resource == self.resource
            || (!self.group.is_empty() && resource == format!("{}.{}", self.resource, self.group))
    }
}

/// A snapshot of the request counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestStats {
    counts: BTreeMap<RequestKey, u64>,
}

impl RequestStats {
    /// Every counted `(key, count)`.
    pub fn entries(&self) -> impl Iterator<Item = (&RequestKey, u64)> {
        self.counts.iter().map(|(k, v)| (k, *v))
    }

    fn sum(&self, f: impl Fn(&RequestKey) -> bool) -> u64 {
        self.counts
            .iter()
            .filter(|(k, _)| f(k))
            .map(|(_, v)| v)
            .sum()
    }

    /// Requests with `verb` on `resource` (`plural` or `plural.group`), any subresource.
    pub fn count(&self, verb: Verb, resource: &str) -> u64 {
        self.sum(|k| k.verb == verb && k.is_resource(resource))
    }

    /// Requests with `verb` on `resource`'s `subresource` (`None`: the main resource).
    pub fn count_subresource(&self, verb: Verb, resource: &str, subresource: Option<&str>) -> u64 {
        self.sum(|k| {
            k.verb == verb && k.is_resource(resource) && k.subresource.as_deref() == subresource
        })
    }

    /// All write requests (create, update, patch, delete, deletecollection).
    pub fn writes(&self) -> u64 {
        self.sum(|k| k.verb.is_write())
    }

    /// Write requests on `resource` (`plural` or `plural.group`), any subresource.
    pub fn writes_to(&self, resource: &str) -> u64 {
        self.sum(|k| k.verb.is_write() && k.is_resource(resource))
    }

    /// All requests on resources (discovery is not counted).
    pub fn total(&self) -> u64 {
        self.sum(|_| true)
    }
}

/// Thread-safe request counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    counts: Mutex<BTreeMap<RequestKey, u64>>,
}

impl Counters {
    pub(crate) fn record(&self, key: RequestKey) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(key).or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> RequestStats {
        RequestStats {
            counts: self
                .counts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    pub(crate) fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// One resource request, as the request log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// What it was about.
    pub key: RequestKey,
    /// The object's name (from the URL, or the body of a create); empty for collections.
    pub name: String,
    /// The request's `User-Agent` (empty when it had none).
    pub user_agent: String,
    /// When the server received it.
    pub received: Instant,
    /// When the server answered it, with the HTTP status; `None` while it is handled, or when
    /// the client gave up first (then nothing was written).
    pub answered: Option<(Instant, u16)>,
}

impl LoggedRequest {
    /// Whether it wrote: a write answered with a 2xx status.
    pub fn wrote(&self) -> bool {
        self.key.verb.is_write()
            && self
                .answered
                .is_some_and(|(_, status)| (200..300).contains(&status))
    }
}

/// The request log, in the order requests arrived.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: Mutex<Vec<LoggedRequest>>,
}

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LoggedRequest>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs a request received now; returns its position, for [`RequestLog::answer`].
    pub(crate) fn receive(&self, key: RequestKey, name: String, user_agent: String) -> usize {
        let mut entries = self.lock();
        entries.push(LoggedRequest {
            key,
            name,
            user_agent,
            received: Instant::now(),
            answered: None,
        });
        entries.len() - 1
    }

    /// Records that the request at `position` was answered now with `status`.
    pub(crate) fn answer(&self, position: usize, status: u16) {
        if let Some(entry) = self.lock().get_mut(position) {
            entry.answered = Some((Instant::now(), status));
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<LoggedRequest> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(verb: Verb, group: &str, resource: &str, sub: Option<&str>) -> RequestKey {
        RequestKey {
            verb,
            group: group.to_string(),
            resource: resource.to_string(),
            subresource: sub.map(str::to_string),
        }
    }

    #[test]
    fn counts_by_verb_resource_and_subresource() {
        let c = Counters::default();
        c.record(key(Verb::Patch, "example.com", "widgets", Some("status")));
        c.record(key(Verb::Patch, "example.com", "widgets", None));
        c.record(key(Verb::Get, "example.com", "widgets", None));
        c.record(key(Verb::Create, "", "events", None));
        c.record(key(Verb::Create, "events.k8s.io", "events", None));
        let s = c.snapshot();
        assert_eq!(s.count(Verb::Patch, "widgets"), 2);
        assert_eq!(s.count(Verb::Patch, "widgets.example.com"), 2);
        assert_eq!(
            s.count_subresource(Verb::Patch, "widgets", Some("status")),
            1
        );
        assert_eq!(s.count_subresource(Verb::Patch, "widgets", None), 1);
        assert_eq!(s.writes(), 4);
        assert_eq!(s.writes_to("events"), 2);
        assert_eq!(s.writes_to("events.events.k8s.io"), 1);
        assert_eq!(s.total(), 5);
        c.reset();
        assert_eq!(c.snapshot().total(), 0);
    }

    #[test]
    fn the_log_tells_answered_writes_from_the_rest() {
        let log = RequestLog::default();
        let patch = log.receive(key(Verb::Patch, "", "pods", None), "a".into(), "ua".into());
        let get = log.receive(key(Verb::Get, "", "pods", None), "a".into(), "ua".into());
        let failed = log.receive(key(Verb::Patch, "", "pods", None), "a".into(), "ua".into());
        let _hung = log.receive(key(Verb::Patch, "", "pods", None), "a".into(), "ua".into());
        log.answer(patch, 200);
        log.answer(get, 200);
        log.answer(failed, 409);
        let wrote: Vec<_> = log.snapshot().iter().map(LoggedRequest::wrote).collect();
        assert_eq!(wrote, [true, false, false, false]);
    }
}
