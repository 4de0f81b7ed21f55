//! [`Signer`]: what signs client assertions. The public half (the certificate, for `x5t`,
//! `x5t#S256` and `x5c`) is in the process; the private key may be elsewhere: in the
//! process ([`ClientCertificate`]), in Azure Key Vault
//! ([`KeyVaultSigning`](crate::credentials::KeyVaultSigning): the vault's `sign` operation) or
//! in an HSM (`Pkcs11Signer`, feature `pkcs11`).

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::assertion::AssertionAlgorithm;
use super::certificate::{
    certificate_der, parse_certificate, unix_to_system, ClientCertificate, Thumbprints,
};
use super::credential::BoxFuture;
use crate::error::CertificateError;

/// A certificate without its private key: what a [`Signer`] shows of itself (thumbprints for
/// `x5t`/`x5t#S256`, the DER for `x5c`, the validity period for rotation). RSA of at least
/// 2048 bits, like [`ClientCertificate`]. Cheap to clone.
#[derive(Clone)]
pub struct PublicCertificate {
    inner: Arc<PublicInner>,
}

struct PublicInner {
    der: Vec<u8>,
    thumbprints: Thumbprints,
    subject: String,
    not_before: i64,
    not_after: i64,
    not_after_text: String,
    not_before_text: String,
    key_bits: usize,
}

impl fmt::Debug for PublicCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicCertificate")
            .field("subject", &self.inner.subject)
            .field("thumbprint", &self.inner.thumbprints.sha1_hex())
            .field("not_before", &self.inner.not_before_text)
            .field("not_after", &self.inner.not_after_text)
            .finish()
    }
}

impl PublicCertificate {
    /// Reads a certificate given as DER or PEM (the first `CERTIFICATE` section).
    ///
    /// # Errors
    ///
    /// [`CertificateError::NotACertificate`], [`CertificateError::Pem`],
    /// [`CertificateError::UnsupportedKeyType`] (not RSA) or [`CertificateError::KeyTooSmall`].
    pub fn from_der_or_pem(data: &[u8]) -> Result<Self, CertificateError> {
        let der = certificate_der(data)?;
        let parsed = parse_certificate(&der)?;
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, … }: the modulus length in bits.
        let key_bits = rsa_modulus_bits(&parsed.rsa_public_key).unwrap_or(0);
        Ok(Self {
            inner: Arc::new(PublicInner {
                thumbprints: Thumbprints::of_der(&der),
                der,
                subject: parsed.subject,
                not_before: parsed.not_before,
                not_after: parsed.not_after,
                not_after_text: parsed.not_after_text,
                not_before_text: parsed.not_before_text,
                key_bits,
            }),
        })
    }

    /// The certificate's DER encoding.
    #[must_use]
    pub fn der(&self) -> &[u8] {
        &self.inner.der
    }

    /// The thumbprints (`x5t`, `x5t#S256`).
    #[must_use]
    pub fn thumbprints(&self) -> &Thumbprints {
        &self.inner.thumbprints
    }

    /// The subject distinguished name.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// Start of validity.
    #[must_use]
    pub fn not_before(&self) -> SystemTime {
        unix_to_system(self.inner.not_before)
    }

    /// End of validity (`notAfter`).
    #[must_use]
    pub fn not_after(&self) -> SystemTime {
        unix_to_system(self.inner.not_after)
    }

    /// The RSA key size in bits.
    #[must_use]
    pub fn key_bits(&self) -> usize {
        self.inner.key_bits
    }

    /// Checks the validity period against a Unix time.
    ///
    /// # Errors
    ///
    /// [`CertificateError::Expired`] or [`CertificateError::NotYetValid`].
    pub fn check_validity(&self, unix_seconds: u64) -> Result<(), CertificateError> {
        let now = i64::try_from(unix_seconds).unwrap_or(i64::MAX);
        if now < self.inner.not_before {
            return Err(CertificateError::NotYetValid {
                subject: self.inner.subject.clone(),
                not_before: self.inner.not_before_text.clone(),
            });
        }
        if now > self.inner.not_after {
            return Err(CertificateError::Expired {
                subject: self.inner.subject.clone(),
                not_after: self.inner.not_after_text.clone(),
            });
        }
        Ok(())
    }

    /// The certificate as standard base64 DER (an `x5c` entry).
    pub(crate) fn x5c_entry(&self) -> String {
        STANDARD.encode(&self.inner.der)
    }

    /// The RSA modulus, big-endian, without leading zero octets.
    #[cfg(feature = "pkcs11")]
    pub(crate) fn rsa_modulus(&self) -> Option<Vec<u8>> {
        let parsed = parse_certificate(&self.inner.der).ok()?;
        rsa_modulus(&parsed.rsa_public_key)
    }
}

/// The modulus of an `RSAPublicKey` (DER), without leading zero octets.
fn rsa_modulus(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::der_parser::der::parse_der_sequence;
    let (_, seq) = parse_der_sequence(der).ok()?;
    let modulus = seq.as_sequence().ok()?.first()?.as_slice().ok()?;
    let start = modulus.iter().position(|b| *b != 0)?;
    Some(modulus[start..].to_vec())
}

/// The bit length of an `RSAPublicKey`'s modulus (DER).
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let modulus = rsa_modulus(der)?;
    let lead = *modulus.first()?;
    Some((modulus.len() - 1) * 8 + (8 - lead.leading_zeros() as usize))
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

thread_local! {
    static PRIVATE_KEYS_LOADED: Cell<u64> = const { Cell::new(0) };
}

/// Counts a [`ClientCertificate`] built with a private key on this thread.
pub(crate) fn count_private_key_loaded() {
    PRIVATE_KEYS_LOADED.with(|c| c.set(c.get() + 1));
}

/// How many [`ClientCertificate`]s (certificates with their private key in the process) were
/// built on the calling thread: lets tests assert that a remote-signing path never holds a
/// private key. Not a stable API.
#[doc(hidden)]
#[must_use]
pub fn private_keys_loaded_on_this_thread() -> u64 {
    PRIVATE_KEYS_LOADED.with(Cell::get)
}
