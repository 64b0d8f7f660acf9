//! Hot swaps of the policy module (`capt_host::swap`, `capt-host run --module FILE`): the
//! pipeline on its own, and operators swapping their module while they run, through the real
//! `kube::Client` over HTTP against the in-process API server (`inproc-apiserver`), with the
//! fixture components of `tests/fixture-guests` (`policy-fixture-artifacts`). "v1" is the
//! embedded default policy, "v2" the `v2` fixture (its Ready=True messages end with
//! ` (policy v2)`).
//!
//! - `pipeline`: every bad module is rejected by `Swapper::check` with its reason label; v2
//!   passes the canary; the compile cache (hits, a corrupt entry, a shared directory);
//! - `rejections`: an operator keeps serving v1 through every bad module written over its file,
//!   reporting each on `/policy`, in metrics and in events (a megabyte of nested blocks among
//!   them, refused before it is compiled);
//! - `load`: v1 -> v2 while objects keep changing: no reconcile error, and every object made
//!   ready afterwards shows v2's mark;
//! - `shadow`: v2 in shadow mode computes next to v1, its differences are counted and shown,
//!   nothing it computes is written;
//! - `rollback`: a promoted module failing live reconciles (`live-fail`) is rolled back and
//!   not tried again;
//! - `fallback`: a module file missing, broken or failing its canary at start leaves the
//!   embedded policy serving (reported on `/policy` and in metrics) until the file holds a
//!   module that passes;
//! - `configmap`: the kubelet's `..data` symlink swap is picked up; every trigger is reconciled
//!   again after a promotion;
//! - `sandbox`: a module that loops, panics or exhausts memory on some objects fails those
//!   reconciles only;
//! - `verdicts`: what one replica judged of a module (ConfigMap verdicts) the others follow,
//!   at start and on a swap; the first verdict stands; without access each judges alone;
//!   `capt-host run` records its verdict in the ConfigMap of its default name;
//! - `measure`: the time from a file change to the promotion of the default module, with and
//!   without the compile cache (printed; run with `--nocapture` to see it).
//!
//! Tests never assert timings: every wait is bounded by a generous `PATIENCE` only.

mod configmap;
#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../../src/embedded.rs"]
mod embedded;
mod fallback;
/// Hand-written guests, shared with the `all` binary (this one uses the hostile module).
#[allow(dead_code)]
#[path = "../all/guests.rs"]
mod guests;
mod load;
mod measure;
mod pipeline;
mod rejections;
mod rollback;
mod sandbox;
mod shadow;
mod support;
mod verdicts;

#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../shared/backend.rs"]
mod backend;
/// CAPT objects, shared with the other operator test binary (each uses a subset).
#[allow(dead_code)]
#[path = "../shared/capt.rs"]
mod capt;
#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../shared/grants.rs"]
mod grants;
use support::{PATIENCE, eventually};

/// Test plumbing, shared with the other operator test binary (each uses a subset).
#[allow(dead_code)]
#[path = "../shared/harness.rs"]
mod harness;
