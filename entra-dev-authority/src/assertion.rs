//! Client assertions (RFC 7523 `private_key_jwt`): parsed by hand, because the token endpoint
//! must accept what every MSAL sends (padded base64url `x5t`, float or string `exp`/`nbf`,
//! no `nbf`, PS256 with `x5t#S256`, `x5c` as a string or an array, base64 with line
//! breaks), and checked the way Entra checks them.

use std::collections::{BTreeSet, HashMap};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::entra_error::{format_iso, EntraError};
use crate::keys::{b64url, decode_b64_lenient, thumbprint_sha1, thumbprint_sha256};
use crate::registration::{RegisteredCertificate, Registry};

/// The longest client assertion accepted, in bytes.
pub(crate) const MAX_ASSERTION_LEN: usize = 32 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (Entra's 5 minutes).
pub(crate) const CLOCK_SKEW: i64 = 300;
/// The longest lifetime an assertion may claim (from now to `exp`), in seconds.
pub(crate) const MAX_LIFETIME: i64 = 24 * 3600;
/// Entries kept in the replay cache at most.
pub(crate) const REPLAY_CAPACITY: usize = 10_000;

/// A client assertion split and decoded, not yet verified.
#[derive(Debug)]
pub(crate) struct ParsedAssertion {
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    signing_input: String,
    signature: String,
}

/// Splits on '.', base64url-decodes the header and the payload into JSON objects.
pub(crate) fn parse(raw: &str) -> Result<ParsedAssertion, EntraError> {
    if raw.len() > MAX_ASSERTION_LEN {
        return Err(EntraError::malformed_assertion(&format!(
            "the client assertion is longer than {MAX_ASSERTION_LEN} bytes"
        )));
    }
    let raw = raw.trim();
    let mut parts = raw.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(EntraError::malformed_assertion(
            "the client assertion is not a JWS in compact serialization (three parts separated by '.')",
        ));
    };
    let header_map = decode_object(header, "header")?;
    let claims = decode_object(payload, "payload")?;
    let signature = signature.trim_end_matches('=');
    if signature.is_empty() {
        return Err(EntraError::malformed_assertion(
            "the client assertion is not signed",
        ));
    }
    Ok(ParsedAssertion {
        header: header_map,
        claims,
        signing_input: format!("{header}.{payload}"),
        signature: signature.to_owned(),
    })
}

fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, EntraError> {
    let bytes = decode_b64_lenient(part, MAX_ASSERTION_LEN).ok_or_else(|| {
        EntraError::malformed_assertion(&format!("the assertion's {what} is not base64url"))
    })?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(EntraError::malformed_assertion(&format!(
            "the assertion's {what} is not a JSON object"
        ))),
    }
}

/// What the assertion must match.
#[derive(Debug)]
pub(crate) struct Expectations<'a> {
    /// The URL the request was posted to: `aud` must be this.
    pub(crate) token_endpoint: &'a str,
    /// The `client_id` form parameter, if sent.
    pub(crate) client_id: Option<&'a str>,
    /// Unix seconds.
    pub(crate) now: i64,
    /// Certificates that replace an application's registered ones (lower-case client id →
    /// certificates), set by `DevAuthority::set_application_certificates`.
    pub(crate) replaced: Option<&'a HashMap<String, Vec<RegisteredCertificate>>>,
}

/// A verified assertion.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct VerifiedAssertion {
    pub(crate) client_id: String,
    pub(crate) jti: String,
    pub(crate) exp: i64,
}

/// Verifies everything but replay: client, certificate, signature, `aud`, `iss`/`sub`,
/// lifetime, `jti` present.
pub(crate) fn verify(
    raw: &str,
    expect: &Expectations<'_>,
    registry: &Registry,
) -> Result<VerifiedAssertion, EntraError> {
    let assertion = parse(raw)?;
    let claims = &assertion.claims;
    let iss = claim_str(claims, "iss")?;
    let sub = claim_str(claims, "sub")?;
    let client_id = expect.client_id.unwrap_or(iss);
    let app = registry
        .application(client_id)
        .ok_or_else(|| EntraError::unknown_client(client_id, &registry.tenant_id))?;
    let client_id = app.registration.client_id.as_str();
    if !iss.eq_ignore_ascii_case(client_id) {
        return Err(EntraError::client_id_mismatch(iss, client_id));
    }
    if sub != iss {
        return Err(EntraError::subject_mismatch());
    }

    let alg = match assertion.header.get("alg").and_then(Value::as_str) {
        Some("RS256") => Algorithm::RS256,
        Some("PS256") => Algorithm::PS256,
        other => {
            return Err(EntraError::invalid_signature(
                &format!(
                    "The signing algorithm '{}' is not supported; use PS256 or RS256.",
                    other.unwrap_or("")
                ),
                "",
                client_id,
            ))
        }
    };
    let x5c = leaf_from_x5c(assertion.header.get("x5c"))?;
    let (thumbprint, cert) = find_certificate(
        &assertion.header,
        x5c.as_deref(),
        expect
            .replaced
            .and_then(|replaced| replaced.get(&client_id.to_ascii_lowercase()))
            .map_or(app.registration.certificates.as_slice(), Vec::as_slice),
    )?;
    let Some(cert) = cert else {
        return Err(EntraError::invalid_signature(
            "The key was not found.",
            &thumbprint,
            client_id,
        ));
    };
    if let Some(x5c) = &x5c {
        if *x5c != cert.der {
            return Err(EntraError::invalid_signature(
                "The certificate in x5c is not the one named by the thumbprint.",
                &thumbprint,
                client_id,
            ));
        }
    }
    if expect.now < cert.not_before || expect.now > cert.not_after {
        return Err(EntraError::invalid_signature(
            "The key used is expired.",
            &thumbprint,
            client_id,
        ));
    }
    let key = DecodingKey::from_rsa_der(&cert.rsa_public_key);
    let valid = jsonwebtoken::crypto::verify(
        &assertion.signature,
        assertion.signing_input.as_bytes(),
        &key,
        alg,
    )
    .unwrap_or(false);
    if !valid {
        return Err(EntraError::invalid_signature(
            "The provided signature value did not match the expected signature value.",
            &thumbprint,
            client_id,
        ));
    }

    check_audience(claims.get("aud"), expect.token_endpoint)?;
    let exp = check_lifetime(claims, expect.now)?;
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(jti) if !jti.is_empty() && jti.len() <= 256 => jti.to_owned(),
        _ => {
            return Err(EntraError::malformed_assertion(
                "the client assertion has no jti claim (a unique id, e.g. a GUID)",
            ))
        }
    };
    Ok(VerifiedAssertion {
        client_id: client_id.to_owned(),
        jti,
        exp,
    })
}

fn claim_str<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, EntraError> {
    match claims.get(name).and_then(Value::as_str) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(EntraError::malformed_assertion(&format!(
            "the client assertion has no {name} claim (it must be the client id)"
        ))),
    }
}

/// The leaf certificate of `x5c`: a string (MSAL.NET) or an array (MSAL Python, RFC 7515),
/// standard base64 of the DER, possibly with line breaks or PEM armour.
fn leaf_from_x5c(x5c: Option<&Value>) -> Result<Option<Vec<u8>>, EntraError> {
    let text = match x5c {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(items)) => match items.first().and_then(Value::as_str) {
            Some(first) => first,
            None => {
                return Err(EntraError::malformed_assertion(
                    "x5c must hold the certificate as base64",
                ))
            }
        },
        Some(_) => {
            return Err(EntraError::malformed_assertion(
                "x5c must be a string or an array of strings",
            ))
        }
    };
    let body: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .collect();
    decode_b64_lenient(&body, MAX_ASSERTION_LEN)
        .filter(|der| !der.is_empty())
        .map(Some)
        .ok_or_else(|| EntraError::malformed_assertion("x5c is not base64"))
}

/// Finds the registered certificate named by `x5t#S256`, else `x5t`, else the `x5c` leaf.
/// Returns the thumbprint as normalised base64url (for messages) and the certificate.
fn find_certificate<'a>(
    header: &Map<String, Value>,
    x5c: Option<&[u8]>,
    certificates: &'a [RegisteredCertificate],
) -> Result<(String, Option<&'a RegisteredCertificate>), EntraError> {
    let thumbprint = |name: &str| -> Result<Option<String>, EntraError> {
        match header.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => decode_b64_lenient(s, 128)
                .filter(|bytes| !bytes.is_empty())
                .map(|bytes| Some(b64url(&bytes)))
                .ok_or_else(|| {
                    EntraError::malformed_assertion(&format!("the {name} header is not base64url"))
                }),
            Some(_) => Err(EntraError::malformed_assertion(&format!(
                "the {name} header must be a string"
            ))),
        }
    };
    if let Some(s256) = thumbprint("x5t#S256")? {
        let cert = certificates.iter().find(|c| c.x5t_s256 == s256);
        return Ok((s256, cert));
    }
    if let Some(sha1) = thumbprint("x5t")? {
        let cert = certificates.iter().find(|c| c.x5t == sha1);
        return Ok((sha1, cert));
    }
    if let Some(der) = x5c {
        let sha1 = thumbprint_sha1(der);
        let s256 = thumbprint_sha256(der);
        let cert = certificates.iter().find(|c| c.x5t_s256 == s256);
        return Ok((sha1, cert));
    }
    Err(EntraError::malformed_assertion(
        "the client assertion header names no certificate (x5t#S256, x5t or x5c)",
    ))
}

fn check_audience(aud: Option<&Value>, token_endpoint: &str) -> Result<(), EntraError> {
    let matches = |value: &str| {
        value
            .trim_end_matches('/')
            .eq_ignore_ascii_case(token_endpoint.trim_end_matches('/'))
    };
    let ok = match aud {
        Some(Value::String(s)) => matches(s),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).any(matches),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let shown = match aud {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    Err(EntraError::wrong_audience(&shown, token_endpoint))
}

/// A JWT NumericDate as MSAL sends it: an integer, a float (MSAL Python) or a string holding
/// either (MSAL.NET since 4.60). `Err` when present but not a usable time.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, EntraError> {
    let value = match claims.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match value {
        // Past year 9999 is as unusable as garbage; the bound also makes the cast exact.
        Some(v) if v.is_finite() && (0.0..=253_402_300_799.0).contains(&v) => {
            Ok(Some(v.floor() as i64))
        }
        _ => Err(EntraError::malformed_assertion(&format!(
            "the {name} claim is not a NumericDate"
        ))),
    }
}

fn check_lifetime(claims: &Map<String, Value>, now: i64) -> Result<i64, EntraError> {
    let Some(exp) = numeric_date(claims, "exp")? else {
        return Err(EntraError::malformed_assertion(
            "the client assertion has no exp claim",
        ));
    };
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    let current = format!("Current time: {}", format_iso(now));
    if now > exp.saturating_add(CLOCK_SKEW) {
        return Err(EntraError::assertion_time(&format!(
            "{current}, expiry time of assertion {}.",
            format_iso(exp)
        )));
    }
    for (name, value) in [("nbf", nbf), ("iat", iat)] {
        if let Some(value) = value {
            if value > now.saturating_add(CLOCK_SKEW) {
                return Err(EntraError::assertion_time(&format!(
                    "{current}, assertion valid from {} ({name}).",
                    format_iso(value)
                )));
            }
            if value >= exp {
                return Err(EntraError::assertion_time(&format!(
                    "{current}, the assertion's {name} ({}) is not before its expiry ({}).",
                    format_iso(value),
                    format_iso(exp)
                )));
            }
        }
    }
    if exp.saturating_sub(now) > MAX_LIFETIME {
        return Err(EntraError::assertion_time(&format!(
            "{current}, expiry time of assertion {} is more than {} hours away.",
            format_iso(exp),
            MAX_LIFETIME / 3600
        )));
    }
    Ok(exp)
}

/// What [`ReplayCache::remember`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remembered {
    /// A (client, `jti`) not seen before, now remembered until its `exp` + skew.
    New,
    /// Seen before, and not yet expired: a replay.
    Replayed,
    /// Not seen before, but the cache is full of unexpired entries: the assertion cannot
    /// be remembered, so it must be refused (forgetting an unexpired entry would let that
    /// assertion be replayed). `earliest_expiry` (Unix seconds) is when room frees up.
    Full { earliest_expiry: i64 },
}

type ReplayKey = (String, String);

/// Remembers the `jti` of accepted assertions until they expire (`exp` + [`CLOCK_SKEW`],
/// past which the lifetime check refuses them anyway), so that an assertion is accepted
/// once. Bounded: when `capacity` unexpired entries are held, new assertions are refused
/// ([`Remembered::Full`]) rather than an unexpired entry forgotten.
#[derive(Debug)]
pub(crate) struct ReplayCache {
    capacity: usize,
    /// (lower-case client id, jti) → exp.
    seen: HashMap<ReplayKey, i64>,
    /// The same entries ordered by expiry, to drop expired ones from the front.
    by_expiry: BTreeSet<(i64, ReplayKey)>,
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::with_capacity(REPLAY_CAPACITY)
    }
}

impl ReplayCache {
    /// A cache holding at most `capacity` unexpired entries.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            seen: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// The most unexpired entries held.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Checks (client, jti) at `now` and remembers it when new.
    pub(crate) fn remember(
        &mut self,
        client_id: &str,
        jti: &str,
        exp: i64,
        now: i64,
    ) -> Remembered {
        self.drop_expired(now);
        let key = (client_id.to_ascii_lowercase(), jti.to_owned());
        if self.seen.contains_key(&key) {
            return Remembered::Replayed;
        }
        if self.seen.len() >= self.capacity {
            let earliest_expiry = self
                .by_expiry
                .first()
                .map_or(now, |(exp, _)| exp.saturating_add(CLOCK_SKEW));
            return Remembered::Full { earliest_expiry };
        }
        self.by_expiry.insert((exp, key.clone()));
        self.seen.insert(key, exp);
        Remembered::New
    }

    /// Forgets the entries whose `exp` + skew is before `now`.
    fn drop_expired(&mut self, now: i64) {
        while let Some((exp, _)) = self.by_expiry.first() {
            if exp.saturating_add(CLOCK_SKEW) >= now {
                break;
            }
            if let Some((_, key)) = self.by_expiry.pop_first() {
                self.seen.remove(&key);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests;
