//! End-to-end tests live in `tests/`; this library holds what they share (a real Redis, a
//! real Prometheus).

/// The workspace README's examples, doctested here because this crate depends on the core with
/// the features they need (`axum`, `reqwest`, `azure-core`, and the `entra-dev-authority` crate); the published crates'
/// docs are tested with their default features.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadme;

pub mod prometheus;
pub mod redis;
