//! Claims requests at the token endpoint (continuous access evaluation) and the resource
//! side's claims challenge.
//!
//! The token endpoint reads the `claims` form parameter as Entra does for workload
//! identities: `{"access_token":{"xms_cc":{"values":["cp1"]}}}` (the client declares CAE)
//! gets a long-lived token ([`CAE_LIFETIME`], Entra's up-to-24-hour LLT) carrying
//! `"xms_cc":["cp1"]`; an `acrs` request (`{"access_token":{"acrs":{"essential":true,
//! "value":"c25"}}}`, what a resource's challenge asks for) comes back as the token's
//! `"acrs":["c25"]` claim. A `claims` value that is not a JSON object is refused with
//! `invalid_request` (AADSTS9002313). An `nbf` request (`{"access_token":{"nbf":{"essential":
//! true,"value":"1604106651"}}}`, what a CAE resource asks for when it refuses a revoked
//! token) gets a token with `iat` and `nbf` at that time or later (never after the time of
//! issue).
//!
//! A resource (the test's API) refuses a token with [`insufficient_claims_challenge`]: the
//! `WWW-Authenticate` value of a `401` as Microsoft services send it.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::entra_error::EntraError;

/// The lifetime of a token for a client that declared the `cp1` capability (Entra issues
/// workload identities "long-lived tokens with a lifetime of up to 24 hours" under CAE).
pub const CAE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a `claims` parameter asks for.
#[derive(Debug, Default)]
pub(crate) struct ClaimsRequest {
    /// The client declared `cp1` (CAE).
    pub(crate) cae: bool,
    /// Claims to put into the token (`xms_cc`, `acrs`).
    pub(crate) extra: Map<String, Value>,
    /// The earliest `iat`/`nbf` asked for (Unix seconds), from an `nbf` request.
    pub(crate) not_before: Option<i64>,
}

/// Reads the `claims` form parameter (absent: nothing asked).
pub(crate) fn parse_claims(param: Option<&str>) -> Result<ClaimsRequest, EntraError> {
    let Some(param) = param else {
        return Ok(ClaimsRequest::default());
    };
    let value: Value =
        serde_json::from_str(param).map_err(|_| EntraError::malformed_claims("is not JSON"))?;
    let Value::Object(value) = value else {
        return Err(EntraError::malformed_claims("is not a JSON object"));
    };
    let mut request = ClaimsRequest::default();
    let Some(access_token) = value.get("access_token").and_then(Value::as_object) else {
        return Ok(request);
    };
    if let Some(values) = access_token
        .get("xms_cc")
        .and_then(|c| c.get("values"))
        .and_then(Value::as_array)
    {
        if values
            .iter()
            .filter_map(Value::as_str)
            .any(|c| c.eq_ignore_ascii_case("cp1"))
        {
            request.cae = true;
            request
                .extra
                .insert("xms_cc".into(), Value::Array(vec!["cp1".into()]));
        }
    }
    if let Some(value) = access_token.get("nbf").and_then(|n| n.get("value")) {
        // Microsoft sends the time as a string of digits; a number is read too.
        request.not_before = match value {
            Value::String(text) => text.trim().parse::<i64>().ok(),
            Value::Number(number) => number.as_i64(),
            _ => None,
        }
        .filter(|seconds| *seconds > 0);
    }
    if let Some(acrs) = access_token.get("acrs") {
        let mut values: Vec<Value> = Vec::new();
        if let Some(value) = acrs.get("value").and_then(Value::as_str) {
            values.push(value.into());
        }
        if let Some(list) = acrs.get("values").and_then(Value::as_array) {
            values.extend(list.iter().filter(|v| v.is_string()).take(16).cloned());
        }
        if !values.is_empty() {
            request.extra.insert("acrs".into(), Value::Array(values));
        }
    }
    Ok(request)
}

/// The `WWW-Authenticate` value a resource sends with a `401` to ask for `claims` (a JSON
/// object such as `{"access_token":{"acrs":{"essential":true,"value":"c25"}}}`): `Bearer
/// realm="", authorization_uri="…", error="insufficient_claims", claims="<base64>"`, the
/// claims minified and in standard base64 with padding, as Microsoft's documentation shows.
///
/// ```
/// let header = entra_dev_authority::insufficient_claims_challenge(
///     &serde_json::json!({"access_token": {"acrs": {"essential": true, "value": "cp1"}}}),
/// );
/// assert!(header.ends_with(
///     r#"error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiY3AxIn19fQ==""#
/// ));
/// ```
#[must_use]
pub fn insufficient_claims_challenge(claims: &Value) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(claims.to_string());
    format!(
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"insufficient_claims\", claims=\"{encoded}\""
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_requests() {
        let none = parse_claims(None).unwrap();
        assert!(!none.cae && none.extra.is_empty());
        let cae = parse_claims(Some(r#"{"access_token":{"xms_cc":{"values":["CP1"]},"acrs":{"essential":true,"value":"c25"}}}"#)).unwrap();
        assert!(cae.cae);
        assert_eq!(
            Value::Object(cae.extra),
            serde_json::json!({"xms_cc":["cp1"],"acrs":["c25"]})
        );
        let other =
            parse_claims(Some(r#"{"access_token":{"xms_cc":{"values":["cp2"]}}}"#)).unwrap();
        assert!(!other.cae && other.extra.is_empty());
        let nbf = parse_claims(Some(
            r#"{"access_token":{"nbf":{"essential":true,"value":"1604106651"}}}"#,
        ))
        .unwrap();
        assert_eq!(nbf.not_before, Some(1_604_106_651));
        let garbage = parse_claims(Some(r#"{"access_token":{"nbf":{"value":"soon"}}}"#)).unwrap();
        assert_eq!(garbage.not_before, None, "not a time: nothing asked");
        for bad in ["[1]", "nope", "\"x\""] {
            assert!(parse_claims(Some(bad)).is_err(), "{bad}");
        }
    }
}
