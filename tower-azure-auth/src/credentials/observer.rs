//! Certificate observers: what the [`ConfidentialClient`](crate::credentials::ConfidentialClient)
//! did with its certificates (selected, replaced, failed, successfully used), as
//! Microsoft.Identity.Web's `ICertificatesObserver`.

use std::fmt;
use std::time::SystemTime;

use super::credential::ClientCredential;
use super::signer::PublicCertificate;

/// Which certificate an event is about (no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateInfo {
    /// The subject distinguished name.
    pub subject: String,
    /// The SHA-1 thumbprint, upper-case hex (as the Azure portal shows it).
    pub thumbprint: String,
    /// `x5t#S256`.
    pub x5t_s256: String,
    /// `notAfter`.
    pub not_after: SystemTime,
    /// Where the key lives ([`Signer::backend`](crate::credentials::Signer::backend)):
    /// `"in-process"`, `"key vault"`, `"pkcs11"`, ….
    pub backend: &'static str,
}

impl CertificateInfo {
    pub(crate) fn of(certificate: &PublicCertificate, backend: &'static str) -> Self {
        Self {
            subject: certificate.subject().to_owned(),
            thumbprint: certificate.thumbprints().sha1_hex(),
            x5t_s256: certificate.thumbprints().x5t_s256(),
            not_after: certificate.not_after(),
            backend,
        }
    }

    /// The certificate of a credential; `None` for secrets and external assertions.
    pub(crate) fn of_credential(credential: &ClientCredential) -> Option<Self> {
        match credential {
            ClientCredential::Certificate(c) => {
                Some(Self::of(&c.public_certificate(), "in-process"))
            }
            ClientCredential::Signer(s) => Some(Self::of(&s.certificate(), s.backend())),
            _ => None,
        }
    }
}

/// What happened to a certificate.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum CertificateEvent<'a> {
    /// Loaded from the credential source and now used for assertions (the first load, or a
    /// reload that brought another certificate).
    Selected(&'a CertificateInfo),
    /// No longer used: another certificate was selected in its place.
    Deselected(&'a CertificateInfo),
    /// Loading or using a certificate failed: the source could not load one (`certificate`
    /// is the one still in use, if any), the signer failed, or the authority refused it
    /// (AADSTS700027 and similar; a reload follows).
    Failed {
        /// The certificate concerned, when one is known.
        certificate: Option<&'a CertificateInfo>,
        /// What went wrong.
        error: &'a (dyn std::error::Error + Send + Sync + 'static),
    },
    /// The authority issued a token for an assertion signed with this certificate.
    SuccessfullyUsed(&'a CertificateInfo),
}

impl CertificateEvent<'_> {
    /// A stable name: `selected`, `deselected`, `failed`, `successfully_used`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Selected(_) => "selected",
            Self::Deselected(_) => "deselected",
            Self::Failed { .. } => "failed",
            Self::SuccessfullyUsed(_) => "successfully_used",
        }
    }

    /// The certificate concerned, when one is known.
    #[must_use]
    pub fn certificate(&self) -> Option<&CertificateInfo> {
        match self {
            Self::Selected(c) | Self::Deselected(c) | Self::SuccessfullyUsed(c) => Some(c),
            Self::Failed { certificate, .. } => *certificate,
        }
    }
}

/// Told about certificate events, synchronously, on the task that caused them: keep it quick
/// (record a metric, log, send to a channel). Implemented for every
/// `Fn(&CertificateEvent<'_>) + Send + Sync`.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tower_azure_auth::credentials::{CertificateEvent, CertificateObserver};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&seen);
/// // Any `Fn(&CertificateEvent)` is an observer.
/// let observer = move |event: &CertificateEvent<'_>| log.lock().unwrap().push(event.name());
/// # let _: &dyn CertificateObserver = &observer;
/// // ConfidentialClient::builder(…).certificate_observer(Arc::new(observer))
/// # assert!(seen.lock().unwrap().is_empty());
/// ```
pub trait CertificateObserver: Send + Sync + 'static {
    /// One event.
    fn on_event(&self, event: &CertificateEvent<'_>);
}

impl<F> CertificateObserver for F
where
    F: Fn(&CertificateEvent<'_>) + Send + Sync + 'static,
{
    fn on_event(&self, event: &CertificateEvent<'_>) {
        self(event);
    }
}

/// The observers of one client.
#[derive(Clone, Default)]
pub(crate) struct Observers(Vec<std::sync::Arc<dyn CertificateObserver>>);

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} observer(s)", self.0.len())
    }
}

impl Observers {
    pub(crate) fn push(&mut self, observer: std::sync::Arc<dyn CertificateObserver>) {
        self.0.push(observer);
    }

    pub(crate) fn emit(&self, event: &CertificateEvent<'_>) {
        for observer in &self.0 {
            observer.on_event(event);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
