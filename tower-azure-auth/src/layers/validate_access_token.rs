//! [`ValidateAccessTokenLayer`]: authenticates requests with an `Authorization: Bearer` access
//! token and puts the verified [`Claims`] into the request extensions.
//!
//! Refusals follow RFC 6750 (see [`Rejection`]): `401` with `WWW-Authenticate: Bearer` when
//! there is no token, `401` with `Bearer error="invalid_token", error_description="…"` when the
//! token is refused, `503` with `Retry-After` while the authority's keys could not be fetched
//! yet. A gRPC call (`content-type: application/grpc*`) gets the same refusal as a gRPC status
//! instead (trailers-only, `grpc-status` 16 `UNAUTHENTICATED` or 14 `UNAVAILABLE`, the
//! challenge kept as `www-authenticate` metadata; see [`Rejection::into_grpc_response`]); in
//! front of a tonic server, whose body type is not `From<Bytes>`, use
//! [`ValidateAccessTokenLayer::grpc`](crate::layers::ValidateAccessTokenLayer::grpc). The refusal response carries the [`AuthError`] in its extensions (also when a
//! [`with_rejection`](ValidateAccessTokenLayer::with_rejection) builder made it), so that an
//! outer metrics or logging layer can label it. The inner service's error type is unchanged;
//! [`ValidateAccessTokenLayer::with_rejection`] swaps the response builder.
//!
//! The `Authorization` header's values are marked sensitive
//! ([`HeaderValue::set_sensitive`](http::HeaderValue::set_sensitive)) before the inner service
//! sees the request, so that HTTP stacks and loggers that honour the flag do not print the
//! token.
//!
//! With [`defer_refusals`](ValidateAccessTokenLayer::defer_refusals), a request whose token is
//! missing or refused is not answered here: it goes on with the [`AuthError`] in its
//! extensions instead of [`Claims`], and the authorization layers answer `401` (or `503`) with
//! it where a route needs a caller, while anonymous routes are reached, as in ASP.NET Core,
//! where authentication never refuses and authorization challenges. Use it with a router-wide
//! [`AuthorizeLayer`](crate::layers::AuthorizeLayer).
//!
//! Layer order: this layer must run before the authorization layers
//! ([`RequireRole`](crate::layers::RequireRole), [`RequirePolicyLayer`](crate::layers::RequirePolicyLayer)),
//! which read the claims it inserts. In axum, `.layer()` calls wrap what is above them, so add
//! the authorization layer first (per route) and this one after (router-wide).
//!
//! ```
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_azure_auth::layers::ValidateAccessTokenLayer;
//! use tower_azure_auth::{Authority, TokenValidator};
//!
//! let validator = TokenValidator::builder(Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
//!     .client_id("b178f3a5-7588-492a-924f-72d7887b7e48")
//!     .build()?;
//! let app = Router::new()
//!     .route("/weatherforecast", get(|| async { "sunny" }))
//!     .layer(ValidateAccessTokenLayer::new(validator));
//!
//! let response = app
//!     .oneshot(Request::get("/weatherforecast").body(Body::empty())?)
//!     .await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//! // the cause, for an outer metrics or logging layer
//! let error = response.extensions().get::<tower_azure_auth::AuthError>().unwrap();
//! assert_eq!(error.kind(), tower_azure_auth::AuthErrorKind::MissingToken);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(example()).unwrap();
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use super::POLLED_AFTER_COMPLETION;

use bytes::Bytes;
use http::header::{Entry, AUTHORIZATION};
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::Claims;
use crate::error::AuthError;
use crate::rejection::{into_grpc_response_from_bytes, is_grpc_request, Rejection};
use crate::validation::{bearer_token, may_resolve_after_refresh, TokenValidator};

/// Builds the response sent when authentication fails. Whatever it returns, the layer inserts
/// the [`AuthError`] into the response's extensions.
pub trait OnRejection<B>: Clone {
    /// The response for this error.
    fn on_rejection(&self, error: &AuthError) -> Response<B>;

    /// The response for this error to a gRPC call (`content-type: application/grpc*`, see
    /// [`is_grpc_request`]). By default the same as
    /// [`on_rejection`](Self::on_rejection): a builder swapped in with
    /// [`with_rejection`](ValidateAccessTokenLayer::with_rejection) answers every request.
    fn on_grpc_rejection(&self, error: &AuthError) -> Response<B> {
        self.on_rejection(error)
    }
}

/// The RFC 6750 responses of [`Rejection::unauthenticated`]; gRPC calls get its gRPC form
/// ([`Rejection::into_grpc_response`]: `UNAUTHENTICATED`, or `UNAVAILABLE` while the keys are
/// unavailable).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl<B: From<Bytes>> OnRejection<B> for DefaultRejection {
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        Rejection::unauthenticated(error).into_response()
    }

    fn on_grpc_rejection(&self, error: &AuthError) -> Response<B> {
        into_grpc_response_from_bytes(Rejection::unauthenticated(error))
    }
}

impl<B, F> OnRejection<B> for F
where
    F: Fn(&AuthError) -> Response<B> + Clone,
{
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        self(error)
    }
}

/// Validates bearer tokens; see the [module docs](self).
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
    /// A layer that validates with `validator` and answers refusals per RFC 6750.
    #[must_use]
    pub fn new(validator: TokenValidator) -> Self {
        Self {
            validator,
            rejection: DefaultRejection,
            defer: false,
        }
    }
}

impl<R> ValidateAccessTokenLayer<R> {
    /// Swaps the refusal response builder (a closure `Fn(&AuthError) -> Response<B>` or an
    /// [`OnRejection`] implementation).
    pub fn with_rejection<R2>(self, rejection: R2) -> ValidateAccessTokenLayer<R2> {
        ValidateAccessTokenLayer {
            validator: self.validator,
            rejection,
            defer: self.defer,
        }
    }

    /// Lets a request with a missing or refused token through, with the [`AuthError`] in its
    /// extensions instead of [`Claims`], for the authorization layers to answer: a router-wide
    /// [`AuthorizeLayer`](crate::layers::AuthorizeLayer), [`RequirePolicyLayer`](crate::layers::RequirePolicyLayer),
    /// [`RequireRole`](crate::layers::RequireRole) and the `Claims` extractor answer `401`
    /// (or `503` while the keys are unavailable) with that error, the same response this
    /// layer sends otherwise; a route declared anonymous is reached without claims. This is
    /// ASP.NET Core's model: authentication never refuses, authorization challenges.
    ///
    /// A route that nothing protects (no authorization layer, no fallback policy, no `Claims`
    /// extractor) is then reached by any caller, as in ASP.NET Core. The responses are the
    /// shared [`Rejection::unauthenticated`] ones: a [`with_rejection`](Self::with_rejection)
    /// builder is not used for deferred refusals.
    #[must_use]
    pub fn defer_refusals(mut self) -> Self {
        self.defer = true;
        self
    }
}

impl<S, R: Clone> Layer<S> for ValidateAccessTokenLayer<R> {
    type Service = ValidateAccessToken<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateAccessToken {
            inner,
            validator: self.validator.clone(),
            rejection: self.rejection.clone(),
            defer: self.defer,
        }
    }
}

/// The service of [`ValidateAccessTokenLayer`].
#[derive(Clone)]
pub struct ValidateAccessToken<S, R = DefaultRejection> {
    inner: S,
    validator: TokenValidator,
    rejection: R,
    defer: bool,
}

impl<S: fmt::Debug, R> fmt::Debug for ValidateAccessToken<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateAccessToken")
            .field("inner", &self.inner)
            .field("validator", &self.validator)
            .field("defer_refusals", &self.defer)
            .finish_non_exhaustive()
    }
}

/// Marks every `Authorization` value sensitive, so that the token is not printed by what
/// honours the flag (hyper's and http's `Debug`, loggers).
pub(crate) fn mark_authorization_sensitive(headers: &mut HeaderMap) {
    // `contains_key` first: `entry` may grow the map even when the header is absent.
    if !headers.contains_key(AUTHORIZATION) {
        return;
    }
    if let Entry::Occupied(mut entry) = headers.entry(AUTHORIZATION) {
        for value in entry.iter_mut() {
            value.set_sensitive(true);
        }
    }
}

inner_service_accessors!(ValidateAccessToken<S, R>);

/// The refusal response for `error`, from `rejection` (its gRPC form for a gRPC call), with the
/// error in its extensions.
fn respond<B>(rejection: &impl OnRejection<B>, error: AuthError, grpc: bool) -> Response<B> {
    let mut response = if grpc {
        rejection.on_grpc_rejection(&error)
    } else {
        rejection.on_rejection(&error)
    };
    response.extensions_mut().insert(error);
    response
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for ValidateAccessToken<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: OnRejection<ResBody> + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        mark_authorization_sensitive(request.headers_mut());
        let grpc = is_grpc_request(request.headers());
        // A token verified before (the common case) skips the header's byte checks, which
        // could not refuse it; any other credential takes the full parse below.
        let known = crate::bearer::bearer_candidate(
            request
                .headers()
                .get_all(AUTHORIZATION)
                .iter()
                .map(|v| v.as_bytes()),
        )
        .and_then(|token| self.validator.validate_cached(token));
        match known {
            Some(Ok(claims)) => {
                request.extensions_mut().insert(claims);
                return ResponseFuture::inner(self.inner.call(request));
            }
            // Expired or revoked since it was verified (the validator logged why).
            Some(Err(error)) => return self.refuse(request, error, grpc),
            None => {}
        }
        let token = bearer_token(
            request
                .headers()
                .get_all(AUTHORIZATION)
                .iter()
                .map(|v| v.as_bytes()),
        );
        let token = match token {
            Ok(token) => token,
            Err(error) => {
                tracing::debug!(target: "tower_azure_auth::validation", kind = %error.kind(), reason = error.reason(), deferred = self.defer, "request refused");
                return self.refuse(request, error, grpc);
            }
        };
        match self.validator.validate_with_current_keys(token) {
            Ok(claims) => {
                request.extensions_mut().insert(claims);
                ResponseFuture::inner(self.inner.call(request))
            }
            Err(error) if may_resolve_after_refresh(&error) => {
                // Slow path (unknown kid or no keys yet): may wait for a key refresh.
                let token = token.to_owned();
                let validator = self.validator.clone();
                let rejection = self.rejection.clone();
                let defer = self.defer;
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::boxed(Box::pin(async move {
                    match validator.validate(&token).await {
                        Ok(claims) => {
                            request.extensions_mut().insert::<Claims>(claims);
                            inner.call(request).await
                        }
                        Err(error) if defer => {
                            request.extensions_mut().insert(error);
                            inner.call(request).await
                        }
                        Err(error) => Ok(respond(&rejection, error, grpc)),
                    }
                }))
            }
            Err(error) => self.refuse(request, error, grpc),
        }
    }
}

impl<S, R> ValidateAccessToken<S, R> {
    /// Answers a refused request, or lets it through with the error when refusals are
    /// deferred.
    fn refuse<ReqBody, ResBody>(
        &mut self,
        mut request: Request<ReqBody>,
        error: AuthError,
        grpc: bool,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        R: OnRejection<ResBody>,
    {
        if self.defer {
            request.extensions_mut().insert(error);
            ResponseFuture::inner(self.inner.call(request))
        } else {
            ResponseFuture::rejected(respond(&self.rejection, error, grpc))
        }
    }
}

pin_project! {
    /// The response future of [`ValidateAccessToken`]: the inner service's future (no boxing)
    /// when the token was decided with the current keys, a ready refusal, or a boxed future
    /// while the keys are refreshed.
    ///
    /// # Panics
    ///
    /// When polled after it completed.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<B>> },
        Boxed { future: BoxFuture<Result<Response<B>, E>> },
        Done,
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    fn rejected(response: Response<B>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    fn boxed(future: BoxFuture<Result<Response<B>, E>>) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let output = match this.state.as_mut().project() {
            StateProj::Inner { future } => ready!(future.poll(cx)),
            StateProj::Rejected { response } => Ok(response.take().expect(POLLED_AFTER_COMPLETION)),
            StateProj::Boxed { future } => ready!(future.as_mut().poll(cx)),
            StateProj::Done => panic!("{}", POLLED_AFTER_COMPLETION),
        };
        this.state.set(State::Done);
        Poll::Ready(output)
    }
}
