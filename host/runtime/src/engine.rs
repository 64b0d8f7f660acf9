//! The one narrowing wrapper around wasmtime: every `Config`, pool and `Store` limit lives here,
//! each number commented.
//!
//! An [`Engine`] owns a wasmtime engine, a background thread that advances its epoch every
//! [`EPOCH_TICK`], and a [`Linker`] holding the host's only import, `capt:policy/log`. Policies
//! loaded from it ([`crate::WasmPolicy`]) are linked once; every call gets a fresh [`Store`]
//! built by [`Engine::store`], with its own memory limiter, epoch deadline and log budget, so
//! nothing a call does survives it.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
};

use crate::bindings::Policy as PolicyWorld;
use crate::bindings::capt::policy::log::{Host as LogHost, Level};
use crate::wasm::LoadError;
use capt_host_core::text::truncate;

/// How often the background thread advances the engine's epoch: the granularity of call
/// deadlines (a call overruns its deadline by at most about one tick).
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits applied to each policy call. [`Limits::default`] suits a reconcile of a handful of
/// Kubernetes objects with a wide margin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one call (`metadata` or `reconcile`, instantiation included) may take.
    /// Default 250 ms: a policy is a pure function over a few objects and answers in well
    /// under a millisecond (a few milliseconds in a debug build), so a runaway guest is
    /// stopped well under a second while a loaded node keeps a hundredfold margin.
    pub deadline: Duration,
    /// Linear memory one call may grow to, in bytes. Default 64 MiB: a few objects of a few
    /// hundred KiB each, parsed several times over, fit a hundred times.
    pub memory_bytes: usize,
    /// Table elements one call may grow to. Default 100 000: indirect-call tables of large
    /// guests hold a few thousand entries.
    pub table_elements: usize,
    /// Bytes of text (manifests, merge patches, messages) one response may carry. Default
    /// 4 MiB: larger than any sane set of patches, small enough to keep a runaway guest from
    /// making the host copy its whole memory.
    pub response_bytes: usize,
    /// Bytes of one log message; longer messages are cut (at a character boundary). Default
    /// 4 KiB.
    pub log_message_bytes: usize,
    /// Log records one call may emit; later ones are dropped, with one warning. Default 256.
    pub log_records: usize,
    /// Calls that may run at the same time, i.e. the number of slots in the instance pool.
    /// Default 16: the CLI runs one at a time; an operator runs one per worker.
    pub concurrent_calls: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(250),
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            response_bytes: 4 << 20,
            log_message_bytes: 4 << 10,
            log_records: 256,
            concurrent_calls: 16,
        }
    }
}

/// A wasmtime engine configured for policies, with its epoch ticker and linker.
///
/// Cheap to clone: clones share the engine, the ticker and the linker. The ticker thread ends
/// by itself once the last clone (and every policy loaded from it) is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: wasmtime::Engine,
    linker: Linker<CallState>,
    limits: Limits,
}

impl Engine {
    /// Builds an engine enforcing `limits`: component model, Cranelift, epoch interruption
    /// and a pooling allocator sized from the limits.
    pub fn new(limits: Limits) -> Result<Self, LoadError> {
        let mut pool = PoolingAllocationConfig::default();
        // One slot per concurrent call; a call holds one component instance.
        pool.total_component_instances(limits.concurrent_calls);
        // A Rust component built by wasm-component-ld has 2-4 core instances (the program and
        // small adapter shims); 8 leaves room for other toolchains.
        pool.max_core_instances_per_component(8);
        pool.total_core_instances(limits.concurrent_calls.saturating_mul(8));
        // A policy needs one linear memory; 2 tolerates a toolchain that adds a scratch one.
        pool.max_memories_per_component(2);
        pool.total_memories(limits.concurrent_calls.saturating_mul(2));
        // The program's function table plus the shims' tables.
        pool.max_tables_per_component(8);
        pool.total_tables(limits.concurrent_calls.saturating_mul(8));
        // The per-call limits, enforced by the pool as a backstop to the store's limiter.
        pool.max_memory_size(limits.memory_bytes);
        pool.table_elements(limits.table_elements);
        // Every call starts from a fresh instance: reset the pages a call dirtied with memset
        // (found with Linux's PAGEMAP_SCAN where the kernel has it) and keep them, instead of
        // madvise and a page fault per page on the next call. A call of the default policy
        // dirties a few hundred KiB; 2 MiB per used slot at most stays resident. A quarter
        // of the cost of a fresh instance (BENCHMARKS.md, `engine_knobs`).
        pool.linear_memory_keep_resident(2 << 20);
        pool.table_keep_resident(64 << 10);
        pool.pagemap_scan(Enabled::Auto);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Guest recursion depth: 512 KiB of native stack per call (wasmtime's default
            // is also 512 KiB; stated so it never changes under us).
            .max_wasm_stack(512 << 10)
            // 4 GiB of address space per memory slot (wasmtime's default), so that Cranelift
            // drops the bounds check of every load and store: calls are 10% faster
            // (BENCHMARKS.md, `engine_knobs`). Address space only: (4 GiB + 32 MiB guard) x 32
            // slots = 129 GiB of the 128 TiB a 64-bit process has; `memory_bytes` still limits
            // what a call may use (the pool's `max_memory_size` and the store's limiter).
            .memory_reservation(4 << 30)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config).map_err(|e| LoadError::Engine(e.into()))?;

        let mut linker = Linker::new(&engine);
        PolicyWorld::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            .map_err(|e| LoadError::Engine(e.into()))?;

        spawn_ticker(&engine).map_err(|e| LoadError::Engine(e.into()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                limits,
            }),
        })
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// A digest (lowercase hex SHA-256) of everything that decides whether code compiled by
    /// this engine can run in another one: the wasmtime version, the compiler and its
    /// settings, the target. Equal digests: [`crate::CompileCache`] entries are interchangeable.
    pub fn compatibility_hash(&self) -> String {
        use std::hash::Hash as _;
        let mut hasher = Sha256Hasher(sha2::Sha256::default());
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        capt_host_core::text::hex(&sha2::Digest::finalize(hasher.0))
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<CallState> {
        &self.inner.linker
    }

    /// A fresh store for one call of the policy named `policy`: memory and table limiter,
    /// epoch deadline, empty log budget.
    pub(crate) fn store(&self, policy: &Arc<str>) -> Store<CallState> {
        let limits = &self.inner.limits;
        let state = CallState {
            policy: policy.clone(),
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                table_elements: limits.table_elements,
                denied: false,
            },
            log_message_bytes: limits.log_message_bytes,
            log_records_left: limits.log_records,
            last_error: None,
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limiter);
        let ticks = limits
            .deadline
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store
    }
}

/// A [`std::hash::Hasher`] feeding SHA-256: a digest that is stable across processes (unlike
/// the standard library's hashers), for [`Engine::compatibility_hash`].
struct Sha256Hasher(sha2::Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = sha2::Digest::finalize(self.0.clone());
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn spawn_ticker(engine: &wasmtime::Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("policy-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
}

/// The state of one call's store.
pub(crate) struct CallState {
    policy: Arc<str>,
    limiter: Limiter,
    log_message_bytes: usize,
    log_records_left: usize,
    last_error: Option<String>,
}

impl CallState {
    /// True when the guest asked for more memory (or table) than the limits allow.
    pub(crate) fn hit_memory_limit(&self) -> bool {
        self.limiter.denied
    }

    /// The last error-level message the guest logged (a panic message, typically).
    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

/// Denies growth past the limits and remembers that it did, so a trap that follows can be
/// reported as out of memory.
struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.denied |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.table_elements;
        self.denied |= !allowed;
        Ok(allowed)
    }
}

impl LogHost for CallState {
    fn log(&mut self, level: Level, message: String) {
        if self.log_records_left == 0 {
            return;
        }
        self.log_records_left -= 1;
        let message = truncate(&message, self.log_message_bytes);
        let policy = &*self.policy;
        match level {
            Level::Trace => tracing::trace!(target: "policy", policy, "{message}"),
            Level::Debug => tracing::debug!(target: "policy", policy, "{message}"),
            Level::Info => tracing::info!(target: "policy", policy, "{message}"),
            Level::Warn => tracing::warn!(target: "policy", policy, "{message}"),
            Level::Error => {
                tracing::error!(target: "policy", policy, "{message}");
                self.last_error = Some(message.to_owned());
            }
        }
        if self.log_records_left == 0 {
            tracing::warn!(target: "policy", policy, "log budget of this call spent; further records dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_denies_growth_past_the_limit_and_remembers_it() {
        let mut limiter = Limiter {
            memory_bytes: 100,
            table_elements: 10,
            denied: false,
        };
        assert!(limiter.memory_growing(0, 100, None).unwrap());
        assert!(!limiter.denied);
        assert!(!limiter.memory_growing(100, 101, None).unwrap());
        assert!(limiter.denied);
    }
}
