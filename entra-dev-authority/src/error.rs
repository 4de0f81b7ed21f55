//! [`DevAuthorityError`]: what can go wrong when the dev authority is configured, started or
//! asked to mint a token. Its own type, so the dev authority shares no error vocabulary with
//! the library it tests.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the dev authority could not be built, started, or do what a test asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevAuthorityError {
    /// A registration, an option or an argument is not usable: an id that is not a GUID, a
    /// grant naming an unknown API, a PEM without an RSA certificate, a token asked of an
    /// API that is not registered.
    #[error("invalid {key}: {reason}")]
    Invalid {
        /// What was given (`DevApplication:Grants`, `certificate`, `IssueToken:Api`…).
        key: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A file (a registration file, a certificate it names) could not be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A registration file is not JSON of the expected shape.
    #[error("cannot parse the registration file `{}`", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The JSON parser's error, with line and column.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The server could not listen on its address.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key, a certificate or a random value could not be generated (the cryptography
    /// library refused).
    #[error("cannot generate {what}: {reason}")]
    Generate {
        /// What was being generated (`a signing key`, `a certificate`…).
        what: &'static str,
        /// The library's reason.
        reason: String,
    },
}
