//! The one definition of the responses sent when a request is refused, shared by the Tower
//! layers and the actix-web adapter so both answer byte for byte the same.
//!
//! * not authenticated: `401` with `WWW-Authenticate: Bearer` (no token) or
//!   `Bearer error="invalid_token", error_description="…"` (RFC 6750 §3), and a JSON body
//!   `{"error": "...", "error_description": "..."}`;
//! * signing keys not available yet: `503` with `Retry-After`;
//! * authenticated but not authorized: `403` without `WWW-Authenticate` (as ASP.NET Core),
//!   with a JSON body naming the requirements that failed.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::error::{AuthError, AuthErrorKind};

/// A refusal, independent of the HTTP stack: a status, a few headers and a body.
#[derive(Debug, Clone)]
pub struct Rejection {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

/// Seconds a client should wait before retrying when the keys are unavailable.
const RETRY_AFTER_SECONDS: &str = "5";

impl Rejection {
    /// A rejection with the given status, JSON body and no other header.
    pub fn json(status: StatusCode, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Bytes::from(body.to_string()),
        }
    }

    /// The response for a request that failed authentication. Its `error_description` is
    /// [`AuthError::description`]: the check's name, and the expected and actual values only
    /// when the validator has detailed errors on.
    pub fn unauthenticated(error: &AuthError) -> Self {
        let code = match error.kind() {
            AuthErrorKind::MissingToken => "unauthorized",
            AuthErrorKind::MalformedHeader => "invalid_request",
            AuthErrorKind::KeysUnavailable => "temporarily_unavailable",
            _ => "invalid_token",
        };
        let mut rejection = Self::json(
            error.status(),
            &serde_json::json!({ "error": code, "error_description": error.description() }),
        );
        if let Some(challenge) = error.www_authenticate() {
            rejection.headers.push((WWW_AUTHENTICATE, challenge));
        }
        if error.kind() == AuthErrorKind::KeysUnavailable {
            rejection
                .headers
                .push((RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS)));
        }
        rejection
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// An `http` 1 response, for Tower and axum.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthenticated_shapes() {
        let response: Response<Bytes> = Rejection::unauthenticated(&AuthError::new(
            AuthErrorKind::InvalidAudience,
            "the audience 'x' is not accepted",
        ))
        .into_response();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"the audience 'x' is not accepted\""
        );
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "invalid_token");

        let response: Response<Bytes> = Rejection::unauthenticated(&AuthError::new(
            AuthErrorKind::KeysUnavailable,
            "no keys yet",
        ))
        .into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    }
}
