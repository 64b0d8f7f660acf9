//! [`PolicyInstance`]: a policy instantiated once and called many times, for benchmarks.
//!
//! The operator and the CLI never use it: they call [`crate::WasmPolicy`], which instantiates
//! the component in a fresh store for every call so that nothing a call does survives it.
//! This type keeps one store and one instance, which is what the benchmarks compare against
//! to tell the cost of a fresh instance from the cost of the call itself.

use std::sync::Arc;

use capt_policy::{Request, Response};
use wasmtime::component::Component;

use crate::bindings::{Policy as PolicyWorld, PolicyPre};
use crate::convert;
use crate::engine::{self, CallStore, Engine, EngineError};
use crate::wasm::{self, LoadError};
use capt_host_core::PolicyError;

/// One instance of a policy component in one store, reused across calls.
///
/// Every call converts the request and the response exactly as
/// [`crate::WasmPolicy::reconcile`] does and gets the engine's full budget (CPU time and
/// deadline), but memory, globals and the log budget carry over from call to call, and the
/// memory limit applies to the instance's lifetime. It holds one of the engine's instance
/// slots for as long as it lives. A call that fails leaves the instance unusable.
pub struct PolicyInstance {
    engine: Engine,
    call: CallStore,
    world: PolicyWorld,
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
        let mut call = engine
            .store(&Arc::from("(reused instance)"))
            .map_err(|e| LoadError::Engine(EngineError(e.into())))?;
        let world = pre
            .instantiate(&mut call.store)
            .map_err(|e| LoadError::Link(e.into()))?;
        Ok(Self {
            engine: engine.clone(),
            call,
            world,
        })
    }

    /// One reconcile on the instance (one round of the round protocol).
    pub fn reconcile(&mut self, request: &Request) -> Result<Response, PolicyError> {
        let store = &mut self.call.store;
        engine::start_call(store);
        let request = convert::request_to_wit(request);
        let result = self
            .world
            .capt_policy_reconciler()
            .call_reconcile(&mut *store, &request)
            .map_err(|error| {
                wasm::classify(&self.engine, error, store.data())
                    .unwrap_or_else(|e| PolicyError::Malformed(e.into()))
            })?;
        let response = result.map_err(|e| PolicyError::Rejected(convert::error_from_wit(e)))?;
        Ok(convert::response_from_wit(response))
    }
}
