//! # capt-host: a generic runner for `capt:policy` components
//!
//! Runs any policy implementing the WIT world `capt:policy/policy` (see `wit/policy.wit`)
//! against an object source: scenario files, or a Kubernetes API server. The host knows the
//! contract, never a policy's kinds or conditions.
//!
//! ```text
//!  object source ──▶ rounds ──request──▶ Policy (WasmPolicy: engine + fresh store per call)
//!  (World, K8s)        ▲   ◀─requirements─┘          │
//!       ▲              └──────── final response ◀────┘
//!       └──── patches (resourceVersion-chained) ◀── scenario runner / operator
//! ```
//!
//! - [`engine`]: the wasmtime engine, its limits and the `log` import.
//! - [`WasmPolicy`]: loads and validates a component; implements [`Policy`].
//! - [`PolicyInstance`]: one instance called many times (benchmarks only).
//! - [`rounds`]: the requirement round protocol over an [`rounds::ObjectSource`].
//! - [`world`]: an in-memory API server (merge patches, subresources, versions).
//! - [`operator`]: the Kubernetes operator (`capt-host run`): caches, dependency-driven
//!   reconciles, patches, events, leader election, metrics.
//! - [`manifests`]: YAML manifests, parsed and created through any API server.
//! - [`scenario`]: the scenario file format and its runner.
//! - [`swap`]: hot swaps of the policy module (watch, compile cache, canary, shadow,
//!   promotion, rollback); [`CompileCache`]: compiled modules on disk.
//! - [`telemetry`]: logging to stderr.
//!
//! The `capt-host` binary (`main.rs`, `commands/`) is a thin command line over these.

mod bindings;
mod compile_cache;
mod convert;
pub mod engine;
mod instance;
pub mod manifests;
pub mod operator;
mod policy;
pub mod rounds;
pub mod scenario;
pub mod swap;
pub mod telemetry;
pub mod view;
mod wasm;
pub mod world;

pub use compile_cache::{CompileCache, CompileCacheError};
pub use engine::{Engine, Limits};
pub use instance::PolicyInstance;
pub use policy::{BoxError, NativePolicy, Policy, PolicyError};
pub use wasm::{Compilation, LoadError, WasmPolicy, WitItem};

/// The default policy component, built from the workspace's guest crate by `build.rs`.
pub const DEFAULT_POLICY: &[u8] = include_bytes!(env!("CAPT_HOST_DEFAULT_POLICY"));

/// An error and its causes on one line, joined by `: ` (for messages that outlive the error,
/// like a scenario record).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
