//! TLS for wss/https (`server.tls_cert` + `server.tls_key`), with rustls 0.23 on
//! the `ring` provider: memory-safe, no OpenSSL, and no extra C toolchain.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ConfigError;

fn bad(key: &str, message: String) -> ConfigError {
    ConfigError::Key {
        key: key.to_string(),
        message,
    }
}

/// Builds the server's TLS config from PEM files; any problem names the key.
pub fn server_config(cert_path: &str, key_path: &str) -> Result<rustls::ServerConfig, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| bad("server.tls_cert", format!("cannot read `{cert_path}`: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            bad(
                "server.tls_cert",
                format!("`{cert_path}` is not PEM certificates: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(bad(
            "server.tls_cert",
            format!("`{cert_path}` holds no certificate"),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        bad(
            "server.tls_key",
            format!("`{key_path}` holds no usable private key: {e}"),
        )
    })?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("server.tls_cert", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            bad(
                "server.tls_key",
                format!("key does not fit the certificate: {e}"),
            )
        })
}
