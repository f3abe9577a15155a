//! Why the daemon could not start or had to stop.

use std::path::PathBuf;

/// A daemon failure, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The TUN device could not be created or configured.
    #[error("TUN device {name}: {reason}")]
    Tun {
        /// Interface name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// A socket could not be opened or bound.
    #[error("{what} {address}: {source}")]
    Bind {
        /// Listener, discovery, ...
        what: &'static str,
        /// The address.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The local API socket could not be set up.
    #[error("API socket {}: {reason}", path.display())]
    Api {
        /// The socket path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Dropping privileges failed (the daemon refuses to run with more than it was asked to keep).
    #[error("dropping privileges: {0}")]
    Privileges(String),
    /// The TLS configuration could not be made.
    #[error("TLS: {0}")]
    Tls(String),
    /// The async runtime could not start.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}
