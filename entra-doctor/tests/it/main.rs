//! The `entra-doctor` binary as a real process against a running dev authority on
//! 127.0.0.1 (and offline with a JWKS file): its verdicts are the library's.
#![allow(missing_docs)]

mod client;
mod support;
mod token;
