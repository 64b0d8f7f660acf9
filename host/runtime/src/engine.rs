//! The one narrowing wrapper around wasmtime: every `Config`, pool and `Store` limit lives here,
//! each number commented.
//!
//! An [`Engine`] owns a wasmtime engine, a background thread that advances its epoch every
//! [`EPOCH_TICK`], and a [`Linker`] holding the host's only import, `capt:policy/log`. Policies
//! loaded from it ([`crate::WasmPolicy`]) are linked once; every call gets a fresh [`Store`]
//! built by [`Engine::store`], with its own memory limiter, budget and log budget, so nothing a
//! call does survives it.
//!
//! The sandbox between calls, in three parts:
//!
//! - **Pristine memory.** A call's instance comes from a pool slot that an earlier call used;
//!   the pool resets the slot's linear memory when that call ends. [`PageReset`] says how:
//!   resetting only the pages found dirty with Linux's `PAGEMAP_SCAN` misses dirty pages the
//!   kernel has swapped out (they are not "present"), so the next call would read the last
//!   call's data; it is used only where the process's memory cannot be swapped
//!   ([`choose_page_reset`], checked once per engine).
//! - **A budget on the guest's work.** A call may use [`Limits::cpu_time`] of its thread's CPU
//!   time, counted at every epoch tick (an epoch-deadline callback reads the thread's CPU
//!   clock), so a busy or throttled node slows a call without failing it; the wall-clock
//!   [`Limits::deadline`] is only a backstop for a host that is stuck (`Budget`).
//! - **Waiting for a slot.** When every slot of the pool is busy, a call waits up to
//!   [`Limits::slot_wait`] for one instead of failing at once (`SlotGate`); the wait is
//!   measured in [`PoolMetrics`].

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    UpdateDeadline,
};

use crate::bindings::Policy as PolicyWorld;
use crate::bindings::capt::policy::log::{Host as LogHost, Level};
use crate::compile::{CompileLimits, CompileWorker};
use capt_host_core::PolicyError;
use capt_host_core::text::truncate;

/// The engine settings that decide what compiled code looks like: an engine of any
/// allocation strategy built from them runs the code another one compiled (a compiler process
/// needs no instance pool).
pub(crate) fn code_config() -> Config {
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
        .memory_reservation(4 << 30);
    config
}

/// How often the background thread advances the engine's epoch: how often a running call's
/// budget is checked (a call overruns its limits by at most about one tick).
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits applied to each policy call. [`Limits::default`] suits a reconcile of a handful of
/// Kubernetes objects with a wide margin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU time one call (`metadata` or `reconcile`, instantiation included) may use on its
    /// thread: the bound on the guest's work. Default 2 s: the default policy reconciles a
    /// 1.5 MB object (a Workspace with thousands of outputs, about the most etcd stores) in
    /// about 35 ms of CPU (BENCHMARKS.md, "The sandbox"), so the margin is fiftyfold, and a
    /// CPU limit on the Pod (500m) slows the call's wall time but not its CPU time; a guest
    /// that loops is stopped after 2 s of CPU. Counted at each [`EPOCH_TICK`]; on platforms
    /// without a per-thread CPU clock, wall time is counted.
    pub cpu_time: Duration,
    /// Wall-clock time one call may take, waiting for its thread to be scheduled included: a
    /// backstop for a host that is stuck, not a bound on the guest's work. Default 30 s, far
    /// beyond what a throttled node adds to a call that stays within [`Limits::cpu_time`].
    pub deadline: Duration,
    /// How long a call waits for a free instance slot when all [`Limits::concurrent_calls`]
    /// are busy, before failing with [`PolicyError::SlotWaitExceeded`]. Default 10 s: a slot
    /// is busy for a call's duration (milliseconds; at worst the CPU limit).
    pub slot_wait: Duration,
    /// Linear memory one call may grow to, in bytes. Default 64 MiB: a few objects of a few
    /// hundred KiB each, parsed several times over, fit a hundred times.
    pub memory_bytes: usize,
    /// Table elements one call may grow to. Default 100 000: indirect-call tables of large
    /// guests hold a few thousand entries.
    pub table_elements: usize,
    /// Bytes of text (manifests, merge patches, messages) one response may carry. Default
    /// 4 MiB: larger than any sane set of patches, small enough to keep a runaway guest from
    /// making the host copy its whole memory. wasmtime stops copying a response out of the
    /// guest at twice this (strings and records together; a [`PolicyError::Malformed`]
    /// "too much data"); a response that fits is then measured and refused over this
    /// ([`PolicyError::ResponseTooLarge`]).
    pub response_bytes: usize,
    /// Bytes of one log message; longer messages are cut (at a character boundary). Default
    /// 4 KiB.
    pub log_message_bytes: usize,
    /// Log records one call may emit; later ones are dropped, with one warning. Default 256.
    pub log_records: usize,
    /// Calls that may run at the same time, i.e. the number of slots in the instance pool;
    /// more calls wait for a slot (up to [`Limits::slot_wait`]). Default 16: the CLI runs one
    /// at a time; an operator runs one per worker.
    pub concurrent_calls: u32,
    /// The budget of compiling a module (see [`crate::compile`]).
    pub compile: CompileLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_time: Duration::from_secs(2),
            deadline: Duration::from_secs(30),
            slot_wait: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            response_bytes: 4 << 20,
            log_message_bytes: 4 << 10,
            log_records: 256,
            concurrent_calls: 16,
            compile: CompileLimits::default(),
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

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.inner.limits)
            .field("page_reset", &self.inner.page_reset)
            .finish_non_exhaustive()
    }
}

struct Inner {
    engine: wasmtime::Engine,
    linker: Linker<CallState>,
    limits: Limits,
    page_reset: ResetChoice,
    slots: Arc<SlotGate>,
    compile_worker: Option<CompileWorker>,
}

/// The wasm engine could not be set up (not specific to any module): Cranelift is not
/// available for this machine, or the pooling allocator could not reserve its memory.
#[derive(Debug, thiserror::Error)]
#[error("could not set up the wasm engine")]
pub struct EngineError(#[source] pub(crate) capt_host_core::BoxError);

impl Engine {
    /// Builds an engine enforcing `limits`: component model, Cranelift, epoch interruption
    /// and a pooling allocator sized from the limits, resetting memory the way
    /// [`detect_page_reset`] finds safe on this machine.
    pub fn new(limits: Limits) -> Result<Self, EngineError> {
        Self::with_page_reset(limits, detect_page_reset())
    }

    /// Like [`Engine::new`], with the memory reset chosen by the caller (benchmarks and tests
    /// compare both; an embedder that knows its memory cannot be swapped may skip the check).
    pub fn with_page_reset(limits: Limits, page_reset: ResetChoice) -> Result<Self, EngineError> {
        Self::build(limits, page_reset, None)
    }

    /// Like [`Engine::new`], compiling modules in processes started by `worker`, each under
    /// [`Limits::compile`]'s memory and time budget (see [`crate::compile`]).
    pub fn with_compile_worker(limits: Limits, worker: CompileWorker) -> Result<Self, EngineError> {
        Self::build(limits, detect_page_reset(), Some(worker))
    }

    fn build(
        limits: Limits,
        page_reset: ResetChoice,
        compile_worker: Option<CompileWorker>,
    ) -> Result<Self, EngineError> {
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
        // Every call starts from a fresh instance: reset the first 2 MiB of a freed memory
        // with memset and keep them resident, instead of madvise and a page fault per page on
        // the next call; the rest is decommitted with madvise. A call of the default policy
        // dirties a few hundred KiB. A quarter of the cost of a fresh instance (BENCHMARKS.md,
        // `engine_knobs`). With PAGEMAP_SCAN, only the pages found dirty are reset, which
        // misses swapped-out ones: see `PageReset`.
        pool.linear_memory_keep_resident(2 << 20);
        pool.table_keep_resident(64 << 10);
        pool.pagemap_scan(match page_reset.reset {
            PageReset::PagemapScan => Enabled::Auto,
            PageReset::Memset => Enabled::No,
        });

        let mut config = code_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config).map_err(|e| EngineError(e.into()))?;

        let mut linker = Linker::new(&engine);
        PolicyWorld::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            .map_err(|e| EngineError(e.into()))?;

        spawn_ticker(&engine).map_err(|e| EngineError(e.into()))?;
        let slots = Arc::new(SlotGate::new(limits.concurrent_calls));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                limits,
                page_reset,
                slots,
                compile_worker,
            }),
        })
    }

    /// The process modules are compiled in, if not this one.
    pub(crate) fn compile_worker(&self) -> Option<&CompileWorker> {
        self.inner.compile_worker.as_ref()
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// How the instance pool resets memory between calls, and why.
    pub fn page_reset(&self) -> &ResetChoice {
        &self.inner.page_reset
    }

    /// The metrics of calls waiting for an instance slot (to register with an operator's).
    pub fn pool_metrics(&self) -> &PoolMetrics {
        &self.inner.slots.metrics
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

    /// A fresh store for one call of the policy named `policy`, holding an instance slot:
    /// memory and table limiter, a started budget, empty log budget. Waits up to
    /// [`Limits::slot_wait`] for a slot when all are busy.
    pub(crate) fn store(&self, policy: &Arc<str>) -> Result<CallStore, PolicyError> {
        let limits = &self.inner.limits;
        let slot = self
            .inner
            .slots
            .acquire(limits.slot_wait)
            .map_err(|waited| PolicyError::SlotWaitExceeded { waited })?;
        let state = CallState {
            policy: policy.clone(),
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                table_elements: limits.table_elements,
                denied: false,
            },
            budget: Budget::new(limits.cpu_time, limits.deadline),
            log_message_bytes: limits.log_message_bytes,
            log_records_left: limits.log_records,
            last_error: None,
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limiter);
        // What wasmtime may copy out of the guest in one lift (a response, a log message):
        // strings and list elements count, so a response claiming more text than it has memory
        // (records aliasing one string) is refused while it is lifted, not copied first.
        store.set_hostcall_fuel(hostcall_fuel(limits.response_bytes));
        // At every tick past the deadline (one tick ahead), check the budget: go on for one
        // more tick, or interrupt the guest (a trap the caller sorts by `CallState::exceeded`).
        store.epoch_deadline_callback(|mut context| {
            Ok(match context.data_mut().budget.check() {
                None => UpdateDeadline::Continue(1),
                Some(_) => UpdateDeadline::Interrupt,
            })
        });
        start_call(&mut store);
        Ok(CallStore { store, _slot: slot })
    }
}

/// A store for one call and the instance slot it holds.
///
/// The fields drop in order: the store first (its instance goes back to the pool), then the
/// slot (offered to a waiting call, which then finds the pool's slot free).
pub(crate) struct CallStore {
    /// The call's store.
    pub(crate) store: Store<CallState>,
    _slot: SlotPermit,
}

/// Starts a call's budget afresh: CPU and wall clocks from now, and a budget check at the next
/// epoch tick. [`Engine::store`] does it; a store reused for several calls does it per call.
/// The bytes wasmtime may copy out of the guest in one lift (its "hostcall fuel") for a
/// response limit of `response_bytes`: the text plus as much again for the records that carry
/// it, and never less than 1 MiB (metadata, log messages).
fn hostcall_fuel(response_bytes: usize) -> usize {
    response_bytes.saturating_mul(2).max(1 << 20)
}

pub(crate) fn start_call(store: &mut Store<CallState>) {
    store.data_mut().budget.start();
    store.set_epoch_deadline(1);
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
    budget: Budget,
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

    /// The limit of the budget the call ran past, if it was interrupted for that.
    pub(crate) fn exceeded(&self) -> Option<PolicyError> {
        let budget = &self.budget;
        budget.exceeded.map(|limit| match limit {
            BudgetLimit::CpuTime => PolicyError::CpuTimeExceeded {
                limit: budget.cpu_limit,
            },
            BudgetLimit::Deadline => PolicyError::DeadlineExceeded {
                deadline: budget.wall_limit,
            },
        })
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

/// How the instance pool resets a slot's linear memory when a call ends, so that the next call
/// in that slot sees the module's initial memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageReset {
    /// Reset (with memset, keeping them resident) only the pages Linux's `PAGEMAP_SCAN`
    /// reports written and present, up to 2 MiB; decommit the rest. The cheapest reset, but a
    /// dirty page the kernel swapped out is not present: it is neither reset nor decommitted,
    /// and the next call reads the last call's data (wasmtime 48; reported upstream as
    /// bytecodealliance/wasmtime pull request 14357). Used only where memory cannot be
    /// swapped. On kernels before 6.7 (no `PAGEMAP_SCAN`), wasmtime resets as [`Memset`]
    /// does.
    ///
    /// [`Memset`]: PageReset::Memset
    PagemapScan,
    /// Reset the first 2 MiB of the memory with memset (a write reaches a swapped-out page
    /// too) and decommit the rest with madvise: correct whatever the kernel did with the
    /// pages, at the cost of writing 2 MiB per call (BENCHMARKS.md, "The sandbox").
    Memset,
}

impl PageReset {
    /// The reset's name, as `inspect` and the startup log show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::PagemapScan => "pagemap-scan",
            Self::Memset => "memset",
        }
    }
}

/// Why a [`PageReset`] was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetReason {
    /// The process's cgroup (or one above it) has `memory.swap.max` 0: nothing can be swapped.
    CgroupCannotSwap,
    /// `/proc/swaps` lists no swap area: nothing can be swapped.
    NoSwapConfigured,
    /// `/proc/swaps` lists swap areas and the process's cgroup may use them.
    SwapConfigured {
        /// The number of swap areas.
        areas: usize,
    },
    /// Neither the cgroup nor `/proc/swaps` could tell (not Linux, or /proc not mounted).
    Unknown,
    /// The embedder chose the reset ([`Engine::with_page_reset`]).
    Chosen,
}

impl std::fmt::Display for ResetReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CgroupCannotSwap => f.write_str(
                "memory cannot be swapped: memory.swap.max of the process's cgroup is 0",
            ),
            Self::NoSwapConfigured => {
                f.write_str("memory cannot be swapped: /proc/swaps lists no swap area")
            }
            Self::SwapConfigured { areas } => write!(
                f,
                "memory may be swapped: /proc/swaps lists {areas} swap area(s) and the \
                 process's cgroup does not set memory.swap.max to 0"
            ),
            Self::Unknown => f.write_str(
                "whether memory may be swapped is unknown (no cgroup v2 memory.swap.max, \
                 no /proc/swaps)",
            ),
            Self::Chosen => f.write_str("chosen by the embedder"),
        }
    }
}

/// A [`PageReset`] and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetChoice {
    /// The reset.
    pub reset: PageReset,
    /// Why.
    pub reason: ResetReason,
}

impl ResetChoice {
    /// `reset`, chosen by the embedder.
    pub fn chosen(reset: PageReset) -> Self {
        Self {
            reset,
            reason: ResetReason::Chosen,
        }
    }
}

/// The reset a machine gets: [`PageReset::PagemapScan`] only where the process's memory
/// cannot be swapped, [`PageReset::Memset`] otherwise (and when it cannot tell).
///
/// `cgroup_swap_max`: the `memory.swap.max` that applies to the process (`"0"` when it or a
/// cgroup above it is 0; `None` without cgroup v2). `proc_swaps`: the text of `/proc/swaps`
/// (`None` when unreadable). A pure function of the two, for tests; [`detect_page_reset`]
/// reads them.
pub fn choose_page_reset(cgroup_swap_max: Option<&str>, proc_swaps: Option<&str>) -> ResetChoice {
    let (reset, reason) = if cgroup_swap_max.map(str::trim) == Some("0") {
        (PageReset::PagemapScan, ResetReason::CgroupCannotSwap)
    } else {
        // The first line is the header (Filename, Type, Size...).
        match proc_swaps.map(|text| {
            text.lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .count()
        }) {
            Some(0) => (PageReset::PagemapScan, ResetReason::NoSwapConfigured),
            Some(areas) => (PageReset::Memset, ResetReason::SwapConfigured { areas }),
            None => (PageReset::Memset, ResetReason::Unknown),
        }
    };
    ResetChoice { reset, reason }
}

/// True when the kernel has `PAGEMAP_SCAN` (Linux 6.7 or later): without it,
/// [`PageReset::PagemapScan`] resets as [`PageReset::Memset`] does.
pub fn pagemap_scan_available() -> bool {
    PoolingAllocationConfig::is_pagemap_scan_available()
}

/// [`choose_page_reset`] for this process: its cgroup v2 `memory.swap.max` (the lowest of the
/// cgroups from its own up to the root: `0` anywhere forbids swap) and `/proc/swaps`.
pub fn detect_page_reset() -> ResetChoice {
    let proc_swaps = std::fs::read_to_string("/proc/swaps").ok();
    choose_page_reset(cgroup_swap_max().as_deref(), proc_swaps.as_deref())
}

/// The `memory.swap.max` that applies to this process: `"0"` if its cgroup or one above it
/// sets 0, else its own cgroup's value; `None` without cgroup v2 (the unified hierarchy,
/// mounted at `/sys/fs/cgroup`).
fn cgroup_swap_max() -> Option<String> {
    const ROOT: &str = "/sys/fs/cgroup";
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|line| line.strip_prefix("0::"))?;
    let mut dir = std::path::Path::new(ROOT).join(path.trim().trim_start_matches('/'));
    let mut own = None;
    loop {
        if let Ok(value) = std::fs::read_to_string(dir.join("memory.swap.max")) {
            let value = value.trim();
            if value == "0" {
                return Some("0".into());
            }
            own.get_or_insert_with(|| value.to_owned());
        }
        if dir.as_os_str() == ROOT || !dir.pop() {
            return own;
        }
    }
}

/// Which limit of a call's budget was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BudgetLimit {
    /// [`Limits::cpu_time`].
    CpuTime,
    /// [`Limits::deadline`].
    Deadline,
}

/// A call's budget: CPU time on its thread, with a wall-clock backstop. Checked at each epoch
/// tick by the store's epoch-deadline callback, which runs on the calling thread.
struct Budget {
    cpu_limit: Duration,
    wall_limit: Duration,
    wall_start: Instant,
    cpu_start: Option<Duration>,
    exceeded: Option<BudgetLimit>,
}

impl Budget {
    /// A budget that counts from [`Budget::start`].
    fn new(cpu_limit: Duration, wall_limit: Duration) -> Self {
        Self {
            cpu_limit,
            wall_limit,
            wall_start: Instant::now(),
            cpu_start: None,
            exceeded: None,
        }
    }

    /// Counts from now.
    fn start(&mut self) {
        self.wall_start = Instant::now();
        self.cpu_start = thread_cpu_time();
        self.exceeded = None;
    }

    /// The limit the call is past, if any (remembered for the error).
    fn check(&mut self) -> Option<BudgetLimit> {
        let wall = self.wall_start.elapsed();
        // Without a thread CPU clock, wall time stands for CPU time.
        let cpu = match (self.cpu_start, thread_cpu_time()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => wall,
        };
        self.exceeded = past_limit(cpu, wall, self.cpu_limit, self.wall_limit);
        self.exceeded
    }
}

/// The limit a call that used `cpu` of CPU time in `wall` of wall time is past: CPU time
/// first (the guest's own work), then the wall-clock backstop.
fn past_limit(
    cpu: Duration,
    wall: Duration,
    cpu_limit: Duration,
    wall_limit: Duration,
) -> Option<BudgetLimit> {
    if cpu > cpu_limit {
        Some(BudgetLimit::CpuTime)
    } else if wall > wall_limit {
        Some(BudgetLimit::Deadline)
    } else {
        None
    }
}

/// The CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

/// No per-thread CPU clock: budgets count wall time.
#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

/// How many calls are waiting for an instance slot, and how long calls waited: `Gauge` and
/// `Histogram` handles shared by the engine, which updates them, and whoever reports them
/// ([`PoolMetrics::register`]). Cheap to clone; clones share the values.
#[derive(Debug, Clone)]
pub struct PoolMetrics {
    waiting: Gauge,
    wait_seconds: Histogram,
}

impl PoolMetrics {
    fn new() -> Self {
        Self {
            waiting: Gauge::default(),
            // 0 (no wait: most calls), then 1 ms to about 16 s (past the default bound).
            wait_seconds: Histogram::new(
                std::iter::once(0.0).chain(exponential_buckets(0.001, 2.0, 15)),
            ),
        }
    }

    /// Registers `pool_waiting_calls` and `pool_wait_seconds` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pool_waiting_calls",
            "Policy calls waiting for a free instance slot (all slots busy)",
            self.waiting.clone(),
        );
        registry.register(
            "pool_wait_seconds",
            "How long a policy call waited for a free instance slot (0: it found one at once)",
            self.wait_seconds.clone(),
        );
    }

    /// The number of calls waiting for a slot now.
    pub fn waiting(&self) -> i64 {
        self.waiting.get()
    }
}

/// Counts the pool's free instance slots; a call takes one ([`SlotPermit`]) for as long as its
/// store lives, waiting for one when none is free. Wasmtime's pool fails an instantiation at
/// once when it is full; the gate makes sure it never is.
struct SlotGate {
    free: Mutex<u32>,
    freed: Condvar,
    metrics: PoolMetrics,
}

impl SlotGate {
    fn new(slots: u32) -> Self {
        Self {
            free: Mutex::new(slots),
            freed: Condvar::new(),
            metrics: PoolMetrics::new(),
        }
    }

    /// A slot, waiting up to `wait` for one; else how long it waited.
    fn acquire(self: &Arc<Self>, wait: Duration) -> Result<SlotPermit, Duration> {
        let start = Instant::now();
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if *free == 0 {
            self.metrics.waiting.inc();
            free = self
                .freed
                .wait_timeout_while(free, wait, |free| *free == 0)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            self.metrics.waiting.dec();
        }
        let waited = start.elapsed();
        self.metrics.wait_seconds.observe(waited.as_secs_f64());
        if *free == 0 {
            return Err(waited);
        }
        *free -= 1;
        Ok(SlotPermit { gate: self.clone() })
    }
}

/// One instance slot, given back when dropped.
pub(crate) struct SlotPermit {
    gate: Arc<SlotGate>,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        *self
            .gate
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        self.gate.freed.notify_one();
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
    fn a_compiler_engine_without_a_pool_makes_code_the_pooled_engine_runs() {
        let pooled = Engine::new(Limits::default()).unwrap();
        let compiler = wasmtime::Engine::new(&code_config()).unwrap();
        let code = compiler
            .precompile_component(&wat::parse_str("(component)").unwrap())
            .unwrap();
        // SAFETY: compiled just above by an engine of the same code settings.
        #[allow(unsafe_code)]
        let loaded =
            unsafe { wasmtime::component::Component::deserialize(pooled.wasmtime(), &code) };
        assert!(loaded.is_ok(), "{:?}", loaded.err());
    }

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

    const SWAPS_HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
    const ONE_SWAP_AREA: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                                 /dev/sda2 partition\t8388604\t0\t-2\n";

    #[test]
    fn pagemap_scan_only_where_memory_cannot_be_swapped() {
        use PageReset::{Memset, PagemapScan};
        let cases = [
            // The cgroup forbids swap: swap areas do not matter.
            (
                Some("0\n"),
                Some(ONE_SWAP_AREA),
                PagemapScan,
                ResetReason::CgroupCannotSwap,
            ),
            (Some("0"), None, PagemapScan, ResetReason::CgroupCannotSwap),
            // No swap area: the cgroup's limit does not matter.
            (
                Some("max\n"),
                Some(SWAPS_HEADER),
                PagemapScan,
                ResetReason::NoSwapConfigured,
            ),
            (
                None,
                Some(SWAPS_HEADER),
                PagemapScan,
                ResetReason::NoSwapConfigured,
            ),
            // Swap the cgroup may use (LimitedSwap sets a number; no limit is "max").
            (
                Some("max"),
                Some(ONE_SWAP_AREA),
                Memset,
                ResetReason::SwapConfigured { areas: 1 },
            ),
            (
                Some("1073741824"),
                Some(ONE_SWAP_AREA),
                Memset,
                ResetReason::SwapConfigured { areas: 1 },
            ),
            (
                None,
                Some(ONE_SWAP_AREA),
                Memset,
                ResetReason::SwapConfigured { areas: 1 },
            ),
            // Nothing to tell: the safe reset.
            (Some("max"), None, Memset, ResetReason::Unknown),
            (None, None, Memset, ResetReason::Unknown),
        ];
        for (cgroup, swaps, reset, reason) in cases {
            assert_eq!(
                choose_page_reset(cgroup, swaps),
                ResetChoice { reset, reason },
                "memory.swap.max {cgroup:?}, /proc/swaps {swaps:?}"
            );
        }
    }

    #[test]
    fn the_budget_counts_cpu_time_first_and_wall_time_as_a_backstop() {
        let (ms, s) = (Duration::from_millis, Duration::from_secs);
        // A thread that was descheduled for a long time but worked little: within budget.
        assert_eq!(past_limit(ms(50), s(20), s(2), s(30)), None);
        // Work past the CPU limit, however long or short the wall time.
        assert_eq!(
            past_limit(ms(2001), ms(2002), s(2), s(30)),
            Some(BudgetLimit::CpuTime)
        );
        assert_eq!(
            past_limit(s(3), s(31), s(2), s(30)),
            Some(BudgetLimit::CpuTime)
        );
        // Stuck off the CPU past the backstop.
        assert_eq!(
            past_limit(ms(10), s(31), s(2), s(30)),
            Some(BudgetLimit::Deadline)
        );
    }

    #[test]
    fn the_thread_cpu_clock_counts_work_not_sleep() {
        let start = thread_cpu_time().expect("unix has a thread CPU clock");
        std::thread::sleep(Duration::from_millis(200));
        let slept = thread_cpu_time().unwrap() - start;
        assert!(
            slept < Duration::from_millis(100),
            "sleeping used {slept:?} of CPU"
        );
        let busy = Instant::now();
        while busy.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(());
        }
        assert!(thread_cpu_time().unwrap() > start + slept);
    }

    #[test]
    fn a_call_waits_for_a_slot_and_gives_up_after_the_bound() {
        let gate = Arc::new(SlotGate::new(1));
        let held = gate.acquire(Duration::ZERO).expect("one slot is free");
        // None free: the bound passes.
        let waited = gate
            .acquire(Duration::from_millis(20))
            .err()
            .expect("no slot is free");
        assert!(waited >= Duration::from_millis(20));
        // A waiter gets the slot as soon as it is given back.
        let waiter = std::thread::spawn({
            let gate = gate.clone();
            move || gate.acquire(Duration::from_secs(60)).is_ok()
        });
        while gate.metrics.waiting() == 0 {
            std::thread::yield_now();
        }
        drop(held);
        assert!(waiter.join().unwrap());
        assert_eq!(gate.metrics.waiting(), 0);
        assert_eq!(*gate.free.lock().unwrap(), 1);
    }
}
