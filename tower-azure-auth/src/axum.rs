//! axum extractors (placeholder)
