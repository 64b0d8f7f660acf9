//! Integration tests, in one binary so the heavy crates link once.
//!
//! - `wasm`: loading and calling components, with the misbehaving guests of `guests`;
//! - `cli`: the `capt-host` binary on the fixtures in `tests/fixtures/`;
//! - `parity`: the embedded policy as wasm vs natively, over its scenario files.

mod cli;
mod guests;
mod parity;
mod wasm;
