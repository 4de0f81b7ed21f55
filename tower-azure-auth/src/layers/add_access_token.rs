//! Outbound layer (placeholder).

/// Placeholder.
#[derive(Debug, Clone)]
pub struct AddAccessTokenLayer;
/// Placeholder.
#[derive(Debug, Clone)]
pub struct AddAccessToken;
