//! [`TokenValidator::diagnose`]: every check [`TokenValidator::validate`] runs, each with its
//! outcome, what it expected and what the token holds — for a tool that explains a refusal
//! (the `entra-doctor` CLI). The checks are the validator's own functions ([`jws`](super::jws),
//! [`rules`](super::rules), the revocations); nothing here decides anything by itself, so the
//! diagnosis accepts a token exactly when the validator does.
//!
//! Unlike validation, a diagnosis does not stop at the first failure: when the signature
//! fails, the claims are still decoded (unverified) and the claim rules run on them, so that
//! every problem shows at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::jws;
use super::keys::algorithm_name;
use super::rules::{substitute, Rules};
use super::TokenValidator;
use crate::claims::{Claims, TokenVersion};
use crate::error::AuthError;

/// Which check a [`Check`] reports, in the order the validator runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckName {
    /// The token's size (`MaxTokenSize`).
    Size,
    /// The header, its `alg` (`ValidAlgorithms`), the signing key (`kid`) and the signature.
    Signature,
    /// `exp`, `nbf`, `iat` with the leeway, and the longest lifetime.
    Lifetime,
    /// The issuer and tenant by Entra's rules (or exactly the metadata's issuer).
    Issuer,
    /// The audience (`Audience`/`Audiences`, or the per-version default from `ClientId`).
    Audience,
    /// The calling application (`AllowedClientIds`).
    Client,
    /// A non-empty `scp` or `roles` (unless `AllowWebApiToBeAuthorizedByACL`).
    Permission,
    /// The revocations this validator holds.
    Revocation,
}

impl CheckName {
    /// A stable lowercase name (`size`, `signature`, `lifetime`, `issuer`, `audience`,
    /// `client`, `permission`, `revocation`), as in the doctor's JSON output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Signature => "signature",
            Self::Lifetime => "lifetime",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Client => "client",
            Self::Permission => "permission",
            Self::Revocation => "revocation",
        }
    }
}

/// How one check ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CheckOutcome {
    /// The token passes it.
    Passed,
    /// The token fails it, with the error validation returns for it.
    Failed(AuthError),
    /// It could not run (the claims could not be decoded, no keys were fetched): why.
    NotRun(String),
}

/// One check of a [`Diagnosis`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Check {
    /// Which check.
    pub name: CheckName,
    /// How it ended.
    pub outcome: CheckOutcome,
    /// What the validator accepts, in words (`'api://…' or '…'`).
    pub expected: String,
    /// What the token holds.
    pub actual: String,
}

impl Check {
    /// Whether the token passes this check.
    #[must_use]
    pub fn passed(&self) -> bool {
        matches!(self.outcome, CheckOutcome::Passed)
    }

    /// The error validation returns for this check, when it fails.
    #[must_use]
    pub fn error(&self) -> Option<&AuthError> {
        match &self.outcome {
            CheckOutcome::Failed(error) => Some(error),
            _ => None,
        }
    }
}

/// Every check of [`TokenValidator::validate`] on one token, at one time.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    header: Option<Map<String, Value>>,
    claims: Option<Claims>,
    checks: Vec<Check>,
    key_id: Option<String>,
}

impl Diagnosis {
    /// The token's JOSE header, when it decodes.
    #[must_use]
    pub fn header(&self) -> Option<&Map<String, Value>> {
        self.header.as_ref()
    }

    /// The token's claims, when they decode (verified or not: see the signature check).
    #[must_use]
    pub fn claims(&self) -> Option<&Claims> {
        self.claims.as_ref()
    }

    /// Every check, in the validator's order.
    #[must_use]
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The `kid` of the published key that verified the signature.
    #[must_use]
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// Whether the validator accepts the token: every check passed.
    #[must_use]
    pub fn is_accepted(&self) -> bool {
        self.checks.iter().all(Check::passed)
    }

    /// The error [`TokenValidator::validate`] returns (the first failed check in its order),
    /// or `None` when the token is accepted.
    #[must_use]
    pub fn first_error(&self) -> Option<&AuthError> {
        self.checks.iter().find_map(Check::error)
    }
}

/// One published signing key (for [`KeysReport`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// Its `kid`.
    pub kid: Option<String>,
    /// The algorithm it is published for, when the JWK names one.
    pub alg: Option<&'static str>,
    /// Its own `issuer` (Entra's per-key issuer), when published.
    pub issuer: Option<String>,
}

/// The metadata and keys a validator holds now ([`TokenValidator::keys_report`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeysReport {
    /// The metadata's (v2) `issuer`, possibly with `{tenantid}`.
    pub issuer: String,
    /// The v1 metadata's `issuer` (Entra only).
    pub v1_issuer: Option<String>,
    /// The keys, in the JWKS's order.
    pub keys: Vec<KeyInfo>,
    /// How long ago the keys were last fetched; `None` for static keys.
    pub fetched_ago: Option<Duration>,
    /// Whether the keys come from the last-known-good store.
    pub last_known_good: bool,
}

impl TokenValidator {
    /// Runs every check [`validate`](Self::validate) runs on `token` as of `at`, without
    /// stopping at the first failure, and reports each with what it expected and what the
    /// token holds. Uses the keys held now and fetches nothing: call
    /// [`refresh`](Self::refresh) first (validation would refresh for an unknown `kid`).
    ///
    /// The diagnosis accepts the token exactly when validation with the same keys at the
    /// same time does ([`Diagnosis::is_accepted`]); [`Diagnosis::first_error`] is the error
    /// validation returns. The verified-token cache is neither read nor filled.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use tower_azure_auth::validation::CheckName;
    /// use tower_azure_auth::{Authority, TokenValidator};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let validator = TokenValidator::builder(Authority::oidc("https://idp.example.com")?)
    ///     .client_id("api")
    ///     .build()?;
    /// let diagnosis = validator.diagnose("not-a-token", SystemTime::now());
    /// assert!(!diagnosis.is_accepted());
    /// let signature = &diagnosis.checks()[1];
    /// assert_eq!(signature.name, CheckName::Signature);
    /// assert!(!signature.passed());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn diagnose(&self, token: &str, at: SystemTime) -> Diagnosis {
        let inner = &*self.inner;
        let now = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        // The same rules, keeping the expected and actual values in each error's detail.
        let rules = Rules {
            pii: true,
            ..inner.rules.clone()
        };
        let (header, unverified) = decode_unverified(token);
        let mut checks = Vec::with_capacity(8);

        let size_error = (token.len() > inner.max_token_size).then(|| {
            AuthError::new(
                crate::error::AuthErrorKind::TokenTooLarge,
                format!(
                    "the token is {} bytes, more than the {} allowed",
                    token.len(),
                    inner.max_token_size
                ),
            )
        });
        checks.push(Check {
            name: CheckName::Size,
            outcome: size_error.map_or(CheckOutcome::Passed, CheckOutcome::Failed),
            expected: format!("at most {} bytes", inner.max_token_size),
            actual: format!("{} bytes", token.len()),
        });

        let snapshot = inner.keys.snapshot.load();
        let verified = jws::verify(
            token,
            &inner.algorithms,
            snapshot.as_deref(),
            &rules,
            &inner.keys.authority,
        );
        let algorithms: Vec<&str> = inner
            .algorithms
            .iter()
            .map(|a| algorithm_name(*a))
            .collect();
        let header_str = |name: &str| {
            header
                .as_ref()
                .and_then(|h| h.get(name))
                .map_or_else(|| "none".to_owned(), show)
        };
        let signature_actual = format!("alg {}, kid {}", header_str("alg"), header_str("kid"));
        let signature_expected = format!(
            "alg {}, a key published by {}",
            algorithms.join(" or "),
            inner.keys.authority
        );
        let (claims, key_issuer, key_id, signature) = match &verified {
            Ok(verified) => (
                Some(verified.claims.clone()),
                verified.key.issuer.clone(),
                verified.key.kid.clone(),
                CheckOutcome::Passed,
            ),
            Err(error) => (unverified, None, None, CheckOutcome::Failed(error.clone())),
        };
        checks.push(Check {
            name: CheckName::Signature,
            outcome: signature,
            expected: signature_expected,
            actual: signature_actual,
        });

        let no_claims = || CheckOutcome::NotRun("the token's claims could not be decoded".into());
        let run = |result: Result<(), AuthError>| match result {
            Ok(()) => CheckOutcome::Passed,
            Err(error) => CheckOutcome::Failed(error),
        };
        let claim = |claims: &Claims, name: &str| claims.get(name).map_or("none".to_owned(), show);

        // Lifetime.
        checks.push(Check {
            name: CheckName::Lifetime,
            outcome: claims.as_ref().map_or_else(no_claims, |c| {
                run(rules.check_lifetime(c, now))
            }),
            expected: format!(
                "exp after {} and nbf, iat before {} (now {now}, {} s of clock skew), a lifetime of at most {} s",
                now.saturating_sub(rules.leeway),
                now.saturating_add(rules.leeway),
                rules.leeway,
                rules.max_token_lifetime
            ),
            actual: claims.as_ref().map_or_else(String::new, |c| {
                format!(
                    "exp {}, nbf {}, iat {}",
                    claim(c, "exp"),
                    claim(c, "nbf"),
                    claim(c, "iat")
                )
            }),
        });

        // Issuer.
        let tid = claims.as_ref().and_then(Claims::tenant_id);
        let (issuer_outcome, issuer_expected) = match (&claims, snapshot.as_deref()) {
            (None, _) => (no_claims(), String::new()),
            (Some(_), None) => (
                CheckOutcome::NotRun("no metadata was fetched yet".into()),
                String::new(),
            ),
            (Some(c), Some(snapshot)) => {
                let mut expected: Vec<String> = std::iter::once(&snapshot.issuer)
                    .chain(snapshot.v1_issuer.as_ref())
                    .map(|t| format!("'{}'", substitute(t, tid)))
                    .collect();
                expected.dedup();
                let mut expected = expected.join(" or ");
                if !rules.allowed_tenants.is_empty() {
                    expected.push_str(&format!(
                        ", tenant one of {}",
                        rules.allowed_tenants.join(", ")
                    ));
                }
                (
                    run(rules.check_issuer(
                        &snapshot.issuer,
                        snapshot.v1_issuer.as_deref(),
                        key_issuer.as_deref(),
                        c,
                    )),
                    expected,
                )
            }
        };
        checks.push(Check {
            name: CheckName::Issuer,
            outcome: issuer_outcome,
            expected: issuer_expected,
            actual: claims.as_ref().map_or_else(String::new, |c| {
                format!("iss {}, tid {}", claim(c, "iss"), claim(c, "tid"))
            }),
        });

        // Audience.
        let audience_expected = if rules.audiences.is_empty() {
            let client_id = rules.default_audience_client_id.as_deref().unwrap_or("");
            let v1 = claims
                .as_ref()
                .is_some_and(|c| matches!(c.version(), Some(TokenVersion::V1) | None));
            if rules.entra && v1 {
                format!("'{client_id}' or 'api://{client_id}' (the default for v1 tokens)")
            } else {
                format!("'{client_id}' (the default for v2 tokens: the ClientId)")
            }
        } else {
            rules
                .audiences
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        checks.push(Check {
            name: CheckName::Audience,
            outcome: claims
                .as_ref()
                .map_or_else(no_claims, |c| run(rules.check_audience(c))),
            expected: audience_expected,
            actual: claims.as_ref().map_or_else(String::new, |c| {
                format!("aud {}, ver {}", claim(c, "aud"), claim(c, "ver"))
            }),
        });

        // Calling application.
        checks.push(Check {
            name: CheckName::Client,
            outcome: claims
                .as_ref()
                .map_or_else(no_claims, |c| run(rules.check_client(c))),
            expected: if rules.allowed_client_ids.is_empty() {
                "any client (no AllowedClientIds)".to_owned()
            } else {
                format!("one of {}", rules.allowed_client_ids.join(", "))
            },
            actual: claims.as_ref().map_or_else(String::new, |c| {
                format!("azp {}, appid {}", claim(c, "azp"), claim(c, "appid"))
            }),
        });

        // Permission.
        checks.push(Check {
            name: CheckName::Permission,
            outcome: claims
                .as_ref()
                .map_or_else(no_claims, |c| run(rules.check_permission(c))),
            expected: if rules.require_scope_or_role {
                "a non-empty scp or roles".to_owned()
            } else {
                "nothing (AllowWebApiToBeAuthorizedByACL)".to_owned()
            },
            actual: claims.as_ref().map_or_else(String::new, |c| {
                format!("scp {}, roles {}", claim(c, "scp"), claim(c, "roles"))
            }),
        });

        // Revocation.
        checks.push(Check {
            name: CheckName::Revocation,
            outcome: claims
                .as_ref()
                .map_or_else(no_claims, |c| run(inner.revoker.check(c, now))),
            expected: "not revoked".to_owned(),
            actual: format!("{} revocation(s) held", inner.revoker.len()),
        });

        Diagnosis {
            header,
            claims,
            checks,
            key_id,
        }
    }

    /// The metadata's issuers and the signing keys held now, or `None` before any were
    /// fetched.
    #[must_use]
    pub fn keys_report(&self) -> Option<KeysReport> {
        let keys = &self.inner.keys;
        let snapshot = keys.snapshot.load();
        let snapshot = snapshot.as_deref()?;
        Some(KeysReport {
            issuer: snapshot.issuer.clone(),
            v1_issuer: snapshot.v1_issuer.clone(),
            keys: snapshot
                .keys
                .iter()
                .map(|key| KeyInfo {
                    kid: key.kid.clone(),
                    alg: key.alg().map(algorithm_name),
                    issuer: key.issuer.clone(),
                })
                .collect(),
            fetched_ago: if keys.static_keys {
                None
            } else {
                keys.last_refresh_age()
            },
            last_known_good: keys.serving_last_known_good(),
        })
    }
}

/// A claim or header value for a message: strings bare, anything else as JSON.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The header and claims without any verification, for display (and for running the claim
/// rules when the signature fails).
fn decode_unverified(token: &str) -> (Option<Map<String, Value>>, Option<Claims>) {
    let Ok((header, payload, _)) = jws::split(token) else {
        return (None, None);
    };
    let object = |part: &str| -> Option<Map<String, Value>> {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    let claims = object(payload).and_then(|map| Claims::from_map(map).ok());
    (object(header), claims)
}
