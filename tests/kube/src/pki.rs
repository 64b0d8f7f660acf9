//! The server's credentials, generated for each server: a CA, a serving certificate for
//! `127.0.0.1`/`localhost` signed by it, and the service-account signing key.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::Error;

/// The files kube-apiserver is given, and the CA's certificate for clients.
pub struct Pki {
    /// The CA certificate (PEM) clients trust.
    pub ca_pem: String,
    /// The serving certificate (PEM file).
    pub serving_cert: PathBuf,
    /// The serving certificate's key (PEM file).
    pub serving_key: PathBuf,
    /// The key service-account tokens are signed with (PEM file).
    pub service_account_key: PathBuf,
    /// Its public half, which verifies them (PEM file).
    pub service_account_public_key: PathBuf,
}

impl Pki {
    /// Generates the credentials into `dir`.
    pub fn generate(dir: &Path) -> Result<Self, Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "capt-status test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate()?;
        let mut serving =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let serving_cert = serving.signed_by(&serving_key, &ca)?;

        let service_account_key = KeyPair::generate()?;
        let write = |name: &str, text: String| -> Result<PathBuf, Error> {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(Error::io(format!("writing {}", path.display())))?;
            Ok(path)
        };
        Ok(Self {
            ca_pem: ca_cert.pem(),
            serving_cert: write("serving.crt", serving_cert.pem())?,
            serving_key: write("serving.key", serving_key.serialize_pem())?,
            service_account_key: write("service-account.key", service_account_key.serialize_pem())?,
            service_account_public_key: write(
                "service-account.pub",
                service_account_key.public_key_pem(),
            )?,
        })
    }
}
