//! The real Kubernetes API server for tests: `kube-apiserver` and `etcd`, built from the Go
//! modules pinned in this folder (`build.sh`, cached outside the clone), started on loopback
//! with a generated CA, a static admin token, RBAC and service-account keys, and stopped when
//! the [`KubeServer`] is dropped (also when a test panics, and when the test process dies).
//!
//! ```no_run
//! # async fn example() -> Result<(), kube_harness::Error> {
//! let server = kube_harness::KubeServer::start().await?;
//! server.install(&kube_harness::crds::all()?).await?;
//! let admin: kube::Client = server.client();
//! # Ok(()) }
//! ```

pub mod binaries;
pub mod crds;
mod error;
mod pki;
mod process;
pub mod rbac;
mod server;

pub use error::Error;
pub use server::KubeServer;
