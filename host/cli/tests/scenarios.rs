//! One named test per scenario file of `policies/capt-status/scenarios/`, run twice: through the
//! policy's wasm component (`wasm::<file>`) and with the policy crate linked natively
//! (`native::<file>`). `cargo test -p capt-policy-suite -- <part of a file name>` runs a few.
//!
//! An empty or missing suite is a failure, not a pass.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use capt_host_core::scenario::{self, Outcome};
use capt_host_core::{NativePolicy, Policy};
use capt_host_runtime::{Engine, Limits, WasmPolicy};

#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../src/embedded.rs"]
mod embedded;
use embedded::DEFAULT_POLICY;
use libtest_mimic::{Arguments, Failed, Trial};

/// The wasm component, compiled once for every trial that needs it.
fn wasm() -> Result<&'static WasmPolicy, Failed> {
    static POLICY: OnceLock<Result<WasmPolicy, String>> = OnceLock::new();
    POLICY
        .get_or_init(|| {
            let engine = Engine::new(Limits::default()).map_err(|e| e.to_string())?;
            WasmPolicy::load(&engine, DEFAULT_POLICY).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Failed::from(format!("the policy component does not load: {e}")))
}

/// The suite's directory.
fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/capt-status/scenarios")
}

/// Runs the scenario file at `path` with `policy`; the failure lists every unmet expectation.
fn check(path: &Path, policy: &dyn Policy) -> Result<(), Failed> {
    let scenario = scenario::load(path).map_err(|e| {
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        Failed::from(format!("{e}: {}", cause.unwrap_or_default()))
    })?;
    let outcome = scenario::run(&scenario, policy);
    if outcome.passed() {
        Ok(())
    } else {
        Err(Failed::from(describe(&outcome)))
    }
}

/// The failures of an outcome, as `capt-host test` prints them.
fn describe(outcome: &Outcome) -> String {
    let mut text = String::new();
    for failure in &outcome.failures {
        text.push_str(&format!("step {}: {}\n", failure.step, failure.message));
        if let Some(diff) = &failure.diff {
            text.push_str(diff);
            text.push('\n');
        }
    }
    text
}

fn main() {
    let args = Arguments::from_args();
    let dir = suite();
    let files = match scenario::files(std::slice::from_ref(&dir)) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("the scenario suite {} cannot be used: {e}", dir.display());
            std::process::exit(101);
        }
    };
    let native = Arc::new(NativePolicy::new(
        capt_status::metadata(),
        capt_status::reconcile,
    ));
    let mut trials = Vec::new();
    for file in files {
        let name = file
            .strip_prefix(&dir)
            .unwrap_or(&file)
            .with_extension("")
            .display()
            .to_string();
        let path = file.clone();
        trials.push(Trial::test(format!("wasm::{name}"), move || {
            check(&path, wasm()?)
        }));
        let native = Arc::clone(&native);
        trials.push(Trial::test(format!("native::{name}"), move || {
            check(&file, native.as_ref())
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
