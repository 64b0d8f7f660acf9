//! Manifest checks: the CRDs (`policies/capt-status/crds`), the samples, every object of every
//! scenario, `deploy/`, the `Dockerfile` and `.dockerignore`, read relative to this crate.
//!
//! Objects are validated against their CRD with the API server's semantics (see `schema`): a
//! field the policy writes that the schema does not declare fails here, because the real API
//! server would silently drop it.

mod builtin;
mod crds;
mod deploy;
mod objects;
mod schema;
mod support;
