//! testing (placeholder)
