//! The sandbox between calls, through the production engine configuration: every call starts
//! from the module's initial state; a call's budget counts the guest's work (CPU time), with the
//! wall clock only as a backstop; a call waits for a free instance slot when all are busy.

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use capt_host_core::{Policy, PolicyError};
use capt_host_runtime::{Engine, Limits, PageReset, PolicyInstance, ResetChoice, WasmPolicy};

use crate::embedded::DEFAULT_POLICY;
use capt_policy::{Request, Response};
use prometheus_client::registry::Registry;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

use crate::guests::{self, Findings, METADATA_OK, request};

/// The engines under test: the production one (`Engine::new` with the default limits, whose
/// reset depends on this machine's swap) and each reset forced.
fn engines() -> Vec<(String, Engine)> {
    let production = Engine::new(Limits::default()).unwrap();
    let mut engines = vec![(
        format!("production ({})", production.page_reset().reset.name()),
        production,
    )];
    for reset in [PageReset::PagemapScan, PageReset::Memset] {
        let engine =
            Engine::with_page_reset(Limits::default(), ResetChoice::chosen(reset)).unwrap();
        engines.push((reset.name().to_owned(), engine));
    }
    engines
}

#[test]
fn every_call_sees_the_modules_initial_state() {
    let probe = guests::policy(METADATA_OK, guests::PROBE);
    for (name, engine) in engines() {
        let policy = WasmPolicy::load(&engine, &probe).unwrap();
        let probe_once = |call: usize| {
            let findings = Findings::of(&policy.reconcile(&request()).unwrap());
            assert!(findings.pristine(), "{name}, call {call}: {findings:?}");
        };
        // One after the other: every call reuses the slot the last one dirtied.
        (0..64).for_each(probe_once);
        // Side by side: several slots, each reused.
        std::thread::scope(|scope| {
            for thread in 0..4 {
                scope.spawn(move || (0..16).for_each(|call| probe_once(100 * thread + call)));
            }
        });
    }
}

#[test]
fn the_probe_sees_what_a_reused_instance_left() {
    // Without a fresh instance per call the probe reports everything it dirtied: it can fail.
    let engine = Engine::new(Limits::default()).unwrap();
    let mut instance =
        PolicyInstance::new(&engine, &guests::policy(METADATA_OK, guests::PROBE)).unwrap();
    assert!(Findings::of(&instance.reconcile(&request()).unwrap()).pristine());
    let second = Findings::of(&instance.reconcile(&request()).unwrap());
    assert!(second.dirty_global && second.dirty_data && second.grown_memory);
    // Every word from 0x8000 to the end of 160 pages.
    assert_eq!(second.stale_words, (160 * 65536 - 0x8000) / 8);
}

/// A tracing layer that holds the logging thread for `pause` at every event, as a descheduled
/// thread is held off the CPU, and says when the first event came.
struct Stall {
    pause: Duration,
    started: Mutex<Option<mpsc::Sender<()>>>,
}

impl Stall {
    /// Runs `f` with every log record of this thread held for `pause`; `started` hears of the
    /// first.
    fn during<R>(pause: Duration, started: Option<mpsc::Sender<()>>, f: impl FnOnce() -> R) -> R {
        let stall = Stall {
            pause,
            started: Mutex::new(started),
        };
        tracing::subscriber::with_default(tracing_subscriber::registry().with(stall), f)
    }
}

impl<S: tracing::Subscriber> Layer<S> for Stall {
    fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
        if let Some(started) = self.started.lock().unwrap().take() {
            let _ = started.send(());
        }
        std::thread::sleep(self.pause);
    }
}

/// An engine whose calls may use `cpu_time` of CPU time and `deadline` of wall time.
fn budget_engine(cpu_time: Duration, deadline: Duration) -> Engine {
    Engine::new(Limits {
        cpu_time,
        deadline,
        ..Limits::default()
    })
    .unwrap()
}

#[test]
fn a_call_held_off_the_cpu_keeps_its_budget() {
    let engine = budget_engine(Duration::from_millis(100), Duration::from_secs(60));
    let policy =
        WasmPolicy::load(&engine, &guests::policy(METADATA_OK, &guests::logging(20))).unwrap();
    let started = Instant::now();
    // 20 records held 25 ms each: half a second of wall time, five times the CPU limit.
    let result = Stall::during(Duration::from_millis(25), None, || {
        policy.reconcile(&request())
    });
    assert!(started.elapsed() > engine.limits().cpu_time);
    assert_eq!(result.unwrap(), Response::default());
}

#[test]
fn a_stuck_host_is_stopped_by_the_wall_clock_backstop() {
    let engine = budget_engine(Duration::from_secs(60), Duration::from_millis(100));
    let policy =
        WasmPolicy::load(&engine, &guests::policy(METADATA_OK, &guests::logging(20))).unwrap();
    let err = Stall::during(Duration::from_millis(25), None, || {
        policy.reconcile(&request())
    })
    .unwrap_err();
    assert!(
        matches!(err, PolicyError::DeadlineExceeded { deadline } if deadline == Duration::from_millis(100)),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(err.to_string().contains("--call-deadline"), "{err}");
}

/// The benchmarks' realistic requests (the happy-path scenario's final rounds).
#[path = "../../benches/support/requests.rs"]
#[allow(dead_code)] // its command-line parsing is the benchmarks'
mod requests;

/// The last CAPTControlPlane request of the happy-path scenario (every related object present),
/// with `bytes` of outputs added to its Workspace: a large object, as Terraform outputs make one.
fn large_request(policy: &dyn Policy, bytes: usize) -> Request {
    let (_, mut request) = requests::final_requests(policy)
        .into_iter()
        .find(|(kind, _)| kind == "CAPTControlPlane")
        .expect("the scenario reconciles a CAPTControlPlane");
    let workspace = request
        .objects
        .iter_mut()
        .find(|o| o.reference.kind == "Workspace" && o.manifest.contains("cluster_version"))
        .expect("the control plane's Workspace is observed");
    let mut manifest: serde_json::Value = serde_json::from_str(&workspace.manifest).unwrap();
    let outputs = manifest
        .pointer_mut("/status/atProvider/outputs")
        .and_then(serde_json::Value::as_object_mut)
        .expect("the Workspace has outputs");
    let value = "x".repeat(200);
    for n in 0..=bytes / value.len() {
        outputs.insert(format!("output_{n:05}"), value.clone().into());
    }
    workspace.manifest = manifest.to_string();
    request
}

#[test]
fn a_large_object_reconciles_under_the_default_limits_on_a_shared_cpu() {
    let engine = Engine::new(Limits::default()).unwrap();
    let policy = WasmPolicy::load(&engine, DEFAULT_POLICY).unwrap();
    let request = large_request(&policy, 1_500_000);
    let size: usize = request.objects.iter().map(|o| o.manifest.len()).sum();
    assert!(size > 1_500_000, "{size} bytes");
    // Four calls at once on this machine's two cores (shared with whatever else runs): each
    // thread gets half a CPU at most, as under a 500m limit, or less.
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let (started, cpu) = (Instant::now(), thread_cpu_time());
                    let response = policy.reconcile(&request);
                    (response, started.elapsed(), thread_cpu_time() - cpu)
                })
            })
            .collect();
        for call in calls {
            let (response, wall, cpu) = call.join().unwrap();
            let response =
                response.unwrap_or_else(|e| panic!("{}", capt_host_core::error_chain(&e)));
            let written: usize = response.patches.iter().map(|p| p.merge_patch.len()).sum();
            assert!(
                written > 1_000_000,
                "the outputs are copied: {written} bytes"
            );
            println!(
                "{size} bytes reconciled in {wall:?} of wall time, {cpu:?} of CPU time \
                 (limit: {:?})",
                engine.limits().cpu_time
            );
        }
    });
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The value of `name` in the OpenMetrics text of `registry`.
fn metric(registry: &Registry, name: &str) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// An engine with one instance slot, a logging policy in it, and a call that holds the slot
/// (its 20 log records held 25 ms each) until the returned thread ends.
fn one_busy_slot(
    slot_wait: Duration,
) -> (
    Engine,
    WasmPolicy,
    std::thread::JoinHandle<Result<Response, PolicyError>>,
) {
    let engine = Engine::new(Limits {
        concurrent_calls: 1,
        slot_wait,
        ..Limits::default()
    })
    .unwrap();
    let bytes = guests::policy(METADATA_OK, &guests::logging(20));
    let policy = WasmPolicy::load(&engine, &bytes).unwrap();
    let (started, running) = mpsc::channel();
    let busy = std::thread::spawn({
        let policy = WasmPolicy::load(&engine, &bytes).unwrap();
        move || {
            Stall::during(Duration::from_millis(25), Some(started), || {
                policy.reconcile(&request())
            })
        }
    });
    running.recv().expect("the busy call logs");
    (engine, policy, busy)
}

#[test]
fn a_call_waits_for_a_busy_pool_and_the_metrics_show_it() {
    let (engine, policy, busy) = one_busy_slot(Duration::from_secs(60));
    let mut registry = Registry::with_prefix("capt_host");
    engine.pool_metrics().register(&mut registry);
    let waits_before = metric(&registry, "capt_host_pool_wait_seconds_count");
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| policy.reconcile(&request()));
        // The second call waits (it does not fail), and the gauge says so.
        while metric(&registry, "capt_host_pool_waiting_calls") < 1.0 {
            assert!(!waiting.is_finished(), "the second call did not wait");
            std::thread::yield_now();
        }
        assert_eq!(waiting.join().unwrap().unwrap(), Response::default());
    });
    assert_eq!(busy.join().unwrap().unwrap(), Response::default());
    assert_eq!(metric(&registry, "capt_host_pool_waiting_calls"), 0.0);
    assert_eq!(
        metric(&registry, "capt_host_pool_wait_seconds_count"),
        waits_before + 1.0
    );
    assert!(metric(&registry, "capt_host_pool_wait_seconds_sum") > 0.0);
}

#[test]
fn a_call_that_waits_past_the_bound_fails_with_a_clear_error() {
    let (_engine, policy, busy) = one_busy_slot(Duration::from_millis(50));
    let err = policy.reconcile(&request()).unwrap_err();
    assert!(
        matches!(err, PolicyError::SlotWaitExceeded { waited } if waited >= Duration::from_millis(50)),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(err.to_string().contains("--call-slot-wait"), "{err}");
    assert_eq!(busy.join().unwrap().unwrap(), Response::default());
}
