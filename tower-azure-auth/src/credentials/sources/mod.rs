//! Where credentials and tokens come from besides a certificate in hand: Azure Key Vault,
//! managed identity (IMDS, App Service), workload identity (federated token files, managed
//! identity assertions), the azure-core bridge and the process environment. Each source
//! speaks the [`credential`](super::credential) vocabulary; the engine
//! ([`ConfidentialClient`](crate::credentials::ConfidentialClient)) knows none of them.

#[cfg(feature = "azure-core")]
pub(super) mod azure_credential;
#[cfg(feature = "azure-core")]
mod azure_token_credential;
pub(super) mod environment;
pub(super) mod key_vault;
pub(super) mod key_vault_signing;
pub(super) mod managed_identity;
#[cfg(feature = "pkcs11")]
pub(super) mod pkcs11;
pub(super) mod workload_identity;
