//! axum extractors: [`Claims`] (401 when the request was not authenticated) and
//! `Option<Claims>`.
//!
//! The claims are put into the request by
//! [`ValidateAccessTokenLayer`](crate::layers::ValidateAccessTokenLayer).
//!
//! ```
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_azure_auth::Claims;
//!
//! async fn whoami(claims: Claims) -> String {
//!     claims.client_id().unwrap_or("unknown").to_owned()
//! }
//! async fn maybe(claims: Option<Claims>) -> &'static str {
//!     if claims.is_some() { "authenticated" } else { "anonymous" }
//! }
//! let app = Router::new().route("/whoami", get(whoami)).route("/maybe", get(maybe));
//!
//! let response = app.clone().oneshot(Request::get("/whoami").body(Body::empty())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//!
//! let mut request = Request::get("/whoami").body(Body::empty())?;
//! request.extensions_mut().insert(Claims::from_json(serde_json::json!({"azp": "caller"}))?);
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let response = app.oneshot(Request::get("/maybe").body(Body::empty())?).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(example()).unwrap();
//! ```

use ::axum::extract::{FromRequestParts, OptionalFromRequestParts};
use ::axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::claims::Claims;
use crate::error::AuthError;
use crate::rejection::Rejection;

/// The rejection of the [`Claims`] extractor: 401 with `WWW-Authenticate: Bearer`, or, when
/// [`defer_refusals`](crate::layers::ValidateAccessTokenLayer::defer_refusals) let a refused
/// token through, the response for its [`AuthError`] (`invalid_token`, or 503).
#[derive(Debug)]
pub struct MissingClaims {
    error: Option<AuthError>,
}

impl MissingClaims {
    /// The authentication failure recorded for the request, if there was one (else no token
    /// was validated at all).
    #[must_use]
    pub fn error(&self) -> Option<&AuthError> {
        self.error.as_ref()
    }
}

impl IntoResponse for MissingClaims {
    fn into_response(self) -> Response {
        let error = self.error.unwrap_or_else(AuthError::missing_token);
        Rejection::unauthenticated(&error).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = MissingClaims;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| MissingClaims {
                error: parts.extensions.get::<AuthError>().cloned(),
            })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

/// A readiness probe's route (`GET`): 200 when the validator's signing keys are loaded (or
/// last-known-good keys are served), 503 until then, with
/// [`Readiness::to_json`](crate::validation::Readiness::to_json) as the body and
/// `Cache-Control: no-store`. Distinct from liveness: a process waiting for its keys is alive
/// and must not be restarted, only kept out of the load balancer.
///
/// ```
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{body::Body, Router};
/// use http::{Request, StatusCode};
/// use tower::ServiceExt as _;
/// use tower_azure_auth::{Authority, TokenValidator};
///
/// // An authority that cannot be reached yet: not ready.
/// let validator = TokenValidator::builder(Authority::oidc("http://127.0.0.1:9")?)
///     .client_id("api")
///     .build()?;
/// let app: Router = Router::new().route("/readyz", tower_azure_auth::axum::readiness(validator));
/// let response = app.oneshot(Request::get("/readyz").body(Body::empty())?).await?;
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(example()).unwrap();
/// ```
pub fn readiness<S>(validator: crate::TokenValidator) -> ::axum::routing::MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    ::axum::routing::get(move || {
        let readiness = validator.readiness();
        async move { readiness }
    })
}

impl IntoResponse for crate::validation::Readiness {
    fn into_response(self) -> Response {
        let status = http::StatusCode::from_u16(self.status_code()).unwrap_or(http::StatusCode::OK);
        (
            status,
            [
                (http::header::CONTENT_TYPE, "application/json"),
                (http::header::CACHE_CONTROL, "no-store"),
            ],
            self.to_json(),
        )
            .into_response()
    }
}
