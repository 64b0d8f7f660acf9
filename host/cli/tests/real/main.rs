//! Tests against the real kube-apiserver and etcd (`kube-harness`): the first run builds them
//! from the pinned Go modules (minutes; `tests/kube/build.sh` prints its progress), later runs
//! reuse the cached binaries. One binary, so the heavy crates link once.
//!
//! - `harness`: the server starts with the CRDs, refuses anonymous and unknown users, and both
//!   processes are gone once it is dropped;
//! - `schemas`: every patch of every scenario of the policy's suite is accepted by the real
//!   CRDs; a 100 KB Terraform error and a Cluster nested 9,950 levels deep do not stop the
//!   operator from reconciling the other objects;
//! - `rbac`: the operator, as the ServiceAccount `deploy/` binds, converges the demo world;
//!   without any one of its rules it does not (or cannot authorize a metrics scrape), and reads outside the grants are refused;
//! - `metrics`: the operator, with `deploy/`'s grants, serves `/metrics` and `/policy` over
//!   HTTPS to a ServiceAccount bound to the metrics reader role only (403 for others, 401
//!   without a valid token); the probes stay plain HTTP;
//! - `differential`: one script of requests answered alike by the real server and the
//!   in-process test double (`inproc-apiserver`);
//! - `install`: `deploy/` installed with the pinned `kubectl` as users do: deleting the operator
//!   keeps the CRDs and CAPT objects, `deploy/policy` and the release's `install.yaml` apply.

mod common;
mod differential;
#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../../src/embedded.rs"]
mod embedded;
#[path = "../shared/grants.rs"]
mod grants;
mod harness;
mod install;
mod metrics;
#[path = "../shared/operators.rs"]
mod operators;
mod rbac;
mod schemas;
mod world;
