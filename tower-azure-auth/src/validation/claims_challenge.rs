//! Continuous access evaluation on the resource side: a revoked token whose client declared
//! the `cp1` capability is answered with a claims challenge instead of `invalid_token`
//! ([`TokenValidatorBuilder::claims_challenge_on_revocation`]).
//!
//! The challenge is the one Microsoft's CAE resources send when they refuse a revoked token:
//! `401` with `WWW-Authenticate: Bearer realm="", authorization_uri="{authority}/oauth2/authorize",
//! error="insufficient_claims", claims="<base64>"`, the claims being
//! `{"access_token":{"nbf":{"essential":true,"value":"<unix seconds>"}}}` minified, in standard
//! base64 with padding: "a token issued from then on". The time is the refusal's (a revocation
//! does not record when it started; every token issued after it was put in force is also
//! issued after the refusal). A client that declared `cp1` (`xms_cc` holds `cp1`, ignoring
//! case) acquires a token with those claims and retries once; a client that did not cannot
//! answer a challenge, so its tokens keep the `invalid_token` refusal.
//!
//! Whether the new token is accepted is the revocation's business: a revocation of one token
//! (`Revocation::token_id`) refuses only that token, so the new one passes; a revocation of
//! the client, object or tenant refuses the new one too, and the client, which follows one
//! challenge per request, hands the second refusal to its caller.
//!
//! [`TokenValidatorBuilder::claims_challenge_on_revocation`]: super::TokenValidatorBuilder::claims_challenge_on_revocation

use base64::Engine as _;
use http::HeaderValue;

use crate::authority::Authority;
use crate::claims::Claims;
use crate::error::{AuthError, AuthErrorKind};

/// The `authorization_uri` of the challenges of one validator.
#[derive(Debug, Clone)]
pub(crate) struct ClaimsChallenge {
    authorization_uri: Box<str>,
}

impl ClaimsChallenge {
    /// The challenges for tokens of `authority`: `authorization_uri` is
    /// `{authority}/oauth2/authorize`.
    pub(crate) fn new(authority: &Authority) -> Self {
        Self {
            authorization_uri: format!("{authority}/oauth2/authorize").into_boxed_str(),
        }
    }

    /// `error` itself, or, when it refuses a revoked token whose client declared `cp1`, the
    /// same error carrying the claims challenge for a token issued at `now` or later.
    pub(crate) fn answer(&self, error: AuthError, claims: &Claims, now: u64) -> AuthError {
        if error.kind() != AuthErrorKind::Revoked || !declares_cae(claims) {
            return error;
        }
        match self.header(now) {
            Some(header) => error.with_claims_challenge(header),
            None => error,
        }
    }

    /// The `WWW-Authenticate` value asking for a token with `nbf` at `not_before` or later.
    fn header(&self, not_before: u64) -> Option<HeaderValue> {
        let claims =
            format!(r#"{{"access_token":{{"nbf":{{"essential":true,"value":"{not_before}"}}}}}}"#);
        let encoded = base64::engine::general_purpose::STANDARD.encode(claims);
        // The authority is a parsed URL (no quote, no control character): this cannot fail,
        // and if it did the token keeps its `invalid_token` refusal.
        HeaderValue::from_str(&format!(
            r#"Bearer realm="", authorization_uri="{}", error="insufficient_claims", claims="{encoded}""#,
            self.authorization_uri
        ))
        .ok()
    }
}

/// Whether the token's client declared continuous access evaluation: `xms_cc` (a string or
/// an array of strings) holds `cp1`, ignoring case.
fn declares_cae(claims: &Claims) -> bool {
    claims
        .values("xms_cc")
        .any(|capability| capability.eq_ignore_ascii_case("cp1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> Claims {
        Claims::from_json(json).expect("claims")
    }

    fn revoked() -> AuthError {
        AuthError::new(
            AuthErrorKind::Revoked,
            "the token was revoked (by its token id)",
        )
    }

    #[test]
    fn a_revoked_cp1_token_gets_microsofts_challenge_and_others_keep_their_refusal() {
        let authority = Authority::entra(
            "https://login.microsoftonline.com/",
            "contoso.onmicrosoft.com",
        )
        .expect("authority");
        let challenge = ClaimsChallenge::new(&authority);
        let cae = claims(serde_json::json!({"xms_cc": ["CP1"]}));
        let error = challenge.answer(revoked(), &cae, 1_604_106_651);
        assert!(error.is_claims_challenge());
        assert_eq!(error.kind(), AuthErrorKind::Revoked);
        let header = error.www_authenticate().expect("a challenge");
        let header = header.to_str().expect("ascii");
        let expected_claims = base64::engine::general_purpose::STANDARD
            .encode(r#"{"access_token":{"nbf":{"essential":true,"value":"1604106651"}}}"#);
        assert_eq!(
            header,
            format!(
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/authorize\", error=\"insufficient_claims\", claims=\"{expected_claims}\""
            )
        );

        let string_claim = claims(serde_json::json!({"xms_cc": "cp1"}));
        assert!(challenge
            .answer(revoked(), &string_claim, 1)
            .is_claims_challenge());
        for (name, token) in [
            ("no xms_cc", claims(serde_json::json!({"azp": "c"}))),
            (
                "another capability",
                claims(serde_json::json!({"xms_cc": ["cp2"]})),
            ),
            ("not a string", claims(serde_json::json!({"xms_cc": [1]}))),
        ] {
            let error = challenge.answer(revoked(), &token, 1);
            assert!(!error.is_claims_challenge(), "{name}");
            assert!(
                error.www_authenticate().is_some_and(|h| h
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer error=\"invalid_token\"")),
                "{name}"
            );
        }
        let expired = AuthError::new(AuthErrorKind::Expired, "the token has expired");
        assert!(
            !challenge.answer(expired, &cae, 1).is_claims_challenge(),
            "only revocations are challenged"
        );
    }
}
