//! The managed identity endpoints' answers: the resource asked for, the token response
//! (numbers as strings, `expires_on` as a number, a relative number or a date) and the
//! error bodies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::credentials::cache::EXPIRY_MARGIN;
use crate::credentials::token::{AccessToken, AuthorityError, CredentialError, TokenError};
use crate::credentials::wire::{number, parse_date, MAX_LIFETIME_SECONDS};

/// `expires_on` values below this (2001-01-01) are relative (`expires_in`), as MSAL.NET
/// reads them.
const RELATIVE_EXPIRY_LIMIT: u64 = 978_307_200;

/// Tokens living longer than this are refreshed at half their lifetime (MSAL's rule for
/// managed identity).
const HALF_LIFE_THRESHOLD: u64 = 2 * 3600;

/// `{resource}/.default` → `resource`; any other single value is taken as the resource.
pub(super) fn resource_from_scopes(scopes: &[String]) -> Result<String, TokenError> {
    let [scope] = scopes else {
        return Err(TokenError::InvalidScope {
            scope: scopes.join(" "),
            reason: "a managed identity token is for exactly one resource: pass one scope, e.g. https://vault.azure.net/.default",
        });
    };
    let scope = scope.trim();
    let resource = scope.strip_suffix("/.default").unwrap_or(scope);
    if resource.is_empty() || resource.contains(char::is_whitespace) {
        return Err(TokenError::InvalidScope {
            scope: scope.to_owned(),
            reason: "the scope names no resource",
        });
    }
    Ok(resource.to_owned())
}

/// An error status: the OAuth 2 shape (`error`, `error_description`) as
/// [`TokenError::Rejected`], else a [`CredentialError::Refused`] by `origin` with the
/// message of App Service's `{"statusCode","message"}` or `{"error":{"code","message"}}`.
pub(super) fn error_from_body(origin: String, status: u16, body: &[u8]) -> TokenError {
    if let Some(error) = AuthorityError::parse(status, body) {
        return TokenError::Rejected(Box::new(error));
    }
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(|m| m.as_str())
            .map(|m| m.chars().take(300).collect::<String>())
    };
    let message = value.as_ref().and_then(|v| {
        text(
            v.get("message")
                .or_else(|| v.get("Message"))
                .or_else(|| v.get("error").and_then(|e| e.get("message"))),
        )
    });
    let code = value
        .as_ref()
        .and_then(|v| text(v.get("error").and_then(|e| e.get("code"))));
    TokenError::Credential(CredentialError::Refused {
        origin,
        status,
        code,
        message: message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| "no details".into()),
    })
}

/// Parses a managed identity token response; the error says what is wrong with it.
pub(super) fn parse_response(
    body: &[u8],
    now: SystemTime,
    scopes: &[String],
) -> Result<AccessToken, String> {
    let bad = |reason: String| reason;
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| bad("the managed identity response is not JSON".into()))?;
    if let Some(token_type) = value.get("token_type").and_then(|v| v.as_str()) {
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(bad(format!(
                "`token_type` is `{token_type}`, expected Bearer"
            )));
        }
    }
    let token = value
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("`access_token` is missing".into()))?;
    if http::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
        return Err(bad(
            "`access_token` has characters that cannot go in a header".into(),
        ));
    }
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let expires_on = match value.get("expires_on") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.trim().parse::<u64>().is_err() => {
            Some(parse_date(s).ok_or_else(|| bad(format!("`expires_on` `{s}` is not a date")))?)
        }
        Some(v) => {
            let n = number(Some(v)).map_err(|()| bad("`expires_on` is not a number".into()))?;
            n.map(|n| {
                if n < RELATIVE_EXPIRY_LIMIT {
                    now_secs.saturating_add(n)
                } else {
                    n
                }
            })
        }
    };
    let expires_on = if let Some(on) = expires_on {
        on
    } else {
        let expires_in = number(value.get("expires_in"))
            .map_err(|()| bad("`expires_in` is not a number".into()))?
            .ok_or_else(|| bad("neither `expires_on` nor `expires_in` is present".into()))?;
        now_secs.saturating_add(expires_in)
    };
    if expires_on <= now_secs {
        return Err(bad("the managed identity token has already expired".into()));
    }
    let lifetime = (expires_on - now_secs).min(MAX_LIFETIME_SECONDS);
    let expires = now + Duration::from_secs(lifetime);
    let refresh = if lifetime > HALF_LIFE_THRESHOLD {
        now + Duration::from_secs(lifetime / 2)
    } else {
        expires.checked_sub(EXPIRY_MARGIN).unwrap_or(now).max(now)
    };
    Ok(AccessToken::with_times(
        token.to_owned(),
        now,
        expires,
        refresh,
        None,
        scopes.to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        struct Case {
            name: &'static str,
            body: &'static str,
            /// (lifetime, refresh after) in seconds from now, or None for an error.
            expected: Option<(u64, u64)>,
        }
        let now_secs = 1_700_000_000u64;
        let cases = [
            Case {
                name: "imds: numbers as strings",
                body: r#"{"access_token":"a.b.c","refresh_token":"","expires_in":"3599","expires_on":"1700003599","not_before":"1699999700","resource":"https://vault.azure.net","token_type":"Bearer"}"#,
                expected: Some((3599, 3299)),
            },
            Case {
                name: "app service: expires_on only",
                body: r#"{"access_token":"a.b.c","expires_on":"1700003600","resource":"r","token_type":"Bearer","client_id":"c"}"#,
                expected: Some((3600, 3300)),
            },
            Case {
                name: "relative expires_on",
                body: r#"{"access_token":"a","expires_on":"3600","token_type":"Bearer"}"#,
                expected: Some((3600, 3300)),
            },
            Case {
                name: "numeric expires_on",
                body: r#"{"access_token":"a","expires_on":1700003600}"#,
                expected: Some((3600, 3300)),
            },
            Case {
                name: "date expires_on",
                body: r#"{"access_token":"a","expires_on":"2023-11-14T23:13:20Z","token_type":"Bearer"}"#,
                expected: Some((3600, 3300)),
            },
            Case {
                name: "long-lived: half-life refresh",
                body: r#"{"access_token":"a","expires_in":"86400","token_type":"Bearer"}"#,
                expected: Some((86_400, 43_200)),
            },
            Case {
                name: "exactly two hours: no half-life",
                body: r#"{"access_token":"a","expires_in":"7200","token_type":"Bearer"}"#,
                expected: Some((7200, 6900)),
            },
            Case {
                name: "expired",
                body: r#"{"access_token":"a","expires_on":"1600000000"}"#,
                expected: None,
            },
            Case {
                name: "no expiry",
                body: r#"{"access_token":"a","token_type":"Bearer"}"#,
                expected: None,
            },
            Case {
                name: "no token",
                body: r#"{"expires_in":"3600","token_type":"Bearer"}"#,
                expected: None,
            },
            Case {
                name: "bad number",
                body: r#"{"access_token":"a","expires_in":"soon"}"#,
                expected: None,
            },
            Case {
                name: "not bearer",
                body: r#"{"access_token":"a","expires_in":"3600","token_type":"pop"}"#,
                expected: None,
            },
            Case {
                name: "not json",
                body: "<html>",
                expected: None,
            },
        ];
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        for case in cases {
            let result = parse_response(case.body.as_bytes(), now, &["r/.default".into()]);
            match (case.expected, result) {
                (None, Err(_)) => {}
                (Some((lifetime, refresh)), Ok(token)) => {
                    assert_eq!(
                        token.expires_on(),
                        now + Duration::from_secs(lifetime),
                        "{}",
                        case.name
                    );
                    assert_eq!(
                        token.refresh_on(),
                        now + Duration::from_secs(refresh),
                        "{}",
                        case.name
                    );
                }
                (expected, result) => {
                    panic!("{}: expected {expected:?}, got {result:?}", case.name)
                }
            }
        }
    }

    #[test]
    fn scopes_become_resources() {
        struct Case {
            name: &'static str,
            scopes: &'static [&'static str],
            expected: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "key vault",
                scopes: &["https://vault.azure.net/.default"],
                expected: Some("https://vault.azure.net"),
            },
            Case {
                name: "token exchange",
                scopes: &["api://AzureADTokenExchange/.default"],
                expected: Some("api://AzureADTokenExchange"),
            },
            Case {
                name: "bare resource",
                scopes: &["https://management.azure.com/"],
                expected: Some("https://management.azure.com/"),
            },
            Case {
                name: "two scopes",
                scopes: &["a/.default", "b/.default"],
                expected: None,
            },
            Case {
                name: "none",
                scopes: &[],
                expected: None,
            },
            Case {
                name: "resourceless",
                scopes: &["/.default"],
                expected: None,
            },
        ];
        for case in cases {
            let scopes: Vec<String> = case.scopes.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                resource_from_scopes(&scopes).ok().as_deref(),
                case.expected,
                "{}",
                case.name
            );
        }
    }
}
