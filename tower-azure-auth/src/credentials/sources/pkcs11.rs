//! [`Pkcs11Source`] and [`Pkcs11Signer`]: client assertions signed by a key in a PKCS#11
//! token (an HSM, a smart card, SoftHSM2), with the `cryptoki` crate (`SourceType: Pkcs11`).
//!
//! The key is found by its label (`CKA_LABEL`) among the token's private keys and must be an
//! RSA key that may sign (`CKA_SIGN`); it is used where it is, never read. The certificate
//! comes from `CertificateDiskPath` (PEM or DER) or, without it, from the token (a
//! certificate object with the same label); its public key must be the key's. cryptoki is
//! synchronous: every call runs on tokio's blocking pool. One session per signer, opened and
//! logged in once, reopened once if the token dropped it (or another part of the process
//! logged out). A module is loaded and initialized once per process and shared. PKCS#11
//! login state belongs to the process: while any session of the process is logged in to the
//! token, the token does not check the PIN again.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tracing::debug;

use crate::credentials::assertion::AssertionAlgorithm;
use crate::credentials::credential::{
    BoxFuture, ClientCredential, CredentialContext, CredentialSource,
};
use crate::credentials::signer::{PublicCertificate, Signer, SignerError};
use crate::credentials::token::CredentialError;
use crate::error::{error_chain, ConfigError};

const TARGET: &str = "tower_azure_auth::credentials::pkcs11";
const BACKEND: &str = "pkcs11";

/// A PKCS#11 token's key and its certificate; a [`CredentialSource`] for
/// [`ConfidentialClient`](crate::credentials::ConfidentialClient) (`SourceType: Pkcs11`, an
/// extension of Microsoft.Identity.Web's source types). Feature `pkcs11`.
///
/// ```no_run
/// use std::sync::Arc;
/// use tower_azure_auth::credentials::{ConfidentialClient, Pkcs11Source};
///
/// let source = Pkcs11Source::new(
///     "/usr/lib/softhsm/libsofthsm2.so", "weather", "weather-client", "/run/secrets/hsm-pin",
/// );
/// let client = ConfidentialClient::builder("b178f3a5-7588-492a-924f-72d7887b7e48")
///     .authority(tower_azure_auth::Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
///     .credential_source(Arc::new(source))
///     .build()?;
/// # Ok::<(), tower_azure_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pkcs11Source {
    module: PathBuf,
    token_label: String,
    key_label: String,
    pin_file: PathBuf,
    certificate_path: Option<PathBuf>,
}

impl Pkcs11Source {
    /// The key labelled `key_label` in the token labelled `token_label` of the PKCS#11
    /// `module` (a shared library's path), logged in with the user PIN read from `pin_file`
    /// (a trailing newline is ignored; the PIN is never logged).
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        key_label: impl Into<String>,
        pin_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            module: module.into(),
            token_label: token_label.into(),
            key_label: key_label.into(),
            pin_file: pin_file.into(),
            certificate_path: None,
        }
    }

    /// Reads the certificate from this file (PEM or DER) instead of the token.
    #[must_use]
    pub fn certificate_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.certificate_path = Some(path.into());
        self
    }

    fn invalid(&self, reason: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            key: "Pkcs11".into(),
            reason: format!(
                "key `{}` in token `{}` of `{}`: {reason}",
                self.key_label,
                self.token_label,
                self.module.display()
            ),
        }
    }

    /// Opens the token, logs in, finds the key and the certificate, and checks they match.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] saying what is missing or wrong (module, token, PIN file,
    /// PIN, key, certificate), with the labels found.
    pub async fn open(&self, context: &CredentialContext) -> Result<Pkcs11Signer, ConfigError> {
        let source = self.clone();
        let now = context.clock.unix_seconds();
        let result = tokio::task::spawn_blocking(move || source.open_blocking(now))
            .await
            .map_err(|e| self.invalid(format!("the PKCS#11 task failed: {e}")))?;
        result.map_err(|reason| self.invalid(reason))
    }

    fn open_blocking(&self, now: u64) -> Result<Pkcs11Signer, String> {
        let pin = read_pin(&self.pin_file)?;
        let module = module(&self.module)?;
        let slot = find_token(&module, &self.token_label)?;
        let session = login(&module, slot, &pin)?;
        let key = find_key(&session, &self.key_label)?;
        let attributes = session
            .get_attributes(
                key,
                &[
                    AttributeType::KeyType,
                    AttributeType::Sign,
                    AttributeType::Modulus,
                ],
            )
            .map_err(|e| format!("cannot read the key's attributes: {e}"))?;
        let mut modulus = None;
        for attribute in attributes {
            match attribute {
                Attribute::KeyType(kind) if kind != KeyType::RSA => {
                    return Err(format!(
                        "the key is of type {kind}, not RSA: client assertions are signed with RS256 or PS256"
                    ))
                }
                Attribute::Sign(false) => {
                    return Err("the key may not sign (CKA_SIGN is false)".into())
                }
                Attribute::Modulus(m) => modulus = Some(m),
                _ => {}
            }
        }
        let certificate = match &self.certificate_path {
            Some(path) => {
                let data = std::fs::read(path).map_err(|e| {
                    format!("cannot read CertificateDiskPath `{}`: {e}", path.display())
                })?;
                PublicCertificate::from_der_or_pem(&data).map_err(|e| {
                    format!(
                        "CertificateDiskPath `{}`: {}",
                        path.display(),
                        error_chain(&e)
                    )
                })?
            }
            None => certificate_from_token(&session, &self.key_label)?,
        };
        certificate
            .check_validity(now)
            .map_err(|e| error_chain(&e))?;
        let expected = certificate
            .rsa_modulus()
            .ok_or("the certificate's RSA key cannot be read")?;
        let found = modulus.ok_or("the token does not show the key's modulus")?;
        if strip_zeros(&found) != strip_zeros(&expected) {
            return Err(
                "the certificate's public key is not this key's (another certificate, or another key with the same label)".into(),
            );
        }
        debug!(target: TARGET, thumbprint = %certificate.thumbprints().sha1_hex(), "PKCS#11 signing key opened");
        Ok(Pkcs11Signer {
            inner: Arc::new(SignerInner {
                module,
                slot,
                key_label: self.key_label.clone(),
                pin,
                certificate,
                session: Mutex::new(Some((session, key))),
            }),
        })
    }
}

impl CredentialSource for Pkcs11Source {
    fn load<'a>(
        &'a self,
        context: &'a CredentialContext,
    ) -> BoxFuture<'a, Result<ClientCredential, CredentialError>> {
        Box::pin(async move {
            let signer = self.open(context).await?;
            Ok(ClientCredential::Signer(Arc::new(signer)))
        })
    }
}

/// A key in a PKCS#11 token signing client assertions: `CKM_SHA256_RSA_PKCS` (`RS256`) or
/// `CKM_SHA256_RSA_PKCS_PSS` with MGF1-SHA-256 and a 32-byte salt (`PS256`). From
/// [`Pkcs11Source`]. Cheap to clone; the PIN is kept in memory (zeroized on drop) to log in
/// again if the token drops the session, and never shown.
#[derive(Clone)]
pub struct Pkcs11Signer {
    inner: Arc<SignerInner>,
}

struct SignerInner {
    module: Pkcs11,
    slot: Slot,
    key_label: String,
    pin: AuthPin,
    certificate: PublicCertificate,
    session: Mutex<Option<(Session, ObjectHandle)>>,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("slot", &self.inner.slot.id())
            .field("key_label", &self.inner.key_label)
            .field("certificate", &self.inner.certificate)
            .finish_non_exhaustive()
    }
}

impl SignerInner {
    fn sign_blocking(
        &self,
        algorithm: AssertionAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, SignerError> {
        let mechanism = match algorithm {
            AssertionAlgorithm::Rs256 => Mechanism::Sha256RsaPkcs,
            AssertionAlgorithm::Ps256 => Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
                hash_alg: MechanismType::SHA256,
                mgf: PkcsMgfType::MGF1_SHA256,
                s_len: 32.into(),
            }),
        };
        let mut guard = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        for attempt in 0..2 {
            if guard.is_none() {
                *guard = Some(self.reopen().map_err(|reason| SignerError::Unavailable {
                    backend: BACKEND,
                    reason,
                })?);
            }
            let Some((session, key)) = guard.as_ref() else {
                continue;
            };
            match session.sign(&mechanism, *key, message) {
                Ok(signature) => return Ok(signature),
                Err(CkError::Pkcs11(
                    RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::UserNotLoggedIn
                    | RvError::ObjectHandleInvalid
                    | RvError::KeyHandleInvalid
                    | RvError::DeviceRemoved
                    | RvError::TokenNotPresent,
                    _,
                )) if attempt == 0 => {
                    debug!(target: TARGET, "the PKCS#11 session was lost; opening a new one");
                    *guard = None;
                }
                Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => {
                    return Err(SignerError::UnsupportedAlgorithm {
                        backend: BACKEND,
                        algorithm: algorithm.as_str(),
                    })
                }
                Err(e) => {
                    return Err(SignerError::Refused {
                        backend: BACKEND,
                        reason: format!("key `{}`: {e}", self.key_label),
                    })
                }
            }
        }
        Err(SignerError::Unavailable {
            backend: BACKEND,
            reason: format!(
                "key `{}`: the token keeps dropping the session",
                self.key_label
            ),
        })
    }

    fn reopen(&self) -> Result<(Session, ObjectHandle), String> {
        let session = login(&self.module, self.slot, &self.pin)?;
        let key = find_key(&session, &self.key_label)?;
        Ok((session, key))
    }
}

impl Signer for Pkcs11Signer {
    fn certificate(&self) -> PublicCertificate {
        self.inner.certificate.clone()
    }

    fn sign<'a>(
        &'a self,
        algorithm: AssertionAlgorithm,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, SignerError>> {
        let inner = Arc::clone(&self.inner);
        let message = message.to_vec();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.sign_blocking(algorithm, &message))
                .await
                .map_err(|e| SignerError::Unavailable {
                    backend: BACKEND,
                    reason: format!("the PKCS#11 task failed: {e}"),
                })?
        })
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}

/// The process's PKCS#11 modules, initialized once each (`C_Initialize` is per process).
fn module(path: &Path) -> Result<Pkcs11, String> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(module) = modules.get(path) {
        return Ok(module.clone());
    }
    if !path.is_file() {
        return Err(format!(
            "the PKCS#11 module `{}` does not exist (Pkcs11Module: the path of the vendor's shared library, e.g. /usr/lib/softhsm/libsofthsm2.so)",
            path.display()
        ));
    }
    let module = Pkcs11::new(path)
        .map_err(|e| format!("cannot load the PKCS#11 module `{}`: {e}", path.display()))?;
    match module.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Initialized by another part of the process: the module is shared.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(format!(
                "cannot initialize the PKCS#11 module `{}`: {e}",
                path.display()
            ))
        }
    }
    modules.insert(path.to_owned(), module.clone());
    Ok(module)
}

fn read_pin(path: &Path) -> Result<AuthPin, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read Pkcs11PinFile `{}`: {e}", path.display()))?;
    let pin = text.trim_end_matches(['\r', '\n']);
    if pin.is_empty() {
        return Err(format!("Pkcs11PinFile `{}` is empty", path.display()));
    }
    Ok(AuthPin::from(pin.to_owned()))
}

fn find_token(module: &Pkcs11, label: &str) -> Result<Slot, String> {
    let slots = module
        .get_slots_with_token()
        .map_err(|e| format!("cannot list the module's tokens: {e}"))?;
    let mut labels = Vec::new();
    for slot in slots {
        let Ok(info) = module.get_token_info(slot) else {
            continue;
        };
        if info.label().trim_end() == label {
            return Ok(slot);
        }
        labels.push(info.label().trim_end().to_owned());
    }
    Err(format!(
        "no token is labelled `{label}` (Pkcs11TokenLabel); tokens found: {}",
        if labels.is_empty() {
            "none".to_owned()
        } else {
            labels.join(", ")
        }
    ))
}

fn login(module: &Pkcs11, slot: Slot, pin: &AuthPin) -> Result<Session, String> {
    let session = module
        .open_ro_session(slot)
        .map_err(|e| format!("cannot open a session on the token: {e}"))?;
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
            Err("the token refused the PIN from Pkcs11PinFile (wrong PIN)".into())
        }
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
            Err("the token's user PIN is locked (too many wrong PINs)".into())
        }
        Err(e) => Err(format!("cannot log in to the token: {e}")),
    }
}

fn find_key(session: &Session, label: &str) -> Result<ObjectHandle, String> {
    let keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(|e| format!("cannot search the token's keys: {e}"))?;
    match keys.as_slice() {
        [key] => Ok(*key),
        [] => Err(format!(
            "the token has no private key labelled `{label}` (Pkcs11KeyLabel)"
        )),
        _ => Err(format!(
            "the token has {} private keys labelled `{label}`; labels must be unique",
            keys.len()
        )),
    }
}

fn certificate_from_token(session: &Session, label: &str) -> Result<PublicCertificate, String> {
    let objects = session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(|e| format!("cannot search the token's certificates: {e}"))?;
    let Some(object) = objects.first() else {
        return Err(format!(
            "the token has no certificate labelled `{label}`; store it there or set CertificateDiskPath"
        ));
    };
    let attributes = session
        .get_attributes(*object, &[AttributeType::Value])
        .map_err(|e| format!("cannot read the token's certificate: {e}"))?;
    let der = attributes
        .into_iter()
        .find_map(|a| match a {
            Attribute::Value(der) => Some(der),
            _ => None,
        })
        .ok_or("the token's certificate has no value")?;
    PublicCertificate::from_der_or_pem(&der)
        .map_err(|e| format!("the token's certificate: {}", error_chain(&e)))
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}
