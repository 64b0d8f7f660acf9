//! Parity: every scenario of the embedded policy's crate, run with the wasm component and with
//! the same crate linked natively, must produce the same patch stream (and events, requeues
//! and errors), patch for patch; and the suite must pass and not be empty.

use std::path::Path;

use crate::embedded::DEFAULT_POLICY;
use capt_host_core::scenario::{self, Outcome};
use capt_host_core::{NativePolicy, Policy};
use capt_host_runtime::{Engine, Limits, WasmPolicy};

#[test]
fn wasm_and_native_runs_of_every_scenario_pass_with_identical_patch_streams() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/capt-status/scenarios");
    // A missing or empty suite is an error (`scenario::files`), not a vacuous pass.
    let files = scenario::files(&[dir]).unwrap();
    assert!(!files.is_empty(), "the scenario suite is empty");
    let wasm = WasmPolicy::load(&Engine::new(Limits::default()).unwrap(), DEFAULT_POLICY).unwrap();
    let native = NativePolicy::new(capt_status::metadata(), capt_status::reconcile);
    assert_eq!(wasm.metadata(), native.metadata(), "metadata differs");

    let mut compared = 0;
    for file in &files {
        let scenario = scenario::load(file)
            .unwrap_or_else(|e| panic!("{e}: {:?}", std::error::Error::source(&e)));
        let from_wasm = scenario::run(&scenario, &wasm);
        let from_native = scenario::run(&scenario, &native);
        assert_same(file, &from_wasm, &from_native);
        assert!(
            from_wasm.passed(),
            "{}: the scenario fails: {:#?}",
            file.display(),
            from_wasm.failures
        );
        compared += from_wasm.records.len();
    }
    println!(
        "parity: {} scenarios, {compared} reconciles compared",
        files.len()
    );
}

fn assert_same(file: &Path, wasm: &Outcome, native: &Outcome) {
    let file = file.display();
    for (i, (w, n)) in wasm.records.iter().zip(&native.records).enumerate() {
        assert_eq!(w.step, n.step, "{file}: reconcile {i}: step");
        assert_eq!(w.trigger, n.trigger, "{file}: reconcile {i}: trigger");
        match (&w.result, &n.result) {
            (Ok(w), Ok(n)) => {
                for (j, (wp, np)) in w.patches.iter().zip(&n.patches).enumerate() {
                    assert_eq!(wp, np, "{file}: reconcile {i}, patch {j}");
                }
                assert_eq!(w, n, "{file}: reconcile {i}: response");
            }
            (w, n) => assert_eq!(w, n, "{file}: reconcile {i}: result"),
        }
    }
    assert_eq!(
        wasm.records.len(),
        native.records.len(),
        "{file}: number of reconciles"
    );
    assert_eq!(wasm.failures, native.failures, "{file}: failures");
}
