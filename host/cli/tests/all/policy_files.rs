//! The files shipped beside the default policy agree with the component itself.

use std::path::Path;

use capt_host_core::Policy;

use capt_host_runtime::{Engine, Limits, WasmPolicy};

use crate::embedded::DEFAULT_POLICY;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn the_shipped_settings_file_equals_the_policy_defaults() {
    let policy =
        WasmPolicy::load(&Engine::new(Limits::default()).unwrap(), DEFAULT_POLICY).unwrap();
    let reported: serde_json::Value =
        serde_json::from_str(&policy.metadata().default_settings).unwrap();
    let shipped: serde_json::Value =
        serde_yaml_ng::from_str(&repo_file("policies/capt-status/settings.yaml")).unwrap();
    assert_eq!(shipped, reported);
}

#[test]
fn the_release_component_stays_under_300_kb() {
    // The embedded component is built with the size-tuned `guest` profile (see host/cli/build.rs).
    let size = DEFAULT_POLICY.len();
    assert!(size < 300_000, "the policy component grew to {size} bytes");
}
