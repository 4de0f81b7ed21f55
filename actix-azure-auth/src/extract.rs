//! Extractors for the verified claims: [`Authenticated`] and `Option<Authenticated>`.

use std::fmt;
use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use tower_azure_auth::rejection::Rejection;
use tower_azure_auth::{AuthError, Claims};

use crate::response::rejection_response;

/// The caller's verified [`Claims`], as a handler argument.
///
/// [`ValidateAccessTokenLayer`](crate::ValidateAccessTokenLayer) puts the claims into the request
/// extensions; this extractor takes them out, and answers `401` with `WWW-Authenticate: Bearer`
/// (the shared [`Rejection`]) when there are none. `Option<Authenticated>` never fails: `None`
/// for an unauthenticated request (on a route without the middleware).
///
/// It is a newtype because neither `FromRequest` nor `Claims` belong to this crate (the orphan
/// rule); it dereferences to [`Claims`], and [`into_inner`](Self::into_inner) or `.0` give them.
///
/// ```
/// use actix_azure_auth::Authenticated;
///
/// async fn whoami(caller: Authenticated) -> String {
///     caller.client_id().unwrap_or("unknown").to_owned()
/// }
/// async fn maybe(caller: Option<Authenticated>) -> &'static str {
///     if caller.is_some() { "authenticated" } else { "anonymous" }
/// }
/// # let _ = actix_web::web::get().to(whoami);
/// # let _ = actix_web::web::get().to(maybe);
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl Authenticated {
    /// The claims.
    pub fn into_inner(self) -> Claims {
        self.0
    }
}

impl Deref for Authenticated {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl FromRequest for Authenticated {
    type Error = MissingClaims;
    type Future = Ready<Result<Self, MissingClaims>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let extensions = request.extensions();
        let result = match extensions.get::<Claims>() {
            Some(claims) => Ok(Self(claims.clone())),
            None => Err(MissingClaims {
                error: extensions.get::<AuthError>().cloned(),
            }),
        };
        ready(result)
    }
}

/// The error of the [`Authenticated`] extractor: responds `401` with `WWW-Authenticate: Bearer`
/// ([`Rejection::unauthenticated`] for a missing token), or, when
/// [`defer_refusals`](crate::ValidateAccessTokenLayer::defer_refusals) let a refused token through,
/// the response for its [`AuthError`] (`invalid_token`, or 503).
#[derive(Debug, Clone, Default)]
pub struct MissingClaims {
    error: Option<AuthError>,
}

impl MissingClaims {
    /// The authentication failure recorded for the request, if there was one.
    pub fn error(&self) -> Option<&AuthError> {
        self.error.as_ref()
    }
}

impl fmt::Display for MissingClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(error) => write!(f, "the request is not authenticated: {}", error.reason()),
            None => f.write_str(
                "the request carries no verified claims (is ValidateAccessTokenLayer wrapped around this route?)",
            ),
        }
    }
}

impl std::error::Error for MissingClaims {}

impl ResponseError for MissingClaims {
    fn status_code(&self) -> StatusCode {
        match &self.error {
            Some(error) => {
                StatusCode::from_u16(error.status().as_u16()).unwrap_or(StatusCode::UNAUTHORIZED)
            }
            None => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let error = self.error.clone().unwrap_or_else(AuthError::missing_token);
        rejection_response(&Rejection::unauthenticated(&error))
    }
}
