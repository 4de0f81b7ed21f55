//! Claims requests: the client capabilities and a claims challenge merged into the `claims`
//! token-request parameter as MSAL.NET does (`ClaimsHelper.GetMergedClaimsAndClientCapabilities`),
//! and the resource's `WWW-Authenticate: Bearer error="insufficient_claims", claims="…"`
//! challenge read in one place for the reqwest middleware and the Tower layer.

use base64::Engine as _;
use http::header::{HeaderMap, WWW_AUTHENTICATE};
use http::StatusCode;
use serde_json::{Map, Value};

use super::token::TokenError;

/// The `claims` parameter for `capabilities` (e.g. `["cp1"]`) and `claims` (a JSON object,
/// e.g. a decoded claims challenge): `{"access_token":{"xms_cc":{"values":[…]}}}` with
/// `claims` deep-merged into it (objects merged recursively, arrays concatenated, the
/// challenge's scalars win). `None` when there is neither.
///
/// # Errors
///
/// [`TokenError::InvalidClaims`] when `claims` is not a JSON object.
pub(crate) fn merged_claims(
    capabilities: &[String],
    claims: Option<&str>,
) -> Result<Option<String>, TokenError> {
    let claims = claims.map(str::trim).filter(|c| !c.is_empty());
    if capabilities.is_empty() && claims.is_none() {
        return Ok(None);
    }
    let mut merged = Map::new();
    if !capabilities.is_empty() {
        let values: Vec<Value> = capabilities.iter().cloned().map(Value::String).collect();
        let mut xms_cc = Map::new();
        xms_cc.insert("values".into(), Value::Array(values));
        let mut access_token = Map::new();
        access_token.insert("xms_cc".into(), Value::Object(xms_cc));
        merged.insert("access_token".into(), Value::Object(access_token));
    }
    if let Some(claims) = claims {
        let parsed: Value =
            serde_json::from_str(claims).map_err(|e| TokenError::InvalidClaims {
                reason: format!("the claims are not JSON ({e}); are they still base64-encoded?"),
            })?;
        let Value::Object(parsed) = parsed else {
            return Err(TokenError::InvalidClaims {
                reason: "the claims must be a JSON object, e.g. {\"access_token\":{…}}".into(),
            });
        };
        merge_into(&mut merged, parsed);
    }
    Ok(Some(Value::Object(merged).to_string()))
}

/// Deep merge (MSAL.NET `JsonHelper.Merge`): objects recursively, arrays concatenated, any
/// other value of `from` replaces the one in `into`.
fn merge_into(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (name, value) in from {
        match (into.get_mut(&name), value) {
            (Some(Value::Object(existing)), Value::Object(value)) => merge_into(existing, value),
            (Some(Value::Array(existing)), Value::Array(value)) => existing.extend(value),
            (_, value) => {
                into.insert(name, value);
            }
        }
    }
}

/// The claims a resource asks for in a `401` with
/// `WWW-Authenticate: Bearer error="insufficient_claims", claims="<base64>"` (any of several
/// `WWW-Authenticate` headers; a gRPC `UNAUTHENTICATED` trailers-only `200` too). The value
/// is decoded from standard base64 when it is well-formed base64 (length a multiple of 4, no
/// whitespace) and UTF-8, else passed through as MSAL.NET does. `None` for any other answer.
pub(crate) fn claims_challenge(status: StatusCode, headers: &HeaderMap) -> Option<String> {
    let refused = status == StatusCode::UNAUTHORIZED
        || (status == StatusCode::OK
            && headers
                .get("grpc-status")
                .is_some_and(|code| code.as_bytes() == b"16"));
    if !refused {
        return None;
    }
    headers.get_all(WWW_AUTHENTICATE).iter().find_map(|value| {
        let params = bearer_params(value.to_str().ok()?)?;
        let error = params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("error"))?;
        if !error.1.eq_ignore_ascii_case("insufficient_claims") {
            return None;
        }
        let (_, claims) = params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("claims"))?;
        Some(decode_claims(claims))
    })
}

fn decode_claims(value: &str) -> String {
    if value.len().is_multiple_of(4) && !value.contains(char::is_whitespace) {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value) {
            if let Ok(text) = String::from_utf8(bytes) {
                return text;
            }
        }
    }
    value.to_owned()
}

/// The auth-params of a `Bearer` challenge (`Bearer k="v", k2=v2`); `None` for another
/// scheme. Quoted strings may hold commas and `\"` escapes. At most 32 parameters are read.
fn bearer_params(value: &str) -> Option<Vec<(String, String)>> {
    let value = value.trim_start();
    let scheme_end = value
        .find(|c: char| c.is_whitespace())
        .unwrap_or(value.len());
    if !value[..scheme_end].eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut rest = value[scheme_end..].chars().peekable();
    let mut params = Vec::new();
    while params.len() < 32 {
        while rest.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            rest.next();
        }
        let name: String = rest
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_owned();
        if name.is_empty() {
            break;
        }
        while rest.peek().is_some_and(|c| c.is_whitespace()) {
            rest.next();
        }
        let mut parsed = String::new();
        if rest.peek() == Some(&'"') {
            rest.next();
            while let Some(c) = rest.next() {
                match c {
                    '\\' => parsed.extend(rest.next()),
                    '"' => break,
                    c => parsed.push(c),
                }
            }
        } else {
            while let Some(c) = rest.next_if(|c| *c != ',') {
                parsed.push(c);
            }
            parsed = parsed.trim().to_owned();
        }
        params.push((name, parsed));
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn caps() -> Vec<String> {
        vec!["cp1".to_owned()]
    }

    #[test]
    fn capabilities_alone() {
        assert_eq!(
            merged_claims(&caps(), None).unwrap().as_deref(),
            Some(r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#)
        );
        assert_eq!(merged_claims(&[], None).unwrap(), None);
        assert_eq!(merged_claims(&[], Some("  ")).unwrap(), None);
    }

    #[test]
    fn challenge_claims_merge_into_the_capabilities() {
        let merged = merged_claims(
            &caps(),
            Some(r#"{"access_token":{"acrs":{"essential":true,"value":"c25"}}}"#),
        )
        .unwrap()
        .unwrap();
        let merged: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(
            merged,
            serde_json::json!({"access_token":{"xms_cc":{"values":["cp1"]},"acrs":{"essential":true,"value":"c25"}}})
        );
    }

    #[test]
    fn arrays_are_concatenated_and_scalars_of_the_claims_win() {
        let merged = merged_claims(
            &caps(),
            Some(r#"{"access_token":{"xms_cc":{"values":["cp2"]},"nbf":{"essential":true,"value":"1"}},"id_token":{"x":1}}"#),
        )
        .unwrap()
        .unwrap();
        let merged: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(
            merged["access_token"]["xms_cc"]["values"],
            serde_json::json!(["cp1", "cp2"])
        );
        assert_eq!(merged["access_token"]["nbf"]["value"], "1");
        assert_eq!(merged["id_token"]["x"], 1);
        let merged = merged_claims(&[], Some(r#"{"a":{"b":1}}"#))
            .unwrap()
            .unwrap();
        assert_eq!(merged, r#"{"a":{"b":1}}"#);
    }

    #[test]
    fn non_object_claims_are_refused() {
        for claims in [
            "[1,2]",
            "\"cp1\"",
            "42",
            "not json",
            "eyJhY2Nlc3NfdG9rZW4iOnt9fQ==",
        ] {
            let error = merged_claims(&caps(), Some(claims)).unwrap_err();
            assert!(
                matches!(error, TokenError::InvalidClaims { .. }),
                "{claims}: {error}"
            );
            assert!(error.to_string().contains("claims"), "{error}");
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn challenges() {
        const DOC: &str = r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiY3AxIn19fQ==""#;
        let decoded = r#"{"access_token":{"acrs":{"essential":true,"value":"cp1"}}}"#;
        struct Case {
            name: &'static str,
            status: u16,
            headers: Vec<&'static str>,
            expected: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "Microsoft's example",
                status: 401,
                headers: vec![DOC],
                expected: Some(decoded),
            },
            Case {
                name: "second of several headers",
                status: 401,
                headers: vec!["Basic realm=\"x\"", DOC],
                expected: Some(decoded),
            },
            Case {
                name: "not a 401",
                status: 403,
                headers: vec![DOC],
                expected: None,
            },
            Case {
                name: "invalid_token",
                status: 401,
                headers: vec!["Bearer error=\"invalid_token\""],
                expected: None,
            },
            Case {
                name: "no claims",
                status: 401,
                headers: vec!["Bearer error=\"insufficient_claims\""],
                expected: None,
            },
            Case {
                name: "other scheme",
                status: 401,
                headers: vec!["PoP error=\"insufficient_claims\", claims=\"e30=\""],
                expected: None,
            },
            Case {
                name: "unquoted, case-insensitive",
                status: 401,
                headers: vec!["bearer ERROR=insufficient_claims,claims=e30="],
                expected: Some("{}"),
            },
            Case {
                name: "not base64: passed through",
                status: 401,
                headers: vec![r#"Bearer error="insufficient_claims", claims="{\"a\":1}""#],
                expected: Some(r#"{"a":1}"#),
            },
            Case {
                name: "comma inside quotes",
                status: 401,
                headers: vec![r#"Bearer realm="a,b", error="insufficient_claims", claims="e30=""#],
                expected: Some("{}"),
            },
        ];
        for case in cases {
            let status = StatusCode::from_u16(case.status).unwrap();
            assert_eq!(
                claims_challenge(status, &headers(&case.headers)).as_deref(),
                case.expected,
                "{}",
                case.name
            );
        }
        let mut grpc = headers(&[DOC]);
        grpc.insert("grpc-status", HeaderValue::from_static("16"));
        assert_eq!(
            claims_challenge(StatusCode::OK, &grpc).as_deref(),
            Some(decoded)
        );
    }

    #[test]
    fn hostile_challenges_are_bounded() {
        let long = format!("Bearer {}", "a=b, ".repeat(10_000));
        assert_eq!(
            claims_challenge(StatusCode::UNAUTHORIZED, &headers(&[&long])),
            None
        );
        assert_eq!(
            claims_challenge(
                StatusCode::UNAUTHORIZED,
                &headers(&["Bearer error=\"insufficient_claims\", claims=\"unterminated"])
            )
            .as_deref(),
            Some("unterminated")
        );
    }
}
