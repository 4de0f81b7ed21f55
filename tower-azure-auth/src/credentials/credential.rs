//! The credential vocabulary every part of [`credentials`](super) speaks: what proves the
//! client's identity ([`ClientCredential`]), where it is loaded from ([`CredentialSource`]),
//! what a source may use ([`CredentialContext`]) and signed assertions made elsewhere
//! ([`AssertionProvider`]). The engine ([`ConfidentialClient`](crate::credentials::ConfidentialClient))
//! and the sources build on it; it uses only the certificate, the token error and the
//! authority's HTTP client below it.

use std::fmt;
use std::sync::Arc;

use super::certificate::ClientCertificate;
use super::token::{CredentialError, TokenError};
use crate::authority::HttpClient;
use crate::clock::SharedClock;

use super::signer::Signer;

/// A boxed, `Send` future (the extension traits are object safe): futures-util's.
pub use futures_util::future::BoxFuture;

/// A client secret. `Debug` never shows it.
#[derive(Clone)]
pub struct ClientSecret(Arc<str>);

impl ClientSecret {
    /// Wraps a secret value.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Arc::from(secret.into()))
    }

    /// The secret. Never log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// How the client proves its identity to the authority.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientCredential {
    /// A certificate: each token request carries a fresh signed client assertion.
    Certificate(ClientCertificate),
    /// A client secret (prefer certificates).
    Secret(ClientSecret),
    /// A signed assertion made elsewhere (a federated token file, a managed identity token),
    /// asked for again for every token request.
    Assertion(Arc<dyn AssertionProvider>),
    /// A certificate whose private key signs elsewhere (Azure Key Vault, an HSM, or any
    /// [`Signer`]): each token request carries a fresh assertion signed by it.
    Signer(Arc<dyn Signer>),
}

impl ClientCredential {
    /// A [`ClientCredential::Assertion`] from a provider.
    pub fn assertion(provider: impl AssertionProvider) -> Self {
        Self::Assertion(Arc::new(provider))
    }

    /// The thumbprints of the certificate it signs assertions for, if it has one.
    pub(crate) fn thumbprints(&self) -> Option<super::x509::Thumbprints> {
        match self {
            Self::Certificate(certificate) => Some(certificate.thumbprints().clone()),
            Self::Signer(signer) => Some(signer.certificate().thumbprints().clone()),
            Self::Secret(_) | Self::Assertion(_) => None,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Certificate(_) => "certificate",
            Self::Secret(_) => "client secret",
            Self::Assertion(_) => "signed assertion",
            Self::Signer(_) => "remote signer",
        }
    }
}

/// What a [`CredentialSource`] may use to load a credential: the client's HTTP client (for
/// Key Vault or managed identity) and its clock (for certificate validity).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CredentialContext {
    /// The HTTP client.
    pub http: HttpClient,
    /// The clock.
    pub clock: SharedClock,
}

impl CredentialContext {
    /// A context with this HTTP client and clock (for calling a [`CredentialSource`]
    /// directly, e.g. to check a configuration at startup).
    pub fn new(http: HttpClient, clock: SharedClock) -> Self {
        Self { http, clock }
    }
}

/// Something that loads a [`ClientCredential`]: configuration descriptions
/// ([`CredentialDescriptions`](crate::credentials::CredentialDescriptions)), a vault ([`KeyVaultCertificate`](crate::credentials::KeyVaultCertificate)),
/// a secret store. The client loads from it when it has no credential yet, when the reload
/// interval has passed ([`ConfidentialClientBuilder::reload_interval`](crate::credentials::ConfidentialClientBuilder::reload_interval), checked when a token
/// is requested from the authority) and when the authority refuses the current one
/// (AADSTS700027-class errors, then the request is retried once), which is how a rotated
/// certificate is picked up.
pub trait CredentialSource: Send + Sync + fmt::Debug + 'static {
    /// Loads the current credential.
    ///
    /// # Errors
    ///
    /// A [`CredentialError`]: [`is_transient`](CredentialError::is_transient) when the
    /// source's service was unreachable or failing, a
    /// [`CredentialError::Configuration`] for a configuration mistake.
    fn load<'a>(
        &'a self,
        context: &'a CredentialContext,
    ) -> BoxFuture<'a, Result<ClientCredential, CredentialError>>;
}

/// A signed client assertion produced by something else than this crate's certificates:
/// sent as `client_assertion` (type `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`)
/// with every token request, and asked for again for every request, so a rotated value is
/// always the one sent. Used through [`ClientCredential::Assertion`].
pub trait AssertionProvider: Send + Sync + fmt::Debug + 'static {
    /// The current assertion. Never log it.
    fn assertion<'a>(
        &'a self,
        context: &'a CredentialContext,
    ) -> BoxFuture<'a, Result<String, TokenError>>;
}
