//! Authorization layers: [`RequirePolicyLayer`] → [`RequirePolicy`] → [`ResponseFuture`], with
//! the shorthands [`RequireRole`], [`RequireClaim`] and [`RequireClientAuthentication`], which
//! build the same [`RequirePolicy`] service as [`RequirePolicyLayer::role`],
//! [`RequirePolicyLayer::claim`] and [`RequirePolicyLayer::client_authentication`].
//!
//! They read the caller's [`Claims`] from the request extensions, where
//! [`ValidateAccessTokenLayer`](super::ValidateAccessTokenLayer) puts them, so they go *inside*
//! it (in axum: `.layer(RequireRole(..))` before `.layer(ValidateAccessTokenLayer ..)`, or per
//! route with the validation router-wide). Without claims they answer `401`: with the
//! [`AuthError`] that [`defer_refusals`](super::ValidateAccessTokenLayer::defer_refusals) left
//! in the extensions, else with `WWW-Authenticate: Bearer`; when the caller is not authorized,
//! `403` with a JSON body that names the failed requirements (see [`Rejection::forbidden`]);
//! a gRPC call gets the same refusals as `UNAUTHENTICATED` / `PERMISSION_DENIED`
//! ([`Rejection::into_grpc_response`]).
//! The refusal response carries the [`AuthError`] or the
//! [`AuthorizationFailure`](crate::authorization::AuthorizationFailure) in its extensions;
//! [`RequirePolicyLayer::with_rejection`] swaps the response builder. The inner service's
//! error type is unchanged.
//!
//! To apply the registry's default and fallback policies router-wide, with anonymous routes,
//! see [`AuthorizeLayer`](super::AuthorizeLayer).
//!
//! For "certificate-authenticated clients only", use [`RequireClientAuthentication`], which
//! reads `azpacr` in v2 tokens and `appidacr` in v1 tokens; `RequireClaim("azpacr", "2")`
//! refuses every v1 token.
//!
//! ```
//! use axum::body::Body;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_azure_auth::authorization::AuthorizationFailure;
//! use tower_azure_auth::claims::Claims;
//! use tower_azure_auth::layers::RequireClaim;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = RequireClaim("azpacr", "2").layer(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Body::from("hello")))
//! }));
//!
//! let request = |azpacr: &str| {
//!     let claims = Claims::from_json(serde_json::json!({ "azpacr": azpacr })).unwrap();
//!     let mut request = Request::new(Body::empty());
//!     request.extensions_mut().insert(claims);
//!     request
//! };
//! // a certificate-authenticated client
//! let response = app.clone().oneshot(request("2")).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! // a client that used a secret
//! let response = app.clone().oneshot(request("1")).await.unwrap();
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! // why, for an outer metrics or logging layer
//! assert!(response.extensions().get::<AuthorizationFailure>().is_some());
//! // no claims at all: not authenticated
//! let response = app.oneshot(Request::new(Body::empty())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Extensions, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::POLLED_AFTER_COMPLETION;
use crate::authorization::{AuthorizationContext, Policies, Policy, RequestFacts, LOG_TARGET};
use crate::claims::{Claims, ClientAuthentication};
use crate::error::{AuthError, ConfigError};
use crate::rejection::{into_grpc_response_from_bytes, is_grpc_request, Rejection};

/// Builds the response sent when the authorization layers refuse a request, from the shared
/// [`Rejection`] (`401`/`503` with its [`Rejection::auth_error`], `403` with its
/// [`Rejection::authorization_failure`]).
///
/// Implemented by [`DefaultRefusal`] and by every closure `Fn(Rejection) -> Response<B> + Clone`.
/// Whatever it returns, the layer inserts the cause into the response's extensions.
pub trait OnRefusal<B>: Clone {
    /// The response for this refusal.
    fn on_refusal(&self, rejection: Rejection) -> Response<B>;

    /// The response for this refusal to a gRPC call (`content-type: application/grpc*`, see
    /// [`is_grpc_request`]). By default the same as
    /// [`on_refusal`](Self::on_refusal): a builder swapped in with `with_rejection` answers
    /// every request.
    fn on_grpc_refusal(&self, rejection: Rejection) -> Response<B> {
        self.on_refusal(rejection)
    }
}

/// The shared responses: [`Rejection::into_response`], and for gRPC calls
/// [`Rejection::into_grpc_response`] (`UNAUTHENTICATED`, `UNAVAILABLE`, `PERMISSION_DENIED`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRefusal;

impl<B: From<Bytes>> OnRefusal<B> for DefaultRefusal {
    fn on_refusal(&self, rejection: Rejection) -> Response<B> {
        rejection.into_response()
    }

    fn on_grpc_refusal(&self, rejection: Rejection) -> Response<B> {
        into_grpc_response_from_bytes(rejection)
    }
}

impl<B, F> OnRefusal<B> for F
where
    F: Fn(Rejection) -> Response<B> + Clone,
{
    fn on_refusal(&self, rejection: Rejection) -> Response<B> {
        self(rejection)
    }
}

/// The response for `rejection`, from `refusal` (its gRPC form for a gRPC call), with the cause
/// in its extensions.
pub(crate) fn respond<B>(
    refusal: &impl OnRefusal<B>,
    rejection: Rejection,
    grpc: bool,
) -> Response<B> {
    let mut cause = Extensions::new();
    rejection.insert_cause(&mut cause);
    let mut response = if grpc {
        refusal.on_grpc_refusal(rejection)
    } else {
        refusal.on_refusal(rejection)
    };
    response.extensions_mut().extend(cause);
    response
}

/// Requires an application role: `.layer(RequireRole("service-api"))`, the shorthand of
/// [`RequirePolicyLayer::role`]; it builds the same [`RequirePolicy`] service.
///
/// The role may be any `AsRef<str>` (`&'static str`, `String`). The check is synchronous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireRole<R>(pub R);

/// Requires a claim with a value: `.layer(RequireClaim("tid", tenant_id))`, the shorthand of
/// [`RequirePolicyLayer::claim`]; it builds the same [`RequirePolicy`] service.
///
/// A string claim must equal the value; an array claim must contain it. For several accepted
/// values or "claim present", build a [`Policy`] and use [`RequirePolicyLayer::new`].
///
/// `azp`/`azpacr` exist only in v2 tokens (v1 tokens carry `appid`/`appidacr`); for those, use
/// [`RequireClientAuthentication`] or [`PolicyBuilder::require_client_id`](crate::authorization::PolicyBuilder::require_client_id),
/// which read either. A failure on a missing `azp`/`azpacr` says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireClaim<N, V>(pub N, pub V);

/// Requires the calling client to have authenticated this way, in v2 tokens (`azpacr`) and v1
/// tokens (`appidacr`) alike: `.layer(RequireClientAuthentication(ClientAuthentication::Certificate))`,
/// the shorthand of [`RequirePolicyLayer::client_authentication`]
/// ([`PolicyBuilder::require_client_authentication`](crate::authorization::PolicyBuilder::require_client_authentication)
/// as a layer).
///
/// ```
/// use axum::body::Body;
/// use http::{Request, Response, StatusCode};
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_azure_auth::claims::{Claims, ClientAuthentication};
/// use tower_azure_auth::layers::RequireClientAuthentication;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let api = RequireClientAuthentication(ClientAuthentication::Certificate).layer(service_fn(
///     |_req: Request<Body>| async { Ok::<_, std::convert::Infallible>(Response::new(Body::empty())) },
/// ));
/// let request = |claims: serde_json::Value| {
///     let mut request = Request::new(Body::empty());
///     request.extensions_mut().insert(Claims::from_json(claims).unwrap());
///     request
/// };
/// let v2 = serde_json::json!({ "ver": "2.0", "azpacr": "2" });
/// let v1 = serde_json::json!({ "ver": "1.0", "appidacr": "2" });
/// let secret = serde_json::json!({ "ver": "2.0", "azpacr": "1" });
/// assert_eq!(api.clone().oneshot(request(v2)).await.unwrap().status(), StatusCode::OK);
/// assert_eq!(api.clone().oneshot(request(v1)).await.unwrap().status(), StatusCode::OK);
/// assert_eq!(api.oneshot(request(secret)).await.unwrap().status(), StatusCode::FORBIDDEN);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireClientAuthentication(pub ClientAuthentication);

impl<S, R: AsRef<str>> Layer<S> for RequireRole<R> {
    type Service = RequirePolicy<S>;

    fn layer(&self, inner: S) -> RequirePolicy<S> {
        RequirePolicyLayer::role(self.0.as_ref().to_owned()).layer(inner)
    }
}

impl<S, N: AsRef<str>, V: AsRef<str>> Layer<S> for RequireClaim<N, V> {
    type Service = RequirePolicy<S>;

    fn layer(&self, inner: S) -> RequirePolicy<S> {
        RequirePolicyLayer::claim(self.0.as_ref().to_owned(), self.1.as_ref().to_owned())
            .layer(inner)
    }
}

impl<S> Layer<S> for RequireClientAuthentication {
    type Service = RequirePolicy<S>;

    fn layer(&self, inner: S) -> RequirePolicy<S> {
        RequirePolicyLayer::client_authentication(self.0).layer(inner)
    }
}

/// The `401` (or `503`) for a request without claims: with the authentication failure that a
/// deferring [`ValidateAccessTokenLayer`](super::ValidateAccessTokenLayer) recorded, else for a
/// missing token.
pub(crate) fn not_authenticated(extensions: &Extensions) -> Rejection {
    if let Some(error) = extensions.get::<AuthError>() {
        tracing::debug!(
            target: LOG_TARGET,
            kind = %error.kind(),
            reason = error.reason(),
            "not authenticated: the token was refused"
        );
        Rejection::unauthenticated(error)
    } else {
        tracing::debug!(
            target: LOG_TARGET,
            "no verified claims in the request extensions: not authenticated (is ValidateAccessTokenLayer in front of this layer?)"
        );
        Rejection::unauthenticated(&AuthError::missing_token())
    }
}

/// Requires a [`Policy`]: a registered one by name, the default one, or one built inline;
/// its service is [`RequirePolicy`].
///
/// ```
/// use tower_azure_auth::authorization::{Policies, Policy};
/// use tower_azure_auth::error::ConfigError;
/// use tower_azure_auth::layers::RequirePolicyLayer;
///
/// let policies = Policies::builder()
///     .add_policy("ValidateAccessTokenPolicy", Policy::builder().require_role("service-api").build())
///     .build();
/// let layer = RequirePolicyLayer::named(&policies, "ValidateAccessTokenPolicy").unwrap();
/// # let _ = layer;
/// // a misspelt name fails when the application is built, not per request
/// assert!(matches!(
///     RequirePolicyLayer::named(&policies, "ValidateAccesTokenPolicy"),
///     Err(ConfigError::UnknownPolicy { .. })
/// ));
/// ```
///
/// Per route it applies its policy; router-wide it applies that one policy to every route.
/// To give each route its own policy, the default policy or none (anonymous), with the
/// registry's fallback policy for the others, use [`AuthorizeLayer`](super::AuthorizeLayer).
///
/// When every requirement decides itself (or only synchronous handlers serve it), the
/// decision is made in `call` with no boxing; when a handler must be awaited, the request
/// waits in a boxed future, with the inner service cloned (the ready one is moved into the
/// future). This needs the inner service to be `Clone + Send + 'static`, as axum's are.
#[derive(Debug, Clone)]
pub struct RequirePolicyLayer<R = DefaultRefusal> {
    policies: Policies,
    policy: Policy,
    refusal: R,
}

impl RequirePolicyLayer {
    /// The policy registered under `name`, with the registry's handlers.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownPolicy`] when no policy has that name.
    pub fn named(policies: &Policies, name: &str) -> Result<Self, ConfigError> {
        Ok(Self::with_handlers(policies, policies.policy(name)?))
    }

    /// The registry's default policy (as `[Authorize]` without a policy name).
    #[must_use]
    pub fn default_policy(policies: &Policies) -> Self {
        Self::with_handlers(policies, policies.default_policy())
    }

    /// An inline policy, with no handler: requirements that do not decide themselves are not
    /// satisfied. Use [`with_handlers`](Self::with_handlers) for those.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Self::with_handlers(&Policies::default(), policy)
    }

    /// An inline policy, decided with the handlers (and PII setting) of `policies`.
    #[must_use]
    pub fn with_handlers(policies: &Policies, policy: Policy) -> Self {
        Self {
            policies: policies.clone(),
            policy,
            refusal: DefaultRefusal,
        }
    }

    /// Requires an application role; [`RequireRole`] is its shorthand.
    pub fn role(role: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Policy::builder().require_role(role).build())
    }

    /// Requires a claim with a value (a string claim equal to it, an array claim containing
    /// it); [`RequireClaim`] is its shorthand.
    pub fn claim(claim: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Policy::builder().require_claim(claim, [value]).build())
    }

    /// Requires the calling client to have authenticated this way (`azpacr` in v2 tokens,
    /// `appidacr` in v1); [`RequireClientAuthentication`] is its shorthand.
    #[must_use]
    pub fn client_authentication(how: ClientAuthentication) -> Self {
        Self::new(Policy::builder().require_client_authentication(how).build())
    }
}

impl<R> RequirePolicyLayer<R> {
    /// Swaps the refusal response builder (a closure `Fn(Rejection) -> Response<B>` or an
    /// [`OnRefusal`] implementation); the cause stays in the response's extensions.
    ///
    /// ```
    /// use axum::body::Body;
    /// use http::{Request, Response, StatusCode};
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_azure_auth::layers::RequirePolicyLayer;
    /// use tower_azure_auth::rejection::Rejection;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = RequirePolicyLayer::role("service-api").with_rejection(|rejection: Rejection| {
    ///     let mut response: Response<Body> = rejection.into_response();
    ///     response.headers_mut().insert("x-refused-by", "policy".parse().unwrap());
    ///     response
    /// });
    /// let api = layer.layer(service_fn(|_req: Request<Body>| async {
    ///     Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
    /// }));
    /// let response = api.oneshot(Request::new(Body::empty())).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    /// assert_eq!(response.headers()["x-refused-by"], "policy");
    /// # }
    /// ```
    pub fn with_rejection<R2>(self, refusal: R2) -> RequirePolicyLayer<R2> {
        RequirePolicyLayer {
            policies: self.policies,
            policy: self.policy,
            refusal,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl<S, R: Clone> Layer<S> for RequirePolicyLayer<R> {
    type Service = RequirePolicy<S, R>;

    fn layer(&self, inner: S) -> RequirePolicy<S, R> {
        RequirePolicy {
            inner,
            policies: self.policies.clone(),
            policy: self.policy.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

/// The service of [`RequirePolicyLayer`] and of its shorthands [`RequireRole`],
/// [`RequireClaim`] and [`RequireClientAuthentication`].
#[derive(Debug, Clone)]
pub struct RequirePolicy<S, R = DefaultRefusal> {
    inner: S,
    policies: Policies,
    policy: Policy,
    refusal: R,
}

inner_service_accessors!(RequirePolicy<S, R>);

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequirePolicy<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: OnRefusal<ResBody> + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        authorize(
            &mut self.inner,
            &self.policies,
            &self.policy,
            &self.refusal,
            request,
        )
    }
}

/// Decides `policy` for `request` and calls `inner` when the caller satisfies it: in `call`
/// when the policy decides synchronously, in a boxed future (with `inner`, which is ready,
/// moved into it and a clone left behind) when a handler must be awaited.
pub(crate) fn authorize<S, R, ReqBody, ResBody>(
    inner: &mut S,
    policies: &Policies,
    policy: &Policy,
    refusal: &R,
    request: Request<ReqBody>,
) -> ResponseFuture<S::Future, ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: OnRefusal<ResBody> + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    let grpc = is_grpc_request(request.headers());
    let decided = match request.extensions().get::<Claims>() {
        None => {
            let rejection = not_authenticated(request.extensions());
            return ResponseFuture::rejected(respond(refusal, rejection, grpc));
        }
        Some(claims) => {
            let ctx =
                AuthorizationContext::for_request(claims, RequestFacts::from_request(&request));
            policies.authorize_sync(policy, &ctx)
        }
    };
    match decided {
        Some(Ok(())) => ResponseFuture::inner(inner.call(request)),
        Some(Err(failure)) => {
            ResponseFuture::rejected(respond(refusal, Rejection::forbidden(&failure), grpc))
        }
        None => {
            let (parts, body) = request.into_parts();
            let Some(claims) = parts.extensions.get::<Claims>().cloned() else {
                let rejection = not_authenticated(&parts.extensions);
                return ResponseFuture::rejected(respond(refusal, rejection, grpc));
            };
            // `inner` is ready; keep it for this request and leave a fresh clone behind.
            let clone = inner.clone();
            let mut inner = std::mem::replace(inner, clone);
            let policies = policies.clone();
            let policy = policy.clone();
            let refusal = refusal.clone();
            ResponseFuture::authorizing(Box::pin(async move {
                let result = {
                    let ctx = AuthorizationContext::for_request(
                        &claims,
                        RequestFacts::from_parts(&parts),
                    );
                    policies.authorize(&policy, &ctx).await
                };
                match result {
                    Ok(()) => inner.call(Request::from_parts(parts, body)).await,
                    Err(failure) => Ok(respond(&refusal, Rejection::forbidden(&failure), grpc)),
                }
            }))
        }
    }
}

type Authorizing<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    /// The response future of [`RequirePolicy`] and [`Authorize`](super::Authorize): the inner
    /// service's future (no boxing) when the policy decided in `call`, a ready refusal, or a
    /// boxed future while an asynchronous handler runs.
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
        Authorizing { future: Authorizing<B, E> },
        Done,
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(super) fn inner(future: F) -> Self {
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

    fn authorizing(future: Authorizing<B, E>) -> Self {
        Self {
            state: State::Authorizing { future },
        }
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
            StateProj::Inner { future } => std::task::ready!(future.poll(cx)),
            StateProj::Rejected { response } => Ok(response.take().expect(POLLED_AFTER_COMPLETION)),
            StateProj::Authorizing { future } => std::task::ready!(future.as_mut().poll(cx)),
            StateProj::Done => panic!("{}", POLLED_AFTER_COMPLETION),
        };
        this.state.set(State::Done);
        Poll::Ready(output)
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "inner",
            State::Rejected { .. } => "rejected",
            State::Authorizing { .. } => "authorizing",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::convert::Infallible;

    use http::header::WWW_AUTHENTICATE;
    use http::StatusCode;
    use serde_json::json;
    use tower::ServiceExt;

    use super::*;
    use crate::authorization::{AuthorizationHandler, HandlerOutcome, Requirement};

    /// A service that must be polled ready before each call, as tower requires; a clone
    /// starts not ready. Calling it unready is an error, so a layer that calls the clone
    /// instead of the ready service fails the test.
    #[derive(Debug)]
    struct MustBeReady {
        ready: bool,
    }

    impl Clone for MustBeReady {
        fn clone(&self) -> Self {
            Self { ready: false }
        }
    }

    impl Service<Request<Bytes>> for MustBeReady {
        type Response = Response<Bytes>;
        type Error = &'static str;
        type Future = std::future::Ready<Result<Response<Bytes>, &'static str>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<Bytes>) -> Self::Future {
            let ready = std::mem::replace(&mut self.ready, false);
            std::future::ready(if ready {
                Ok(Response::new(Bytes::from_static(b"ok")))
            } else {
                Err("called without poll_ready")
            })
        }
    }

    #[derive(Debug)]
    struct Slow;

    impl Requirement for Slow {
        fn description(&self) -> Cow<'_, str> {
            "the slow check must pass".into()
        }
    }

    #[derive(Debug)]
    struct SlowHandler;

    impl AuthorizationHandler for SlowHandler {
        type Requirement = Slow;

        async fn handle(&self, ctx: &AuthorizationContext<'_>, _: &Slow) -> HandlerOutcome {
            tokio::task::yield_now().await;
            HandlerOutcome::from(ctx.claims().has_role("service-api"))
        }
    }

    fn request(claims: Option<serde_json::Value>) -> Request<Bytes> {
        let mut request = Request::new(Bytes::new());
        if let Some(claims) = claims {
            request
                .extensions_mut()
                .insert(Claims::from_json(claims).unwrap());
        }
        request
    }

    #[tokio::test]
    async fn outcomes_through_each_layer() {
        let policies = Policies::builder()
            .add_handler(SlowHandler)
            .add_policy("Slow", Policy::builder().requirement(Slow).build())
            .add_policy(
                "Fast",
                Policy::builder().require_role("service-api").build(),
            )
            .build();
        type ResponseFutureOf =
            Pin<Box<dyn Future<Output = Result<Response<Bytes>, &'static str>> + Send>>;
        type Run = Box<dyn FnOnce(MustBeReady, Request<Bytes>) -> ResponseFutureOf>;

        struct Check {
            name: &'static str,
            claims: Option<serde_json::Value>,
            status: StatusCode,
        }
        let checks = [
            Check {
                name: "authorized",
                claims: Some(json!({"roles": ["service-api"], "azpacr": "2"})),
                status: StatusCode::OK,
            },
            Check {
                name: "not authorized",
                claims: Some(json!({"roles": ["reader"], "azpacr": "1"})),
                status: StatusCode::FORBIDDEN,
            },
            Check {
                name: "not authenticated",
                claims: None,
                status: StatusCode::UNAUTHORIZED,
            },
        ];
        for check in checks {
            let services: [(&str, Run); 4] = [
                (
                    "RequireRole",
                    Box::new(|s, r| Box::pin(RequireRole("service-api").layer(s).oneshot(r))),
                ),
                (
                    "RequireClaim",
                    Box::new(|s, r| {
                        Box::pin(
                            RequireClaim("azpacr", String::from("2"))
                                .layer(s)
                                .oneshot(r),
                        )
                    }),
                ),
                ("RequirePolicy sync", {
                    let layer = RequirePolicyLayer::named(&policies, "Fast").unwrap();
                    Box::new(move |s, r| Box::pin(layer.layer(s).oneshot(r)))
                }),
                ("RequirePolicy async", {
                    let layer = RequirePolicyLayer::named(&policies, "Slow").unwrap();
                    Box::new(move |s, r| Box::pin(layer.layer(s).oneshot(r)))
                }),
            ];
            for (layer, run) in services {
                let response = run(MustBeReady { ready: false }, request(check.claims.clone()))
                    .await
                    .unwrap_or_else(|e| panic!("{} / {layer}: {e}", check.name));
                let status = response.status();
                // RequireClaim checks azpacr, the others the role; both differ together.
                assert_eq!(status, check.status, "{} / {layer}", check.name);
                let challenge = response.headers().get(WWW_AUTHENTICATE);
                match status {
                    StatusCode::UNAUTHORIZED => {
                        assert_eq!(challenge.unwrap(), "Bearer", "{} / {layer}", check.name)
                    }
                    _ => assert!(challenge.is_none(), "{} / {layer}", check.name),
                }
            }
        }
    }

    #[test]
    fn self_deciding_policies_do_not_box() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let policies = Policies::builder()
            .add_handler(SlowHandler)
            .add_policy(
                "Fast",
                Policy::builder().require_role("service-api").build(),
            )
            .add_policy("Slow", Policy::builder().requirement(Slow).build())
            .build();
        struct Case {
            name: &'static str,
            policy: &'static str,
            claims: serde_json::Value,
            state: &'static str,
        }
        let cases = [
            Case {
                name: "allowed, sync",
                policy: "Fast",
                claims: json!({"roles": ["service-api"]}),
                state: "inner",
            },
            Case {
                name: "denied, sync",
                policy: "Fast",
                claims: json!({"roles": []}),
                state: "rejected",
            },
            Case {
                name: "async handler",
                policy: "Slow",
                claims: json!({"roles": ["service-api"]}),
                state: "authorizing",
            },
        ];
        for case in cases {
            let mut service = RequirePolicyLayer::named(&policies, case.policy)
                .unwrap()
                .layer(MustBeReady { ready: false });
            assert!(Service::<Request<Bytes>>::poll_ready(&mut service, &mut cx).is_ready());
            let future = service.call(request(Some(case.claims)));
            let debug = format!("{future:?}");
            assert!(debug.contains(case.state), "{}: {debug}", case.name);
        }
    }

    #[tokio::test]
    async fn inner_service_accessors_and_errors_pass_through() {
        let failing = tower::service_fn(|_: Request<Bytes>| async {
            Err::<Response<Bytes>, _>(std::io::Error::other("inner failed"))
        });
        let mut service = RequireRole(String::from("service-api")).layer(failing);
        let _: &mut _ = service.get_mut();
        let _: &_ = service.get_ref();
        let error = service
            .oneshot(request(Some(json!({"roles": ["service-api"]}))))
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "inner failed");

        let ok = tower::service_fn(|_: Request<Bytes>| async {
            Ok::<_, Infallible>(Response::new(Bytes::new()))
        });
        let service = RequirePolicyLayer::new(Policy::authenticated()).layer(ok);
        let inner = service.into_inner();
        let response = inner.oneshot(Request::new(Bytes::new())).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// The refusal's cause is in the response's extensions, also when `with_rejection` built
    /// the response, so an outer metrics layer can label it.
    #[tokio::test]
    async fn refusals_carry_their_cause_in_extensions() {
        let custom = |rejection: Rejection| {
            let mut response: Response<Bytes> = Response::new(Bytes::from_static(b"custom"));
            *response.status_mut() = rejection.status();
            response
        };
        struct Case {
            name: &'static str,
            claims: Option<serde_json::Value>,
            status: StatusCode,
            auth_error: bool,
        }
        let cases = [
            Case {
                name: "not authenticated",
                claims: None,
                status: StatusCode::UNAUTHORIZED,
                auth_error: true,
            },
            Case {
                name: "not authorized",
                claims: Some(json!({"roles": ["reader"]})),
                status: StatusCode::FORBIDDEN,
                auth_error: false,
            },
        ];
        for case in cases {
            let default =
                RequirePolicyLayer::role("service-api").layer(MustBeReady { ready: false });
            let swapped = RequirePolicyLayer::role("service-api")
                .with_rejection(custom)
                .layer(MustBeReady { ready: false });
            let responses = [
                (
                    "default",
                    default.oneshot(request(case.claims.clone())).await.unwrap(),
                ),
                (
                    "with_rejection",
                    swapped.oneshot(request(case.claims.clone())).await.unwrap(),
                ),
            ];
            for (which, response) in responses {
                let name = format!("{} / {which}", case.name);
                assert_eq!(response.status(), case.status, "{name}");
                let extensions = response.extensions();
                assert_eq!(
                    extensions.get::<AuthError>().is_some(),
                    case.auth_error,
                    "{name}"
                );
                assert_eq!(
                    extensions
                        .get::<crate::authorization::AuthorizationFailure>()
                        .is_some(),
                    !case.auth_error,
                    "{name}"
                );
            }
        }
    }

    /// The one rule for every `ResponseFuture`: polled after completion, it panics.
    #[test]
    fn response_futures_panic_when_polled_after_completion() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let ok = tower::service_fn(|_: Request<Bytes>| async {
            Ok::<_, Infallible>(Response::new(Bytes::new()))
        });
        for (name, claims) in [
            ("inner", Some(json!({"roles": ["service-api"]}))),
            ("rejected", None),
        ] {
            let mut service = RequireRole("service-api").layer(ok);
            assert!(Service::<Request<Bytes>>::poll_ready(&mut service, &mut cx).is_ready());
            let mut future = Box::pin(service.call(request(claims)));
            assert!(future.as_mut().poll(&mut cx).is_ready(), "{name}");
            let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = future.as_mut().poll(&mut cx);
            }));
            let message = again.expect_err(name);
            let message = message
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| message.downcast_ref::<&str>().copied());
            assert_eq!(message, Some(POLLED_AFTER_COMPLETION), "{name}");
        }
    }
}
