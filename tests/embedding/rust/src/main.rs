//! A minimal Rust host for `capt:policy` components (docs/embedding.md, "Rust").
//!
//! ```text
//! capt-embed-rust MODULE metadata
//! capt-embed-rust MODULE reconcile REQUEST.json      one call; prints the result as JSON
//! capt-embed-rust MODULE bench REQUEST.json N        times N reconcile calls
//! ```
//!
//! `REQUEST.json` is a request as the Node.js and Python runners write it with
//! `--bench-request FILE`: `{trigger, nowEpochMillis, objects: [{ref, manifest}], missing,
//! settings}`, references as `{apiVersion, kind, namespace, name}`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, Result, Store, StoreLimits, StoreLimitsBuilder, bail};

// Host bindings for the world: `Policy` (with `add_to_linker` and the export accessors),
// `PolicyPre`, the `capt::policy::log::Host` trait to implement, and the contract's types (the
// policy exports `capt:policy/types`, so they live under `exports::`).
wasmtime::component::bindgen!({
    path: "../../../wit",
    world: "policy",
});

use capt::policy::log::Level;
use exports::capt::policy::types::{
    Error as PolicyError, EventType, KindRef, ObjectRef, ObservedObject, PolicyMetadata, Request, Response,
    Subresource,
};

/// How often the epoch advances: the granularity of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Wall-clock time one call may take (instantiation included).
const DEADLINE: Duration = Duration::from_secs(1);
/// Linear memory one call may grow to.
const MEMORY_BYTES: usize = 64 << 20;

/// The state of one call's store: its limits and what the guest logged.
struct CallState {
    limits: StoreLimits,
    last_error: Option<String>,
}

// The one import a policy has. Messages are diagnostics only: they never change results.
impl capt::policy::log::Host for CallState {
    fn log(&mut self, level: Level, message: String) {
        if let Level::Warn | Level::Error = level {
            eprintln!("policy {level:?}: {message}");
        }
        if let Level::Error = level {
            self.last_error = Some(message); // a panic message, just before the trap
        }
    }
}

/// A policy, compiled and linked once; every call runs in a fresh store and instance.
struct Host {
    engine: Engine,
    pre: PolicyPre<CallState>,
}

impl Host {
    fn load(bytes: &[u8]) -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let component = Component::new(&engine, bytes).context("compiling the component")?;
        let mut linker = Linker::new(&engine);
        Policy::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)?;
        let pre = PolicyPre::new(linker.instantiate_pre(&component)?)?;
        // Advance the epoch every tick for as long as the engine lives.
        let weak = engine.weak();
        std::thread::spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
        Ok(Self { engine, pre })
    }

    /// A fresh store: memory limit, epoch deadline, empty log state.
    fn store(&self) -> Store<CallState> {
        let state = CallState {
            limits: StoreLimitsBuilder::new()
                .memory_size(MEMORY_BYTES)
                .table_elements(100_000)
                .build(),
            last_error: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline((DEADLINE.as_millis() / EPOCH_TICK.as_millis()) as u64);
        store
    }

    fn metadata(&self) -> Result<PolicyMetadata> {
        let mut store = self.store();
        let policy = self.pre.instantiate(&mut store)?;
        policy.capt_policy_reconciler().call_metadata(&mut store)
    }

    /// One round of `reconcile`. The outer `Result` is a trap (or a deadline); the inner one is
    /// the policy's own answer.
    fn reconcile(&self, request: &Request) -> Result<Result<Response, PolicyError>> {
        let mut store = self.store();
        let policy = self.pre.instantiate(&mut store)?;
        let result = policy.capt_policy_reconciler().call_reconcile(&mut store, request);
        result.map_err(|trap| match store.data_mut().last_error.take() {
            Some(logged) => trap.context(format!("the policy trapped after logging: {logged}")),
            None => trap,
        })
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (module, command, rest) = match args.as_slice() {
        [module, command, rest @ ..] => (module, command.as_str(), rest),
        _ => bail!("usage: capt-embed-rust MODULE (metadata | reconcile REQUEST.json | bench REQUEST.json N)"),
    };
    let host = Host::load(&std::fs::read(module).with_context(|| format!("reading {module}"))?)?;
    match (command, rest) {
        ("metadata", []) => {
            let m = host.metadata()?;
            let kinds = |kinds: &[KindRef]| -> Vec<Value> {
                kinds
                    .iter()
                    .map(|k| json!({"apiVersion": k.api_version, "kind": k.kind, "namespaced": k.namespaced}))
                    .collect()
            };
            let view = json!({"name": m.name, "version": m.version, "triggers": kinds(&m.triggers),
                              "reads": kinds(&m.reads), "defaultSettings": m.default_settings});
            println!("{view}");
        }
        ("reconcile", [file]) => {
            let view = match host.reconcile(&read_request(file)?)? {
                Ok(response) => response_view(&response),
                Err(error) => json!({"error": format!("{error:?}")}),
            };
            println!("{view}");
        }
        ("bench", [file, n]) => bench(&host, &read_request(file)?, n.parse::<usize>().context("N")?)?,
        _ => bail!("unknown command {command} {rest:?}"),
    }
    Ok(())
}

/// Times `n` calls, each in a fresh store and instance (like capt-host), then `n` calls on one
/// reused instance.
fn bench(host: &Host, request: &Request, n: usize) -> Result<()> {
    let time = |call: &mut dyn FnMut() -> Result<()>| -> Result<String> {
        for _ in 0..n.min(50) {
            call()?; // warm-up
        }
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            call()?;
            samples.push(start.elapsed().as_secs_f64() * 1e3);
        }
        samples.sort_by(f64::total_cmp);
        let median = if n % 2 == 1 { samples[n / 2] } else { (samples[n / 2 - 1] + samples[n / 2]) / 2.0 };
        let p90 = samples[(n * 9 / 10).min(n - 1)];
        Ok(format!(
            "median {median:.3} ms, p90 {p90:.3} ms, min {:.3} ms, max {:.3} ms",
            samples[0],
            samples[n - 1]
        ))
    };
    let fresh = time(&mut || host.reconcile(request).map(drop))?;
    let mut store = host.store();
    let policy = host.pre.instantiate(&mut store)?;
    let reused = time(&mut || {
        store.set_epoch_deadline((DEADLINE.as_millis() / EPOCH_TICK.as_millis()) as u64);
        policy.capt_policy_reconciler().call_reconcile(&mut store, request).map(drop)
    })?;
    let trigger = &request.trigger;
    println!(
        "bench: rust, wasmtime 48.0.8; request: {}/{}/{} with {} objects, {} missing",
        trigger.kind,
        trigger.namespace.as_deref().unwrap_or(""),
        trigger.name,
        request.objects.len(),
        request.missing.len()
    );
    println!("bench: reconcile, fresh store and instance per call (as capt-host does), n={n}: {fresh}");
    println!("bench: reconcile, one reused instance, n={n}: {reused}");
    Ok(())
}

fn read_request(file: &str) -> Result<Request> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let v: Value = serde_json::from_str(&text)?;
    let text_of = |v: &Value, key: &str| -> Result<String> {
        v[key].as_str().map(str::to_owned).with_context(|| format!("`{key}` is not a string"))
    };
    let reference = |v: &Value| -> Result<ObjectRef> {
        Ok(ObjectRef {
            api_version: text_of(v, "apiVersion")?,
            kind: text_of(v, "kind")?,
            namespace: v["namespace"].as_str().map(str::to_owned),
            name: text_of(v, "name")?,
        })
    };
    let list = |key: &str| v[key].as_array().cloned().unwrap_or_default();
    Ok(Request {
        trigger: reference(&v["trigger"])?,
        now_epoch_millis: v["nowEpochMillis"].as_i64().context("`nowEpochMillis`")?,
        objects: list("objects")
            .iter()
            .map(|o| Ok(ObservedObject { ref_: reference(&o["ref"])?, manifest: text_of(o, "manifest")? }))
            .collect::<Result<_>>()?,
        missing: list("missing").iter().map(reference).collect::<Result<_>>()?,
        settings: text_of(&v, "settings")?,
    })
}

fn response_view(r: &Response) -> Value {
    let reference = |r: &ObjectRef| json!({"apiVersion": r.api_version, "kind": r.kind, "namespace": r.namespace, "name": r.name});
    json!({
        "patches": r.patches.iter().map(|p| json!({
            "target": reference(&p.target),
            "subresource": match p.subresource { Subresource::Status => "status", Subresource::Main => "main" },
            "mergePatch": serde_json::from_str::<Value>(&p.merge_patch).unwrap_or(json!(p.merge_patch)),
            "resourceVersion": p.resource_version,
        })).collect::<Vec<_>>(),
        "events": r.events.iter().map(|e| json!({
            "regarding": reference(&e.regarding),
            "type": match e.event_type { EventType::Normal => "Normal", EventType::Warning => "Warning" },
            "reason": e.reason,
            "message": e.message,
        })).collect::<Vec<_>>(),
        "requeueAfterMillis": r.requeue_after_millis,
        "requirements": r.requirements.iter().map(reference).collect::<Vec<_>>(),
    })
}
