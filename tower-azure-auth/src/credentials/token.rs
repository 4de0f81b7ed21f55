//! Access tokens obtained from the authority, and the outbound runtime errors: [`TokenError`]
//! (no token) and [`CredentialError`] (a credential source failed at run time).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::authority::FetchError;
use crate::error::ConfigError;

use crate::error::CertificateError;

/// An access token. `Debug` never shows the token itself; use [`AccessToken::secret`] to
/// put it in a request. Cheap to clone.
#[derive(Clone)]
pub struct AccessToken {
    inner: Arc<TokenInner>,
}

struct TokenInner {
    token: String,
    expires_on: SystemTime,
    refresh_on: SystemTime,
    ext_expires_on: Option<SystemTime>,
    acquired_on: SystemTime,
    scopes: Vec<String>,
    /// `Bearer …`, built the first time a layer or middleware sends the token.
    header: std::sync::OnceLock<http::HeaderValue>,
}

impl AccessToken {
    /// A token obtained elsewhere (a custom [`TokenSource`](crate::credentials::TokenSource), a test
    /// double); acquired now, [`refresh_on`](Self::refresh_on) 10 minutes before expiry.
    pub fn new(token: impl Into<String>, expires_on: SystemTime, scopes: Vec<String>) -> Self {
        let refresh_on = expires_on
            .checked_sub(Duration::from_secs(600))
            .unwrap_or(expires_on);
        Self::with_times(
            token.into(),
            SystemTime::now(),
            expires_on,
            refresh_on,
            None,
            scopes,
        )
    }

    pub(crate) fn with_times(
        token: String,
        acquired_on: SystemTime,
        expires_on: SystemTime,
        refresh_on: SystemTime,
        ext_expires_on: Option<SystemTime>,
        scopes: Vec<String>,
    ) -> Self {
        Self {
            inner: Arc::new(TokenInner {
                token,
                expires_on,
                refresh_on,
                ext_expires_on,
                acquired_on,
                scopes,
                header: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The token, to send as `Authorization: Bearer …`. Never log it.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.inner.token
    }

    /// Same as [`AccessToken::secret`].
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.inner.token
    }

    /// When the token expires.
    #[must_use]
    pub fn expires_on(&self) -> SystemTime {
        self.inner.expires_on
    }

    /// When the cache refreshes it in the background (`refresh_in` from the authority, or
    /// ahead of the 5-minute expiry margin).
    #[must_use]
    pub fn refresh_on(&self) -> SystemTime {
        self.inner.refresh_on
    }

    /// The extended expiry (`ext_expires_in`), when the authority sent one.
    #[must_use]
    pub fn ext_expires_on(&self) -> Option<SystemTime> {
        self.inner.ext_expires_on
    }

    /// When the token was received.
    #[must_use]
    pub fn acquired_on(&self) -> SystemTime {
        self.inner.acquired_on
    }

    /// The scopes the token was requested for.
    #[must_use]
    pub fn scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    /// The `Authorization` value, built by `build` on the first call and cloned after that
    /// (a reference count: `HeaderValue` shares its bytes).
    pub(crate) fn bearer_header(
        &self,
        build: impl FnOnce() -> Result<http::HeaderValue, TokenError>,
    ) -> Result<http::HeaderValue, TokenError> {
        if let Some(header) = self.inner.header.get() {
            return Ok(header.clone());
        }
        let header = build()?;
        Ok(self.inner.header.get_or_init(|| header).clone())
    }

    /// Whether the token has more than `margin` left at `now`.
    pub(crate) fn usable_at(&self, now: SystemTime, margin: Duration) -> bool {
        now.checked_add(margin)
            .is_some_and(|limit| self.inner.expires_on > limit)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_on", &self.inner.expires_on)
            .field("refresh_on", &self.inner.refresh_on)
            .field("scopes", &self.inner.scopes)
            .finish()
    }
}

/// The authority's JSON error (`{"error", "error_description", "error_codes", "trace_id",
/// "correlation_id"}`), with the AADSTS code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorityError {
    /// The HTTP status.
    pub status: u16,
    /// `error`, e.g. `invalid_client`.
    pub error: String,
    /// The AADSTS code: `error_codes[0]`, or parsed from an `AADSTSnnnnn:` description prefix.
    pub code: Option<u32>,
    /// `error_description` (Entra's contains the trace and correlation ids too).
    pub description: String,
    /// `trace_id`.
    pub trace_id: Option<String>,
    /// `correlation_id`.
    pub correlation_id: Option<String>,
    /// The thumbprints of the certificate the refused request was signed with, when it was
    /// (its SHA-1 hex, as the Azure portal shows it, goes into the AADSTS700027 advice).
    pub certificate: Option<super::x509::Thumbprints>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
}

impl AuthorityError {
    /// Parses an error response body; `None` when it is not the OAuth 2 error shape.
    #[must_use]
    pub fn parse(status: u16, body: &[u8]) -> Option<Self> {
        let body: ErrorBody = serde_json::from_slice(body).ok()?;
        let description = body.error_description.unwrap_or_default();
        let code = body
            .error_codes
            .as_ref()
            .and_then(|codes| codes.first())
            .and_then(|c| match c {
                serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .or_else(|| aadsts_prefix(&description));
        Some(Self {
            status,
            error: body.error,
            code,
            description,
            trace_id: body.trace_id,
            correlation_id: body.correlation_id,
            certificate: None,
        })
    }

    /// The error, naming the certificate the request was signed with.
    #[must_use]
    pub fn with_certificate(mut self, thumbprints: super::x509::Thumbprints) -> Self {
        self.certificate = Some(thumbprints);
        self
    }

    /// What to do about it, for the common codes.
    #[must_use]
    pub fn advice(&self) -> Option<&'static str> {
        Some(match self.code? {
            700016 => "the application (client id) was not found in the tenant: check ClientId and TenantId (wrong tenant, or the app is not registered there)",
            700027 => "the client assertion's signature was not accepted: check that the certificate (its thumbprint) is registered on the app registration under Certificates & secrets, and that the private key matches it",
            700024 => "the client assertion is outside its validity window: check this machine's clock (clock skew) and that assertions are not reused after they expire",
            7000215 => "the client secret is wrong: check ClientSecret (use the secret's value, not its id)",
            7000222 => "the client secret has expired: create a new one on the app registration",
            1002012 | 70011 => "the scope is not valid for the client credentials flow: use `{application id URI}/.default`, e.g. api://<api client id>/.default",
            500011 => "the resource (the API in the scope) was not found in the tenant: check the application id URI in the scope and that the API is registered (and consented) in this tenant",
            90002 => "the tenant was not found: check TenantId and Instance (wrong tenant or cloud)",
            7000218 => "the request carried no client credential: configure a certificate or a secret",
            50196 => "the client is calling the authority in a loop: cache tokens instead of requesting one per call",
            5002730 => "the authority refused the PS256 signature for this key: use the RS256 assertion algorithm",
            _ => return None,
        })
    }

    /// Whether the error means the credential itself was refused (AADSTS700027-class): the
    /// credential is worth reloading (certificate rotation).
    #[must_use]
    pub fn is_credential_rejected(&self) -> bool {
        self.error == "invalid_client"
            && matches!(
                self.code,
                Some(700027 | 700024 | 7000214 | 1000502 | 7000274 | 7000277)
            )
    }
}

/// `AADSTS700027: …` → 700027.
fn aadsts_prefix(description: &str) -> Option<u32> {
    let rest = description.trim_start().strip_prefix("AADSTS")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "AADSTS{code} ({}, HTTP {})", self.error, self.status)?,
            None => write!(f, "{} (HTTP {})", self.error, self.status)?,
        }
        // Entra's description repeats the code and carries trace ids on further lines.
        let first_line = self.description.lines().next().unwrap_or_default();
        let first_line = first_line
            .trim()
            .strip_prefix(&format!("AADSTS{}:", self.code.unwrap_or_default()))
            .unwrap_or(first_line)
            .trim();
        if !first_line.is_empty() {
            write!(f, ": {first_line}")?;
        }
        if let Some(advice) = self.advice() {
            write!(f, "; {advice}")?;
        }
        if let (Some(700027), Some(thumbprints)) = (self.code, &self.certificate) {
            write!(
                f,
                "; the certificate in use has the thumbprint {} (SHA-1, as the portal shows it; x5t {})",
                thumbprints.sha1_hex(),
                thumbprints.x5t()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for AuthorityError {}

/// A credential source failed at run time: Key Vault, a managed identity endpoint, a
/// federated token file, a credential of another library. Configuration mistakes found
/// while loading stay a [`ConfigError`] inside [`CredentialError::Configuration`].
///
/// [`is_transient`](Self::is_transient) says whether trying again later may succeed (the
/// service was unreachable, throttled or failing with 5xx); everything else needs a change of
/// configuration, permissions or the stored credential. Messages name the service, the
/// vault and certificate or the file, never a token, a secret or key material.
///
/// It reaches callers of [`ConfidentialClient`](crate::credentials::ConfidentialClient) as
/// [`TokenError::Credential`]:
///
/// ```
/// use tower_azure_auth::credentials::{CredentialError, TokenError};
///
/// fn retry_later(error: &TokenError) -> bool {
///     match error {
///         TokenError::Credential(CredentialError::Refused { status: 403, .. }) => false,
///         other => other.is_transient(),
///     }
/// }
/// let refused = TokenError::Credential(CredentialError::Refused {
///     origin: "the KeyVault certificate `ServiceApiCert` in `https://contoso.vault.azure.net`".into(),
///     status: 403,
///     code: Some("Forbidden".into()),
///     message: "the identity has no get permission on secrets".into(),
/// });
/// assert!(!retry_later(&refused));
/// assert!(refused.to_string().contains("HTTP 403 (Forbidden)"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The service holding the credential could not be reached: connection, TLS, timeout, a
    /// broken or oversized body, or a redirect (never followed).
    #[error("{origin} cannot be reached")]
    Unreachable {
        /// The service (`the KeyVault certificate `…` in `…``, `the IMDS managed identity
        /// endpoint `…``).
        origin: String,
        /// What failed.
        #[source]
        source: FetchError,
    },
    /// The service answered with an error status (Key Vault's 403: the identity has no
    /// access; 404: no such certificate; a managed identity endpoint's 401 or 5xx).
    #[error("{origin} answered HTTP {status} ({}): {message}", code.as_deref().unwrap_or("no error code"))]
    Refused {
        /// The service.
        origin: String,
        /// The HTTP status.
        status: u16,
        /// The service's error code (Key Vault's `error.code`, e.g. `Forbidden`), when it
        /// sent one.
        code: Option<String>,
        /// What the service said and what to check.
        message: String,
    },
    /// The service answered success with something that is not what it should send (not
    /// JSON of the expected shape, required fields missing).
    #[error("{origin} sent an unusable answer: {reason}")]
    InvalidResponse {
        /// The service.
        origin: String,
        /// What was wrong.
        reason: String,
    },
    /// What the service holds is not a usable client certificate: the Key Vault secret has
    /// another content type or no value, or the certificate is disabled, outside its
    /// validity or has a key the vault will not export.
    #[error("{origin} holds no usable client certificate: {reason}")]
    NotACertificate {
        /// The service.
        origin: String,
        /// Why.
        reason: String,
    },
    /// The certificate (or its key) was read but cannot be used: a wrong password, a
    /// malformed PKCS#12 or PEM, an expired certificate, a key that does not match.
    #[error("{origin}: not a usable client certificate")]
    Certificate {
        /// Where it was read from (the vault, the file, `Base64EncodedValue`).
        origin: String,
        /// Why.
        #[source]
        source: CertificateError,
    },
    /// No token to call the service with (the vault's token source failed); transient when
    /// that failure is.
    #[error("no token for {origin} (scope `{scope}`)")]
    NoToken {
        /// The service the token was for.
        origin: String,
        /// The scope asked for.
        scope: String,
        /// Why the token source failed.
        #[source]
        source: Box<TokenError>,
    },
    /// A file (a federated token file) could not be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but does not hold a usable credential (too large, empty, not a
    /// compact JWT).
    #[error("`{}` holds no usable credential: {reason}", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A [`Signer`](crate::credentials::Signer) (Key Vault, an HSM) failed while the
    /// credential was loaded; [`SignerError::is_transient`](crate::credentials::SignerError::is_transient)
    /// is this error's too.
    #[error(transparent)]
    Signer(#[from] super::signer::SignerError),
    /// A configuration mistake found while loading (a description without its required
    /// field, a vault URL that is not https…).
    #[error(transparent)]
    Configuration(#[from] ConfigError),
    /// None of the configured credentials loaded
    /// ([`CredentialDescriptions`](crate::credentials::CredentialDescriptions)); one failure
    /// per description tried, with its index in the list.
    #[error(
        "no client credential could be loaded: {}",
        list_failures(key, failures)
    )]
    NoneLoaded {
        /// The configuration key of the list (`CallApi:ClientCertificates`).
        key: String,
        /// Each description's index and failure, in order.
        failures: Vec<(usize, Self)>,
    },
    /// A credential of another library failed (an `azure_core` `TokenCredential`, behind
    /// the `azure-core` feature); its error is the source.
    #[error("the token credential failed")]
    External {
        /// Whether the other library reported a failure worth retrying (an I/O failure, a
        /// 429 or a 5xx).
        transient: bool,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// ` [0] why; [1] why`: a mistake under the list's own key says only its reason.
fn list_failures(key: &str, failures: &[(usize, CredentialError)]) -> String {
    let mut text = String::new();
    for (index, error) in failures {
        if !text.is_empty() {
            text.push(';');
        }
        let why = match error {
            CredentialError::Configuration(ConfigError::Invalid { key: own, reason })
                if own == key =>
            {
                reason.clone()
            }
            other => crate::error::error_chain(other),
        };
        text.push_str(&format!(" [{index}] {why}"));
    }
    text
}

impl CredentialError {
    /// Whether trying again later may succeed: the service was unreachable (not a redirect),
    /// answered 408, 429 or 5xx, the token for it failed transiently, a read was interrupted
    /// or timed out, or (for [`NoneLoaded`](Self::NoneLoaded)) any description failed
    /// transiently.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { source, .. } => !matches!(source, FetchError::Redirected { .. }),
            Self::Refused { status, .. } => matches!(status, 408 | 429) || *status >= 500,
            Self::NoToken { source, .. } => source.is_transient(),
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            Self::NoneLoaded { failures, .. } => failures.iter().any(|(_, e)| e.is_transient()),
            Self::External { transient, .. } => *transient,
            Self::Signer(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Why a token could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The authority answered with an error (parsed from its JSON body).
    #[error("the authority refused the request: {0}")]
    Rejected(Box<AuthorityError>),
    /// The authority asked to wait (`Retry-After` on 429 or 5xx); identical requests are
    /// refused without I/O until then.
    #[error("the authority is throttling this client; retry in {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// How long to wait.
        retry_after: Duration,
    },
    /// The token endpoint could not be reached (connection, TLS, timeout).
    #[error("cannot reach the token endpoint")]
    Transport(#[source] FetchError),
    /// The discovery document (for the token endpoint) could not be read.
    #[error("cannot read the authority's discovery document")]
    Metadata(#[source] FetchError),
    /// The token endpoint answered something that is not a usable token response.
    #[error("the token endpoint sent an unusable response: {reason}")]
    BadResponse {
        /// What was wrong.
        reason: String,
    },
    /// A requested scope is not acceptable (for Entra, client-credential scopes must end
    /// with `/.default`, like Microsoft.Identity.Web's IDW10404).
    #[error("scope `{scope}` is not valid for the client credentials flow: {reason}")]
    InvalidScope {
        /// The scope.
        scope: String,
        /// Why.
        reason: &'static str,
    },
    /// The claims request is not a JSON object
    /// ([`AcquireTokenOptions::claims`](crate::credentials::AcquireTokenOptions::claims)).
    #[error("the claims request is not usable: {reason}")]
    InvalidClaims {
        /// Why.
        reason: String,
    },
    /// The tenant override is refused
    /// ([`AcquireTokenOptions::tenant`](crate::credentials::AcquireTokenOptions::tenant)).
    #[error("tenant override `{tenant}` refused: {reason}")]
    InvalidTenant {
        /// The tenant asked for.
        tenant: String,
        /// Why.
        reason: &'static str,
    },
    /// The client's configuration is not usable (no credential and no source).
    #[error("the client configuration is not usable")]
    Configuration(#[source] ConfigError),
    /// The client assertion could not be signed.
    #[error("cannot sign the client assertion")]
    Assertion(#[source] CertificateError),
    /// A [`Signer`](crate::credentials::Signer) (Key Vault, an HSM) could not sign the client
    /// assertion.
    #[error("cannot sign the client assertion")]
    Signing(#[source] super::signer::SignerError),
    /// The credential could not be loaded or used: its source (Key Vault, a managed
    /// identity endpoint, a federated token file, a credential of another library) failed.
    /// [`CredentialError::is_transient`] says whether to retry.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

impl TokenError {
    /// What loading the credential failed with: a configuration mistake stays
    /// [`TokenError::Configuration`], the rest is [`TokenError::Credential`].
    pub(crate) fn from_load(error: CredentialError) -> Self {
        match error {
            CredentialError::Configuration(error) => Self::Configuration(error),
            other => Self::Credential(other),
        }
    }

    /// The AADSTS code, when the authority sent one.
    #[must_use]
    pub fn aadsts_code(&self) -> Option<u32> {
        match self {
            Self::Rejected(e) => e.code,
            _ => None,
        }
    }

    /// The authority's error, when it sent one.
    #[must_use]
    pub fn authority_error(&self) -> Option<&AuthorityError> {
        match self {
            Self::Rejected(e) => Some(e),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (throttling, 408, 5xx, transport, a credential
    /// source that failed transiently), as MSAL.NET's `MsalServiceException.IsRetryable`.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Credential(e) => e.is_transient(),
            Self::Transport(FetchError::Redirected { .. })
            | Self::Metadata(FetchError::Redirected { .. }) => false,
            Self::Throttled { .. } | Self::Transport(_) | Self::Metadata(_) => true,
            Self::Rejected(e) => e.status >= 500 || matches!(e.status, 408 | 429),
            Self::Signing(e) => e.is_transient(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts700027_names_the_certificate_in_use_by_both_thumbprints() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS700027: Client assertion failed signature validation.","error_codes":[700027]}"#;
        let thumbprints = super::super::x509::Thumbprints::of_der(b"a certificate");
        let sha1_hex = thumbprints.sha1_hex();
        assert_eq!(sha1_hex.len(), 40);
        assert!(sha1_hex
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        let error = AuthorityError::parse(401, body)
            .expect("an OAuth error")
            .with_certificate(thumbprints.clone());
        let text = error.to_string();
        assert!(text.contains(&sha1_hex), "{text}");
        assert!(text.contains(&thumbprints.x5t()), "{text}");
        assert!(text.contains("portal"), "{text}");
        // Another code names no thumbprint: the advice is about something else.
        let other = AuthorityError::parse(
            400,
            br#"{"error":"invalid_client","error_codes":[7000215]}"#,
        )
        .expect("an OAuth error")
        .with_certificate(thumbprints);
        assert!(!other.to_string().contains(&sha1_hex), "{other}");
    }

    #[test]
    fn authority_errors_are_parsed_and_explained() {
        struct Case {
            name: &'static str,
            body: &'static str,
            code: Option<u32>,
            error: &'static str,
            display_contains: &'static [&'static str],
            rejected_credential: bool,
        }
        let cases = [
            Case {
                name: "error_codes wins",
                body: r#"{"error":"invalid_client","error_description":"AADSTS700027: Client assertion failed signature validation.\r\nTrace ID: t\r\nCorrelation ID: c","error_codes":[700027],"trace_id":"t","correlation_id":"c"}"#,
                code: Some(700027),
                error: "invalid_client",
                display_contains: &[
                    "AADSTS700027",
                    "Client assertion failed signature validation.",
                    "certificate",
                    "registered",
                ],
                rejected_credential: true,
            },
            Case {
                name: "code from the description prefix",
                body: r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'x' was not found"}"#,
                code: Some(700016),
                error: "unauthorized_client",
                display_contains: &["AADSTS700016", "not found in the tenant"],
                rejected_credential: false,
            },
            Case {
                name: "string code",
                body: r#"{"error":"invalid_client","error_codes":["7000215"]}"#,
                code: Some(7000215),
                error: "invalid_client",
                display_contains: &["AADSTS7000215", "client secret is wrong"],
                rejected_credential: false,
            },
            Case {
                name: "scope",
                body: r#"{"error":"invalid_scope","error_description":"AADSTS1002012: The provided value for scope x is not valid.","error_codes":[1002012]}"#,
                code: Some(1002012),
                error: "invalid_scope",
                display_contains: &["/.default"],
                rejected_credential: false,
            },
            Case {
                name: "clock skew",
                body: r#"{"error":"invalid_client","error_codes":[700024]}"#,
                code: Some(700024),
                error: "invalid_client",
                display_contains: &["clock"],
                rejected_credential: true,
            },
            Case {
                name: "resource not found",
                body: r#"{"error":"invalid_resource","error_codes":[500011]}"#,
                code: Some(500011),
                error: "invalid_resource",
                display_contains: &["resource"],
                rejected_credential: false,
            },
            Case {
                name: "generic authority without codes",
                body: r#"{"error":"invalid_grant","error_description":"bad things"}"#,
                code: None,
                error: "invalid_grant",
                display_contains: &["invalid_grant", "bad things"],
                rejected_credential: false,
            },
        ];
        for case in cases {
            let parsed = AuthorityError::parse(400, case.body.as_bytes())
                .unwrap_or_else(|| panic!("{}: not parsed", case.name));
            assert_eq!(parsed.code, case.code, "{}", case.name);
            assert_eq!(parsed.error, case.error, "{}", case.name);
            assert_eq!(
                parsed.is_credential_rejected(),
                case.rejected_credential,
                "{}",
                case.name
            );
            let error = TokenError::Rejected(Box::new(parsed));
            assert_eq!(error.aadsts_code(), case.code, "{}", case.name);
            let text = error.to_string();
            for needle in case.display_contains {
                assert!(
                    text.contains(needle),
                    "{}: {text:?} lacks {needle:?}",
                    case.name
                );
            }
            assert!(!text.contains("Trace ID"), "{}: {text}", case.name);
        }
        assert!(AuthorityError::parse(500, b"<html>").is_none());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let now = SystemTime::now();
        let token = AccessToken::new("eyJ.secret.sig", now, vec!["s".into()]);
        let debug = format!("{token:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert_eq!(token.secret(), "eyJ.secret.sig");
    }
}
