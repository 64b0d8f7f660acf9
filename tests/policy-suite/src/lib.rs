//! The capt-status behaviour suite under `cargo test` (`tests/scenarios.rs`): every scenario file
//! of `policies/capt-status/scenarios/` is a named test, once through the wasm component and once
//! with the policy crate linked natively, so a failure names the scenario and the build.
