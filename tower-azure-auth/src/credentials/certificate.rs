//! Client certificates: loading (PEM, PKCS#12, base64 PKCS#12), checks, thumbprints.

use std::cell::Cell;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustls_pki_types::pem::SectionKind;

use crate::clock::{self, SharedClock};
use crate::error::CertificateError;

pub(crate) use super::x509::unix_to_system;
use super::x509::{looks_like_pem, pem_sections, RSA_ENCRYPTION_OID};
use super::x509::{parse_certificate, ParsedCertificate};
pub use super::x509::{thumbprints, Thumbprints, MIN_RSA_BITS};

/// A private key as found in a file.
enum RawKey {
    Pkcs1(Vec<u8>),
    Pkcs8(Vec<u8>),
}

fn rsa_key_pair(key: &RawKey) -> Result<RsaKeyPair, CertificateError> {
    let result = match key {
        RawKey::Pkcs1(der) => RsaKeyPair::from_der(der),
        RawKey::Pkcs8(der) => RsaKeyPair::from_pkcs8(der),
    };
    result.map_err(|e| match e.description_() {
        "TooSmall" => CertificateError::InvalidKey {
            reason: "the key is smaller than 2048 bits".into(),
        },
        "WrongAlgorithm" => CertificateError::UnsupportedKeyType {
            found: "(not RSA)".into(),
        },
        other => CertificateError::InvalidKey {
            reason: other.to_owned(),
        },
    })
}

/// A client certificate with its RSA private key, ready to sign client assertions.
///
/// Cheap to clone. `Debug` shows the subject, thumbprint and validity only.
///
/// ```
/// use tower_azure_auth::credentials::ClientCertificate;
/// # let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
/// # let pkcs8 = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
/// # let rc_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
/// #     &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref()), &rcgen::PKCS_RSA_SHA256).unwrap();
/// # let cert = rcgen::CertificateParams::new(vec!["client".into()]).unwrap().self_signed(&rc_key).unwrap();
/// # let pem = format!("{}{}", cert.pem(), rc_key.serialize_pem());
/// let certificate = ClientCertificate::from_pem(pem.as_bytes()).unwrap();
/// assert_eq!(certificate.thumbprints().x5t_s256().len(), 43);
/// assert!(format!("{certificate:?}").contains("subject"));
///
/// // Not a certificate: a clear error.
/// let error = ClientCertificate::from_pem(b"hello").unwrap_err();
/// assert!(error.to_string().starts_with("not a certificate"), "{error}");
/// ```
#[derive(Clone)]
pub struct ClientCertificate {
    inner: Arc<Inner>,
}

struct Inner {
    der: Vec<u8>,
    key: RsaKeyPair,
    public: super::x509::PublicCertificate,
    thumbprints: Thumbprints,
    subject: String,
    not_before: i64,
    not_after: i64,
    not_before_text: String,
    not_after_text: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("subject", &self.inner.subject)
            .field("thumbprint", &self.inner.thumbprints.sha1_hex())
            .field("not_before", &self.inner.not_before_text)
            .field("not_after", &self.inner.not_after_text)
            .finish()
    }
}

impl ClientCertificate {
    /// A loader with the given clock (the validity period is checked against it).
    pub fn loader() -> CertificateLoader {
        CertificateLoader::new()
    }

    /// Loads PEM text holding the certificate (`CERTIFICATE`) and its RSA private key
    /// (`RSA PRIVATE KEY` (PKCS#1) or `PRIVATE KEY` (PKCS#8)); the first certificate is the
    /// client certificate.
    ///
    /// # Errors
    ///
    /// See [`CertificateError`].
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertificateError> {
        CertificateLoader::new().from_pem(pem)
    }

    /// Loads a PKCS#12 (`.pfx`/`.p12`) file's bytes. `None` and `Some("")` both mean "no
    /// password".
    ///
    /// # Errors
    ///
    /// See [`CertificateError`].
    pub fn from_pkcs12(der: &[u8], password: Option<&str>) -> Result<Self, CertificateError> {
        CertificateLoader::new().from_pkcs12(der, password)
    }

    /// Loads a base64 PKCS#12 (`SourceType: Base64Encoded`; Key Vault secrets).
    ///
    /// # Errors
    ///
    /// See [`CertificateError`].
    pub fn from_base64_pkcs12(
        value: &str,
        password: Option<&str>,
    ) -> Result<Self, CertificateError> {
        CertificateLoader::new().from_base64_pkcs12(value, password)
    }

    /// Loads a file: `.pem`/`.crt`/`.cer` as PEM, anything else (`.pfx`, `.p12`) as PKCS#12
    /// (a file that turns out to be PEM text is read as PEM whatever its name).
    ///
    /// # Errors
    ///
    /// See [`CertificateError`].
    pub fn from_file(
        path: impl AsRef<Path>,
        password: Option<&str>,
    ) -> Result<Self, CertificateError> {
        CertificateLoader::new().from_file(path, password)
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
    pub fn not_before(&self) -> std::time::SystemTime {
        unix_to_system(self.inner.not_before)
    }

    /// End of validity.
    #[must_use]
    pub fn not_after(&self) -> std::time::SystemTime {
        unix_to_system(self.inner.not_after)
    }

    /// The RSA key size in bits.
    #[must_use]
    pub fn key_bits(&self) -> usize {
        self.inner.key.public_modulus_len() * 8
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

    /// Signs `message` with the private key: RSASSA-PSS SHA-256 (`PS256`) or PKCS#1 v1.5
    /// SHA-256 (`RS256`).
    pub(crate) fn sign(&self, pss: bool, message: &[u8]) -> Result<Vec<u8>, CertificateError> {
        let encoding: &'static dyn aws_lc_rs::signature::RsaEncoding = if pss {
            &aws_lc_rs::signature::RSA_PSS_SHA256
        } else {
            &aws_lc_rs::signature::RSA_PKCS1_SHA256
        };
        let mut signature = vec![0u8; self.inner.key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.inner
            .key
            .sign(encoding, &rng, message, &mut signature)
            .map_err(|_| CertificateError::Signing)?;
        Ok(signature)
    }

    /// The certificate without its key.
    #[must_use]
    pub fn public_certificate(&self) -> super::x509::PublicCertificate {
        self.inner.public.clone()
    }
}

/// Loads [`ClientCertificate`]s, checking the validity period against its clock.
#[derive(Debug, Clone)]
#[must_use]
pub struct CertificateLoader {
    clock: SharedClock,
}

impl Default for CertificateLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl CertificateLoader {
    /// A loader using the system clock.
    pub fn new() -> Self {
        Self {
            clock: clock::system(),
        }
    }

    /// Uses another clock (tests).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// See [`ClientCertificate::from_pem`].
    ///
    /// # Errors
    ///
    /// See [`CertificateError`].
    pub fn from_pem(&self, pem: &[u8]) -> Result<ClientCertificate, CertificateError> {
        if !looks_like_pem(pem) {
            return Err(CertificateError::NotACertificate {
                reason: "the data is not PEM text".into(),
            });
        }
        let mut certificate = None;
        let mut key = None;
        let mut unsupported = None;
        for (kind, der) in pem_sections(pem)? {
            match kind {
                SectionKind::Certificate if certificate.is_none() => certificate = Some(der),
                SectionKind::RsaPrivateKey if key.is_none() => key = Some(RawKey::Pkcs1(der)),
                SectionKind::PrivateKey if key.is_none() => key = Some(RawKey::Pkcs8(der)),
                SectionKind::EcPrivateKey => unsupported = Some("EC"),
                _ => {}
            }
        }
        let certificate = certificate.ok_or_else(|| CertificateError::NotACertificate {
            reason: "the PEM text has no CERTIFICATE section".into(),
        })?;
        let parsed = parse_certificate(&certificate)?;
        let Some(key) = key else {
            if let Some(found) = unsupported {
                return Err(CertificateError::UnsupportedKeyType {
                    found: found.into(),
                });
            }
            if pem.windows(21).any(|w| w == b"ENCRYPTED PRIVATE KEY") {
                return Err(CertificateError::EncryptedPemKey);
            }
            return Err(CertificateError::NoPrivateKey {
                subject: parsed.subject,
            });
        };
        self.assemble(certificate, parsed, &key)
    }

    /// Loads a certificate file and a separate key file (both PEM; the key PKCS#1 or PKCS#8).
    ///
    /// # Errors
    ///
    /// See [`CertificateError`].
    pub fn from_pem_files(
        &self,
        certificate: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ClientCertificate, CertificateError> {
        let mut pem = read(certificate.as_ref())?;
        pem.push(b'\n');
        pem.extend_from_slice(&read(key.as_ref())?);
        self.from_pem(&pem)
    }

    /// See [`ClientCertificate::from_file`].
    ///
    /// # Errors
    ///
    /// See [`CertificateError`].
    pub fn from_file(
        &self,
        path: impl AsRef<Path>,
        password: Option<&str>,
    ) -> Result<ClientCertificate, CertificateError> {
        let path = path.as_ref();
        let data = read(path)?;
        let pem_extension = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["pem", "crt", "cer", "key"]
                .iter()
                .any(|p| e.eq_ignore_ascii_case(p))
        });
        if pem_extension || looks_like_pem(&data) {
            self.from_pem(&data)
        } else {
            // A password error names the file: a service with several certificates says which.
            self.from_pkcs12(&data, password)
                .map_err(|error| match error {
                    CertificateError::WrongPassword { file: None } => {
                        CertificateError::WrongPassword {
                            file: Some(path.display().to_string()),
                        }
                    }
                    CertificateError::PasswordRequired { file: None } => {
                        CertificateError::PasswordRequired {
                            file: Some(path.display().to_string()),
                        }
                    }
                    other => other,
                })
        }
    }

    /// See [`ClientCertificate::from_base64_pkcs12`].
    ///
    /// # Errors
    ///
    /// See [`CertificateError`].
    pub fn from_base64_pkcs12(
        &self,
        value: &str,
        password: Option<&str>,
    ) -> Result<ClientCertificate, CertificateError> {
        let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| CertificateError::Base64)?;
        self.from_pkcs12(&der, password)
    }

    /// See [`ClientCertificate::from_pkcs12`].
    ///
    /// # Errors
    ///
    /// See [`CertificateError`].
    pub fn from_pkcs12(
        &self,
        der: &[u8],
        password: Option<&str>,
    ) -> Result<ClientCertificate, CertificateError> {
        let given = password.is_some_and(|p| !p.is_empty());
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(der, password.unwrap_or(""))
            .map_err(|e| pkcs12_error(&e, given))?;
        if archive.certs.is_empty() {
            return Err(CertificateError::NotACertificate {
                reason: "the PKCS#12 file holds no certificate".into(),
            });
        }
        // Parse every certificate; the first that parses is the fallback subject for errors.
        let mut parsed = Vec::new();
        let mut first_error = None;
        for bag in &archive.certs {
            let der = bag.cert.as_der().to_vec();
            match parse_certificate(&der) {
                Ok(p) => parsed.push((der, p)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some((_, first)) = parsed.first() else {
            return Err(first_error.unwrap_or(CertificateError::NotACertificate {
                reason: "the PKCS#12 file holds no usable certificate".into(),
            }));
        };
        let subject = first.subject.clone();
        if archive.keys.is_empty() {
            return Err(CertificateError::NoPrivateKey { subject });
        }
        let mut key_error = None;
        for bag in &archive.keys {
            if bag.key.oid().to_string() != RSA_ENCRYPTION_OID {
                key_error.get_or_insert(CertificateError::UnsupportedKeyType {
                    found: format!("with OID {}", bag.key.oid()),
                });
                continue;
            }
            let key = match rsa_key_pair(&RawKey::Pkcs8(bag.key.as_der().to_vec())) {
                Ok(key) => key,
                Err(e) => {
                    key_error.get_or_insert(e);
                    continue;
                }
            };
            let public = key.public_key().as_ref().to_vec();
            if let Some(index) = parsed.iter().position(|(_, p)| p.rsa_public_key == public) {
                let (der, p) = parsed.swap_remove(index);
                return self.finish(der, p, key);
            }
            key_error.get_or_insert(CertificateError::KeyMismatch {
                subject: subject.clone(),
            });
        }
        Err(key_error.unwrap_or(CertificateError::NoPrivateKey { subject }))
    }

    fn assemble(
        &self,
        der: Vec<u8>,
        parsed: ParsedCertificate,
        key: &RawKey,
    ) -> Result<ClientCertificate, CertificateError> {
        let key = rsa_key_pair(key)?;
        if key.public_key().as_ref() != parsed.rsa_public_key.as_slice() {
            return Err(CertificateError::KeyMismatch {
                subject: parsed.subject,
            });
        }
        self.finish(der, parsed, key)
    }

    fn finish(
        &self,
        der: Vec<u8>,
        parsed: ParsedCertificate,
        key: RsaKeyPair,
    ) -> Result<ClientCertificate, CertificateError> {
        let public = super::x509::PublicCertificate::from_der_or_pem(&der)?;
        let certificate = ClientCertificate {
            inner: Arc::new(Inner {
                public,
                thumbprints: Thumbprints::of_der(&der),
                der,
                key,
                subject: parsed.subject,
                not_before: parsed.not_before,
                not_after: parsed.not_after,
                not_before_text: parsed.not_before_text,
                not_after_text: parsed.not_after_text,
            }),
        };
        certificate.check_validity(self.clock.unix_seconds())?;
        count_private_key_loaded();
        Ok(certificate)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|cause| CertificateError::Io {
        path: path.display().to_string(),
        cause,
    })
}

fn pkcs12_error(error: &p12_keystore::error::Error, password_given: bool) -> CertificateError {
    use p12_keystore::error::Error as E;
    match error {
        E::MacError(_) | E::UnpadError | E::Pkcs5Error(_) => {
            if password_given {
                CertificateError::WrongPassword { file: None }
            } else {
                CertificateError::PasswordRequired { file: None }
            }
        }
        E::DerError(_) | E::InvalidVersion | E::UnsupportedContentType => CertificateError::NotPkcs12 {
            reason: "the data is not a DER PKCS#12 structure".into(),
        },
        E::UnsupportedEncryptionScheme | E::UnsupportedMacAlgorithm => CertificateError::NotPkcs12 {
            reason: "it uses an encryption or MAC algorithm that is not supported (RC2/RC4 are not; AES and 3DES are)".into(),
        },
        other => CertificateError::NotPkcs12 {
            reason: other.to_string(),
        },
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
