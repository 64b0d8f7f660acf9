//! # policy-fixture-artifacts: the `policy-fixtures` components, built for tests
//!
//! `build.rs` builds every variant of the `policy-fixtures` guest (`tests/fixture-guests`) with a
//! nested cargo and generates one constant per variant, holding the path of its component:
//! [`V2`], [`WRONG`], [`LOOP`], [`ALLOC`], [`PANIC`], [`WASI`], [`OLD_WORLD`] and [`LIVE_FAIL`]. [`ALL`] lists
//! them and [`foreach_fixture!`] expands a macro once per fixture, so a test suite can check at
//! compile time that it uses every one. [`bytes`] reads a component, [`truncated`] cuts one
//! short. `tests/fixture-guests/README.md` says what each fixture is for.
//!
//! ```no_run
//! let policy_bytes = policy_fixture_artifacts::bytes(policy_fixture_artifacts::V2);
//! # drop(policy_bytes);
//! ```

use std::path::Path;

/// One fixture component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixture {
    /// The name of its constant, e.g. `OLD_WORLD`.
    pub name: &'static str,
    /// The `policy-fixtures` feature it is built with, e.g. `old-world`.
    pub feature: &'static str,
    /// The target it is built for, e.g. `wasm32-unknown-unknown`.
    pub target: &'static str,
    /// The path of the component.
    pub path: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

/// The bytes of the component at `path` (one of the constants of this crate).
///
/// # Panics
///
/// If the file cannot be read: the fixtures are test inputs, and a missing one is a broken
/// build.
pub fn bytes(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("could not read the fixture {}: {e}", path.display()))
}

/// The first half of the component at `path`: a file cut short in transfer, which is still a
/// component by its header but does not compile.
///
/// # Panics
///
/// Like [`bytes`].
pub fn truncated(path: impl AsRef<Path>) -> Vec<u8> {
    let mut bytes = bytes(path);
    bytes.truncate(bytes.len() / 2);
    bytes
}
