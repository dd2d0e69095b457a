//! The crate-boundary error of [`crate::serve`]: what can stop the proxy as a
//! whole (per-connection failures are answered on the wire and counted in
//! [`crate::ProxyMetrics`], never returned here).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("read TLS {what} from {path}: {source}")]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no {what} found in {path}")]
    TlsEmpty { what: &'static str, path: PathBuf },
    #[error("build TLS configuration: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
    #[error("proxy listener: {0}")]
    Io(#[from] std::io::Error),
}
