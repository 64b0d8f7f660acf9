//! Loading and calling components: the default policy, and misbehaving fixtures.

use std::time::Duration;

use capt_host_core::{Policy, PolicyError};

use capt_host_runtime::{ComplexityMeasure, Engine, Limits, LoadError, WasmPolicy};

use crate::cli::temp_file;
use crate::embedded::DEFAULT_POLICY;

use crate::guests::{self, METADATA_OK, RECONCILE_OK, request};

fn engine() -> Engine {
    Engine::new(Limits {
        cpu_time: Duration::from_millis(200),
        memory_bytes: 8 << 20,
        ..Limits::default()
    })
    .unwrap()
}

fn reconcile_with(body: &str) -> PolicyError {
    let policy = WasmPolicy::load(&engine(), &guests::policy(METADATA_OK, body)).unwrap();
    policy.reconcile(&request()).unwrap_err()
}

#[test]
fn a_well_behaved_fixture_loads_and_answers() {
    let policy = WasmPolicy::load(&engine(), &guests::policy(METADATA_OK, RECONCILE_OK)).unwrap();
    assert_eq!(policy.metadata().name, "fixture");
    assert_eq!(
        policy.reconcile(&request()).unwrap(),
        capt_policy::Response::default()
    );
}

#[test]
fn a_trap_is_reported_as_a_trap() {
    let err = reconcile_with(guests::TRAP);
    assert!(matches!(err, PolicyError::Trap { .. }), "{err:?}");
    assert!(!err.is_transient());
}

#[test]
fn an_endless_loop_is_stopped_at_the_cpu_limit() {
    let started = std::time::Instant::now();
    let err = reconcile_with(guests::LOOP);
    assert!(
        matches!(err, PolicyError::CpuTimeExceeded { limit } if limit == Duration::from_millis(200)),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_memory_bomb_is_reported_as_out_of_memory() {
    let err = reconcile_with(guests::MEMORY_BOMB);
    assert!(
        matches!(err, PolicyError::OutOfMemory { limit_bytes } if limit_bytes == 8 << 20),
        "{err:?}"
    );
}

#[test]
fn an_oversized_response_is_refused() {
    let err = reconcile_with(guests::HUGE_RESPONSE);
    assert!(
        matches!(err, PolicyError::ResponseTooLarge { .. }),
        "{err:?}"
    );
}

/// A response whose 20 events all point at the same 5 MiB message claims 100 MiB of text in
/// 6 MiB of guest memory. wasmtime stops lifting it at the call's copy budget (twice the
/// response limit: 8 MiB here), so the host never copies more than that. With wasmtime's
/// default budget (128 MiB) all 100 MiB would be copied before the size check refused it
/// (`ResponseTooLarge`), and 16,384 such events would exhaust the host's memory.
#[test]
fn a_response_claiming_more_text_than_its_memory_is_refused_while_it_is_lifted() {
    let err = reconcile_with(guests::ALIASED_RESPONSE);
    assert!(matches!(err, PolicyError::Malformed(_)), "{err:?}");
    let chain = capt_host_core::error_chain(&err);
    assert!(chain.contains("too much data"), "{chain}");
}

fn load_error(bytes: &[u8]) -> LoadError {
    match WasmPolicy::load(&engine(), bytes) {
        Ok(_) => panic!("the module loaded"),
        Err(err) => err,
    }
}

#[test]
fn the_default_policy_loads_and_imports_only_the_contract() {
    let policy = WasmPolicy::load(&engine(), DEFAULT_POLICY).unwrap();
    assert!(!policy.metadata().name.is_empty());
    assert_eq!(policy.sha256().len(), 64);
    assert_eq!(policy.size(), DEFAULT_POLICY.len());
    let imports: Vec<_> = policy.imports().into_iter().map(|i| i.name).collect();
    assert!(
        imports
            .iter()
            .any(|name| name.starts_with("capt:policy/log@0.1.")),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .all(|name| name.starts_with("capt:policy/log@")
                || name.starts_with("capt:policy/types@")),
        "{imports:?}"
    );
    let exports: Vec<_> = policy.exports().into_iter().map(|e| e.name).collect();
    assert!(
        exports.contains(&"capt:policy/reconciler@0.1.0".to_owned()),
        "{exports:?}"
    );
}

#[test]
fn garbage_is_not_wasm() {
    assert!(matches!(load_error(b"hello"), LoadError::NotWasm));
    assert!(matches!(load_error(b""), LoadError::NotWasm));
}

#[test]
fn a_core_module_is_not_a_component() {
    let core = wat::parse_str("(module)").unwrap();
    let err = load_error(&core);
    assert!(matches!(err, LoadError::CoreModule), "{err}");
}

#[test]
fn a_truncated_component_does_not_compile() {
    let err = load_error(&DEFAULT_POLICY[..DEFAULT_POLICY.len() / 2]);
    assert!(matches!(err, LoadError::Compile(_)), "{err}");
}

#[test]
fn a_component_importing_anything_else_is_refused() {
    let wasi = guests::component(r#"(import "wasi:cli/environment@0.2.0" (instance))"#);
    let err = load_error(&wasi);
    assert!(
        matches!(&err, LoadError::UnexpectedImport(name) if name == "wasi:cli/environment@0.2.0"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the component imports `wasi:cli/environment@0.2.0`, but a policy may import only \
         `capt:policy/log@0.1.x`"
    );
    // Even the contract's own types interface: a policy exports it, the host provides nothing
    // but the log function.
    let types_import = guests::component(r#"(import "capt:policy/types@0.1.0" (instance))"#);
    assert!(matches!(
        load_error(&types_import),
        LoadError::UnexpectedImport(name) if name == "capt:policy/types@0.1.0"
    ));
}

#[test]
fn a_component_without_the_reconciler_is_refused() {
    let err = load_error(&guests::component(""));
    assert_eq!(
        err.to_string(),
        "the component does not export `capt:policy/reconciler` (its exports: none)"
    );
}

#[test]
fn an_incompatible_contract_version_is_refused() {
    let v2 =
        guests::component(r#"(instance $r) (export "capt:policy/reconciler@0.2.0" (instance $r))"#);
    let err = load_error(&v2);
    assert!(
        matches!(&err, LoadError::IncompatibleVersion(name) if name.ends_with("@0.2.0")),
        "{err}"
    );
}

#[test]
fn a_reconciler_without_the_contract_functions_does_not_link() {
    let empty =
        guests::component(r#"(instance $r) (export "capt:policy/reconciler@0.1.0" (instance $r))"#);
    assert!(matches!(load_error(&empty), LoadError::Link(_)));
}

#[test]
fn a_metadata_trap_fails_the_load() {
    let err = load_error(&guests::policy(guests::TRAP, RECONCILE_OK));
    assert!(
        matches!(err, LoadError::Metadata(PolicyError::Trap { .. })),
        "{err}"
    );
}

#[test]
fn a_megabyte_of_nested_blocks_is_refused_before_it_is_compiled() {
    let hostile = guests::nested_blocks(1 << 20);
    assert!(hostile.len() >= 1 << 20, "{} bytes", hostile.len());
    let err = load_error(&hostile);
    assert!(
        matches!(
            err,
            LoadError::TooComplex {
                what: ComplexityMeasure::FunctionBytes,
                limit: 262_144,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), "too_complex");
}

/// Runs `capt-host inspect` with `args`; its exit code, standard error and the peak resident
/// memory of it and the compiler processes it started (`wait4`'s `ru_maxrss`: the largest of
/// the process and its waited-for descendants).
#[allow(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also reports its peak memory"
)]
fn inspect(args: &[&str]) -> (Option<i32>, String, u64) {
    use std::io::Read as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_capt-host"))
        .arg("inspect")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("capt-host starts");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    #[allow(unsafe_code)]
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not reaped yet (`child` is never waited for); `status`
    // and `usage` are valid for writes for the duration of the call.
    #[allow(unsafe_code)]
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    // ru_maxrss is in KiB on Linux.
    let peak = u64::try_from(usage.ru_maxrss).unwrap() * 1024;
    (code, stderr, peak)
}

const MIB: u64 = 1 << 20;

#[test]
fn refusing_a_hostile_module_keeps_every_process_far_below_the_pod_limit() {
    let hostile = temp_file("wasm-nested-blocks.wasm", &guests::nested_blocks(1 << 20));
    let (code, stderr, peak) = inspect(&["--module", hostile.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("too complex to compile: the size of a function body"),
        "{stderr}"
    );
    // The process's own size (a debug build maps a large binary) is the baseline: a file
    // refused before anything is compiled.
    let garbage = temp_file("wasm-garbage.wasm", b"not wasm");
    let (_, _, baseline) = inspect(&["--module", garbage.to_str().unwrap()]);
    assert!(
        peak < baseline + 32 * MIB,
        "peak RSS {} MiB, baseline {} MiB",
        peak / MIB,
        baseline / MIB
    );
}

#[test]
fn the_compiler_process_is_held_to_its_memory_and_time_budget() {
    // The default policy compiles within the default budget, in a compiler process.
    let (code, stderr, _) = inspect(&[]);
    assert_eq!(code, Some(0), "{stderr}");

    // With too little memory, the compiler process fails and the module is refused.
    let (code, stderr, _) = inspect(&["--compile-memory-limit", "4Mi"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("more than its memory limit of 4194304 bytes (--compile-memory-limit"),
        "{stderr}"
    );

    // With too little time, it is stopped.
    let (code, stderr, _) = inspect(&["--compile-time-limit", "1ms"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("compiling the module took longer than 1ms"),
        "{stderr}"
    );
}
