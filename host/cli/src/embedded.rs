//! What the binary embeds, built by `build.rs`: the default policy component (the workspace's
//! guest crate) and its scenario suite, the default canary of hot swaps.
//!
//! The package's tests and benchmarks include this file too (`#[path]`).

use std::sync::Arc;

use capt_host_swap::{Canary, Suite};

/// The default policy component.
pub const DEFAULT_POLICY: &[u8] = include_bytes!(env!("CAPT_HOST_DEFAULT_POLICY"));

/// The name of the default policy, the one its suite is written for.
pub const DEFAULT_POLICY_NAME: &str = "capt-status";

/// The default policy's scenario files: `(path relative to the suite, content)`, sorted.
const SUITE: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/canary-scenarios.rs"));

/// The default policy's scenario suite, as the canary of hot swaps (a module of another
/// policy skips it).
pub fn canary() -> Canary {
    Canary::Suite(Arc::new(Suite {
        policy: DEFAULT_POLICY_NAME.to_owned(),
        label: "embedded".to_owned(),
        files: SUITE
            .iter()
            .map(|(file, text)| ((*file).to_owned(), (*text).to_owned()))
            .collect(),
    }))
}

/// How many scenarios the default suite has.
#[allow(dead_code, reason = "used by the tests that include this file")]
pub fn suite_len() -> usize {
    SUITE.len()
}
