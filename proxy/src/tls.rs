//! Loads the server certificate and key (PEM) into a rustls acceptor. The
//! `ring` provider is named explicitly, so no process-wide default is needed.
//! TLS ends at the proxy: the proxy→compute leg is a private Unix socket, so
//! SCRAM (without channel binding) passes through unchanged.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::ProxyError;

pub(crate) fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, ProxyError> {
    let file_error = |what, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |e: rustls::pki_types::pem::Error| ProxyError::TlsFile {
            what,
            path,
            source: std::io::Error::other(e.to_string()),
        }
    };
    let certs = CertificateDer::pem_file_iter(&config.cert)
        .map_err(file_error("certificate", &config.cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error("certificate", &config.cert))?;
    if certs.is_empty() {
        return Err(ProxyError::TlsEmpty {
            what: "certificate",
            path: config.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(file_error("key", &config.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
