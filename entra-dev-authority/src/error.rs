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
    /// A certificate file named by a registration (`certificateFiles`) could not be read;
    /// the message says how to create it when it does not exist.
    #[error("cannot read the certificate file `{}` of the registration{}", path.display(), create_hint(path, source))]
    CertificateFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written (a generated certificate or key).
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file (or the directory that could not be created).
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

/// For a certificate file that does not exist: the command that creates it.
fn create_hint(path: &std::path::Path, source: &std::io::Error) -> String {
    if source.kind() == std::io::ErrorKind::NotFound {
        format!(
            " (it does not exist; create it with `dev-authority --generate-certificate CN=<name> --out {}`)",
            path.display()
        )
    } else {
        String::new()
    }
}
