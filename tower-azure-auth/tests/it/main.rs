//! The integration tests of `tower-azure-auth`, one binary (linking dominates on small machines):
//! real servers on 127.0.0.1 over real HTTP, keys and tokens generated in the tests.
//!
//! `tests/cache_memory.rs` stays a binary of its own: it counts the whole process's heap with a
//! global allocator, which tests running beside it would disturb.
#![allow(unreachable_pub)]

mod credentials_support;
mod support;

mod authorization;
#[cfg(feature = "azure-core")]
mod azure_core_credential;
#[cfg(feature = "azure-core")]
mod azure_sdk;
mod cae;
mod cae_inbound;
mod claims_payload;
mod credential_errors;
mod credentials;
mod faults;
mod grpc;
mod key_vault;
mod key_vault_signing;
mod managed_identity;
mod outbound;
#[cfg(feature = "pkcs11")]
mod pkcs11;
mod readiness;
mod rejection_extensions;
mod resilience;
mod spans;
mod telemetry;
mod tenant;
#[cfg(feature = "tower-http")]
mod tower_http;
mod validation;
