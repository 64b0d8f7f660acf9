//! A small, faithful in-process Kubernetes API server for tests and demos.
//!
//! It speaks the Kubernetes HTTP/JSON API on `127.0.0.1` (ephemeral port) so that the real
//! [`kube::Client`] and `kube::runtime` (watcher, reflector, Controller, events `Recorder`,
//! lease-based leader election) run against it unmodified. It knows no particular custom
//! resource: kinds are registered by POSTing CustomResourceDefinitions through the client or
//! with [`ApiServer::register`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use inproc_apiserver::{ApiServer, stats::Verb};
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, PostParams};
//!
//! let server = ApiServer::start().await?;
//! let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("example".into());
//! cms.create(&PostParams::default(), &cm).await?;
//! assert_eq!(server.requests().count(Verb::Create, "configmaps"), 1);
//! assert!(server.store().get::<ConfigMap>(Some("default"), "example").is_some());
//! server.faults().conflict_next_writes(1);
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! See the crate README for what is implemented and where it differs from a real
//! kube-apiserver.

mod builtin;
pub mod error;
pub mod faults;
mod fields;
mod handlers;
mod ops;
pub mod patch;
pub mod registry;
pub mod selectors;
mod server;
pub mod stats;
pub mod store;
mod util;
mod watch;

pub use error::{ApiError, Reason, ServerError};
pub use faults::RequestFilter;
pub use registry::ResourceKind;
pub use server::{ApiServer, Faults, ServerConfig, StoreReader};
pub use stats::{LoggedRequest, RequestKey, RequestStats, Verb};
