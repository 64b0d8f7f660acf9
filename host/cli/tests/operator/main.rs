//! The operator (`capt-host run`), end to end: the real `kube::Client` over HTTP, the embedded
//! capt-status policy, the CAPT CRDs, and the test playing Crossplane. One binary, so the heavy
//! crates link once.
//!
//! The tests marked *both* run twice (`backend::Backend`): `<test>::in_process` against the
//! in-process test double (`inproc-apiserver`) and `<test>::real` against the real
//! kube-apiserver and etcd (`kube-harness`), where the operator authenticates as the
//! ServiceAccount bound by exactly deploy/'s roles; assertions on the double's request log
//! are made on the double only. The others run on the double only, for the reason given.
//!
//! The policy's `pollInterval` is an hour in these tests: every convergence below happens
//! because the operator re-triggered on a change, never because of a poll.
//!
//! - `chain` (both): the full chain converges on every object, the Cluster included; events; the
//!   HTTP endpoints; on the double, writes per object and no GET for cached kinds;
//! - `steady` (both): once converged, nothing is written, even by a restarted operator;
//! - `retrigger` (both): a change re-triggers exactly the triggers that read the object;
//! - `faults` (double: injected 409/500, dropped watches and expired history): conflicts, server
//!   errors, a concurrent writer, dropped watches and expired watch history;
//! - `leader`: only the leader writes; a standby takes over after a graceful shutdown (both); a
//!   leader that loses the Lease stops writing and ends (double: its request log proves nothing is
//!   written after the loss);
//! - `fencing` (double: hung and failing requests): two `capt-host run` processes; when the
//!   leader's renewals hang or fail, it stops writing before the standby takes over (the server's
//!   request log proves it) and exits non-zero; SIGTERM with a hung write drains within its
//!   deadline and releases the Lease;
//! - `liveness` (double: a hung request): `/healthz` fails while a reconcile is stuck;
//! - `invalid` (double: the real CRD schema refuses the object): an object the policy rejects is a
//!   Warning event and backoff, not a panic;
//! - `output` (double: proves nothing was sent with its request log): a response patching an object
//!   the policy was not given, or without its resourceVersion, is refused and nothing of it is
//!   written;
//! - `secrets` (double: counts Secret GETs in its request log): Secrets are read only in the
//!   trigger's namespace and the configured ones;
//! - `contention` (double: counts status patches in its request log): a second writer of the same
//!   status is reported once and not fought.
//! - `poison` (double: stores objects the real server refuses): objects the operator cannot read,
//!   and extreme ones, hold up nothing else.

mod chain;
mod common;
mod contention;
#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../../src/embedded.rs"]
mod embedded;
#[path = "../shared/operators.rs"]
mod operators;

#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../shared/backend.rs"]
mod backend;
/// CAPT objects, shared with the other operator test binary (each uses a subset).
#[allow(dead_code)]
#[path = "../shared/capt.rs"]
mod capt;
#[path = "../shared/grants.rs"]
mod grants;
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
mod output;
mod poison;
mod retrigger;
mod secrets;
mod steady;
