//! Every fixture loaded into the real host (capt-host), failing or passing the way it is meant
//! to. One test per fixture, named after its feature (checked by `foreach_fixture!`), plus the
//! truncated module and the list itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use capt_host_core::{Policy, PolicyError, scenario};
use capt_host_runtime::{Engine, Limits, LoadError, WasmPolicy};
use capt_policy::{ObjectRef, ObservedObject, Request};
use policy_fixture_artifacts as fixtures;

/// Fails to compile when a fixture has no test named after it.
macro_rules! assert_fixture_has_a_test {
    ($constant:ident, $test:ident) => {
        #[allow(unused_imports)]
        use self::$test as _;
    };
}
fixtures::foreach_fixture!(assert_fixture_has_a_test);

/// The memory limit of [`tight_engine`].
const TIGHT_MEMORY: usize = 16 << 20;

/// An engine whose limits a misbehaving fixture hits fast.
fn tight_engine() -> Engine {
    Engine::new(Limits {
        cpu_time: Duration::from_millis(100),
        memory_bytes: TIGHT_MEMORY,
        ..Limits::default()
    })
    .unwrap()
}

fn load(engine: &Engine, path: &str) -> WasmPolicy {
    WasmPolicy::load(engine, &fixtures::bytes(path))
        .unwrap_or_else(|e| panic!("{path}: {}", capt_host_core::error_chain(&e)))
}

fn load_error(path: &str) -> LoadError {
    match WasmPolicy::load(&tight_engine(), &fixtures::bytes(path)) {
        Ok(_) => panic!("{path} loaded"),
        Err(e) => e,
    }
}

/// A request the misbehaving fixtures never get to read.
fn request() -> Request {
    let trigger = ObjectRef::new(
        "infrastructure.cluster.x-k8s.io/v1beta1",
        "CAPTCluster",
        Some("default"),
        "demo",
    );
    Request {
        trigger: trigger.clone(),
        now_epoch_millis: 0,
        objects: vec![ObservedObject {
            reference: trigger,
            manifest: r#"{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster", "metadata": {"name": "demo", "namespace": "default"}}"#.into(),
        }],
        missing: vec![],
        settings: "{}".into(),
    }
}

fn reconcile_error(path: &str) -> PolicyError {
    match load(&tight_engine(), path).reconcile(&request()) {
        Ok(response) => panic!("{path} answered: {response:?}"),
        Err(e) => e,
    }
}

/// Runs every scenario of the real policy against `policy`.
fn run_suite(policy: &WasmPolicy) -> Vec<scenario::Outcome> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../policies/capt-status/scenarios");
    let files: Vec<PathBuf> = scenario::files(&[dir]).unwrap();
    assert!(!files.is_empty(), "no scenario files");
    files
        .iter()
        .map(|file| {
            let scenario = scenario::load(file)
                .unwrap_or_else(|e| panic!("{}", capt_host_core::error_chain(&e)));
            scenario::run(&scenario, policy)
        })
        .collect()
}

#[test]
fn v2() {
    let policy = load(&Engine::new(Limits::default()).unwrap(), fixtures::V2);
    assert_eq!(policy.metadata().version, "0.2.0-fixture");
    assert_eq!(policy.metadata().name, "capt-status");

    let outcomes = run_suite(&policy);
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| format!("{}: {:?}", o.name, o.failures))
        .collect();
    assert!(failed.is_empty(), "v2 failed scenarios: {failed:#?}");

    // The difference is observable: some status patch carries the suffix.
    let marked = outcomes
        .iter()
        .flat_map(|o| &o.records)
        .filter_map(|r| r.result.as_ref().ok())
        .flat_map(|response| &response.patches)
        .any(|p| p.merge_patch.contains(policy_fixtures::V2_SUFFIX));
    assert!(
        marked,
        "no patch of v2 carries {:?}",
        policy_fixtures::V2_SUFFIX
    );
}

#[test]
fn wrong() {
    let policy = load(&Engine::new(Limits::default()).unwrap(), fixtures::WRONG);
    // Only its writes differ from the real policy.
    assert_eq!(policy.metadata(), &policy_fixtures::metadata_as(None));
    let outcomes = run_suite(&policy);
    assert!(
        outcomes.iter().any(|o| !o.passed()),
        "the wrong policy passed every scenario"
    );
}

#[test]
fn r#loop() {
    // Loading calls metadata(), which answers.
    let err = reconcile_error(fixtures::LOOP);
    assert!(
        matches!(err, PolicyError::CpuTimeExceeded { limit } if limit == Duration::from_millis(100)),
        "{err:?}"
    );
}

#[test]
fn alloc() {
    let err = reconcile_error(fixtures::ALLOC);
    assert!(
        matches!(err, PolicyError::OutOfMemory { limit_bytes } if limit_bytes == TIGHT_MEMORY),
        "{err:?}"
    );
}

#[test]
fn panic() {
    let err = reconcile_error(fixtures::PANIC);
    match &err {
        PolicyError::Trap {
            logged: Some(logged),
            ..
        } => assert!(
            logged.contains(policy_fixtures::PANIC_MESSAGE),
            "logged: {logged:?}"
        ),
        other => panic!("expected a trap with a logged message, got {other:?}"),
    }
}

#[test]
fn wasi() {
    let err = load_error(fixtures::WASI);
    assert!(
        matches!(&err, LoadError::UnexpectedImport(name) if name.starts_with("wasi:")),
        "{err:?}"
    );
}

#[test]
fn old_world() {
    let err = load_error(fixtures::OLD_WORLD);
    assert!(
        matches!(&err, LoadError::IncompatibleVersion(name) if name == "capt:policy/reconciler@0.2.0"),
        "{err:?}"
    );
}

#[test]
fn live_fail() {
    // No scenario sets the annotation: the suite passes...
    let failed: Vec<_> = run_suite(&load(
        &Engine::new(Limits::default()).unwrap(),
        fixtures::LIVE_FAIL,
    ))
    .iter()
    .filter(|o| !o.passed())
    .map(|o| o.name.clone())
    .collect();
    assert!(failed.is_empty(), "live-fail failed scenarios: {failed:?}");
    // ...and an annotated trigger fails, the way its value says.
    let policy = load(&tight_engine(), fixtures::LIVE_FAIL);
    let annotated = |value: &str| {
        let mut request = request();
        request.objects[0].manifest = format!(
            r#"{{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster", "metadata": {{"name": "demo", "namespace": "default", "annotations": {{"{}": "{value}"}}}}}}"#,
            policy_fixtures::FAIL_LIVE_ANNOTATION
        );
        policy.reconcile(&request).unwrap_err()
    };
    assert!(
        matches!(&annotated("true"), PolicyError::Rejected(capt_policy::Error::Internal(m)) if m == policy_fixtures::LIVE_FAIL_MESSAGE),
        "{:?}",
        annotated("true")
    );
    assert!(matches!(annotated("panic"), PolicyError::Trap { .. }));
    assert!(matches!(
        annotated("loop"),
        PolicyError::CpuTimeExceeded { .. }
    ));
    assert!(matches!(
        annotated("alloc"),
        PolicyError::OutOfMemory { .. }
    ));
}

#[test]
fn a_truncated_fixture_does_not_compile() {
    let err = match WasmPolicy::load(&tight_engine(), &fixtures::truncated(fixtures::V2)) {
        Ok(_) => panic!("the truncated component loaded"),
        Err(e) => e,
    };
    assert!(matches!(err, LoadError::Compile(_)), "{err:?}");
}

#[test]
fn every_variant_of_the_guest_is_a_fixture_and_a_component() {
    let features: Vec<_> = fixtures::ALL.iter().map(|f| f.feature).collect();
    let variants: Vec<_> = policy_fixtures::Variant::ALL
        .iter()
        .map(|v| v.feature())
        .collect();
    assert_eq!(features, variants);
    for fixture in fixtures::ALL {
        let bytes = fixtures::bytes(fixture.path);
        // `\0asm`, version 0x0d, layer 1: a component, not a core module.
        assert_eq!(
            bytes.get(..8),
            Some(&b"\0asm\x0d\0\x01\0"[..]),
            "{}",
            fixture.name
        );
    }
}
