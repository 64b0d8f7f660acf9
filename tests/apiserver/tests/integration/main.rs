//! Integration tests: the real `kube::Client` and `kube::runtime` against the in-process
//! API server over HTTP on 127.0.0.1.

mod common;

mod controller;
mod crud;
mod discovery;
mod events_leases;
mod faults;
mod lifecycle;
mod lists;
mod watching;
