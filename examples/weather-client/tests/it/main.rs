//! The `weather-client` example's tests, one binary: the library path and the built binary
//! against the dev authority (and its Key Vault) on 127.0.0.1.
#![allow(unreachable_pub, missing_docs)]

mod key_vault;
mod process;
mod run;
mod signing;
