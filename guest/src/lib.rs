//! # capt-status: the CAPT status policy
//!
//! All phase, condition, timeout and propagation logic for `CAPTCluster` and `CAPTControlPlane`
//! (see `shared/spec/capt-status.md` and this policy's README). The logic is a pure function of
//! the [`contract::Request`]: it reads no clock and does no I/O.
//!
//! ```text
//!   host ──request(trigger, now, objects, missing, settings)──▶ reconcile ──▶ response
//!                                                                  │ patches, events,
//!                                                                  │ requeue, requirements
//! ```
//!
//! Built for `wasm32` the crate is a component exporting `capt:policy/reconciler`
//! (`component.rs`); built natively it is an ordinary library with the same entry points.

#[cfg(target_arch = "wasm32")]
mod component;

pub use capt_policy as contract;
use contract::{Error, Metadata, Request, Response};

/// Describes the policy: name, version, the kinds it reconciles and reads, default settings.
pub fn metadata() -> Metadata {
    Metadata {
        name: "capt-status".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        triggers: vec![],
        reads: vec![],
        default_settings: "{}".into(),
    }
}

/// Computes the writes for one trigger object.
pub fn reconcile(request: &Request) -> Result<Response, Error> {
    Err(Error::UnsupportedKind(request.trigger.kind.clone()))
}
