//! The operator (`capt-host run`), end to end: the real `kube::Client` over HTTP against the
//! in-process API server (`inproc-apiserver`), the embedded capt-status policy, the CAPT CRDs,
//! and the test playing Crossplane. One binary, so the heavy crates link once.
//!
//! The policy's `pollInterval` is an hour in these tests: every convergence below happens
//! because the operator re-triggered on a change, never because of a poll.
//!
//! - `chain`: the full chain converges on every object, the Cluster included; writes per object;
//!   no GET for cached kinds; the HTTP endpoints;
//! - `steady`: once converged, nothing is written, even by a restarted operator;
//! - `retrigger`: a change re-triggers exactly the triggers that read the object;
//! - `faults`: conflicts, server errors, a concurrent writer, dropped watches and expired
//!   watch history;
//! - `leader`: only the leader writes; a standby takes over after a graceful shutdown; a leader
//!   that loses the Lease stops writing and ends;
//! - `fencing`: two `capt-host run` processes; when the leader's renewals hang or fail, it stops
//!   writing before the standby takes over (the server's request log proves it) and exits
//!   non-zero; SIGTERM with a hung write drains within its deadline and releases the Lease;
//! - `liveness`: `/healthz` fails while a reconcile is stuck;
//! - `invalid`: an object the policy rejects is a Warning event and backoff, not a panic;
//! - `poison`: objects the operator cannot read, and extreme ones, hold up nothing else.

mod chain;
mod common;
#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../../src/embedded.rs"]
mod embedded;
#[path = "../shared/operators.rs"]
mod operators;

/// CAPT objects, shared with the other operator test binary (each uses a subset).
#[allow(dead_code)]
#[path = "../shared/capt.rs"]
mod capt;
use common::{PATIENCE, eventually};

mod faults;
mod fencing;
/// Test plumbing, shared with the other operator test binary (each uses a subset).
#[allow(dead_code)]
#[path = "../shared/harness.rs"]
mod harness;
mod invalid;
mod leader;
mod liveness;
mod poison;
mod retrigger;
mod steady;
