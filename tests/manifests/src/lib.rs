//! Test-only crate: everything is in `tests/checks/`. It reads, relative to this crate,
//! `policies/capt-status/{crds,samples,scenarios}`, `deploy/` and the `Dockerfile`, and proves
//! that they agree with each other and with what the API server would accept and keep.
