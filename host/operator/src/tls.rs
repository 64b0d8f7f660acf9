//! The metrics listener's TLS, as controller-runtime's secure metrics server does it: the
//! certificate and key from PEM files (cert-manager's `tls.crt` and `tls.key`), or, when none
//! are given, a self-signed certificate generated in memory at start.
//!
//! Certificates are read once, at start: a rotated certificate is served after a restart.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where the metrics listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// A self-signed certificate for `localhost`, generated in memory at start.
    SelfSigned,
    /// A PEM certificate chain and its PEM private key.
    Files {
        /// The certificate chain (e.g. `/tmp/k8s-metrics-server/metrics-certs/tls.crt`).
        cert: PathBuf,
        /// The private key (e.g. `.../tls.key`).
        key: PathBuf,
    },
}

/// Why the metrics listener's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("could not read the metrics {what} from {path}")]
    Pem {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The self-signed certificate could not be generated.
    #[error("could not generate a self-signed metrics certificate")]
    Generate(#[source] rcgen::Error),
    /// rustls refused the certificate and key (e.g. a key that does not match).
    #[error("the metrics certificate and key cannot be used")]
    Config(#[source] rustls::Error),
}

/// The TLS server configuration for `source`, with the ring provider.
pub(crate) fn server_config(source: &CertSource) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = match source {
        CertSource::SelfSigned => self_signed()?,
        CertSource::Files { cert, key } => {
            let pem = |what, path: &PathBuf| {
                let path = path.clone();
                move |source| TlsError::Pem { what, path, source }
            };
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(pem("certificate", cert))?;
            if chain.is_empty() {
                return Err(pem("certificate", cert)(
                    rustls_pki_types::pem::Error::NoItemsFound,
                ));
            }
            let key = PrivateKeyDer::from_pem_file(key).map_err(pem("key", key))?;
            (chain, key)
        }
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A self-signed certificate for `localhost` and its key.
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certified =
        rcgen::generate_simple_self_signed(["localhost".to_owned()]).map_err(TlsError::Generate)?;
    let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .map_err(|_| TlsError::Generate(rcgen::Error::CouldNotParseKeyPair))?;
    Ok((vec![certified.cert.der().clone()], key))
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP listener whose connections are TLS: handshakes run concurrently, so that a slow or
/// silent client never delays the others; failed ones are logged and dropped.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, std::net::SocketAddr)>>,
}

impl TlsListener {
    /// TLS on `tcp` with `config`.
    pub(crate) fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> Self {
        Self {
            tcp,
            acceptor: TlsAcceptor::from(config),
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => Some((stream, addr)),
                                Ok(Err(error)) => {
                                    tracing::debug!(%addr, %error, "TLS handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::debug!(%addr, "TLS handshake timed out");
                                    None
                                }
                            }
                        });
                    }
                    Err(error) => accept_failed(&error).await,
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// As axum's own listener: a failed accept (e.g. too many open files) is logged, and the
/// next one waits a moment.
async fn accept_failed(error: &io::Error) {
    tracing::warn!(%error, "accepting a metrics connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_usable() {
        server_config(&CertSource::SelfSigned).expect("a self-signed certificate");
    }

    #[test]
    fn missing_or_empty_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("capt-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let missing = CertSource::Files {
            cert: dir.join("absent.crt"),
            key: dir.join("absent.key"),
        };
        assert!(matches!(
            server_config(&missing),
            Err(TlsError::Pem {
                what: "certificate",
                ..
            })
        ));
        let blank = CertSource::Files {
            cert: empty.clone(),
            key: empty,
        };
        assert!(matches!(
            server_config(&blank),
            Err(TlsError::Pem {
                what: "certificate",
                ..
            })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn certificate_files_are_read() {
        let certified = rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
        let dir = std::env::temp_dir().join(format!("capt-tls-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        server_config(&CertSource::Files { cert, key }).expect("the files' certificate");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
