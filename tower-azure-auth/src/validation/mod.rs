//! Token validation (placeholder).

/// Placeholder.
#[derive(Debug, Clone)]
pub struct TokenValidator;
