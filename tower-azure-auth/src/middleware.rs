//! reqwest middleware (placeholder)
