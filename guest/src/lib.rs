//! # capt-status: the CAPT status policy
//!
//! All phase, condition, timeout and propagation logic for `CAPTCluster` and `CAPTControlPlane`
//! (the behaviour is described, rule by rule, in `policies/capt-status/README.md`). The logic is
//! a pure function of the [`contract::Request`]: it reads no clock and does no I/O.
//!
//! ```text
//!  request ─▶ Inputs ─▶ lifecycle (pause, owner, failures, recovery) ─┬─▶ captcluster   ─┐
//!   (trigger, now,                                                     └─▶ controlplane ─┤
//!    objects, missing,            ◀── requirements (Halt::Need) ◀─────────────────────────┤
//!    settings)                    outcome ─▶ Ready, events, requeue, propagation ─▶ response
//! ```
//!
//! Built for `wasm32` the crate is a component exporting `capt:policy/reconciler`
//! (`component.rs`); built natively it is an ordinary library with the same two entry points,
//! [`metadata`] and [`reconcile`].

pub use capt_policy as contract;

#[cfg(any(test, all(target_arch = "wasm32", feature = "component")))]
mod arena;
mod captcluster;
#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
mod conditions;
mod context;
mod controlplane;
mod draft;
mod endpoint;
mod events;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod fuzz;
mod inputs;
mod kinds;
mod lifecycle;
mod merge;
mod message;
#[cfg(test)]
mod mutation;
mod outcome;
mod propagation;
mod settings;
mod time;
mod workspace;

use context::Ctx;
use contract::{Error, Metadata, Request, Response};
use inputs::{Halt, Inputs};
pub use settings::Settings;

/// Describes the policy: name, version, the kinds it reconciles and reads, default settings.
pub fn metadata() -> Metadata {
    Metadata {
        name: "capt-status".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        triggers: kinds::triggers(),
        reads: kinds::reads(),
        default_settings: Settings::defaults_json(),
    }
}

/// Computes the writes for one trigger object (see the WIT `reconciler.reconcile`).
pub fn reconcile(request: &Request) -> Result<Response, Error> {
    let settings = Settings::from_json(&request.settings).map_err(Error::InvalidInput)?;
    let inputs = Inputs::new(request)?;
    let ctx = Ctx {
        inputs: &inputs,
        settings: &settings,
        now: request.now_epoch_millis,
    };
    let trigger = &request.trigger;
    let me = inputs.find(trigger).ok_or_else(|| {
        Error::InvalidInput(format!(
            "the trigger {trigger} is not among the request's objects"
        ))
    })?;
    let result = match (
        contract::group_of(&trigger.api_version),
        trigger.kind.as_str(),
    ) {
        ("infrastructure.cluster.x-k8s.io", kinds::CAPT_CLUSTER) => {
            lifecycle::reconcile::<captcluster::CaptCluster>(&ctx, me)
        }
        ("controlplane.cluster.x-k8s.io", kinds::CAPT_CONTROL_PLANE) => {
            lifecycle::reconcile::<controlplane::CaptControlPlane>(&ctx, me)
        }
        _ => {
            return Err(Error::UnsupportedKind(format!(
                "{} ({})",
                trigger.kind, trigger.api_version
            )));
        }
    };
    match result {
        Ok(response) => Ok(response),
        Err(Halt::Need) => Ok(Response {
            requirements: inputs.into_requirements(),
            ..Response::default()
        }),
        Err(Halt::Fail(error)) => Err(error),
    }
}
