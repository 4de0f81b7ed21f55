//! The error families at the bottom of the crate: [`ConfigError`] (building, loading
//! configuration and certificates) with [`CertificateError`] (a certificate or key that cannot
//! be used), and the inbound runtime error [`AuthError`]. The outbound runtime error is
//! [`TokenError`](crate::credentials::TokenError).

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use http::{HeaderValue, StatusCode};

/// An error found while building a validator, a client or a layer, or while loading
/// configuration or a certificate. These surface at startup, never per request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting is missing.
    #[error("missing setting `{key}`: {hint}")]
    Missing {
        /// The configuration key, in the `Section:Key` form.
        key: &'static str,
        /// What to put there.
        hint: &'static str,
    },
    /// A setting has a value that cannot be used.
    #[error("invalid setting `{key}`: {reason}")]
    Invalid {
        /// The configuration key, in the `Section:Key` form.
        key: String,
        /// Why the value cannot be used.
        reason: String,
    },
    /// A URL that must be `https` uses another scheme (plain `http` is only allowed for
    /// loopback addresses, for local testing).
    #[error(
        "`{url}` must use https (plain http is allowed only for 127.0.0.1, ::1 and localhost)"
    )]
    InsecureUrl {
        /// The refused URL.
        url: String,
    },
    /// A file could not be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file is not valid JSON of the expected shape.
    #[error("cannot parse configuration `{}`", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause (the JSON parser's error, with line and column).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A certificate or private key could not be loaded.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The HTTP client could not be built (a TLS root or a proxy URL it refused).
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A named authorization policy was not registered.
    #[error("no authorization policy named `{name}` is registered (known: {known})")]
    UnknownPolicy {
        /// The requested policy name.
        name: String,
        /// The names that are registered, comma separated.
        known: String,
    },
}

impl ConfigError {
    /// [`ConfigError::HttpClient`] with this cause.
    pub(crate) fn http_client(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::HttpClient(Box::new(source))
    }
}

/// A certificate or private key could not be loaded or cannot be used as a client
/// credential. Messages never contain key material or passwords.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// A file could not be read: `cannot read certs/caller.pfx: No such file or directory (os
    /// error 2)`.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's cause (also in the message).
        cause: std::io::Error,
    },
    /// The PKCS#12 password is wrong (or the file is damaged).
    #[error("{}the PKCS#12 password is wrong (or the file is damaged)", file_prefix(file.as_deref()))]
    WrongPassword {
        /// The file, when the archive was read from one.
        file: Option<String>,
    },
    /// The PKCS#12 file is protected by a password and none was given.
    #[error(
        "the PKCS#12 file{} is protected by a password and none was given (set CertificatePassword)",
        named(file.as_deref())
    )]
    PasswordRequired {
        /// The file, when the archive was read from one.
        file: Option<String>,
    },
    /// The data is not a PKCS#12 file.
    #[error("not a PKCS#12 (.pfx/.p12) file: {reason}")]
    NotPkcs12 {
        /// What was wrong.
        reason: String,
    },
    /// The data holds no usable X.509 certificate.
    #[error("not a certificate: {reason}")]
    NotACertificate {
        /// What was wrong.
        reason: String,
    },
    /// The PEM text is malformed.
    #[error("malformed PEM: {reason}")]
    Pem {
        /// What was wrong.
        reason: String,
    },
    /// A base64 value (e.g. `Base64EncodedValue`) is not valid base64.
    #[error("the value is not valid base64")]
    Base64,
    /// A certificate was found but no private key next to it.
    #[error("no private key found for the certificate `{subject}` (a client certificate needs its private key)")]
    NoPrivateKey {
        /// The certificate's subject.
        subject: String,
    },
    /// The PEM private key is encrypted, which is not supported.
    #[error("the PEM private key is encrypted; decrypt it first (`openssl pkcs8 -in key.pem -out plain.pem`) or use a PKCS#12 file with a password")]
    EncryptedPemKey,
    /// The private key does not belong to the certificate.
    #[error(
        "the private key does not match the certificate `{subject}` (their public keys differ)"
    )]
    KeyMismatch {
        /// The certificate's subject.
        subject: String,
    },
    /// The certificate's validity period has ended.
    #[error("the certificate `{subject}` expired at {not_after}")]
    Expired {
        /// The certificate's subject.
        subject: String,
        /// The end of validity.
        not_after: String,
    },
    /// The certificate's validity period has not started.
    #[error("the certificate `{subject}` is not valid before {not_before}")]
    NotYetValid {
        /// The certificate's subject.
        subject: String,
        /// The start of validity.
        not_before: String,
    },
    /// The RSA key is smaller than 2048 bits.
    #[error("the RSA key has {bits} bits; at least 2048 are required")]
    KeyTooSmall {
        /// The key size found.
        bits: usize,
    },
    /// The key is not an RSA key.
    #[error("unsupported key type {found}: only RSA keys (2048 bits or more) can sign client assertions")]
    UnsupportedKeyType {
        /// The key type found.
        found: String,
    },
    /// The private key cannot be parsed.
    #[error("the private key cannot be used: {reason}")]
    InvalidKey {
        /// What was wrong (never key material).
        reason: String,
    },
    /// Signing failed.
    #[error("signing with the certificate's private key failed")]
    Signing,
}

/// What kind of check rejected a request; stable, for metrics and custom responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// The `Authorization` header is not a single well-formed bearer credential.
    MalformedHeader,
    /// The token is not a well-formed JWS compact serialization with JSON header and claims.
    MalformedToken,
    /// The token is larger than the configured limit.
    TokenTooLarge,
    /// The header's `alg` is not in the allow-list.
    DisallowedAlgorithm,
    /// No signing key with the token's `kid` is published by the authority.
    UnknownSigningKey,
    /// The signature does not verify with the authority's key.
    InvalidSignature,
    /// The `iss` claim is not an accepted issuer.
    InvalidIssuer,
    /// The `tid` claim names a tenant that is not allowed, or is missing.
    InvalidTenant,
    /// The `aud` claim does not name this API.
    InvalidAudience,
    /// The token has expired.
    Expired,
    /// The token is not valid yet (`nbf` in the future).
    NotYetValid,
    /// A required claim is missing or has the wrong type.
    InvalidClaim,
    /// The signing keys could not be obtained from the authority yet; the token could not be
    /// checked. Answered with 503 and `Retry-After`, not 401: the caller did nothing wrong.
    KeysUnavailable,
    /// The calling application (`azp` in v2 tokens, `appid` in v1 tokens) is not one of the
    /// allowed client ids (`AllowedClientIds`), or the token names no calling application.
    ClientNotAllowed,
    /// The token was revoked ([`TokenValidator::revoke`](crate::TokenValidator::revoke)): by
    /// its calling application, object id, tenant or token id. 401 `invalid_token`.
    Revoked,
}

impl AuthErrorKind {
    /// A short stable name, e.g. `invalid_audience`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::MalformedHeader => "malformed_header",
            Self::MalformedToken => "malformed_token",
            Self::TokenTooLarge => "token_too_large",
            Self::DisallowedAlgorithm => "disallowed_algorithm",
            Self::UnknownSigningKey => "unknown_signing_key",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidTenant => "invalid_tenant",
            Self::InvalidAudience => "invalid_audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::InvalidClaim => "invalid_claim",
            Self::KeysUnavailable => "keys_unavailable",
            Self::ClientNotAllowed => "client_not_allowed",
            Self::Revoked => "revoked",
        }
    }
}

impl fmt::Display for AuthErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an inbound request was not authenticated.
///
/// Two parts, as Microsoft.IdentityModel keeps them apart ("PII is hidden"):
///
/// * the [`reason`](Self::reason) names the check that failed ("the audience is not
///   accepted") and holds no value from the token or the API's configuration that identifies
///   anyone (no audience, issuer, tenant, client id or key id); it never contains token bytes.
///   It is what responses carry by default.
/// * the [`detail`](Self::detail) holds the expected and actual values. The validator fills it
///   only when PII logging ([`TokenValidatorBuilder::enable_pii_logging`]) or detailed errors
///   ([`TokenValidatorBuilder::detailed_errors`]) are on; it is logged when present, and sent
///   in responses ([`description`](Self::description)) only with detailed errors.
///
/// [`TokenValidatorBuilder::enable_pii_logging`]: crate::validation::TokenValidatorBuilder::enable_pii_logging
/// [`TokenValidatorBuilder::detailed_errors`]: crate::validation::TokenValidatorBuilder::detailed_errors
///
/// ```
/// use tower_azure_auth::{AuthError, AuthErrorKind};
///
/// let error = AuthError::new(AuthErrorKind::InvalidAudience, "the audience is not accepted")
///     .with_detail("the audience 'api://other' is not accepted; expected 'api://weather'");
/// assert_eq!(error.description(), "the audience is not accepted");
/// let detailed = error.clone().with_detail_in_response(true);
/// assert_eq!(
///     detailed.description(),
///     "the audience is not accepted: the audience 'api://other' is not accepted; expected 'api://weather'"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    kind: AuthErrorKind,
    reason: Cow<'static, str>,
    detail: Option<Box<str>>,
    detail_in_response: bool,
    /// The claims challenge (`WWW-Authenticate`) answering a revoked CAE token.
    challenge: Option<HeaderValue>,
}

impl AuthError {
    /// A new error of the given kind; `reason` names the check and must hold no personal data.
    pub fn new(kind: AuthErrorKind, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            detail: None,
            detail_in_response: false,
            challenge: None,
        }
    }

    /// Adds the expected and actual values (personal data: client, tenant, audience, issuer).
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into().into_boxed_str());
        self
    }

    /// Whether [`description`](Self::description) (the response's `error_description`)
    /// includes the detail; off by default.
    #[must_use]
    pub fn with_detail_in_response(mut self, include: bool) -> Self {
        self.detail_in_response = include;
        self
    }

    /// Answers with this claims challenge (`error="insufficient_claims"`) instead of
    /// `invalid_token`.
    pub(crate) fn with_claims_challenge(mut self, challenge: HeaderValue) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// Whether the refusal is a claims challenge (`WWW-Authenticate: Bearer
    /// error="insufficient_claims", claims="…"`): a revoked token of a client that declared
    /// continuous access evaluation, with the validator's `claims_challenge_on_revocation` on.
    #[must_use]
    pub fn is_claims_challenge(&self) -> bool {
        self.challenge.is_some()
    }

    /// No bearer token was presented.
    #[must_use]
    pub fn missing_token() -> Self {
        Self::new(AuthErrorKind::MissingToken, "no bearer token")
    }

    /// The kind of check that failed.
    #[must_use]
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The check that failed, without personal data.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The expected and actual values, when the validator was asked to keep them (PII
    /// logging or detailed errors).
    #[must_use]
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// What a response says: the reason, followed by the detail only when detailed errors
    /// are on.
    #[must_use]
    pub fn description(&self) -> Cow<'_, str> {
        match (&self.detail, self.detail_in_response) {
            (Some(detail), true) => Cow::Owned(format!("{}: {detail}", self.reason)),
            _ => Cow::Borrowed(&self.reason),
        }
    }

    /// The HTTP status to answer with: 401, or 503 when the keys are not available yet.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self.kind {
            AuthErrorKind::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 `WWW-Authenticate` value: a bare `Bearer` challenge when no token was
    /// presented, `Bearer error="invalid_request"` for a malformed header, otherwise
    /// `Bearer error="invalid_token", error_description="…"` with the
    /// [`description`](Self::description); the claims challenge of a
    /// [`is_claims_challenge`](Self::is_claims_challenge) refusal. `None` for 503.
    #[must_use]
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        if let Some(challenge) = &self.challenge {
            return Some(challenge.clone());
        }
        let value = match self.kind {
            AuthErrorKind::KeysUnavailable => return None,
            AuthErrorKind::MissingToken => return Some(HeaderValue::from_static("Bearer")),
            AuthErrorKind::MalformedHeader => format!(
                "Bearer error=\"invalid_request\", error_description=\"{}\"",
                quoted_string(&self.description())
            ),
            _ => format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                quoted_string(&self.description())
            ),
        };
        // quoted_string keeps only visible ASCII, so this cannot fail; fall back regardless.
        Some(HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer")))
    }
}

/// `kind: reason`, then `(detail)` when the detail was kept (PII logging or detailed errors).
impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.reason)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for AuthError {}

/// An error and its sources on one line, `outer: cause: root cause`: what a log line or a
/// command-line tool should print. A source whose message the text already holds (some
/// libraries, the Azure SDK among them, print their source in their own message) is said
/// once.
///
/// ```
/// use tower_azure_auth::error::error_chain;
///
/// let error = tower_azure_auth::Authority::entra("not a url", "contoso").unwrap_err();
/// let text = error_chain(&error);
/// assert!(text.starts_with(&error.to_string()), "{text}");
/// ```
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// Makes `s` safe inside an RFC 7230 quoted-string and within RFC 6750's
/// `error_description` character set (%x20-21 / %x23-5B / %x5D-7E): drops `"` and `\`
/// and replaces anything outside visible ASCII with `?`.
pub(crate) fn quoted_string(s: &str) -> String {
    s.chars()
        .take(512)
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// `certs/caller.pfx: `, or nothing when the archive did not come from a file.
fn file_prefix(file: Option<&str>) -> String {
    file.map(|f| format!("{f}: ")).unwrap_or_default()
}

/// ` certs/caller.pfx`, or nothing when the archive did not come from a file.
fn named(file: Option<&str>) -> String {
    file.map(|f| format!(" {f}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_says_each_source_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<Self>>);
        impl fmt::Display for E {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let root = E("connection refused", None);
        assert_eq!(error_chain(&root), "connection refused");
        let nested = E(
            "no token",
            Some(Box::new(E("cannot reach", Some(Box::new(root))))),
        );
        assert_eq!(
            error_chain(&nested),
            "no token: cannot reach: connection refused"
        );
        // The middle error already prints its source: said once.
        let repeating = E(
            "no token",
            Some(Box::new(E(
                "failed: connection refused",
                Some(Box::new(E("connection refused", None))),
            ))),
        );
        assert_eq!(
            error_chain(&repeating),
            "no token: failed: connection refused"
        );
    }

    #[test]
    fn www_authenticate_per_kind() {
        struct Case {
            name: &'static str,
            error: AuthError,
            status: u16,
            header: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "missing token gets a bare challenge",
                error: AuthError::missing_token(),
                status: 401,
                header: Some("Bearer"),
            },
            Case {
                name: "invalid token carries the reason",
                error: AuthError::new(AuthErrorKind::Expired, "the token expired at 10"),
                status: 401,
                header: Some(
                    "Bearer error=\"invalid_token\", error_description=\"the token expired at 10\"",
                ),
            },
            Case {
                name: "quotes and control characters are neutralised",
                error: AuthError::new(AuthErrorKind::InvalidIssuer, "a\"b\\c\nd"),
                status: 401,
                header: Some("Bearer error=\"invalid_token\", error_description=\"a'b'c?d\""),
            },
            Case {
                name: "a detail stays out of the challenge by default",
                error: AuthError::new(AuthErrorKind::InvalidAudience, "the audience is not accepted")
                    .with_detail("the audience 'api://other' is not accepted; expected 'api://me'"),
                status: 401,
                header: Some(
                    "Bearer error=\"invalid_token\", error_description=\"the audience is not accepted\"",
                ),
            },
            Case {
                name: "with detailed errors the detail follows the reason",
                error: AuthError::new(AuthErrorKind::InvalidAudience, "the audience is not accepted")
                    .with_detail("the audience 'api://other' is not accepted; expected 'api://me'")
                    .with_detail_in_response(true),
                status: 401,
                header: Some(
                    "Bearer error=\"invalid_token\", error_description=\"the audience is not accepted: the audience 'api://other' is not accepted; expected 'api://me'\"",
                ),
            },
            Case {
                name: "detailed errors without a detail: the reason alone",
                error: AuthError::new(AuthErrorKind::Expired, "the token expired at 10")
                    .with_detail_in_response(true),
                status: 401,
                header: Some(
                    "Bearer error=\"invalid_token\", error_description=\"the token expired at 10\"",
                ),
            },
            Case {
                name: "keys unavailable is 503 without a challenge",
                error: AuthError::new(AuthErrorKind::KeysUnavailable, "down"),
                status: 503,
                header: None,
            },
        ];
        for case in cases {
            assert_eq!(case.error.status().as_u16(), case.status, "{}", case.name);
            let header = case.error.www_authenticate();
            assert_eq!(
                header.as_ref().map(|h| h.to_str().unwrap()),
                case.header,
                "{}",
                case.name
            );
        }
    }
}
