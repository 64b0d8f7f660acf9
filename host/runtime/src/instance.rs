//! [`PolicyInstance`]: a policy instantiated once and called many times, for benchmarks.
//!
//! The operator and the CLI never use it: they call [`crate::WasmPolicy`], which instantiates
//! the component in a fresh store for every call so that nothing a call does survives it.
//! This type keeps one store and one instance, which is what the benchmarks compare against
//! to tell the cost of a fresh instance from the cost of the call itself.

use std::sync::Arc;

use capt_policy::{Request, Response};
use wasmtime::component::Component;
use wasmtime::{Store, Trap};

use crate::bindings::{Policy as PolicyWorld, PolicyPre};
use crate::convert;
use crate::engine::{CallState, EPOCH_TICK, Engine};
use crate::wasm::LoadError;
use capt_host_core::PolicyError;

/// One instance of a policy component in one store, reused across calls.
///
/// Every call converts the request and the response exactly as
/// [`crate::WasmPolicy::reconcile`] does and gets the engine's full deadline, but memory,
/// globals and the log budget carry over from call to call, and the memory limit applies to
/// the instance's lifetime. A call that fails leaves the instance unusable.
pub struct PolicyInstance {
    store: Store<CallState>,
    world: PolicyWorld,
    deadline_ticks: u64,
}

impl PolicyInstance {
    /// Compiles and links `bytes` in `engine` and instantiates the component once.
    ///
    /// Unlike [`crate::WasmPolicy::load`] it does not check the component against the
    /// contract beyond what linking checks: load the bytes as a `WasmPolicy` first.
    pub fn new(engine: &Engine, bytes: &[u8]) -> Result<Self, LoadError> {
        let component =
            Component::new(engine.wasmtime(), bytes).map_err(|e| LoadError::Compile(e.into()))?;
        let instance_pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(e.into()))?;
        let pre = PolicyPre::new(instance_pre).map_err(|e| LoadError::Link(e.into()))?;
        let mut store = engine.store(&Arc::from("(reused instance)"));
        let world = pre
            .instantiate(&mut store)
            .map_err(|e| LoadError::Link(e.into()))?;
        let deadline_ticks = engine
            .limits()
            .deadline
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1);
        Ok(Self {
            store,
            world,
            deadline_ticks: u64::try_from(deadline_ticks).unwrap_or(u64::MAX),
        })
    }

    /// One reconcile on the instance (one round of the round protocol).
    pub fn reconcile(&mut self, request: &Request) -> Result<Response, PolicyError> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        let request = convert::request_to_wit(request);
        let result = self
            .world
            .capt_policy_reconciler()
            .call_reconcile(&mut self.store, &request)
            .map_err(|error| match error.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => PolicyError::DeadlineExceeded {
                    deadline: std::time::Duration::from_millis(
                        self.deadline_ticks
                            .saturating_mul(EPOCH_TICK.as_millis() as u64),
                    ),
                },
                _ => PolicyError::Trap {
                    logged: self.store.data().last_error().map(str::to_owned),
                    source: error.into(),
                },
            })?;
        let response = result.map_err(|e| PolicyError::Rejected(convert::error_from_wit(e)))?;
        Ok(convert::response_from_wit(response))
    }
}
