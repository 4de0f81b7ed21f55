//! Outbound credentials: client certificates, client assertions, [`ConfidentialClient`] with
//! its token cache, and [`TokenSource`] for the layers that attach tokens.
//!
//! The client-credentials flow with a certificate, as MSAL does it: the certificate's private
//! key (in the process, in Key Vault or in an HSM: a [`Signer`]) signs a short-lived client
//! assertion (RFC 7523) for the token endpoint; the authority
//! answers with an access token for `api://…/.default`, which is cached and refreshed ahead of
//! its expiry.
//!
//! ```
//! use tower_azure_auth::{Authority, credentials::*};
//! # use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
//! # let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
//! # let pkcs8: Pkcs8V1Der = key.as_der().unwrap();
//! # let rc_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
//! #     &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref()), &rcgen::PKCS_RSA_SHA256).unwrap();
//! # let cert = rcgen::CertificateParams::new(vec!["weather-client".into()]).unwrap().self_signed(&rc_key).unwrap();
//! # let pem = format!("{}{}", cert.pem(), rc_key.serialize_pem());
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let certificate = ClientCertificate::from_pem(pem.as_bytes())?;
//!
//! // The assertion MSAL would send to Entra ID: PS256 with x5t#S256.
//! let assertion = certificate.client_assertion(&AssertionRequest {
//!     client_id: "b178f3a5-7588-492a-924f-72d7887b7e48",
//!     audience: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
//!     algorithm: AssertionAlgorithm::Ps256,
//!     send_x5c: false,
//!     now: 1_700_000_000,
//! })?;
//! assert_eq!(assertion.split('.').count(), 3);
//!
//! let client = ConfidentialClient::builder("b178f3a5-7588-492a-924f-72d7887b7e48")
//!     .authority(Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
//!     .certificate(certificate)
//!     .build()?;
//! // Refused before any request: client-credential scopes must end with /.default.
//! let error = client.acquire_token_for_client(&["api://weather/read"]).await.unwrap_err();
//! assert!(matches!(error, TokenError::InvalidScope { .. }), "{error}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Credential sources
//!
//! [`CredentialDescriptions`] reads Microsoft.Identity.Web's `ClientCertificates` /
//! `ClientCredentials` entries (tried in order, the first that loads wins, every failure
//! explained). Every `SourceType` this crate loads, with an example:
//!
//! ```json
//! {"SourceType": "KeyVault", "KeyVaultUrl": "https://contoso.vault.azure.net", "KeyVaultCertificateName": "ServiceApiCert"}
//! {"SourceType": "KeyVaultSigning", "KeyVaultUrl": "https://contoso.vault.azure.net", "KeyVaultCertificateName": "ServiceApiCert"}
//! {"SourceType": "Pkcs11", "Pkcs11Module": "/usr/lib/softhsm/libsofthsm2.so", "Pkcs11TokenLabel": "weather", "Pkcs11KeyLabel": "weather-client", "Pkcs11PinFile": "/run/secrets/hsm-pin"}
//! {"SourceType": "Path", "CertificateDiskPath": "ServiceApiCert.pfx", "CertificatePassword": "…"}
//! {"SourceType": "Path", "CertificateDiskPath": "weather-client.pem"}
//! {"SourceType": "Base64Encoded", "Base64EncodedValue": "MIIKmQIBAzCCCl8GCSqGSIb3DQEHAaCC…"}
//! {"SourceType": "ClientSecret", "ClientSecret": "…"}
//! {"SourceType": "SignedAssertionFilePath", "SignedAssertionFileDiskPath": "/var/run/secrets/azure/tokens/azure-identity-token"}
//! {"SourceType": "SignedAssertionFromManagedIdentity", "ManagedIdentityClientId": "5a9f0c1e-…", "TokenExchangeUrl": "api://AzureADTokenExchange"}
//! ```
//!
//! - `KeyVault`: [`KeyVaultCertificate`], the vault's token from the managed identity
//!   (`ManagedIdentityClientId`, else `AZURE_CLIENT_ID`, else system-assigned).
//! - `KeyVaultSigning` (an extension of Microsoft.Identity.Web's source types):
//!   [`KeyVaultSigning`]; the certificate's key signs each assertion inside the vault
//!   (`keys/{name}/{version}/sign`) and never enters the process; same vault token as
//!   `KeyVault`.
//! - `Pkcs11` (an extension, feature `pkcs11`): `Pkcs11Source`; a key in an HSM signs, the
//!   certificate from the token or `CertificateDiskPath`.
//! - `Path` / `Base64Encoded`: PKCS#12 (with `CertificatePassword`) or PEM.
//! - `SignedAssertionFilePath`: [`FederatedTokenFile`]; the path defaults to
//!   `AZURE_FEDERATED_TOKEN_FILE` (AKS workload identity, see also [`WorkloadIdentity`]).
//! - `SignedAssertionFromManagedIdentity`: [`ManagedIdentityAssertion`] (federated identity
//!   credential trusting a managed identity).
//!
//! [`ManagedIdentityCredential`] is also a [`TokenSource`] of its own, for calling Azure
//! APIs (or the layers) with the machine's identity. With the `azure-core` feature,
//! `AzureCoreCredential` makes any credential of the official Azure SDK (`azure_identity`'s
//! `ManagedIdentityCredential`, `WorkloadIdentityCredential`, …) a [`TokenSource`] too.
//!
//! # Many replicas
//!
//! [`SharedTokenCache`] (`CallApi:TokenCache` in configuration) puts a store shared by the
//! replicas of a client under the in-memory cache — Redis with the `redis` feature
//! (`RedisTokenStore`), or any [`TokenCacheStore`]: a token one replica obtained serves the
//! others, one replica at a time asks the authority, entries are sealed with
//! [`EncryptionKeys`], and a store that fails is a miss, never an error.

mod assertion;
mod cache;
#[doc(hidden)]
pub mod cache_bench;
mod certificate;
mod claims;
mod client;
mod credential;
mod descriptions;
mod observe;
mod observer;
mod protocol;
#[cfg(feature = "redis")]
mod redis_store;
mod refresh_event;
mod resilience;
mod rotation;
mod sealing;
mod shared_cache;
mod signer;
mod sources;
mod store;
mod token;
mod token_source;
mod transport;
mod wire;
mod x509;

pub use crate::error::CertificateError;
pub use assertion::{
    signed_assertion, AssertionAlgorithm, AssertionRequest, ASSERTION_LIFETIME_SECONDS,
};
#[doc(hidden)]
pub use certificate::private_keys_loaded_on_this_thread;
pub use certificate::{
    thumbprints, CertificateLoader, ClientCertificate, Thumbprints, MIN_RSA_BITS,
};
pub use client::{AcquireTokenOptions, ConfidentialClient, ConfidentialClientBuilder};
pub use credential::{
    AssertionProvider, BoxFuture, ClientCredential, ClientSecret, CredentialContext,
    CredentialSource,
};
pub use descriptions::CredentialDescriptions;
pub use observer::{CertificateEvent, CertificateInfo, CertificateObserver};
#[cfg(feature = "redis")]
pub use redis_store::RedisTokenStore;
pub use refresh_event::BackgroundRefreshEvent;
pub use sealing::EncryptionKeys;
pub use shared_cache::{SharedTokenCache, DEFAULT_KEY_PREFIX};
pub use signer::{PublicCertificate, Signer, SignerError};
#[cfg(feature = "azure-core")]
pub use sources::azure_credential::AzureCoreCredential;
pub use sources::environment::Environment;
pub use sources::key_vault::{
    KeyVaultCertificate, KeyVaultCertificateBuilder, KEY_VAULT_DNS_SUFFIXES, KEY_VAULT_SCOPE,
};
pub use sources::key_vault_signing::{KeyVaultSigner, KeyVaultSigning};
pub use sources::managed_identity::{
    ManagedIdentityBuilder, ManagedIdentityCredential, ManagedIdentityId,
};
#[cfg(feature = "pkcs11")]
pub use sources::pkcs11::{Pkcs11Signer, Pkcs11Source};
pub use sources::workload_identity::{
    FederatedTokenFile, ManagedIdentityAssertion, WorkloadIdentity, TOKEN_EXCHANGE_URL,
};
pub use store::{StoreError, TokenCacheStore};
pub use token::{AccessToken, AuthorityError, CredentialError, TokenError};
pub use token_source::TokenSource;

pub(crate) use token_source::{bearer_auth_builder, BearerAuth, BearerAuthBuilder};

/// Entry points for the cargo-fuzz targets in `fuzz/`; compiled only under `--cfg fuzzing`
/// (which cargo-fuzz sets), never part of the public API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use std::time::{Duration, SystemTime};

    /// Parses a `Retry-After` value and a token endpoint answer (success and error shapes)
    /// the way [`ConfidentialClient`](super::ConfidentialClient) does.
    pub fn token_endpoint_answer(retry_after: &str, body: &[u8]) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let _ = super::wire::parse_retry_after(retry_after, now);
        if let Ok(token) =
            super::protocol::parse_token_response(body, now, &["api://x/.default".to_owned()])
        {
            assert!(!token.secret().is_empty());
            assert!(token.refresh_on() <= token.expires_on());
            let _ = format!("{token:?}");
        }
        for status in [400, 401, 429, 500] {
            if let Some(error) = super::AuthorityError::parse(status, body) {
                let _ = error.to_string();
                let _ = error.is_credential_rejected();
            }
        }
    }
}
