//! What a valid [`Config`] turns into before the hub can serve it: the JWT
//! verifier with its key parsed, the TLS config with its certificate and key
//! read, the node id. Built once, by [`Prepared::new`]; `--check-config` builds
//! it and stops, serving builds it and hands it to [`crate::server::Hub::bind`],
//! so a config that passes the check is exactly one the hub can start with, and
//! no key file is read twice.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::{Config, ConfigError};

/// A config and the runtime objects built from it.
pub struct Prepared {
    /// The config, shared by every part of the running hub.
    pub config: Arc<Config>,
    /// `cluster.node_id`, or hostname-pid when it is empty.
    pub node: String,
    /// The claims seam, with the JWT key (`auth.*`) parsed.
    pub auth: Arc<Authenticator>,
    /// `server.tls_cert` + `server.tls_key`, when both are set.
    pub tls: Option<rustls::ServerConfig>,
}

impl Prepared {
    /// Builds what `config` needs; a key or certificate file that cannot be
    /// used is a [`ConfigError`] naming its key, like any invalid value.
    pub fn new(config: Config) -> Result<Prepared, ConfigError> {
        let auth = Arc::new(Authenticator::new(&config.auth)?);
        let server = &config.server;
        let tls = match server.tls_cert.is_empty() {
            true => None,
            false => Some(crate::tls::server_config(
                &server.tls_cert,
                &server.tls_key,
            )?),
        };
        Ok(Prepared {
            node: config.node_id(),
            config: Arc::new(config),
            auth,
            tls,
        })
    }
}
