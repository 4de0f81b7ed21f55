//! Our clients as `azure_core` [`TokenCredential`]s (feature `azure-core`): the way from this
//! crate to the Azure SDK for Rust, the reverse of [`AzureCoreCredential`](super::azure_credential::AzureCoreCredential).
//!
//! [`ConfidentialClient`] and [`ManagedIdentityCredential`] implement
//! [`azure_core::credentials::TokenCredential`], so any Azure SDK client
//! (`azure_security_keyvault_secrets::SecretClient`, `azure_storage_blob`, redis-rs's Entra ID
//! authentication, …) can use the certificate client and its cache.
//!
//! ```no_run
//! use std::sync::Arc;
//! use azure_core::credentials::TokenCredential;
//! use tower_azure_auth::{Authority, credentials::{ClientCertificate, ConfidentialClient}};
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ConfidentialClient::builder("b178f3a5-7588-492a-924f-72d7887b7e48")
//!     .authority(Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
//!     .certificate(ClientCertificate::from_file("client.pfx", None)?)
//!     .build()?;
//! // e.g. `SecretClient::new("https://contoso.vault.azure.net", credential, None)?`
//! let credential: Arc<dyn TokenCredential> = Arc::new(client);
//! # let _ = credential; Ok(()) }
//! ```

use azure_core::credentials::{AccessToken as SdkToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::time::OffsetDateTime;

use crate::credentials::client::ConfidentialClient;
use crate::credentials::sources::managed_identity::ManagedIdentityCredential;
use crate::credentials::token::{AccessToken, TokenError};

/// Our token as the SDK's; the expiry carried over.
fn to_sdk(token: &AccessToken) -> SdkToken {
    SdkToken::new(
        token.secret().to_owned(),
        OffsetDateTime::from(token.expires_on()),
    )
}

/// Our error as the SDK's: kind [`ErrorKind::Credential`] (what `azure_identity`'s credentials
/// fail with, whatever the cause), our message (which never holds a secret or a token), and
/// the [`TokenError`] itself as the source, for `downcast_ref`.
pub(crate) fn to_sdk_error(error: TokenError) -> azure_core::Error {
    let message = crate::error::error_chain(&error);
    azure_core::Error::with_error(ErrorKind::Credential, error, message)
}

fn owned(scopes: &[&str]) -> Vec<String> {
    scopes.iter().map(|s| (*s).to_owned()).collect()
}

/// `ConfidentialClient` as an Azure SDK credential: each call is
/// [`acquire_token_for_client`](ConfidentialClient::acquire_token_for_client) for the
/// scopes the SDK passes (Entra wants `{resource}/.default`, which is what SDK clients ask
/// for), from the client's cache. The SDK's request options carry nothing this flow uses.
#[async_trait::async_trait]
impl TokenCredential for ConfidentialClient {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<SdkToken> {
        let token = self
            .acquire_token_for_client(&owned(scopes))
            .await
            .map_err(to_sdk_error)?;
        Ok(to_sdk(&token))
    }
}

/// `ManagedIdentityCredential` as an Azure SDK credential: one scope
/// (`{resource}/.default`), from the credential's cache.
#[async_trait::async_trait]
impl TokenCredential for ManagedIdentityCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<SdkToken> {
        let token = Self::get_token(self, &owned(scopes))
            .await
            .map_err(to_sdk_error)?;
        Ok(to_sdk(&token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn errors_keep_their_message_and_source_and_say_credential() {
        let error = to_sdk_error(TokenError::InvalidScope {
            scope: "api://x".into(),
            reason: "client credential scopes must end with `/.default`",
        });
        assert!(matches!(error.kind(), ErrorKind::Credential));
        assert!(error.to_string().contains("api://x"), "{error}");
        assert!(
            error
                .downcast_ref::<TokenError>()
                .is_some_and(|e| matches!(e, TokenError::InvalidScope { .. })),
            "the TokenError is the source"
        );
        let _ = error.source();
    }
}
