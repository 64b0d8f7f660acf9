//! # capt-host-runtime: the one wrapper around wasmtime
//!
//! Runs `capt:policy` components (see `wit/policy.wit`) as [`capt_host_core::Policy`]
//! implementations, each call in a fresh store with a deadline and memory limits.
//!
//! - [`Engine`] and [`Limits`]: the wasmtime engine, its limits and the `log` import.
//! - [`WasmPolicy`]: loads and validates a component (contract version, imports, exports,
//!   metadata); implements [`capt_host_core::Policy`].
//! - [`compile`]: the budget of compiling a module (static checks, a compiler process).
//! - [`CompileCache`]: compiled modules on disk, keyed by module digest and engine.
//! - [`PolicySlot`] and [`ActivePolicy`]: the active policy, replaceable while it serves.
//! - [`PolicyInstance`]: one instance called many times (benchmarks only).

mod bindings;
pub mod compile;
mod compile_cache;
mod convert;
mod engine;
mod instance;
mod slot;
mod wasm;

pub use compile::{CompileLimits, CompileWorker, Complexity, ComplexityMeasure};
pub use compile_cache::{CompileCache, CompileCacheError};
pub use engine::{
    Engine, EngineError, Limits, PageReset, PoolMetrics, ResetChoice, pagemap_scan_available,
};
pub use instance::PolicyInstance;
pub use slot::{ActivePolicy, PolicySlot};
pub use wasm::{Compilation, LoadError, WasmPolicy, WitItem};
