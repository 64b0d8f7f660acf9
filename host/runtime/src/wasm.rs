//! [`WasmPolicy`]: a policy component, validated and linked once, called in a fresh store.
//!
//! Loading checks, in order, that the bytes are a component (not a core module), that its
//! code is within the static limits and that it compiles within its budget ([`crate::compile`]),
//! that it imports nothing but `capt:policy/log`, that it exports a compatible
//! `capt:policy/reconciler`, that it links, and that `metadata()` answers sensibly. Each
//! failure is its own [`LoadError`] variant.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capt_policy::{CONTRACT_VERSION, Metadata, Request, Response};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Store, Trap};

use crate::bindings::{Policy as PolicyWorld, PolicyPre};
use crate::compile::{self, COMPILE_MEMORY_FLAG, COMPILE_TIME_FLAG, ComplexityMeasure};
use crate::compile_cache::CompileCache;
use crate::convert;
use crate::engine::{CallState, Engine, EngineError};
use capt_host_core::text::hex;
use capt_host_core::{BoxError, Policy, PolicyError};

/// The only interface a policy may import (any compatible version).
const LOG_IMPORT: &str = "capt:policy/log";
/// The interface a policy must export (any compatible version).
const RECONCILER_EXPORT: &str = "capt:policy/reconciler";

/// Why a module could not be loaded as a policy. Every variant is terminal: the same bytes
/// fail the same way.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The wasm engine could not be set up (not specific to any module).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic number)")]
    NotWasm,
    /// The bytes are a core module: policies must be components.
    #[error(
        "this is a core WebAssembly module, not a component; build the policy as a component \
         (for Rust: --target wasm32-unknown-unknown linked by wasm-component-ld, or wasm32-wasip2)"
    )]
    CoreModule,
    /// The component is invalid or could not be compiled (a truncated file, for instance).
    #[error("the component is invalid or could not be compiled")]
    Compile(#[source] BoxError),
    /// The module's code is larger or more deeply nested than the static checks allow
    /// ([`crate::Complexity`]); nothing was compiled.
    #[error("the module is too complex to compile: {what} is {actual}, over the limit of {limit}")]
    TooComplex {
        /// What was measured.
        what: ComplexityMeasure,
        /// The limit.
        limit: u64,
        /// The module's value (the first one found past the limit).
        actual: u64,
    },
    /// Compiling took longer than [`crate::CompileLimits::time`]; the compiler process was
    /// killed.
    #[error(
        "compiling the module took longer than {limit:?}; the compiler process was stopped \
         ({flag} raises the limit)",
        flag = COMPILE_TIME_FLAG
    )]
    CompileTimeExceeded {
        /// The time limit.
        limit: Duration,
    },
    /// The compiler process ended abnormally, as it does when an allocation fails under its
    /// memory limit ([`crate::CompileLimits::memory_bytes`]).
    #[error(
        "the compiler process ended abnormally ({status}), as it does when compiling the \
         module needs more than its memory limit of {limit_bytes} bytes ({flag} raises the \
         limit){}",
        if messages.is_empty() { String::new() } else { format!("; it said: {messages}") },
        flag = COMPILE_MEMORY_FLAG
    )]
    CompileMemoryExceeded {
        /// The memory limit.
        limit_bytes: u64,
        /// How it ended.
        status: String,
        /// What it wrote to its standard error (the end cut).
        messages: String,
    },
    /// The compiler process could not be started or spoken to.
    #[error("could not run the compiler process")]
    CompileWorker(#[source] std::io::Error),
    /// The component imports something the host does not provide.
    #[error(
        "the component imports `{0}`, but a policy may import only `{LOG_IMPORT}@{range}`",
        range = compatible_range()
    )]
    UnexpectedImport(String),
    /// The component exports no `capt:policy/reconciler`.
    #[error("the component does not export `{RECONCILER_EXPORT}` (its exports: {0})")]
    MissingExport(String),
    /// The component exports `capt:policy/reconciler` at a version this host does not speak.
    #[error(
        "the component exports `{0}`, but this host runs `{RECONCILER_EXPORT}@{range}`",
        range = compatible_range()
    )]
    IncompatibleVersion(String),
    /// The component's imports or exports do not have the contract's types.
    #[error("the component does not match this host's `capt:policy@{CONTRACT_VERSION}` world")]
    Link(#[source] BoxError),
    /// Calling `metadata()` failed.
    #[error("calling the policy's metadata() failed")]
    Metadata(#[source] PolicyError),
    /// `metadata()` answered something unusable.
    #[error("the policy's metadata() is invalid: {0}")]
    InvalidMetadata(String),
}

impl LoadError {
    /// A short, fixed name for the kind of failure (for metrics and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Engine(_) => "engine",
            Self::NotWasm => "not_wasm",
            Self::CoreModule => "core_module",
            Self::Compile(_) => "compile",
            Self::TooComplex { .. } => "too_complex",
            Self::CompileTimeExceeded { .. } => "compile_time",
            Self::CompileMemoryExceeded { .. } => "compile_memory",
            Self::CompileWorker(_) => "compile_worker",
            Self::UnexpectedImport(_) => "unexpected_import",
            Self::MissingExport(_) => "missing_export",
            Self::IncompatibleVersion(_) => "incompatible_version",
            Self::Link(_) => "link",
            Self::Metadata(_) => "metadata",
            Self::InvalidMetadata(_) => "invalid_metadata",
        }
    }
}

/// A loaded policy component.
///
/// Holds the pre-instantiated component (type-checked and linked once) and its metadata. Each
/// call instantiates it in a fresh store under the engine's [`crate::Limits`]: no state
/// survives a call. `Send + Sync`: calls may run concurrently, up to
/// [`crate::Limits::concurrent_calls`].
pub struct WasmPolicy {
    engine: Engine,
    component: Component,
    pre: PolicyPre<CallState>,
    name: Arc<str>,
    metadata: Metadata,
    sha256: String,
    size: usize,
    compilation: Compilation,
}

/// How a [`WasmPolicy`]'s code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compilation {
    /// True when the code came from a [`CompileCache`] entry instead of a compile.
    pub from_cache: bool,
    /// The time the compile (or the cache read and check) took.
    pub duration: Duration,
}

/// One import or export of a component, as WIT names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WitItem {
    /// The name, e.g. `capt:policy/log@0.1.0`.
    pub name: String,
    /// `instance`, `func`, `type`, `module`, `component` or `resource`.
    pub kind: &'static str,
    /// For an instance: its members, as `func log`, `type level`, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

impl WasmPolicy {
    /// Validates, compiles and links `bytes`, then calls `metadata()` once.
    pub fn load(engine: &Engine, bytes: &[u8]) -> Result<Self, LoadError> {
        Self::load_with_cache(engine, bytes, None)
    }

    /// Like [`WasmPolicy::load`], with the compiled code taken from `cache` when it holds an
    /// entry for these bytes and this engine, and stored there after a compile. A cache that
    /// fails (an unreadable, corrupt or incompatible entry, a full disk) only costs a compile.
    pub fn load_with_cache(
        engine: &Engine,
        bytes: &[u8],
        cache: Option<&CompileCache>,
    ) -> Result<Self, LoadError> {
        check_header(bytes)?;
        compile::check_complexity(bytes, &engine.limits().compile.complexity)?;
        let sha256 = hex(&Sha256::digest(bytes));
        let start = Instant::now();
        let cached = cache.and_then(|cache| cache.get(engine, &sha256));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => component,
            None => {
                let component = compile::compile(engine, bytes)?;
                if let Some(cache) = cache {
                    cache.put(engine, &sha256, &component);
                }
                component
            }
        };
        let compilation = Compilation {
            from_cache,
            duration: start.elapsed(),
        };
        check_world(engine, &component)?;
        let instance_pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(e.into()))?;
        let pre = PolicyPre::new(instance_pre).map_err(|e| LoadError::Link(e.into()))?;

        let metadata = call(engine, &pre, &Arc::from("(loading)"), |world, store| {
            world.capt_policy_reconciler().call_metadata(store)
        })
        .map_err(LoadError::Metadata)?;
        let metadata = convert::metadata_from_wit(metadata);
        check_metadata(&metadata)?;
        Ok(Self {
            engine: engine.clone(),
            component,
            pre,
            name: Arc::from(metadata.name.as_str()),
            metadata,
            sha256,
            size: bytes.len(),
            compilation,
        })
    }

    /// How the component's code was obtained: compiled now or taken from a cache.
    pub fn compilation(&self) -> Compilation {
        self.compilation
    }

    /// The engine the policy runs in.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The SHA-256 digest of the module's bytes, in lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The module's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The component's imports, as its type declares them.
    pub fn imports(&self) -> Vec<WitItem> {
        let engine = self.engine.wasmtime();
        let ty = self.component.component_type();
        ty.imports(engine)
            .map(|(name, item)| wit_item(engine, name, &item.ty))
            .collect()
    }

    /// The component's exports, as its type declares them.
    pub fn exports(&self) -> Vec<WitItem> {
        let engine = self.engine.wasmtime();
        let ty = self.component.component_type();
        ty.exports(engine)
            .map(|(name, item)| wit_item(engine, name, &item.ty))
            .collect()
    }
}

impl Policy for WasmPolicy {
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    fn reconcile(&self, request: &Request) -> Result<Response, PolicyError> {
        let request = convert::request_to_wit(request);
        let result = call(&self.engine, &self.pre, &self.name, |world, store| {
            world
                .capt_policy_reconciler()
                .call_reconcile(store, &request)
        })?;
        let response = result.map_err(|e| PolicyError::Rejected(convert::error_from_wit(e)))?;
        let response = convert::response_from_wit(response);
        let size_bytes = response_text_bytes(&response);
        let limit_bytes = self.engine.limits().response_bytes;
        if size_bytes > limit_bytes {
            return Err(PolicyError::ResponseTooLarge {
                size_bytes,
                limit_bytes,
            });
        }
        Ok(response)
    }
}

/// Runs `f` against a fresh instance in a fresh store (waiting for an instance slot if all are
/// busy) and sorts any failure.
fn call<R>(
    engine: &Engine,
    pre: &PolicyPre<CallState>,
    name: &Arc<str>,
    f: impl FnOnce(&PolicyWorld, &mut Store<CallState>) -> wasmtime::Result<R>,
) -> Result<R, PolicyError> {
    let mut call = engine.store(name)?;
    let store = &mut call.store;
    let world = pre.instantiate(&mut *store).map_err(|e| {
        classify(engine, e, store.data()).unwrap_or_else(|e| PolicyError::Instantiate(e.into()))
    })?;
    f(&world, store).map_err(|e| {
        classify(engine, e, store.data()).unwrap_or_else(|e| PolicyError::Malformed(e.into()))
    })
}

/// Sorts a wasmtime failure into a [`PolicyError`]: out of memory (the limiter denied a
/// growth), a limit of the call's budget (an epoch interrupt) or another trap; anything else
/// is handed back.
pub(crate) fn classify(
    engine: &Engine,
    error: wasmtime::Error,
    state: &CallState,
) -> Result<PolicyError, wasmtime::Error> {
    let limits = engine.limits();
    if state.hit_memory_limit() {
        return Ok(PolicyError::OutOfMemory {
            limit_bytes: limits.memory_bytes,
        });
    }
    match error.downcast_ref::<Trap>() {
        // Only the budget's callback interrupts a call.
        Some(Trap::Interrupt) => Ok(state.exceeded().unwrap_or(PolicyError::DeadlineExceeded {
            deadline: limits.deadline,
        })),
        Some(_) => Ok(PolicyError::Trap {
            logged: state.last_error().map(str::to_owned),
            source: error.into(),
        }),
        None => Err(error),
    }
}

/// Tells "not wasm" and "a core module" apart from other compile failures, with a clear message.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    // Bytes 4..8: version 1 and layer 0 for a core module; layer 1 for a component.
    const CORE_MODULE: &[u8] = &[1, 0, 0, 0];
    if !bytes.starts_with(MAGIC) {
        return Err(LoadError::NotWasm);
    }
    if bytes.get(4..8) == Some(CORE_MODULE) {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// Checks the component's imports and exports against the contract, by name and version.
fn check_world(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let engine = engine.wasmtime();
    let ty = component.component_type();
    if let Some((name, _)) = ty
        .imports(engine)
        .find(|(name, _)| !is_compatible(name, LOG_IMPORT))
    {
        return Err(LoadError::UnexpectedImport(name.to_owned()));
    }
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let reconciler = exports
        .iter()
        .find(|name| interface_of(name) == RECONCILER_EXPORT);
    match reconciler {
        Some(name) if is_compatible(name, RECONCILER_EXPORT) => Ok(()),
        Some(name) => Err(LoadError::IncompatibleVersion((*name).to_owned())),
        None if exports.is_empty() => Err(LoadError::MissingExport("none".into())),
        None => Err(LoadError::MissingExport(exports.join(", "))),
    }
}

fn check_metadata(metadata: &Metadata) -> Result<(), LoadError> {
    if metadata.name.trim().is_empty() {
        return Err(LoadError::InvalidMetadata("the name is empty".into()));
    }
    match serde_json::from_str::<serde_json::Value>(&metadata.default_settings) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(LoadError::InvalidMetadata(
            "default-settings is not a JSON object".into(),
        )),
        Err(e) => Err(LoadError::InvalidMetadata(format!(
            "default-settings is not valid JSON: {e}"
        ))),
    }
}

/// The interface part of a versioned name: `capt:policy/log` for `capt:policy/log@0.1.0`.
fn interface_of(name: &str) -> &str {
    name.split_once('@')
        .map_or(name, |(interface, _)| interface)
}

/// True when `name` is `interface` at a version compatible with this host's contract: the same
/// major version and, while the major version is 0, the same minor version.
fn is_compatible(name: &str, interface: &str) -> bool {
    let Some((found, version)) = name.split_once('@') else {
        return false;
    };
    let key = |v: &str| -> Option<(u64, u64)> {
        let core = v.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        parts.next()?.parse::<u64>().ok()?;
        Some(if major == 0 { (0, minor) } else { (major, 0) })
    };
    found == interface && key(version).is_some() && key(version) == key(CONTRACT_VERSION)
}

/// The versions this host accepts, for messages: `0.1.x`.
fn compatible_range() -> String {
    let mut parts = CONTRACT_VERSION.split('.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(minor)) => format!("0.{minor}.x"),
        (Some(major), _) => format!("{major}.x"),
        _ => CONTRACT_VERSION.to_owned(),
    }
}

fn wit_item(engine: &wasmtime::Engine, name: &str, item: &ComponentItem) -> WitItem {
    let members = match item {
        ComponentItem::ComponentInstance(instance) => instance
            .exports(engine)
            .map(|(member, ty)| format!("{} {member}", item_kind(&ty.ty)))
            .collect(),
        _ => vec![],
    };
    WitItem {
        name: name.to_owned(),
        kind: item_kind(item),
        members,
    }
}

fn item_kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "func",
        ComponentItem::CoreFunc(_) => "core-func",
        ComponentItem::Module(_) => "module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

/// Bytes of text a response carries: what the host has to hold and parse.
fn response_text_bytes(response: &Response) -> usize {
    let reference = |r: &capt_policy::ObjectRef| {
        r.api_version.len()
            + r.kind.len()
            + r.name.len()
            + r.namespace.as_ref().map_or(0, String::len)
    };
    let patches: usize = response
        .patches
        .iter()
        .map(|p| {
            reference(&p.target)
                + p.merge_patch.len()
                + p.resource_version.as_ref().map_or(0, String::len)
        })
        .sum();
    let events: usize = response
        .events
        .iter()
        .map(|e| reference(&e.regarding) + e.reason.len() + e.message.len())
        .sum();
    let requirements: usize = response.requirements.iter().map(reference).sum();
    patches + events + requirements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compatible_within_the_same_zero_minor() {
        assert!(is_compatible("capt:policy/log@0.1.0", LOG_IMPORT));
        assert!(is_compatible("capt:policy/log@0.1.7", LOG_IMPORT));
        assert!(is_compatible("capt:policy/log@0.1.0-rc.1", LOG_IMPORT));
        assert!(!is_compatible("capt:policy/log@0.2.0", LOG_IMPORT));
        assert!(!is_compatible("capt:policy/log@1.1.0", LOG_IMPORT));
        assert!(!is_compatible("capt:policy/log", LOG_IMPORT));
        assert!(!is_compatible("capt:policy/logs@0.1.0", LOG_IMPORT));
        assert!(!is_compatible("wasi:cli/environment@0.2.0", LOG_IMPORT));
    }

    #[test]
    fn the_compatible_range_is_named_for_messages() {
        assert_eq!(compatible_range(), "0.1.x");
    }

    #[test]
    fn headers_tell_garbage_and_core_modules_apart() {
        assert!(matches!(check_header(b"hello"), Err(LoadError::NotWasm)));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn policies_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<WasmPolicy>();
    }

    #[test]
    fn digests_are_lowercase_hex() {
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
