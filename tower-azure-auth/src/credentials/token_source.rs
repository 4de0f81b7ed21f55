//! [`TokenSource`]: what the outbound layer and middleware ask for tokens.

use std::fmt;
use std::sync::Arc;

use http::header::{HeaderMap, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use super::client::{BoxFuture, ConfidentialClient};
use super::token::{AccessToken, TokenError};

/// A source of access tokens, shared by
/// [`AddAccessTokenLayer`](crate::layers::AddAccessTokenLayer) and the reqwest
/// middleware. [`ConfidentialClient`] implements it; so can a test double or another flow.
pub trait TokenSource: Send + Sync + fmt::Debug + 'static {
    /// A token for `scopes`; `force_refresh` skips any cached token (used once after the
    /// called API answers 401 `invalid_token`).
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>>;
}

impl TokenSource for ConfidentialClient {
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            if force_refresh {
                self.force_refresh(scopes).await
            } else {
                self.acquire_token_for_client(scopes).await
            }
        })
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        (**self).token(scopes, force_refresh)
    }
}

/// A token source with the scopes to ask for: the part shared by the tower layer and the
/// reqwest middleware.
#[derive(Clone, Debug)]
pub(crate) struct BearerAuth {
    source: Arc<dyn TokenSource>,
    scopes: Arc<[String]>,
}

impl BearerAuth {
    pub(crate) fn new<I, S>(source: Arc<dyn TokenSource>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            source,
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// `Bearer …`, marked sensitive.
    pub(crate) async fn header(&self, force_refresh: bool) -> Result<HeaderValue, TokenError> {
        let token = self.source.token(&self.scopes, force_refresh).await?;
        bearer_header(&token)
    }
}

pub(crate) fn bearer_header(token: &AccessToken) -> Result<HeaderValue, TokenError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.secret())).map_err(|_| {
        TokenError::BadResponse {
            reason: "the access token cannot be sent in a header".into(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Whether a response says the token was refused as invalid (401 with a `Bearer` challenge
/// carrying `error="invalid_token"`): worth one forced refresh and retry.
pub(crate) fn is_invalid_token(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED
        && headers.get_all(WWW_AUTHENTICATE).iter().any(|value| {
            let Ok(value) = value.to_str() else {
                return false;
            };
            let lower = value.to_ascii_lowercase();
            lower.trim_start().starts_with("bearer")
                && (lower.contains("error=\"invalid_token\"")
                    || lower.contains("error=invalid_token"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_token_challenges() {
        struct Case {
            name: &'static str,
            status: u16,
            header: Option<&'static str>,
            expected: bool,
        }
        let cases = [
            Case {
                name: "rfc 6750 invalid_token",
                status: 401,
                header: Some(r#"Bearer error="invalid_token", error_description="expired""#),
                expected: true,
            },
            Case {
                name: "unquoted",
                status: 401,
                header: Some("Bearer error=invalid_token"),
                expected: true,
            },
            Case {
                name: "bare challenge (no token sent)",
                status: 401,
                header: Some("Bearer"),
                expected: false,
            },
            Case {
                name: "insufficient scope",
                status: 401,
                header: Some(r#"Bearer error="insufficient_scope""#),
                expected: false,
            },
            Case {
                name: "no header",
                status: 401,
                header: None,
                expected: false,
            },
            Case {
                name: "403",
                status: 403,
                header: Some(r#"Bearer error="invalid_token""#),
                expected: false,
            },
            Case {
                name: "other scheme",
                status: 401,
                header: Some(r#"Basic realm="x", error="invalid_token""#),
                expected: false,
            },
        ];
        for case in cases {
            let mut headers = HeaderMap::new();
            if let Some(h) = case.header {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(h));
            }
            let status = StatusCode::from_u16(case.status).unwrap();
            assert_eq!(
                is_invalid_token(status, &headers),
                case.expected,
                "{}",
                case.name
            );
        }
    }
}
