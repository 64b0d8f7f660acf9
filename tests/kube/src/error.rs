//! The harness's errors.

use std::path::PathBuf;

/// Why the real server could not be built, started or set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `tests/kube/build.sh` failed (its output was printed as it ran).
    #[error(
        "building kube-apiserver, etcd and kubectl failed ({0}); see the output of tests/kube/build.sh above"
    )]
    Build(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A certificate or key could not be generated.
    #[error("generating a certificate: {0}")]
    Pki(#[from] rcgen::Error),
    /// A server process exited before it was ready; its log is quoted.
    #[error("{name} exited before it was ready ({status}); the end of its log {log}:\n{tail}")]
    Exited {
        /// `etcd` or `kube-apiserver`.
        name: &'static str,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// A server process did not become ready in time.
    #[error("{name} was not ready within {seconds} s; the end of its log {log}:\n{tail}")]
    NotReady {
        /// `etcd` or `kube-apiserver`.
        name: &'static str,
        /// How long it was given.
        seconds: u64,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// The client could not be configured or a request failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The cause.
        source: kube::Error,
    },
    /// A manifest (CRD, RBAC) file is not what was expected.
    #[error("{file}: {message}")]
    Manifest {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A CustomResourceDefinition was not established in time.
    #[error("the CustomResourceDefinition {0} was not established within 60 s")]
    NotEstablished(String),
}

impl Error {
    /// An [`Error::Io`] saying what was being done.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    /// An [`Error::Kube`] saying what was being done.
    pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Self::Kube { what, source }
    }
}
