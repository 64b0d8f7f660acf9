//! # capt-policy: the policy contract in Rust
//!
//! A plain Rust mirror of the WIT package `capt:policy` (`policy.wit` beside this crate). Guests
//! write their logic against these types, so the same logic links natively (unit tests, parity
//! tests, benchmarks) and runs as a component; hosts use them as the one request/response model,
//! whichever way the policy runs. The wasm glue on either side only converts between these and
//! its generated bindings. Every type here has the meaning documented on its WIT twin.
//!
//! Built for wasm32 with the `guest` feature, `guest` also exports any Rust policy as a component
//! (`export_policy!`), so guests need no glue of their own.

pub mod duration;
#[cfg(all(target_arch = "wasm32", feature = "guest"))]
pub mod guest;

/// The WIT package version this crate mirrors.
pub const CONTRACT_VERSION: &str = "0.1.0";

use serde::Serialize;

/// Identifies one Kubernetes object (WIT `object-ref`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// The namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl ObjectRef {
    /// Builds a reference.
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        Self {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The API group: the part of `api_version` before `/`, empty for the core group.
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }

    /// True when `other` names the same object; versions of one group are the same object.
    pub fn same_object(&self, other: &ObjectRef) -> bool {
        self.kind == other.kind
            && self.name == other.name
            && self.namespace == other.namespace
            && self.group() == other.group()
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// The API group of an `apiVersion` string (empty for the core group `v1`).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Identifies a kind of object (WIT `kind-ref`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindRef {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// True for namespaced kinds.
    pub namespaced: bool,
}

/// One object as the host observed it (WIT `observed-object`).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedObject {
    /// Which object this is.
    pub reference: ObjectRef,
    /// The complete manifest as JSON text.
    pub manifest: String,
}

/// Everything the policy needs for one reconcile (WIT `request`).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The object being reconciled.
    pub trigger: ObjectRef,
    /// Milliseconds since the Unix epoch.
    pub now_epoch_millis: i64,
    /// Objects the host observed.
    pub objects: Vec<ObservedObject>,
    /// Objects asked for that do not exist.
    pub missing: Vec<ObjectRef>,
    /// The settings as JSON text.
    pub settings: String,
}

/// Which part of an object a patch writes (WIT `subresource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subresource {
    /// The status subresource.
    Status,
    /// The object itself.
    Main,
}

/// One write (WIT `patch`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Patch {
    /// The object to patch.
    pub target: ObjectRef,
    /// Status subresource or the object itself.
    pub subresource: Subresource,
    /// A JSON merge patch, as JSON text.
    pub merge_patch: String,
    /// The observed `resourceVersion` this patch was computed from.
    pub resource_version: Option<String>,
}

/// The kind of a Kubernetes event (WIT `event-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

/// A Kubernetes event to record (WIT `event`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The object the event is about.
    pub regarding: ObjectRef,
    /// Normal or Warning.
    pub event_type: EventType,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// What the policy wants done (WIT `response`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Response {
    /// Writes, in order.
    pub patches: Vec<Patch>,
    /// Events, in order.
    pub events: Vec<Event>,
    /// Call again after this many milliseconds.
    pub requeue_after_millis: Option<u64>,
    /// Objects still needed; non-empty means "gather and call again".
    pub requirements: Vec<ObjectRef>,
}

/// Why a reconcile failed (WIT `error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The trigger's kind is not reconciled by this policy.
    #[error("unsupported kind: {0}")]
    UnsupportedKind(String),
    /// A defect in the policy.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the policy is and needs (WIT `metadata`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    /// Policy name.
    pub name: String,
    /// Policy version.
    pub version: String,
    /// Kinds that trigger reconciles.
    pub triggers: Vec<KindRef>,
    /// Kinds the policy may read or patch.
    pub reads: Vec<KindRef>,
    /// Default settings as JSON text.
    pub default_settings: String,
}
