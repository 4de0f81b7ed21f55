//! tower-http's [`AsyncRequireAuthorizationLayer`] with this crate's validation (and,
//! optionally, a policy): [`AuthorizeAccessToken`] implements [`AsyncAuthorizeRequest`].
//!
//! It decides and answers as [`ValidateAccessTokenLayer`](crate::layers::ValidateAccessTokenLayer)
//! (followed by [`RequirePolicyLayer`](crate::layers::RequirePolicyLayer) when a policy is
//! set): the verified [`Claims`] go into the request extensions; a missing or refused token gets
//! the same `401` with `WWW-Authenticate` (or `503` with `Retry-After` while the keys are
//! unavailable), a caller that fails the policy the same `403`, each with its cause
//! ([`AuthError`] or [`AuthorizationFailure`](crate::authorization::AuthorizationFailure)) in the
//! response's extensions. The `Authorization` header is marked sensitive. Use it where a stack
//! is already built around tower-http's authorization layer; otherwise prefer
//! `ValidateAccessTokenLayer`, whose accepted requests are decided without boxing.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_azure_auth::tower_http::AuthorizeAccessToken;
//! use tower_azure_auth::{AuthError, Authority, TokenValidator};
//! use tower_http::auth::AsyncRequireAuthorizationLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = TokenValidator::builder(Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
//!     .client_id("b178f3a5-7588-492a-924f-72d7887b7e48")
//!     .build()?;
//! let app = Router::new()
//!     .route("/weatherforecast", get(|| async { "sunny" }))
//!     .layer(AsyncRequireAuthorizationLayer::new(AuthorizeAccessToken::new(validator)));
//!
//! let response = app.oneshot(Request::get("/weatherforecast").body(Body::empty())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//! assert!(response.extensions().get::<AuthError>().is_some());
//! # Ok(()) }
//! ```
//!
//! [`AsyncRequireAuthorizationLayer`]: ::tower_http::auth::AsyncRequireAuthorizationLayer

use std::fmt;
use std::marker::PhantomData;

use ::tower_http::auth::AsyncAuthorizeRequest;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::AUTHORIZATION;
use http::{Request, Response};

use crate::authorization::{AuthorizationContext, Policies, Policy, RequestFacts};
use crate::claims::Claims;
use crate::error::{AuthError, ConfigError};
use crate::layers::validate_access_token::mark_authorization_sensitive;
use crate::rejection::Rejection;
use crate::validation::{bearer_token, TokenValidator};

/// Validates the bearer token (and optionally applies a policy) for tower-http's
/// [`AsyncRequireAuthorizationLayer`](::tower_http::auth::AsyncRequireAuthorizationLayer); see
/// the [module docs](self). `ResBody` is the response body type of the service it guards
/// (inferred).
pub struct AuthorizeAccessToken<ResBody> {
    validator: TokenValidator,
    policy: Option<(Policies, Policy)>,
    _body: PhantomData<fn() -> ResBody>,
}

impl<ResBody> Clone for AuthorizeAccessToken<ResBody> {
    fn clone(&self) -> Self {
        Self {
            validator: self.validator.clone(),
            policy: self.policy.clone(),
            _body: PhantomData,
        }
    }
}

impl<ResBody> fmt::Debug for AuthorizeAccessToken<ResBody> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeAccessToken")
            .field("validator", &self.validator)
            .field("policy", &self.policy.as_ref().map(|(_, policy)| policy))
            .finish()
    }
}

impl<ResBody> AuthorizeAccessToken<ResBody> {
    /// Validates with `validator`; every caller with a valid token is authorized.
    #[must_use]
    pub fn new(validator: TokenValidator) -> Self {
        Self {
            validator,
            policy: None,
            _body: PhantomData,
        }
    }

    /// Also requires the policy registered under `name` in `policies` (decided with its
    /// handlers), as [`RequirePolicyLayer::named`](crate::layers::RequirePolicyLayer::named).
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownPolicy`] when no policy has that name.
    pub fn require_policy(self, policies: &Policies, name: &str) -> Result<Self, ConfigError> {
        let policy = policies.policy(name)?;
        Ok(self.require(policies, policy))
    }

    /// Also requires an inline `policy`, decided with the handlers of `policies`
    /// ([`Policies::default()`] for none).
    #[must_use]
    pub fn require(mut self, policies: &Policies, policy: Policy) -> Self {
        self.policy = Some((policies.clone(), policy));
        self
    }
}

/// The response future of [`AuthorizeAccessToken`].
type Decision<B, ResBody> = BoxFuture<'static, Result<Request<B>, Response<ResBody>>>;

impl<B, ResBody> AsyncAuthorizeRequest<B> for AuthorizeAccessToken<ResBody>
where
    B: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type RequestBody = B;
    type ResponseBody = ResBody;
    type Future = Decision<B, ResBody>;

    fn authorize(&mut self, mut request: Request<B>) -> Self::Future {
        mark_authorization_sensitive(request.headers_mut());
        let token = bearer_token(
            request
                .headers()
                .get_all(AUTHORIZATION)
                .iter()
                .map(|v| v.as_bytes()),
        )
        .map(str::to_owned);
        let validator = self.validator.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let claims = match token {
                Ok(token) => validator.validate(&token).await,
                Err(error) => Err(error),
            };
            let claims = claims.map_err(|error| refused(&error))?;
            if let Some((policies, policy)) = policy {
                let (parts, body) = request.into_parts();
                let result = {
                    let ctx = AuthorizationContext::for_request(
                        &claims,
                        RequestFacts::from_parts(&parts),
                    );
                    match policies.authorize_sync(&policy, &ctx) {
                        Some(result) => result,
                        None => policies.authorize(&policy, &ctx).await,
                    }
                };
                if let Err(failure) = result {
                    return Err(Rejection::forbidden(&failure).into_response());
                }
                request = Request::from_parts(parts, body);
            }
            request.extensions_mut().insert::<Claims>(claims);
            Ok(request)
        })
    }
}

/// The `401`/`503` for a refused token, logged as the validation layer logs it.
fn refused<ResBody: From<Bytes>>(error: &AuthError) -> Response<ResBody> {
    tracing::debug!(target: "tower_azure_auth::validation", kind = %error.kind(), reason = error.reason(), "request refused");
    Rejection::unauthenticated(error).into_response()
}
