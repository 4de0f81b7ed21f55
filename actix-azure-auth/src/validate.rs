//! [`ValidateAccessTokenLayer`]: the actix-web counterpart of the Tower
//! `ValidateAccessTokenLayer`, with the same decisions and the same responses.

use std::fmt;
use std::future::{ready, Ready};
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::{Error, HttpMessage, HttpResponse};
use tower_azure_auth::rejection::Rejection;
use tower_azure_auth::validation::{bearer_token, may_resolve_after_refresh};
use tower_azure_auth::{AuthError, Claims, TokenValidator};

use crate::response::{refuse, rejection_response, ResponseFuture, LOG_TARGET};

/// Builds the response sent when authentication fails. Whatever it returns, the middleware
/// inserts the [`AuthError`] into the response's extensions.
///
/// Implemented by [`DefaultRejection`] and by every closure
/// `Fn(&AuthError) -> HttpResponse + Clone + 'static`.
pub trait OnRejection: Clone + 'static {
    /// The response for this error.
    fn on_rejection(&self, error: &AuthError) -> HttpResponse;
}

/// The RFC 6750 responses of [`Rejection::unauthenticated`], the same as the Tower layer's.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl OnRejection for DefaultRejection {
    fn on_rejection(&self, error: &AuthError) -> HttpResponse {
        rejection_response(&Rejection::unauthenticated(error))
    }
}

impl<F> OnRejection for F
where
    F: Fn(&AuthError) -> HttpResponse + Clone + 'static,
{
    fn on_rejection(&self, error: &AuthError) -> HttpResponse {
        self(error)
    }
}

/// Authenticates requests with an `Authorization: Bearer` access token and puts the verified
/// [`Claims`] into the request extensions; use with `wrap()` on an `App`, a `web::scope` or a
/// `web::resource`.
///
/// Refusals are the shared [`Rejection`]s: `401` with `WWW-Authenticate: Bearer` without a
/// token, `401` with `Bearer error="invalid_token", error_description="…"` for a refused token,
/// `503` with `Retry-After` while the authority's keys could not be fetched yet.
///
/// A token signed with a known key is decided synchronously, with no boxing; only an unknown
/// `kid` (or no keys yet) waits for a key refresh, within the validator's refresh rules.
///
/// The `Authorization` header's values are marked sensitive before the inner service sees the
/// request, as the Tower layer does.
///
/// With [`defer_refusals`](Self::defer_refusals), a missing or refused token is not answered
/// here but left (as its [`AuthError`]) for the [`AuthorizeLayer`](crate::AuthorizeLayer) middleware,
/// [`RequirePolicyLayer`](crate::RequirePolicyLayer) or the [`Authenticated`](crate::Authenticated)
/// extractor to answer, so that anonymous routes work under an `App`-wide validation.
///
/// Layer order: actix-web runs the *last* `wrap()` first, so register this one after the
/// authorization middlewares that read the claims it inserts (or on an enclosing scope/app).
/// See the [crate docs](crate).
#[derive(Clone)]
pub struct ValidateAccessTokenLayer<R = DefaultRejection> {
    validator: TokenValidator,
    rejection: R,
    defer: bool,
}

impl<R> fmt::Debug for ValidateAccessTokenLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateAccessTokenLayer")
            .field("validator", &self.validator)
            .field("defer_refusals", &self.defer)
            .finish_non_exhaustive()
    }
}

impl ValidateAccessTokenLayer {
    /// A middleware that validates with `validator` and answers refusals per RFC 6750.
    pub fn new(validator: TokenValidator) -> Self {
        Self {
            validator,
            rejection: DefaultRejection,
            defer: false,
        }
    }
}

impl<R> ValidateAccessTokenLayer<R> {
    /// Swaps the refusal response builder: a closure `Fn(&AuthError) -> HttpResponse` or an
    /// [`OnRejection`] implementation.
    ///
    /// ```
    /// use actix_azure_auth::{rejection_response, ValidateAccessTokenLayer};
    /// use actix_web::HttpResponse;
    /// use tower_azure_auth::rejection::Rejection;
    /// use tower_azure_auth::{AuthError, Authority, TokenValidator};
    ///
    /// # fn main() -> Result<(), tower_azure_auth::ConfigError> {
    /// let validator = TokenValidator::builder(Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
    ///     .client_id("b178f3a5-7588-492a-924f-72d7887b7e48")
    ///     .build()?;
    /// // the shared response plus a correlation header
    /// let middleware = ValidateAccessTokenLayer::new(validator).with_rejection(|error: &AuthError| {
    ///     let mut response = rejection_response(&Rejection::unauthenticated(error));
    ///     response.headers_mut().insert(
    ///         actix_web::http::header::HeaderName::from_static("x-auth-failure"),
    ///         actix_web::http::header::HeaderValue::from_static(error.kind().as_str()),
    ///     );
    ///     response
    /// });
    /// # let _ = middleware;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_rejection<R2: OnRejection>(self, rejection: R2) -> ValidateAccessTokenLayer<R2> {
        ValidateAccessTokenLayer {
            validator: self.validator,
            rejection,
            defer: self.defer,
        }
    }

    /// Lets a request with a missing or refused token through, with the [`AuthError`] in its
    /// extensions instead of [`Claims`], for the authorization to answer: the
    /// [`AuthorizeLayer`](crate::AuthorizeLayer) middleware, [`RequirePolicyLayer`](crate::RequirePolicyLayer),
    /// [`RequireRole`](crate::RequireRole) and the [`Authenticated`](crate::Authenticated)
    /// extractor answer `401` (or `503`) with that error, the response this middleware sends
    /// otherwise; a route declared anonymous is reached without claims (ASP.NET Core's model:
    /// authentication never refuses, authorization challenges).
    ///
    /// A route that nothing protects is then reached by any caller, as in ASP.NET Core.
    /// Deferred refusals are answered with the shared responses, not with a
    /// [`with_rejection`](Self::with_rejection) builder.
    #[must_use]
    pub fn defer_refusals(mut self) -> Self {
        self.defer = true;
        self
    }

    /// The validator.
    pub fn validator(&self) -> &TokenValidator {
        &self.validator
    }
}

impl<S, B, R> Transform<S, ServiceRequest> for ValidateAccessTokenLayer<R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
    R: OnRejection,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = ValidateAccessToken<S, R>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ValidateAccessToken {
            service: Rc::new(service),
            validator: self.validator.clone(),
            rejection: self.rejection.clone(),
            defer: self.defer,
        }))
    }
}

/// The service of [`ValidateAccessTokenLayer`].
pub struct ValidateAccessToken<S, R = DefaultRejection> {
    service: Rc<S>,
    validator: TokenValidator,
    rejection: R,
    defer: bool,
}

impl<S, R> fmt::Debug for ValidateAccessToken<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateAccessToken")
            .field("validator", &self.validator)
            .finish_non_exhaustive()
    }
}

/// What the synchronous look at a request found.
enum Outcome {
    Accepted(Claims),
    Refused(AuthError),
    /// The token names an unknown key, or there are no keys yet: try again after a refresh.
    Retry(String),
}

impl<S, R> ValidateAccessToken<S, R> {
    fn inspect(&self, request: &ServiceRequest) -> Outcome {
        let values = request
            .headers()
            .get_all(AUTHORIZATION)
            .map(|value| value.as_bytes());
        let token = match bearer_token(values) {
            Ok(token) => token,
            Err(error) => return Outcome::Refused(error),
        };
        match self.validator.validate_with_current_keys(token) {
            Ok(claims) => Outcome::Accepted(claims),
            Err(error) if may_resolve_after_refresh(&error) => Outcome::Retry(token.to_owned()),
            Err(error) => Outcome::Refused(error),
        }
    }
}

/// Marks every `Authorization` value sensitive, so that what honours the flag (`Debug`,
/// loggers) does not print the token.
fn mark_authorization_sensitive(headers: &mut HeaderMap) {
    if headers.contains_key(AUTHORIZATION) {
        headers.retain(|name, value| {
            if name == AUTHORIZATION {
                value.set_sensitive(true);
            }
            true
        });
    }
}

/// Leaves the refusal for the authorization to answer.
fn deferred(request: &ServiceRequest, error: AuthError) {
    tracing::debug!(
        target: LOG_TARGET,
        method = %request.method(),
        path = request.path(),
        kind = %error.kind(),
        reason = error.reason(),
        "token refused; the refusal is deferred to the authorization"
    );
    request.extensions_mut().insert(error);
}

fn refused<B>(
    request: ServiceRequest,
    rejection: &impl OnRejection,
    error: &AuthError,
) -> ServiceResponse<EitherBody<B>> {
    let mut response = rejection.on_rejection(error);
    // The cause, for an outer metrics or logging middleware, whoever built the response.
    response.extensions_mut().insert(error.clone());
    // The detail (expected and actual values) is there only with PII logging or detailed
    // errors on.
    let reason: std::borrow::Cow<'_, str> = match error.detail() {
        Some(detail) => format!("{}; {detail}", error.reason()).into(),
        None => error.reason().into(),
    };
    refuse(request, response, error.kind().as_str(), &reason)
}

impl<S, B, R> Service<ServiceRequest> for ValidateAccessToken<S, R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
    R: OnRejection,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        mark_authorization_sensitive(request.headers_mut());
        match self.inspect(&request) {
            Outcome::Accepted(claims) => {
                request.extensions_mut().insert(claims);
                ResponseFuture::inner(self.service.call(request))
            }
            Outcome::Refused(error) if self.defer => {
                deferred(&request, error);
                ResponseFuture::inner(self.service.call(request))
            }
            Outcome::Refused(error) => {
                ResponseFuture::refused(refused(request, &self.rejection, &error))
            }
            Outcome::Retry(token) => {
                // Slow path (unknown kid or no keys yet): may wait for a key refresh.
                let validator = self.validator.clone();
                let rejection = self.rejection.clone();
                let defer = self.defer;
                let service = Rc::clone(&self.service);
                ResponseFuture::boxed(async move {
                    match validator.validate(&token).await {
                        Ok(claims) => {
                            request.extensions_mut().insert(claims);
                            service
                                .call(request)
                                .await
                                .map(ServiceResponse::map_into_left_body)
                        }
                        Err(error) if defer => {
                            deferred(&request, error);
                            service
                                .call(request)
                                .await
                                .map(ServiceResponse::map_into_left_body)
                        }
                        Err(error) => Ok(refused(request, &rejection, &error)),
                    }
                })
            }
        }
    }
}
