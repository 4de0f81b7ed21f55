//! The dev authority's Key Vault: what it stores (certificate versions with their secrets,
//! denied callers). The endpoints serving it are in `server::key_vault`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::error::DevAuthorityError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::keys::GeneratedCertificate;

/// The resource (v1 `aud`) of Key Vault tokens.
pub(crate) const VAULT_RESOURCE: &str = "https://vault.azure.net";

/// Azure Key Vault's application id (the v2 `aud` of its tokens).
pub(crate) const VAULT_APP_ID: &str = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093";

/// How the vault holds a certificate's secret (its `contentType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentType {
    /// `application/x-pkcs12`: base64 PKCS#12 without a password.
    Pkcs12,
    /// `application/x-pem-file`: the private key and the certificate as PEM.
    Pem,
}

impl ContentType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pkcs12 => "application/x-pkcs12",
            Self::Pem => "application/x-pem-file",
        }
    }
}

/// A Key Vault for [`DevAuthorityBuilder::key_vault`](crate::DevAuthorityBuilder::key_vault):
/// certificates with their private keys, and callers refused with 403.
///
/// ```
/// use entra_dev_authority::{generate_certificate, ContentType, DevKeyVault};
///
/// let certificate = generate_certificate("CN=weather-client")?;
/// let vault = DevKeyVault::new()
///     .certificate("ServiceApiCert", &certificate, ContentType::Pkcs12)
///     .deny("5a9f0c1e-0000-4000-8000-000000000009");
/// assert!(!format!("{vault:?}").contains("PRIVATE KEY"));
/// # Ok::<(), entra_dev_authority::DevAuthorityError>(())
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct DevKeyVault {
    certificates: Vec<(String, GeneratedCertificate, ContentType, Exportable)>,
    denied: Vec<String>,
    sign_denied: Vec<String>,
}

/// Whether a certificate's private key may leave the vault (its policy's
/// `key_props.exportable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exportable {
    /// The secret holds the private key (`exportable: true`).
    Yes,
    /// The key only signs inside the vault (`keys/{name}/{version}/sign`); the secret holds
    /// the certificate alone, as Azure returns it for a non-exportable key.
    No,
}

impl fmt::Debug for DevKeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKeyVault")
            .field(
                "certificates",
                &self
                    .certificates
                    .iter()
                    .map(|(name, _, t, e)| (name, t, e))
                    .collect::<Vec<_>>(),
            )
            .field("denied", &self.denied)
            .field("sign_denied", &self.sign_denied)
            .finish()
    }
}

impl DevKeyVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a certificate with its private key under `name`.
    pub fn certificate(
        mut self,
        name: impl Into<String>,
        certificate: &GeneratedCertificate,
        content_type: ContentType,
    ) -> Self {
        self.certificates.push((
            name.into(),
            certificate.clone(),
            content_type,
            Exportable::Yes,
        ));
        self
    }

    /// Stores a certificate whose key is created non-exportable: the key signs through
    /// `POST keys/{name}/{version}/sign` (`RS256`, `PS256`) and never leaves the vault; the
    /// secret holds only the certificate (PEM).
    pub fn non_exportable_certificate(
        mut self,
        name: impl Into<String>,
        certificate: &GeneratedCertificate,
    ) -> Self {
        self.certificates.push((
            name.into(),
            certificate.clone(),
            ContentType::Pem,
            Exportable::No,
        ));
        self
    }

    /// Refuses (403, `ForbiddenByPolicy`) the `sign` operation to callers with this client
    /// id: they may read certificates but lack the `keys/sign` permission.
    pub fn deny_sign(mut self, client_id: impl Into<String>) -> Self {
        self.sign_denied.push(client_id.into());
        self
    }

    /// Refuses (403) tokens whose `appid`/`azp` is this client id.
    pub fn deny(mut self, client_id: impl Into<String>) -> Self {
        self.denied.push(client_id.into());
        self
    }
}

/// One version of a stored certificate.
pub(crate) struct Version {
    pub(crate) id: String,
    pub(crate) cert_der: Vec<u8>,
    /// The secret's value: base64 PKCS#12 or PEM.
    pub(crate) value: String,
    pub(crate) content_type: ContentType,
    /// Whether the secret carries the private key.
    pub(crate) exportable: Exportable,
    /// The private key (PKCS#8), held by the vault for `sign`.
    pub(crate) key_der: Vec<u8>,
    /// Whether the key may sign (`attributes.enabled` of the key).
    pub(crate) key_enabled: bool,
    /// `sign` operations done with this version.
    pub(crate) signatures: u64,
    pub(crate) nbf: i64,
    pub(crate) exp: i64,
    pub(crate) created: i64,
}

#[derive(Default)]
pub(crate) struct Inner {
    /// Lower-case name → (name as stored, versions oldest first).
    pub(crate) certificates: HashMap<String, (String, Vec<Version>)>,
    /// Lower-case client ids refused with 403.
    pub(crate) denied: HashSet<String>,
    /// Lower-case client ids refused `sign` with 403.
    pub(crate) sign_denied: HashSet<String>,
}

/// The vault's state in the authority.
pub(crate) struct Vault {
    inner: Mutex<Inner>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault { .. }")
    }
}

fn invalid(reason: impl Into<String>) -> DevAuthorityError {
    DevAuthorityError::Invalid {
        key: "DevKeyVault".into(),
        reason: reason.into(),
    }
}

impl Vault {
    pub(crate) fn new(config: Option<DevKeyVault>, now: i64) -> Result<Self, DevAuthorityError> {
        let vault = Self {
            inner: Mutex::new(Inner::default()),
        };
        if let Some(config) = config {
            for (name, certificate, content_type, exportable) in &config.certificates {
                vault.set(name, certificate, *content_type, *exportable, now)?;
            }
            let mut inner = vault.lock();
            for id in config.denied {
                inner.denied.insert(id.trim().to_ascii_lowercase());
            }
            for id in config.sign_denied {
                inner.sign_denied.insert(id.trim().to_ascii_lowercase());
            }
        }
        Ok(vault)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a new version (the latest) of certificate `name`; returns its version id.
    pub(crate) fn set(
        &self,
        name: &str,
        certificate: &GeneratedCertificate,
        content_type: ContentType,
        exportable: Exportable,
        now: i64,
    ) -> Result<String, DevAuthorityError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid(format!("`{name}` is not a Key Vault name")));
        }
        let (_, parsed) = X509Certificate::from_der(&certificate.cert_der)
            .map_err(|e| invalid(format!("certificate: {e}")))?;
        let (value, content_type) = match (exportable, content_type) {
            (Exportable::No, _) => (certificate.cert_pem.clone(), ContentType::Pem),
            (Exportable::Yes, ContentType::Pkcs12) => {
                (STANDARD.encode(certificate.to_pkcs12("")?), content_type)
            }
            (Exportable::Yes, ContentType::Pem) => (
                format!("{}{}", certificate.key_pem, certificate.cert_pem),
                content_type,
            ),
        };
        aws_lc_rs::rsa::KeyPair::from_pkcs8(&certificate.key_der)
            .map_err(|_| invalid("the certificate's key is not an RSA PKCS#8 key"))?;
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| invalid("no randomness"))?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let version = Version {
            id: id.clone(),
            cert_der: certificate.cert_der.clone(),
            value,
            content_type,
            exportable,
            key_der: certificate.key_der.clone(),
            key_enabled: true,
            signatures: 0,
            nbf: parsed.validity().not_before.timestamp(),
            exp: parsed.validity().not_after.timestamp(),
            created: now,
        };
        let mut inner = self.lock();
        inner
            .certificates
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| (name.to_owned(), Vec::new()))
            .1
            .push(version);
        Ok(id)
    }

    /// Refuses or allows again `sign` to a client id.
    pub(crate) fn deny_sign(&self, client_id: &str, denied: bool) {
        let id = client_id.trim().to_ascii_lowercase();
        let mut inner = self.lock();
        if denied {
            inner.sign_denied.insert(id);
        } else {
            inner.sign_denied.remove(&id);
        }
    }

    /// Enables or disables the key of a certificate version; false when there is none.
    pub(crate) fn set_key_enabled(&self, name: &str, version: &str, enabled: bool) -> bool {
        let mut inner = self.lock();
        let Some((_, versions)) = inner.certificates.get_mut(&name.to_ascii_lowercase()) else {
            return false;
        };
        match versions
            .iter_mut()
            .find(|v| v.id.eq_ignore_ascii_case(version))
        {
            Some(v) => {
                v.key_enabled = enabled;
                true
            }
            None => false,
        }
    }

    /// `(version, signatures)` of each version of `name`, oldest first.
    pub(crate) fn signatures(&self, name: &str) -> Vec<(String, u64)> {
        let inner = self.lock();
        inner
            .certificates
            .get(&name.to_ascii_lowercase())
            .map(|(_, versions)| {
                versions
                    .iter()
                    .map(|v| (v.id.clone(), v.signatures))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn deny(&self, client_id: &str, denied: bool) {
        let id = client_id.trim().to_ascii_lowercase();
        let mut inner = self.lock();
        if denied {
            inner.denied.insert(id);
        } else {
            inner.denied.remove(&id);
        }
    }
}
