//! Certificates without their keys, the floor below everything that signs: parsing (DER or
//! PEM), the RSA checks, thumbprints, and [`PublicCertificate`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rustls_pki_types::pem::{PemObject, SectionKind};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::error::CertificateError;

/// The smallest RSA key accepted, in bits (Entra ID's minimum).
pub const MIN_RSA_BITS: usize = 2048;

/// OID of `rsaEncryption` (PKCS#1), the only key algorithm accepted.
pub(crate) const RSA_ENCRYPTION_OID: &str = "1.2.840.113549.1.1.1";

/// The thumbprints of a certificate: base64url (no padding) of the SHA-1 and SHA-256 hashes of
/// its DER encoding, as used in the `x5t` and `x5t#S256` JOSE header parameters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Thumbprints {
    sha1: [u8; 20],
    sha256: [u8; 32],
}

impl Thumbprints {
    /// The thumbprints of a DER certificate (the bytes are hashed as given; nothing is parsed).
    #[must_use]
    pub fn of_der(der: &[u8]) -> Self {
        let mut sha1 = [0u8; 20];
        sha1.copy_from_slice(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref());
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest::digest(&digest::SHA256, der).as_ref());
        Self { sha1, sha256 }
    }

    /// `x5t`: base64url of the SHA-1 hash.
    #[must_use]
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha1)
    }

    /// `x5t#S256`: base64url of the SHA-256 hash.
    #[must_use]
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256)
    }

    /// The SHA-1 thumbprint in upper-case hex, as the Azure portal shows it.
    #[must_use]
    pub fn sha1_hex(&self) -> String {
        hex_upper(&self.sha1)
    }

    /// The SHA-256 thumbprint in upper-case hex.
    #[must_use]
    pub fn sha256_hex(&self) -> String {
        hex_upper(&self.sha256)
    }

    /// The raw SHA-1 hash.
    #[must_use]
    pub fn sha1(&self) -> &[u8; 20] {
        &self.sha1
    }

    /// The raw SHA-256 hash.
    #[must_use]
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }
}

impl fmt::Debug for Thumbprints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thumbprints")
            .field("sha1", &self.sha1_hex())
            .field("x5t#S256", &self.x5t_s256())
            .finish()
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The thumbprints of a certificate given as DER or PEM (the first `CERTIFICATE` section).
///
/// # Errors
///
/// [`CertificateError::NotACertificate`] when the data is not an X.509 certificate.
///
/// ```
/// # let key = rcgen::KeyPair::generate().unwrap();
/// # let cert = rcgen::CertificateParams::new(vec!["client".into()]).unwrap().self_signed(&key).unwrap();
/// # let pem = cert.pem();
/// let thumbprints = tower_azure_auth::credentials::thumbprints(pem.as_bytes()).unwrap();
/// assert_eq!(thumbprints.x5t_s256().len(), 43); // 32 bytes, base64url without padding
/// assert_eq!(thumbprints.x5t().len(), 27);      // 20 bytes
/// ```
pub fn thumbprints(certificate: &[u8]) -> Result<Thumbprints, CertificateError> {
    let der = certificate_der(certificate)?;
    X509Certificate::from_der(&der).map_err(|e| CertificateError::NotACertificate {
        reason: format!("not an X.509 certificate ({e})"),
    })?;
    Ok(Thumbprints::of_der(&der))
}

/// DER from DER or PEM input.
pub(crate) fn certificate_der(data: &[u8]) -> Result<Vec<u8>, CertificateError> {
    if looks_like_pem(data) {
        let sections = pem_sections(data)?;
        sections
            .into_iter()
            .find(|(kind, _)| *kind == SectionKind::Certificate)
            .map(|(_, der)| der)
            .ok_or_else(|| CertificateError::NotACertificate {
                reason: "the PEM text has no CERTIFICATE section".into(),
            })
    } else {
        Ok(data.to_vec())
    }
}

pub(crate) fn looks_like_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

pub(crate) fn pem_sections(data: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, CertificateError> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertificateError::Pem {
            reason: match e {
                rustls_pki_types::pem::Error::MissingSectionEnd { .. } => {
                    "a section has no END line".into()
                }
                rustls_pki_types::pem::Error::IllegalSectionStart { .. } => {
                    "a BEGIN line is malformed".into()
                }
                rustls_pki_types::pem::Error::Base64Decode(_) => {
                    "a section is not valid base64".into()
                }
                rustls_pki_types::pem::Error::SectionTooLarge => "a section is too large".into(),
                _ => "cannot be parsed".into(),
            },
        })
}

/// What is read from a certificate.
pub(crate) struct ParsedCertificate {
    pub(crate) subject: String,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) not_before_text: String,
    pub(crate) not_after_text: String,
    /// `RSAPublicKey` DER from the SPKI.
    pub(crate) rsa_public_key: Vec<u8>,
}

pub(crate) fn parse_certificate(der: &[u8]) -> Result<ParsedCertificate, CertificateError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertificateError::NotACertificate {
            reason: format!("not an X.509 certificate ({e})"),
        })?;
    let spki = cert.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let parsed = spki.parsed();
    let rsa_public_key = match parsed {
        Ok(PublicKey::RSA(rsa)) if algorithm == RSA_ENCRYPTION_OID => {
            let bits = rsa.key_size();
            if bits < MIN_RSA_BITS {
                return Err(CertificateError::KeyTooSmall { bits });
            }
            spki.subject_public_key.data.to_vec()
        }
        Ok(PublicKey::EC(_)) => {
            return Err(CertificateError::UnsupportedKeyType { found: "EC".into() })
        }
        _ => {
            return Err(CertificateError::UnsupportedKeyType {
                found: format!("with OID {algorithm}"),
            })
        }
    };
    let validity = cert.validity();
    Ok(ParsedCertificate {
        subject: cert.subject().to_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        not_before_text: validity.not_before.to_string(),
        not_after_text: validity.not_after.to_string(),
        rsa_public_key,
    })
}

pub(crate) fn unix_to_system(seconds: i64) -> std::time::SystemTime {
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// A certificate without its private key: what a [`Signer`](super::Signer) shows of itself (thumbprints for
/// `x5t`/`x5t#S256`, the DER for `x5c`, the validity period for rotation). RSA of at least
/// 2048 bits, like [`ClientCertificate`](super::ClientCertificate). Cheap to clone.
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
