//! [`Signer`]: what signs client assertions. The public half (the certificate, for `x5t`,
//! `x5t#S256` and `x5c`) is in the process; the private key may be elsewhere: in the
//! process ([`ClientCertificate`]), in Azure Key Vault
//! ([`KeyVaultSigning`](crate::credentials::KeyVaultSigning): the vault's `sign` operation) or
//! in an HSM (`Pkcs11Signer`, feature `pkcs11`).

use std::fmt;
use std::time::SystemTime;

use super::certificate::ClientCertificate;
pub use super::x509::PublicCertificate;
use crate::error::CertificateError;
use futures_util::future::BoxFuture;

/// How a client assertion is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AssertionAlgorithm {
    /// `PS256` (RSASSA-PSS, SHA-256) with an `x5t#S256` header: what MSAL sends to Entra ID.
    Ps256,
    /// `RS256` (RSASSA-PKCS1-v1_5, SHA-256) with an `x5t` (SHA-1) header: for ADFS and other
    /// OpenID Connect authorities.
    Rs256,
}

impl AssertionAlgorithm {
    /// The JOSE `alg` value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Rs256 => "RS256",
        }
    }
}

/// Why a [`Signer`] could not sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The signer cannot produce this algorithm (an HSM mechanism that is missing, a key
    /// that is not RSA).
    #[error("the {backend} signer does not support {algorithm}")]
    UnsupportedAlgorithm {
        /// The signer ([`Signer::backend`]).
        backend: &'static str,
        /// The JOSE algorithm.
        algorithm: &'static str,
    },
    /// The in-process key failed.
    #[error("the in-process key cannot sign")]
    Key(#[source] CertificateError),
    /// The key's holder refused (a missing permission, a disabled key, a wrong PIN); trying
    /// again will not help until the configuration changes.
    #[error("the {backend} signer refused to sign: {reason}")]
    Refused {
        /// The signer ([`Signer::backend`]).
        backend: &'static str,
        /// What it answered and what to check.
        reason: String,
    },
    /// The key's holder cannot be reached or is throttling or failing (network, 429, 5xx);
    /// trying again later may succeed.
    #[error("the {backend} signer is unavailable: {reason}")]
    Unavailable {
        /// The signer ([`Signer::backend`]).
        backend: &'static str,
        /// What happened.
        reason: String,
    },
}

impl SignerError {
    /// Whether trying again later may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Signs client assertions: the public certificate plus an asynchronous `sign`.
///
/// [`signed_assertion`](crate::credentials::signed_assertion) builds the JWT (header from
/// [`certificate`](Self::certificate)) and passes the JWS signing input
/// (`base64url(header) "." base64url(payload)`) to [`sign`](Self::sign); a remote signer
/// hashes it locally (SHA-256) and sends only the digest. A signer is a snapshot of one
/// certificate version: rotation means a new signer, produced by a
/// [`CredentialSource`](crate::credentials::CredentialSource) that the
/// [`ConfidentialClient`](crate::credentials::ConfidentialClient) reloads.
///
/// ```
/// use std::sync::Arc;
/// use tower_azure_auth::credentials::*;
/// # use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
/// # let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
/// # let pkcs8: Pkcs8V1Der = key.as_der().unwrap();
/// # let rc_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
/// #     &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref()), &rcgen::PKCS_RSA_SHA256).unwrap();
/// # let cert = rcgen::CertificateParams::new(vec!["weather-client".into()]).unwrap().self_signed(&rc_key).unwrap();
/// # let pem = format!("{}{}", cert.pem(), rc_key.serialize_pem());
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // The in-process key is one signer among others.
/// let signer: Arc<dyn Signer> = Arc::new(ClientCertificate::from_pem(pem.as_bytes())?);
/// let assertion = signed_assertion(signer.as_ref(), &AssertionRequest {
///     client_id: "b178f3a5-7588-492a-924f-72d7887b7e48",
///     audience: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
///     algorithm: AssertionAlgorithm::Ps256,
///     send_x5c: false,
///     now: 1_700_000_000,
/// }).await?;
/// assert_eq!(assertion.split('.').count(), 3);
/// // A ConfidentialClient takes any signer.
/// let client = ConfidentialClient::builder("b178f3a5-7588-492a-924f-72d7887b7e48")
///     .authority(tower_azure_auth::Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
///     .signer(signer)
///     .build()?;
/// assert!(matches!(client.credential(), Some(ClientCredential::Signer(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub trait Signer: Send + Sync + fmt::Debug + 'static {
    /// The certificate whose key signs.
    fn certificate(&self) -> PublicCertificate;

    /// Signs `message` (the JWS signing input) with `algorithm`: RSASSA-PSS with SHA-256
    /// and MGF1-SHA-256, salt length 32 (`PS256`) or RSASSA-PKCS1-v1_5 with SHA-256
    /// (`RS256`). Returns the raw signature.
    fn sign<'a>(
        &'a self,
        algorithm: AssertionAlgorithm,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, SignerError>>;

    /// A short name of where the key lives, for logs, errors and observers
    /// (`"in-process"`, `"key vault"`, `"pkcs11"`).
    fn backend(&self) -> &'static str;

    /// When the key stops signing, if earlier than the certificate's `notAfter` (a Key Vault
    /// key version's `exp`): the client reloads its source before then. Default: none.
    fn key_expires_at(&self) -> Option<SystemTime> {
        None
    }
}

impl Signer for ClientCertificate {
    fn certificate(&self) -> PublicCertificate {
        self.public_certificate()
    }

    fn sign<'a>(
        &'a self,
        algorithm: AssertionAlgorithm,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, SignerError>> {
        let result = Self::sign(self, algorithm == AssertionAlgorithm::Ps256, message)
            .map_err(SignerError::Key);
        Box::pin(std::future::ready(result))
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}
