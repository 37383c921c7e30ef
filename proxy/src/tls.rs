//! TLS termination with rustls: certificate chain and key from PEM files,
//! HTTP/2 offered by ALPN before HTTP/1.1.
//!
//! A wildcard certificate for `*.<domain>` covers every Space host. The ring
//! provider is named explicitly so the choice does not depend on which
//! rustls features other crates in the build enable. This module only builds
//! the acceptor; handshakes happen per connection in [`crate::server`].

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Errors loading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or has no certificate.
    #[error("failed to read certificates from {0}: {1}")]
    Certs(String, String),
    /// The key file could not be read or has no key.
    #[error("failed to read private key from {0}: {1}")]
    Key(String, String),
    /// rustls refused the pair.
    #[error("failed to build TLS config: {0}")]
    Config(#[from] rustls::Error),
}

/// Builds an acceptor from PEM files.
pub fn acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certs(cert_path.display().to_string(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Certs(
            cert_path.display().to_string(),
            "no certificate found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| TlsError::Key(key_path.display().to_string(), e.to_string()))?;
    acceptor_from(certs, key)
}

/// Builds an acceptor from parsed material.
pub fn acceptor_from(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
