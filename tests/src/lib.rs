//! End-to-end tests live in `tests/`; this library holds what they share (a real Redis, a
//! real Prometheus).

/// The workspace README's examples, doctested here because this crate depends on the core with
/// the features they need (`axum`, `reqwest`, `azure-core`, and the `entra-dev-authority` crate); the published crates'
/// docs are tested with their default features. The README shows each Rust block without
/// rustdoc's hidden lines (it reads as plain Markdown); `README-doctests.md` holds the same
/// blocks with them, and `tests/it/readme.rs` checks that the two agree.
#[cfg(doctest)]
#[doc = include_str!("../README-doctests.md")]
struct WorkspaceReadme;

pub mod prometheus;
pub mod redis;
