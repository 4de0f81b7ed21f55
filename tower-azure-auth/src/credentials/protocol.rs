//! The token endpoint's protocol (RFC 6749 client credentials with RFC 7523 assertions):
//! the form, one exchange over the crate's bounded HTTP client, and the answer sorted into a
//! token, a refusal worth one retry, a `Retry-After` or a failure. No cache and no retry
//! policy here: the engine ([`ConfidentialClient`](crate::credentials::ConfidentialClient))
//! decides those.

use std::time::{Duration, SystemTime};

use tracing::debug;
use url::Url;

use crate::authority::FetchError;

use super::assertion::{AssertionAlgorithm, AssertionRequest};
use super::cache::EXPIRY_MARGIN;
use super::credential::{ClientCredential, CredentialContext};
use super::token::{AccessToken, AuthorityError, TokenError};
use super::wire::{number, parse_retry_after, MAX_LIFETIME_SECONDS};

const TARGET: &str = "tower_azure_auth::credentials";

/// The outcome of one HTTP exchange with the token endpoint.
pub(crate) enum Attempt {
    /// A token.
    Token(AccessToken),
    /// 5xx without `Retry-After`, or a network failure: worth one retry.
    Retryable(TokenError),
    /// `Retry-After` was given.
    Throttled(Duration),
    /// Refused or unusable: not retried.
    Failed(TokenError),
}

/// One client-credentials token request.
#[derive(Clone, Copy)]
pub(crate) struct TokenRequest<'a> {
    /// The token endpoint (the assertion's audience).
    pub(crate) endpoint: &'a Url,
    /// The client id (`client_id`, and the assertion's `iss`/`sub`).
    pub(crate) client_id: &'a str,
    /// How the client proves its identity.
    pub(crate) credential: &'a ClientCredential,
    /// The scopes, sent space-separated.
    pub(crate) scopes: &'a [String],
    /// The `claims` parameter (client capabilities and a claims request), if any.
    pub(crate) claims: Option<&'a str>,
    /// The assertion algorithm (certificates).
    pub(crate) algorithm: AssertionAlgorithm,
    /// Whether the assertion carries `x5c`.
    pub(crate) send_x5c: bool,
    /// The HTTP client and the clock.
    pub(crate) context: &'a CredentialContext,
    /// Whether client ids and endpoints may be logged.
    pub(crate) pii: bool,
}

impl TokenRequest<'_> {
    fn pii_value<'v>(&self, value: &'v str) -> &'v str {
        if self.pii {
            value
        } else {
            "<pii>"
        }
    }

    /// Sends the request once and sorts the answer.
    pub(crate) async fn send(&self) -> Attempt {
        let TokenRequest {
            endpoint,
            client_id,
            credential,
            scopes,
            context,
            ..
        } = *self;
        let scope = scopes.join(" ");
        let mut form: Vec<(&str, String)> = vec![("client_id", client_id.to_owned())];
        match credential {
            ClientCredential::Certificate(certificate) => {
                let assertion = certificate.client_assertion(&AssertionRequest {
                    client_id,
                    audience: endpoint.as_str(),
                    algorithm: self.algorithm,
                    send_x5c: self.send_x5c,
                    now: context.clock.unix_seconds(),
                });
                let assertion = match assertion {
                    Ok(assertion) => assertion,
                    Err(e) => return Attempt::Failed(TokenError::Assertion(e)),
                };
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
            ClientCredential::Signer(signer) => {
                let assertion = super::assertion::signed_assertion(
                    signer.as_ref(),
                    &AssertionRequest {
                        client_id,
                        audience: endpoint.as_str(),
                        algorithm: self.algorithm,
                        send_x5c: self.send_x5c,
                        now: context.clock.unix_seconds(),
                    },
                )
                .await;
                let assertion = match assertion {
                    Ok(assertion) => assertion,
                    Err(e) if e.is_transient() => {
                        return Attempt::Retryable(TokenError::Signing(e))
                    }
                    Err(e) => return Attempt::Failed(TokenError::Signing(e)),
                };
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
            ClientCredential::Secret(secret) => {
                form.push(("client_secret", secret.expose().to_owned()))
            }
            ClientCredential::Assertion(provider) => {
                let assertion = match provider.assertion(context).await {
                    Ok(assertion) => assertion,
                    Err(e) => return Attempt::Failed(e),
                };
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
        }
        form.push(("scope", scope));
        if let Some(claims) = self.claims {
            form.push(("claims", claims.to_owned()));
        }
        form.push(("grant_type", "client_credentials".into()));
        debug!(target: TARGET, endpoint = %self.pii_value(endpoint.as_str()), client_id = %self.pii_value(client_id),
            credential = credential.kind(), "requesting a token");

        let http = &context.http;
        let request = http
            .reqwest()
            .post(endpoint.clone())
            .header("x-ms-lib-capability", "retry-after, h429")
            .header(http::header::ACCEPT, "application/json")
            .form(&form);
        let response = match http.send(request, endpoint.as_str()).await {
            Ok(response) => response,
            // Not followed and not retried: the credential goes to the token endpoint only.
            Err(e @ FetchError::Redirected { .. }) => {
                return Attempt::Failed(TokenError::BadResponse {
                    reason: format!("the authority redirected the token request: {e}"),
                })
            }
            Err(e) => return Attempt::Retryable(TokenError::Transport(e)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, context.clock.now()));
        let body = match http.read_body(response).await {
            Ok(body) => body,
            Err(e) => return Attempt::Retryable(TokenError::Transport(e)),
        };
        if status.is_success() {
            return match parse_token_response(&body, context.clock.now(), scopes) {
                Ok(token) => {
                    debug!(target: TARGET, expires_on = ?token.expires_on(), "token received");
                    Attempt::Token(token)
                }
                Err(e) => Attempt::Failed(e),
            };
        }
        if let Some(retry_after) = retry_after {
            if status.as_u16() == 429 || status.is_server_error() {
                return Attempt::Throttled(retry_after);
            }
        }
        let error = match AuthorityError::parse(status.as_u16(), &body) {
            Some(error) => TokenError::Rejected(Box::new(match credential.thumbprints() {
                Some(thumbprints) => error.with_certificate(thumbprints),
                None => error,
            })),
            None => TokenError::BadResponse {
                reason: format!("HTTP {} without an OAuth 2 error body", status.as_u16()),
            },
        };
        debug!(target: TARGET, status = status.as_u16(), code = ?error.aadsts_code(), "token request refused");
        if status.is_server_error() {
            Attempt::Retryable(error)
        } else {
            Attempt::Failed(error)
        }
    }
}

/// Parses a successful token response (numbers may be numeric strings, as from AAD v1-like
/// endpoints).
pub(crate) fn parse_token_response(
    body: &[u8],
    now: SystemTime,
    scopes: &[String],
) -> Result<AccessToken, TokenError> {
    let bad = |reason: &str| TokenError::BadResponse {
        reason: reason.to_owned(),
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| bad("the body is not JSON"))?;
    let token_type = value
        .get("token_type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("`token_type` is missing"))?;
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::BadResponse {
            reason: format!("`token_type` is `{token_type}`, expected Bearer"),
        });
    }
    let token = value
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("`access_token` is missing"))?;
    if http::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
        return Err(bad(
            "`access_token` has characters that cannot go in a header",
        ));
    }
    let expires_in = number(value.get("expires_in"))
        .map_err(|()| bad("`expires_in` is not a number"))?
        .unwrap_or(600);
    let refresh_in =
        number(value.get("refresh_in")).map_err(|()| bad("`refresh_in` is not a number"))?;
    let ext_expires_in = number(value.get("ext_expires_in"))
        .map_err(|()| bad("`ext_expires_in` is not a number"))?;
    let expires_in = expires_in.min(MAX_LIFETIME_SECONDS);
    let expires_on = now + Duration::from_secs(expires_in);
    // Refresh when 80 % of the usable lifetime (before the 5-minute margin) has passed, or
    // at `refresh_in` when the authority asks for earlier.
    let usable = expires_in.saturating_sub(EXPIRY_MARGIN.as_secs());
    let default_refresh = usable * 4 / 5;
    let refresh_after = refresh_in.map_or(default_refresh, |r| r.min(default_refresh));
    Ok(AccessToken::with_times(
        token.to_owned(),
        now,
        expires_on,
        now + Duration::from_secs(refresh_after),
        ext_expires_in.map(|e| now + Duration::from_secs(e.min(MAX_LIFETIME_SECONDS))),
        scopes.to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses() {
        struct Case {
            name: &'static str,
            body: &'static str,
            ok: bool,
            expires_in: u64,
            refresh_after: u64,
        }
        let cases = [
            Case {
                name: "numbers",
                body: r#"{"token_type":"Bearer","access_token":"a.b.c","expires_in":3599,"ext_expires_in":3599}"#,
                ok: true,
                expires_in: 3599,
                refresh_after: 2639,
            },
            Case {
                name: "numeric strings",
                body: r#"{"token_type":"bearer","access_token":"a.b.c","expires_in":"3600"}"#,
                ok: true,
                expires_in: 3600,
                refresh_after: 2640,
            },
            Case {
                name: "refresh_in earlier",
                body: r#"{"token_type":"Bearer","access_token":"a","expires_in":3600,"refresh_in":1800}"#,
                ok: true,
                expires_in: 3600,
                refresh_after: 1800,
            },
            Case {
                name: "refresh_in later is capped",
                body: r#"{"token_type":"Bearer","access_token":"a","expires_in":3600,"refresh_in":3500}"#,
                ok: true,
                expires_in: 3600,
                refresh_after: 2640,
            },
            Case {
                name: "not bearer",
                body: r#"{"token_type":"pop","access_token":"a","expires_in":3600}"#,
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
            Case {
                name: "no token_type",
                body: r#"{"access_token":"a","expires_in":3600}"#,
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
            Case {
                name: "no token",
                body: r#"{"token_type":"Bearer","expires_in":3600}"#,
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
            Case {
                name: "bad expires_in",
                body: r#"{"token_type":"Bearer","access_token":"a","expires_in":"soon"}"#,
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
            Case {
                name: "token with a newline",
                body: r#"{"token_type":"Bearer","access_token":"a\nb","expires_in":3600}"#,
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
            Case {
                name: "not json",
                body: "<html>",
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
        ];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for case in cases {
            let result = parse_token_response(case.body.as_bytes(), now, &["s/.default".into()]);
            assert_eq!(result.is_ok(), case.ok, "{}: {result:?}", case.name);
            if let Ok(token) = result {
                assert_eq!(
                    token.expires_on(),
                    now + Duration::from_secs(case.expires_in),
                    "{}",
                    case.name
                );
                assert_eq!(
                    token.refresh_on(),
                    now + Duration::from_secs(case.refresh_after),
                    "{}",
                    case.name
                );
            }
        }
    }
}
