//! Inbound layer (placeholder).

/// Placeholder.
#[derive(Debug, Clone)]
pub struct ValidateAccessTokenLayer;
/// Placeholder.
#[derive(Debug, Clone)]
pub struct ValidateAccessToken;
