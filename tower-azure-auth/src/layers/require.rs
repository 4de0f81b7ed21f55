//! Authorization layers (placeholder).

/// Placeholder.
#[derive(Debug, Clone)]
pub struct RequirePolicy;
/// Placeholder.
#[derive(Debug, Clone)]
pub struct RequireRole;
/// Placeholder.
#[derive(Debug, Clone)]
pub struct RequireClaim;
