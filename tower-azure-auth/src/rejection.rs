//! The one definition of the responses sent when a request is refused, shared by the Tower
//! layers and the actix-web adapter so both answer byte for byte the same.
//!
//! * not authenticated: `401` with `WWW-Authenticate: Bearer` (no token) or
//!   `Bearer error="invalid_token", error_description="…"` (RFC 6750 §3), and a JSON body
//!   `{"error": "...", "error_description": "..."}`;
//! * signing keys not available yet: `503` with `Retry-After`;
//! * authenticated but not authorized: `403` without `WWW-Authenticate` (as ASP.NET Core),
//!   with a JSON body naming the requirements that failed.
//!
//! gRPC calls (`content-type: application/grpc*`, see [`is_grpc_request`]) get the same
//! refusals as gRPC statuses instead: [`Rejection::into_grpc_response`] answers trailers-only
//! with `grpc-status` 16 (`UNAUTHENTICATED`), 14 (`UNAVAILABLE`) or 7 (`PERMISSION_DENIED`);
//! see [`GrpcCode`].
//!
//! A response made by [`Rejection::into_response`] carries the cause in its extensions: the
//! [`AuthError`] of a `401`/`503`, the [`AuthorizationFailure`] of a `403` (as tower-http's
//! csrf layer does), so that an outer metrics or logging layer can label the refusal without
//! parsing the body. The actix-web adapter does the same with `HttpResponse::extensions_mut`.
//!
//! ```
//! use bytes::Bytes;
//! use http::Response;
//! use tower_azure_auth::rejection::Rejection;
//! use tower_azure_auth::{AuthError, AuthErrorKind};
//!
//! let response: Response<Bytes> = Rejection::unauthenticated(&AuthError::missing_token()).into_response();
//! assert_eq!(response.status(), 401);
//! let error = response.extensions().get::<AuthError>().unwrap();
//! assert_eq!(error.kind(), AuthErrorKind::MissingToken);
//! ```
//!
//! # gRPC
//!
//! The gRPC form of a refusal is a *trailers-only* response (gRPC over HTTP/2, "Responses"):
//! HTTP `200`, `content-type: application/grpc`, `grpc-status` and `grpc-message` in the one
//! HEADERS frame, no message. A gRPC client then reports the status (`UNAUTHENTICATED`,
//! `PERMISSION_DENIED`, `UNAVAILABLE`) instead of a protocol error about an HTTP `401` with a
//! JSON body.
//!
//! | refusal | HTTP | gRPC |
//! |---|---|---|
//! | no token, refused token, malformed `Authorization` | `401` | `16` `UNAUTHENTICATED` |
//! | signing keys not available yet | `503` | `14` `UNAVAILABLE` |
//! | authenticated, not authorized | `403` | `7` `PERMISSION_DENIED` |
//!
//! `grpc-message` says what the HTTP `error_description` says (for `PERMISSION_DENIED`, with
//! the failed requirements, as the `403` body lists them), UTF-8 then percent-encoded as the
//! gRPC spec requires; it never contains the token. The other headers of the refusal stay as
//! metadata: `www-authenticate` (the RFC 6750 challenge a client uses to decide to refresh its
//! token), `retry-after`. No `grpc-status-details-bin` is sent.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::authorization::AuthorizationFailure;
use crate::error::{AuthError, AuthErrorKind};

mod grpc;

pub(crate) use grpc::into_grpc_response_from_bytes;
pub use grpc::{is_grpc_request, GrpcCode};

/// A refusal, independent of the HTTP stack: a status, a few headers, a body and, for the
/// refusals of the layers, its cause.
#[derive(Debug, Clone)]
pub struct Rejection {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    cause: Option<Cause>,
}

/// Why a request was refused, inserted into the response's extensions.
#[derive(Debug, Clone)]
enum Cause {
    Unauthenticated(AuthError),
    Forbidden(AuthorizationFailure),
}

/// Seconds a client should wait before retrying when the keys are unavailable.
const RETRY_AFTER_SECONDS: &str = "5";

impl Rejection {
    /// A rejection with the given status, JSON body and no other header.
    #[must_use]
    pub fn json(status: StatusCode, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Bytes::from(body.to_string()),
            cause: None,
        }
    }

    /// The response for a request that failed authentication. Its `error_description` is
    /// [`AuthError::description`]: the check's name, and the expected and actual values only
    /// when the validator has detailed errors on.
    #[must_use]
    pub fn unauthenticated(error: &AuthError) -> Self {
        let code = match error.kind() {
            AuthErrorKind::MissingToken => "unauthorized",
            AuthErrorKind::MalformedHeader => "invalid_request",
            AuthErrorKind::KeysUnavailable => "temporarily_unavailable",
            _ if error.is_claims_challenge() => "insufficient_claims",
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
        rejection.cause = Some(Cause::Unauthenticated(error.clone()));
        rejection
    }

    /// The response for an authenticated caller that is not authorized: `403` without
    /// `WWW-Authenticate` (as ASP.NET Core), with a JSON body naming the failed requirements:
    /// `{"error":"forbidden","error_description":"…","failed_requirements":["…"]}`.
    pub fn forbidden(failure: &AuthorizationFailure) -> Self {
        let failed: Vec<String> = failure
            .failed_requirements()
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut rejection = Self::json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({
                "error": "forbidden",
                "error_description": failure.description(),
                "failed_requirements": failed,
            }),
        );
        rejection.cause = Some(Cause::Forbidden(failure.clone()));
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

    /// The authentication failure of a [`unauthenticated`](Self::unauthenticated) refusal.
    pub fn auth_error(&self) -> Option<&AuthError> {
        match &self.cause {
            Some(Cause::Unauthenticated(error)) => Some(error),
            _ => None,
        }
    }

    /// The authorization failure of a [`forbidden`](Self::forbidden) refusal.
    pub fn authorization_failure(&self) -> Option<&AuthorizationFailure> {
        match &self.cause {
            Some(Cause::Forbidden(failure)) => Some(failure),
            _ => None,
        }
    }

    /// Inserts the cause, if any ([`AuthError`] or [`AuthorizationFailure`]), into
    /// `extensions`; [`into_response`](Self::into_response) does it for `http` 1 responses.
    pub fn insert_cause(&self, extensions: &mut http::Extensions) {
        match &self.cause {
            Some(Cause::Unauthenticated(error)) => {
                extensions.insert(error.clone());
            }
            Some(Cause::Forbidden(failure)) => {
                extensions.insert(failure.clone());
            }
            None => {}
        }
    }

    /// An `http` 1 response, for Tower and axum, with the cause in its extensions.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        match self.cause {
            Some(Cause::Unauthenticated(error)) => {
                response.extensions_mut().insert(error);
            }
            Some(Cause::Forbidden(failure)) => {
                response.extensions_mut().insert(failure);
            }
            None => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorization::FailedRequirement;

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
        let error = response.extensions().get::<AuthError>().unwrap();
        assert_eq!(error.kind(), AuthErrorKind::InvalidAudience);

        let response: Response<Bytes> = Rejection::unauthenticated(&AuthError::new(
            AuthErrorKind::KeysUnavailable,
            "no keys yet",
        ))
        .into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn forbidden_rejection() {
        let failure = AuthorizationFailure::new(
            Some("ValidateAccessTokenPolicy".into()),
            vec![FailedRequirement::new(
                "claim `azpacr` must be one of [2]".into(),
                "the token has a different value or none".into(),
                false,
            )],
        );
        let response: http::Response<bytes::Bytes> = Rejection::forbidden(&failure).into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .is_none());
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
        assert_eq!(
            response.extensions().get::<AuthorizationFailure>(),
            Some(&failure)
        );
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "forbidden",
                "error_description": "the caller does not satisfy the authorization policy `ValidateAccessTokenPolicy`",
                "failed_requirements": ["claim `azpacr` must be one of [2]; the token has a different value or none"],
            })
        );
    }
}
