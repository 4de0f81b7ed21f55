//! JWS compact serialization: split a token, read its header, pick the key and the
//! algorithm, verify the signature, decode the claims. Nothing here looks at what the
//! claims say ([`rules`](super::rules) does).

use std::borrow::Cow;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::keys::{algorithm_name, SigningKey, Snapshot};
use super::rules::{short, Rules};
use crate::authority::Authority;
use crate::claims::{Claims, PayloadError};
use crate::error::{AuthError, AuthErrorKind};

/// A token whose signature checked out.
pub(crate) struct Verified<'s> {
    /// Its claims, not checked yet.
    pub(crate) claims: Claims,
    /// The keys and issuers it was verified with.
    pub(crate) snapshot: &'s Snapshot,
    /// The key that verified it.
    pub(crate) key: &'s Arc<SigningKey>,
}

/// The parts of a JWS header the validator reads; anything else (`jwk`, `jku`, `x5u`, `x5c`)
/// is ignored on purpose.
#[derive(Deserialize)]
struct Header<'a> {
    // Borrowed from the decoded header when it has no escapes: no allocation per token.
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    x5t: Option<Cow<'a, str>>,
    /// Whether the header has a `crit` member at all: `"crit": null` counts (an `Option`
    /// would read it as absent).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` for any value, `null` included: used with `#[serde(default)]`, tells whether a
/// member is present.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Decoded headers up to this size stay on the stack.
const HEADER_ON_STACK: usize = 384;
/// Signatures up to this size (RSA 8192) stay on the stack.
const SIGNATURE_ON_STACK: usize = 1024;

/// Decodes base64url (no padding) into `stack` when it fits, else into `heap`.
fn decode<'b>(
    input: &str,
    stack: &'b mut [u8],
    heap: &'b mut Vec<u8>,
) -> Result<&'b [u8], base64::DecodeError> {
    if base64::decoded_len_estimate(input.len()) <= stack.len() {
        let len = URL_SAFE_NO_PAD
            .decode_slice(input, stack)
            .map_err(|error| match error {
                base64::DecodeSliceError::DecodeError(error) => error,
                // Unreachable: the estimate is an upper bound.
                base64::DecodeSliceError::OutputSliceTooSmall => {
                    base64::DecodeError::InvalidLength(input.len())
                }
            })?;
        Ok(&stack[..len])
    } else {
        URL_SAFE_NO_PAD.decode_vec(input, heap)?;
        Ok(heap)
    }
}

/// The three base64url parts of a compact JWS (`header.payload.signature`); five parts are
/// a JWE, refused as such.
pub(crate) fn split(token: &str) -> Result<(&str, &str, &str), AuthError> {
    use AuthErrorKind as K;
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let count = token.split('.').count();
        let reason = if count == 5 {
            "encrypted tokens (JWE) are not supported".to_owned()
        } else {
            format!("a JWT has 3 dot-separated parts; this token has {count}")
        };
        return Err(AuthError::new(K::MalformedToken, reason));
    };
    Ok((header_b64, payload_b64, signature_b64))
}

/// Verifies a compact JWS with the keys of `snapshot`: the header (`crit` refused), its `alg`
/// against `algorithms` and the key's own `alg`, the key named by `kid` (then `x5t`), the
/// signature, and that the payload is a JSON object of claims. The claim rules come after.
pub(crate) fn verify<'s>(
    token: &str,
    algorithms: &[Algorithm],
    snapshot: Option<&'s Snapshot>,
    rules: &Rules,
    authority: &Authority,
) -> Result<Verified<'s>, AuthError> {
    use AuthErrorKind as K;
    let (header_b64, payload_b64, signature_b64) = split(token)?;
    // Header and signature are decoded on the stack when they fit (they nearly always do:
    // an RSA signature is at most 1,024 bytes), the payload once, into the claims' text.
    let mut header_stack = [0u8; HEADER_ON_STACK];
    let mut header_heap = Vec::new();
    let header_json = decode(header_b64, &mut header_stack, &mut header_heap)
        .map_err(|_| AuthError::new(K::MalformedToken, "the token header is not base64url"))?;
    let header: Header<'_> = serde_json::from_slice(header_json).map_err(|_| {
        AuthError::new(
            K::MalformedToken,
            "the token header is not a JSON object with an `alg`",
        )
    })?;
    if header.crit {
        // RFC 7515 §4.1.11: no extension is understood here, so any `crit` (even empty or
        // null) makes the token unusable.
        return Err(AuthError::new(
            K::MalformedToken,
            "the token header has a `crit` parameter, which is not supported",
        ));
    }
    let algorithm = algorithms
        .iter()
        .copied()
        .find(|a| algorithm_name(*a) == header.alg)
        .ok_or_else(|| {
            AuthError::new(
                K::DisallowedAlgorithm,
                format!(
                    "the algorithm '{}' is not accepted; expected one of {}",
                    short(&header.alg),
                    algorithms
                        .iter()
                        .map(|a| algorithm_name(*a))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;

    let Some(snapshot) = snapshot else {
        return Err(rules.refuse(
            K::KeysUnavailable,
            "the signing keys could not be fetched yet",
            || format!("the signing keys of {authority} could not be fetched yet"),
        ));
    };
    let key = snapshot
        .keys
        .find(header.kid.as_deref(), header.x5t.as_deref())
        .ok_or_else(|| match (&header.kid, &header.x5t) {
            (Some(id), _) | (None, Some(id)) => rules.refuse(
                K::UnknownSigningKey,
                "the signing key was not found: the authority publishes no key with the token's kid",
                || {
                    format!(
                        "{} publishes no key with kid '{}'",
                        authority,
                        short(id)
                    )
                },
            ),
            (None, None) => AuthError::new(
                K::UnknownSigningKey,
                "the token header names no key (no kid)",
            ),
        })?;
    if !key.allows(algorithm) {
        return Err(AuthError::new(
            K::DisallowedAlgorithm,
            format!(
                "the algorithm '{}' is not the one the signing key is published for ({})",
                algorithm_name(algorithm),
                key.alg().map_or("none", algorithm_name)
            ),
        ));
    }
    let message_len = header_b64.len() + 1 + payload_b64.len();
    let message = &token.as_bytes()[..message_len];
    let mut signature_stack = [0u8; SIGNATURE_ON_STACK];
    let mut signature_heap = Vec::new();
    let signature = decode(signature_b64, &mut signature_stack, &mut signature_heap)
        .map_err(|_| AuthError::new(K::MalformedToken, "the token signature is not base64url"))?;
    if !key.verify(algorithm, message, signature) {
        return Err(AuthError::new(
            K::InvalidSignature,
            "the signature is invalid",
        ));
    }

    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| AuthError::new(K::MalformedToken, "the token payload is not base64url"))?;
    let not_an_object =
        || AuthError::new(K::MalformedToken, "the token payload is not a JSON object");
    let payload = String::from_utf8(payload).map_err(|_| not_an_object())?;
    let claims = Claims::from_payload(payload).map_err(|error| match error {
        PayloadError::NotAnObject => not_an_object(),
        PayloadError::Claims(error) => AuthError::new(K::InvalidClaim, error.to_string()),
    })?;
    Ok(Verified {
        claims,
        snapshot,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_serialization_parts() {
        struct Case {
            name: &'static str,
            token: &'static str,
            result: Result<(&'static str, &'static str, &'static str), &'static str>,
        }
        let cases = [
            Case {
                name: "three parts",
                token: "h.p.s",
                result: Ok(("h", "p", "s")),
            },
            Case {
                name: "empty signature",
                token: "h.p.",
                result: Ok(("h", "p", "")),
            },
            Case {
                name: "two parts",
                token: "h.p",
                result: Err("a JWT has 3 dot-separated parts; this token has 2"),
            },
            Case {
                name: "four parts",
                token: "a.b.c.d",
                result: Err("a JWT has 3 dot-separated parts; this token has 4"),
            },
            Case {
                name: "a JWE",
                token: "a.b.c.d.e",
                result: Err("encrypted tokens (JWE) are not supported"),
            },
        ];
        for case in cases {
            let result = split(case.token).map_err(|e| {
                assert_eq!(e.kind(), AuthErrorKind::MalformedToken, "{}", case.name);
                e.reason().to_owned()
            });
            assert_eq!(result, case.result.map_err(str::to_owned), "{}", case.name);
        }
    }
}
