//! [`AzureCoreCredential`]: any `azure_core` [`TokenCredential`] as a [`TokenSource`]
//! (feature `azure-core`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::credentials::TokenCredential;

use crate::credentials::credential::BoxFuture;
use crate::credentials::token::{AccessToken, CredentialError, TokenError};
use crate::credentials::token_source::TokenSource;

/// A [`TokenSource`] over a credential of the official Azure SDK for Rust: anything that
/// implements [`azure_core::credentials::TokenCredential`], such as `azure_identity`'s
/// `DeveloperToolsCredential`, `ManagedIdentityCredential`, `WorkloadIdentityCredential` or
/// `ClientSecretCredential`. Teams that already use those can hand the same credential to
/// this crate: as the token source of [`KeyVaultCertificate`](crate::credentials::KeyVaultCertificate)
/// (or of the `KeyVault` credential source, with
/// [`CredentialDescriptions::vault_credential`](crate::credentials::CredentialDescriptions::vault_credential)),
/// or to [`AddAccessTokenLayer`](crate::layers::AddAccessTokenLayer) and the reqwest
/// middleware for outbound calls.
///
/// Caching is the credential's own (the `azure_identity` credentials cache their tokens and
/// refresh them before expiry); this adapter adds none. `force_refresh` cannot be passed on
/// (`TokenCredential` has no such option); a token the credential returns already expired is
/// refused with [`TokenError::BadResponse`]. Failures keep the SDK's error as their source
/// ([`TokenError::Credential`] with [`CredentialError::External`], transient for a lost
/// connection, an I/O failure, 408, 429 and 5xx).
///
/// ```
/// use std::sync::Arc;
/// use tower_azure_auth::credentials::{AzureCoreCredential, CredentialDescriptions, KeyVaultCertificate};
/// # use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
/// # #[derive(Debug)]
/// # struct MyCredential;
/// # #[async_trait::async_trait]
/// # impl TokenCredential for MyCredential {
/// #     async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions<'_>>)
/// #         -> azure_core::Result<AccessToken> { unimplemented!() }
/// # }
/// // e.g. `azure_identity::ManagedIdentityCredential::new(None)?`
/// let credential: Arc<dyn azure_core::credentials::TokenCredential> = Arc::new(MyCredential);
///
/// // For one vault…
/// let vault = KeyVaultCertificate::new(
///     "https://contoso.vault.azure.net",
///     "ServiceApiCert",
///     Arc::new(AzureCoreCredential::new(credential.clone())),
/// )?;
/// // …or for every `KeyVault` entry of the configuration.
/// let sources = CredentialDescriptions::new(Vec::new(), "AzureAd:ClientCredentials")
///     .vault_credential(credential);
/// # Ok::<(), tower_azure_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct AzureCoreCredential {
    credential: Arc<dyn TokenCredential>,
}

impl AzureCoreCredential {
    /// Wraps `credential`.
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self { credential }
    }

    /// The wrapped credential.
    #[must_use]
    pub fn credential(&self) -> &Arc<dyn TokenCredential> {
        &self.credential
    }
}

impl fmt::Debug for AzureCoreCredential {
    /// Never the credential's own `Debug`: a user's implementation may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCoreCredential")
            .finish_non_exhaustive()
    }
}

impl TokenSource for AzureCoreCredential {
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        _force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let token = self
                .credential
                .get_token(&scope_refs, None)
                .await
                .map_err(|e| {
                    TokenError::Credential(CredentialError::External {
                        transient: is_transient(&e),
                        source: Box::new(e),
                    })
                })?;
            let expires_on = system_time(token.expires_on.unix_timestamp_nanos());
            if expires_on <= SystemTime::now() {
                return Err(TokenError::BadResponse {
                    reason: "the azure_core credential returned an expired token".into(),
                });
            }
            if token.token.secret().is_empty() {
                return Err(TokenError::BadResponse {
                    reason: "the azure_core credential returned an empty token".into(),
                });
            }
            Ok(AccessToken::new(
                token.token.secret(),
                expires_on,
                scopes.to_vec(),
            ))
        })
    }
}

/// Whether the SDK's error is worth retrying: no connection, an I/O failure, 408, 429 or 5xx.
fn is_transient(error: &azure_core::Error) -> bool {
    use azure_core::error::ErrorKind;
    match error.kind() {
        ErrorKind::Connection | ErrorKind::Io => true,
        ErrorKind::HttpResponse { status, .. } => {
            let status = u16::from(*status);
            matches!(status, 408 | 429) || status >= 500
        }
        _ => false,
    }
}

/// Nanoseconds since the Unix epoch as a `SystemTime`; times before the epoch become the
/// epoch (an expired token either way) and times beyond `SystemTime`'s range its far end.
fn system_time(unix_nanos: i128) -> SystemTime {
    let Ok(nanos) = u128::try_from(unix_nanos) else {
        return SystemTime::UNIX_EPOCH;
    };
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 10^9.
    let subsec = (nanos % 1_000_000_000) as u32;
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::new(secs, subsec))
        .unwrap_or_else(|| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_nanos_to_system_time() {
        struct Case {
            name: &'static str,
            nanos: i128,
            expected: SystemTime,
        }
        let cases = [
            Case {
                name: "epoch",
                nanos: 0,
                expected: SystemTime::UNIX_EPOCH,
            },
            Case {
                name: "before the epoch",
                nanos: -5,
                expected: SystemTime::UNIX_EPOCH,
            },
            Case {
                name: "seconds and nanoseconds",
                nanos: 1_700_000_000_123_456_789,
                expected: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            },
            Case {
                name: "far future saturates",
                nanos: i128::MAX,
                expected: SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 64),
            },
        ];
        for case in cases {
            assert_eq!(system_time(case.nanos), case.expected, "{}", case.name);
        }
    }
}
