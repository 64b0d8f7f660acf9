//! Benchmark: what the wasmtime settings of capt-host's engine cost one policy call.
//!
//! Builds wasmtime engines next to each other, each a copy of `Engine::new`'s configuration
//! (host/runtime/src/engine.rs: component model, Cranelift, epoch interruption, a pooling allocator
//! sized for 16 concurrent calls of at most 64 MiB each) with settings changed, and times a
//! reconcile with a fresh store and instance per call (what `WasmPolicy::reconcile` does) on
//! each. Variants:
//!
//! - `as-is`: the configuration of `Engine::new` on a node whose memory cannot be swapped: the
//!   pool keeps the first 2 MiB of each freed linear memory (and its tables) resident and
//!   resets the dirty pages with `memset` (found with Linux's `PAGEMAP_SCAN`), and each memory
//!   slot reserves 4 GiB of address space, so that Cranelift drops the explicit bounds checks
//!   of loads and stores;
//! - `memset-reset`: the configuration of `Engine::new` where memory may be swapped
//!   (`PageReset::Memset`): the first 2 MiB are reset with `memset` whether dirty or not;
//! - `madvise`: without keeping memory resident (`madvise(DONTNEED)` on every free, a page
//!   fault per page on the next call: wasmtime's default);
//! - `64m-reservation`: 64 MiB of address space per memory slot (explicit bounds checks);
//! - `before`: both of the above (`Engine::new` before the change of BENCHMARKS.md);
//! - `no-epoch`: no epoch checks in loops and function entries (no deadline: not an option
//!   for the operator, measured to know their cost);
//! - `fuel`: fuel metering instead of epochs (the other way to bound a call by the guest's
//!   work: every basic block counts its instructions);
//!
//! and, for reference, `native` (`capt_status::reconcile`). The requests are the happy-path
//! scenario's final rounds (see `guest_call`). The variants run interleaved in batches; every
//! call is timed on its own.
//!
//! `cargo bench -p capt-host --bench engine_knobs [-- --rounds N --batch N --module FILE]`
//! (`--module`: another build of the policy instead of the embedded one).

#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../src/embedded.rs"]
mod embedded;
mod support;

use std::time::{Duration, Instant};

use capt_host_runtime::{Engine, Limits, WasmPolicy};

use crate::embedded::DEFAULT_POLICY;
use capt_policy::Request;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use self::support::{final_requests, micros, percentiles, request_bytes};

/// The host side of the `capt:policy` world, generated as in host/runtime/src/bindings.rs.
mod bindings {
    #![allow(missing_docs)] // generated code
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "policy",
    });
}

use self::bindings::capt::policy::log::{Host as LogHost, Level};
use self::bindings::exports::capt::policy::types as wit;
use self::bindings::{Policy, PolicyPre};

/// The store state: the `log` import discards every record.
struct Quiet;

impl LogHost for Quiet {
    fn log(&mut self, _level: Level, _message: String) {}
}

/// What a variant changes in `Engine::new`'s configuration.
#[derive(Clone, Copy, Default)]
struct Knobs {
    /// Reset freed memory with `madvise` instead of keeping it resident.
    madvise: bool,
    /// Reserve 64 MiB per memory slot instead of 4 GiB.
    small_reservation: bool,
    /// No epoch interruption.
    no_epoch: bool,
    /// Reset the first 2 MiB with memset without `PAGEMAP_SCAN`.
    memset_reset: bool,
    /// Fuel metering instead of epoch interruption.
    fuel: bool,
}

/// One engine with the policy linked in it.
struct Variant {
    name: &'static str,
    pre: PolicyPre<Quiet>,
    fuel: bool,
}

impl Variant {
    /// `Engine::new(Limits::default())`'s configuration with `knobs` applied.
    fn new(name: &'static str, knobs: Knobs, module: &[u8]) -> Self {
        let limits = Limits::default();
        let calls = limits.concurrent_calls;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(calls)
            .max_core_instances_per_component(8)
            .total_core_instances(calls * 8)
            .max_memories_per_component(2)
            .total_memories(calls * 2)
            .max_tables_per_component(8)
            .total_tables(calls * 8)
            .max_memory_size(limits.memory_bytes)
            .table_elements(limits.table_elements);
        if !knobs.madvise {
            pool.linear_memory_keep_resident(2 << 20)
                .table_keep_resident(64 << 10)
                .pagemap_scan(if knobs.memset_reset {
                    Enabled::No
                } else {
                    Enabled::Auto
                });
        }
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(!knobs.no_epoch && !knobs.fuel)
            .consume_fuel(knobs.fuel)
            .max_wasm_stack(512 << 10)
            .memory_reservation(if knobs.small_reservation {
                limits.memory_bytes as u64
            } else {
                4 << 30
            })
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config).expect("the engine starts");
        let mut linker = Linker::new(&engine);
        Policy::add_to_linker::<Quiet, HasSelf<Quiet>>(&mut linker, |state| state)
            .expect("the log import links");
        let component = Component::new(&engine, module).expect("the policy compiles");
        let pre = linker
            .instantiate_pre(&component)
            .expect("the policy links");
        Self {
            name,
            pre: PolicyPre::new(pre).expect("the policy has the contract's exports"),
            fuel: knobs.fuel,
        }
    }

    /// One reconcile in a fresh store and instance, as `WasmPolicy::reconcile` does (a
    /// deadline far away when the epoch is on; no memory limiter, which is only consulted
    /// when memory grows past the pool's bound).
    fn reconcile(&self, request: &wit::Request) -> wit::Response {
        let mut store = Store::new(self.pre.engine(), Quiet);
        if self.fuel {
            store.set_fuel(u64::MAX).expect("fuel is on");
        } else {
            store.set_epoch_deadline(1000);
        }
        let policy = self.pre.instantiate(&mut store).expect("it instantiates");
        policy
            .capt_policy_reconciler()
            .call_reconcile(&mut store, request)
            .expect("the call succeeds")
            .expect("the policy answers")
    }
}

fn object_ref(r: &capt_policy::ObjectRef) -> wit::ObjectRef {
    wit::ObjectRef {
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    }
}

/// `request` in the bindings' types (what capt-host's `convert::request_to_wit` does).
fn to_wit(request: &Request) -> wit::Request {
    wit::Request {
        trigger: object_ref(&request.trigger),
        now_epoch_millis: request.now_epoch_millis,
        objects: request
            .objects
            .iter()
            .map(|o| wit::ObservedObject {
                ref_: object_ref(&o.reference),
                manifest: o.manifest.clone(),
            })
            .collect(),
        missing: request.missing.iter().map(object_ref).collect(),
        settings: request.settings.clone(),
    }
}

fn main() {
    let (mut rounds, mut batch, mut module) = (20, 200, DEFAULT_POLICY.to_vec());
    for (name, value) in support::options() {
        match name.as_str() {
            "--rounds" => rounds = value.parse().expect("--rounds: a number"),
            "--batch" => batch = value.parse().expect("--batch: a number"),
            "--module" => {
                let path = support::from_workspace(&value);
                module = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            }
            _ => panic!("unknown option {name}"),
        }
    }
    let engine = Engine::new(Limits::default()).expect("the engine starts");
    let policy = WasmPolicy::load(&engine, DEFAULT_POLICY).expect("the default policy loads");
    let requests = final_requests(&policy);
    let variant = |name, knobs| Variant::new(name, knobs, &module);
    let variants = [
        variant("as-is", Knobs::default()),
        variant(
            "madvise",
            Knobs {
                madvise: true,
                ..Knobs::default()
            },
        ),
        variant(
            "memset-reset",
            Knobs {
                memset_reset: true,
                ..Knobs::default()
            },
        ),
        variant(
            "64m-reservation",
            Knobs {
                small_reservation: true,
                ..Knobs::default()
            },
        ),
        variant(
            "before",
            Knobs {
                madvise: true,
                small_reservation: true,
                ..Knobs::default()
            },
        ),
        variant(
            "no-epoch",
            Knobs {
                no_epoch: true,
                ..Knobs::default()
            },
        ),
        variant(
            "fuel",
            Knobs {
                fuel: true,
                ..Knobs::default()
            },
        ),
    ];

    println!(
        "{:<17} {:>6} {:>17} {:>10} {:>10} {:>8} {:>8}",
        "request", "bytes", "variant", "median µs", "p99 µs", "x native", "x as-is"
    );
    for (kind, request) in &requests {
        let wit_request = to_wit(request);
        let expected = capt_status::reconcile(request).expect("the native policy answers");
        for variant in &variants {
            let patches = variant.reconcile(&wit_request).patches.len();
            assert_eq!(patches, expected.patches.len(), "{}", variant.name);
        }
        // Index 0: native; then the variants in order.
        let mut samples = vec![Vec::new(); variants.len() + 1];
        for _ in 0..rounds {
            for (i, samples) in samples.iter_mut().enumerate() {
                for _ in 0..batch {
                    let start = Instant::now();
                    match i {
                        0 => drop(std::hint::black_box(capt_status::reconcile(request))),
                        i => drop(std::hint::black_box(
                            variants[i - 1].reconcile(&wit_request),
                        )),
                    }
                    samples.push(start.elapsed());
                }
            }
        }
        let stats: Vec<(Duration, Duration)> = samples.iter_mut().map(|s| percentiles(s)).collect();
        let names = std::iter::once("native").chain(variants.iter().map(|v| v.name));
        for (name, (median, p99)) in names.zip(&stats) {
            println!(
                "{kind:<17} {:>6} {name:>17} {:>10.1} {:>10.1} {:>8.2} {:>8.2}",
                request_bytes(request),
                micros(*median),
                micros(*p99),
                median.as_secs_f64() / stats[0].0.as_secs_f64(),
                median.as_secs_f64() / stats[1].0.as_secs_f64(),
            );
        }
    }
}
