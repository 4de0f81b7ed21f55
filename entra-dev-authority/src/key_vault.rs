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
    certificates: Vec<(String, GeneratedCertificate, ContentType)>,
    denied: Vec<String>,
}

impl fmt::Debug for DevKeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKeyVault")
            .field(
                "certificates",
                &self
                    .certificates
                    .iter()
                    .map(|(name, _, t)| (name, t))
                    .collect::<Vec<_>>(),
            )
            .field("denied", &self.denied)
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
        self.certificates
            .push((name.into(), certificate.clone(), content_type));
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

fn pkcs12(certificate: &GeneratedCertificate) -> Result<Vec<u8>, DevAuthorityError> {
    let cert = p12_keystore::Certificate::from_der(&certificate.cert_der)
        .map_err(|e| invalid(format!("certificate: {e:?}")))?;
    let key = p12_keystore::PrivateKey::from_der(&certificate.key_der)
        .map_err(|e| invalid(format!("private key: {e:?}")))?;
    let chain = p12_keystore::PrivateKeyChain::new(b"kv-1".to_vec(), key, [cert]);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        &certificate.subject,
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store
        .writer("")
        .write()
        .map_err(|e| invalid(format!("cannot write PKCS#12: {e:?}")))
}

impl Vault {
    pub(crate) fn new(config: Option<DevKeyVault>, now: i64) -> Result<Self, DevAuthorityError> {
        let vault = Self {
            inner: Mutex::new(Inner::default()),
        };
        if let Some(config) = config {
            for (name, certificate, content_type) in &config.certificates {
                vault.set(name, certificate, *content_type, now)?;
            }
            let mut inner = vault.lock();
            for id in config.denied {
                inner.denied.insert(id.trim().to_ascii_lowercase());
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
        now: i64,
    ) -> Result<String, DevAuthorityError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid(format!("`{name}` is not a Key Vault name")));
        }
        let (_, parsed) = X509Certificate::from_der(&certificate.cert_der)
            .map_err(|e| invalid(format!("certificate: {e}")))?;
        let value = match content_type {
            ContentType::Pkcs12 => STANDARD.encode(pkcs12(certificate)?),
            ContentType::Pem => format!("{}{}", certificate.key_pem, certificate.cert_pem),
        };
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| invalid("no randomness"))?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let version = Version {
            id: id.clone(),
            cert_der: certificate.cert_der.clone(),
            value,
            content_type,
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
