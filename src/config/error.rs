//! Why a configuration was refused. Every loader, check and builder of the
//! config (TOML, environment, validation, the key and certificate files read
//! when the hub is prepared) reports through this one type, and the binary
//! exits 2 on any of it.

/// Why a configuration was refused; each variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error.
    #[error("config syntax error in {origin}: {message}")]
    Syntax {
        /// File name or "embedded default".
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key with a wrong type, an unknown key, or a value out of range.
    #[error("invalid config key `{key}`: {message}")]
    Key {
        /// Dotted key path, e.g. `server.workers`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}
