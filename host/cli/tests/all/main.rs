//! Integration tests, in one binary so the heavy crates link once.
//!
//! - `wasm`: loading and calling components, with the misbehaving guests of `guests`;
//! - `embedding`: Node.js and Python hosts agree with `capt-host` (tests/embedding/run.sh);
//! - `cli`: the `capt-host` binary on the fixtures in `tests/fixtures/`;
//! - `parity`: the embedded policy as wasm vs natively, over its scenario files;
//! - `fuzz`: the embedded policy through wasm on mutated worlds and settings (property tests);
//! - `policy_files`: the files shipped with the default policy agree with the component;
//! - `readme`: the README's `capt-host eval` and `capt-host test` examples run as written;
//! - `layers`: the host's crates keep their dependency rules (`cargo metadata`).
//! - `sandbox`: every call starts pristine, budgets count CPU time, calls wait for a busy pool.

mod cli;
#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../../src/embedded.rs"]
mod embedded;
mod embedding;
mod fuzz;
mod guests;
mod layers;
mod parity;
mod policy_files;
mod readme;
mod sandbox;
mod wasm;
