//! Outbound credentials (placeholder while the credentials module is written).

/// A certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// Placeholder.
    #[error("placeholder")]
    Placeholder,
}
