//! Authorization layers: [`RequireRole`], [`RequireClaim`], [`RequireClientAuthentication`]
//! and [`RequirePolicy`].
//!
//! They read the caller's [`Claims`] from the request extensions, where
//! [`ValidateAccessTokenLayer`](super::ValidateAccessTokenLayer) puts them, so they go *inside*
//! it (in axum: `.layer(RequireRole(..))` before `.layer(ValidateAccessTokenLayer ..)`, or per
//! route with the validation router-wide). Without claims they answer `401`: with the
//! [`AuthError`] that [`defer_refusals`](super::ValidateAccessTokenLayer::defer_refusals) left
//! in the extensions, else with `WWW-Authenticate: Bearer`; when the caller is not authorized,
//! `403` with a JSON body that names the failed requirements (see [`Rejection::forbidden`]).
//! The inner service's error type is unchanged.
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
//! // no claims at all: not authenticated
//! let response = app.oneshot(Request::new(Body::empty())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Extensions, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::authorization::{
    authorize_requirement, AuthorizationContext, ClaimRequirement, ClientAuthenticationRequirement,
    Policies, Policy, RequestFacts, Requirement, RolesRequirement, LOG_TARGET,
};
use crate::claims::{Claims, ClientAuthentication};
use crate::error::{AuthError, ConfigError};
use crate::rejection::Rejection;

/// Requires an application role: `.layer(RequireRole("service-api"))`.
///
/// The role may be any `AsRef<str>` (`&'static str`, `String`). The check is synchronous and
/// does not allocate when the caller has the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireRole<R>(pub R);

/// Requires a claim with a value: `.layer(RequireClaim("tid", tenant_id))`.
///
/// A string claim must equal the value; an array claim must contain it. For several accepted
/// values or "claim present", build a [`Policy`] and use [`RequirePolicy`].
///
/// `azp`/`azpacr` exist only in v2 tokens (v1 tokens carry `appid`/`appidacr`); for those, use
/// [`RequireClientAuthentication`] or [`PolicyBuilder::require_client_id`](crate::authorization::PolicyBuilder::require_client_id),
/// which read either. A failure on a missing `azp`/`azpacr` says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireClaim<N, V>(pub N, pub V);

/// Requires the calling client to have authenticated this way, in v2 tokens (`azpacr`) and v1
/// tokens (`appidacr`) alike: `.layer(RequireClientAuthentication(ClientAuthentication::Certificate))`
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
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Require<S> {
        Require::new(inner, RolesRequirement::new([self.0.as_ref().to_owned()]))
    }
}

impl<S, N: AsRef<str>, V: AsRef<str>> Layer<S> for RequireClaim<N, V> {
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Require<S> {
        Require::new(
            inner,
            ClaimRequirement::equals(self.0.as_ref().to_owned(), [self.1.as_ref().to_owned()]),
        )
    }
}

impl<S> Layer<S> for RequireClientAuthentication {
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Require<S> {
        Require::new(inner, ClientAuthenticationRequirement::new(self.0))
    }
}

/// The service of [`RequireRole`], [`RequireClaim`] and [`RequireClientAuthentication`]: one
/// requirement that decides itself, synchronously.
#[derive(Debug, Clone)]
pub struct Require<S> {
    inner: S,
    requirement: Arc<dyn Requirement>,
}

impl<S> Require<S> {
    /// Wraps `inner` with one requirement. A requirement that does not decide itself
    /// ([`Decision::Deferred`](crate::authorization::Decision::Deferred)) is never satisfied
    /// here, as no handler is registered: use [`RequirePolicy`] for those.
    pub fn new(inner: S, requirement: impl Requirement) -> Self {
        Self {
            inner,
            requirement: Arc::new(requirement),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The `401` (or `503`) for a request without claims: with the authentication failure that a
/// deferring [`ValidateAccessTokenLayer`](super::ValidateAccessTokenLayer) recorded, else for a
/// missing token.
pub(crate) fn not_authenticated(extensions: &Extensions) -> Rejection {
    match extensions.get::<AuthError>() {
        Some(error) => {
            tracing::debug!(
                target: LOG_TARGET,
                kind = %error.kind(),
                reason = error.reason(),
                "not authenticated: the token was refused"
            );
            Rejection::unauthenticated(error)
        }
        None => {
            tracing::debug!(
                target: LOG_TARGET,
                "no verified claims in the request extensions: not authenticated (is ValidateAccessTokenLayer in front of this layer?)"
            );
            Rejection::unauthenticated(&AuthError::missing_token())
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Require<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let decision = match request.extensions().get::<Claims>() {
            None => Err(not_authenticated(request.extensions())),
            Some(claims) => {
                let ctx =
                    AuthorizationContext::for_request(claims, RequestFacts::from_request(&request));
                authorize_requirement(&*self.requirement, &ctx)
                    .map_err(|failure| Rejection::forbidden(&failure))
            }
        };
        match decision {
            Ok(()) => ResponseFuture::inner(self.inner.call(request)),
            Err(rejection) => ResponseFuture::rejected(rejection),
        }
    }
}

/// Requires a [`Policy`]: a registered one by name, the default one, or one built inline.
///
/// ```
/// use tower_azure_auth::authorization::{Policies, Policy};
/// use tower_azure_auth::error::ConfigError;
/// use tower_azure_auth::layers::RequirePolicy;
///
/// let policies = Policies::builder()
///     .add_policy("ValidateAccessTokenPolicy", Policy::builder().require_role("service-api").build())
///     .build();
/// let layer = RequirePolicy::named(&policies, "ValidateAccessTokenPolicy").unwrap();
/// # let _ = layer;
/// // a misspelt name fails when the application is built, not per request
/// assert!(matches!(
///     RequirePolicy::named(&policies, "ValidateAccesTokenPolicy"),
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
pub struct RequirePolicy {
    policies: Policies,
    policy: Policy,
}

impl RequirePolicy {
    /// The policy registered under `name`, with the registry's handlers.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownPolicy`] when no policy has that name.
    pub fn named(policies: &Policies, name: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            policy: policies.policy(name)?,
            policies: policies.clone(),
        })
    }

    /// The registry's default policy (as `[Authorize]` without a policy name).
    pub fn default_policy(policies: &Policies) -> Self {
        Self {
            policy: policies.default_policy(),
            policies: policies.clone(),
        }
    }

    /// An inline policy, with no handler: requirements that do not decide themselves are not
    /// satisfied. Use [`with_handlers`](Self::with_handlers) for those.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            policies: Policies::default(),
        }
    }

    /// An inline policy, decided with the handlers (and PII setting) of `policies`.
    pub fn with_handlers(policies: &Policies, policy: Policy) -> Self {
        Self {
            policy,
            policies: policies.clone(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl<S> Layer<S> for RequirePolicy {
    type Service = RequirePolicyService<S>;

    fn layer(&self, inner: S) -> RequirePolicyService<S> {
        RequirePolicyService {
            inner,
            policies: self.policies.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// The service of [`RequirePolicy`].
#[derive(Debug, Clone)]
pub struct RequirePolicyService<S> {
    inner: S,
    policies: Policies,
    policy: Policy,
}

impl<S> RequirePolicyService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequirePolicyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        authorize(&mut self.inner, &self.policies, &self.policy, request)
    }
}

/// Decides `policy` for `request` and calls `inner` when the caller satisfies it: in `call`
/// when the policy decides synchronously, in a boxed future (with `inner`, which is ready,
/// moved into it and a clone left behind) when a handler must be awaited.
pub(crate) fn authorize<S, ReqBody, ResBody>(
    inner: &mut S,
    policies: &Policies,
    policy: &Policy,
    request: Request<ReqBody>,
) -> ResponseFuture<S::Future, ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + 'static,
{
    let decided = match request.extensions().get::<Claims>() {
        None => return ResponseFuture::rejected(not_authenticated(request.extensions())),
        Some(claims) => {
            let ctx =
                AuthorizationContext::for_request(claims, RequestFacts::from_request(&request));
            policies.authorize_sync(policy, &ctx)
        }
    };
    match decided {
        Some(Ok(())) => ResponseFuture::inner(inner.call(request)),
        Some(Err(failure)) => ResponseFuture::rejected(Rejection::forbidden(&failure)),
        None => {
            let (parts, body) = request.into_parts();
            let Some(claims) = parts.extensions.get::<Claims>().cloned() else {
                return ResponseFuture::rejected(not_authenticated(&parts.extensions));
            };
            // `inner` is ready; keep it for this request and leave a fresh clone behind.
            let clone = inner.clone();
            let mut inner = std::mem::replace(inner, clone);
            let policies = policies.clone();
            let policy = policy.clone();
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
                    Err(failure) => Ok(Rejection::forbidden(&failure).into_response()),
                }
            }))
        }
    }
}

type Authorizing<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    /// The response future of [`Require`], [`RequirePolicyService`] and
    /// [`Authorize`](super::Authorize).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        Inner { #[pin] future: F },
        Rejected { rejection: Rejection, _body: PhantomData<fn() -> B> },
        Authorizing { future: Authorizing<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(super) fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    fn rejected(rejection: Rejection) -> Self {
        Self {
            state: State::Rejected {
                rejection,
                _body: PhantomData,
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
    B: From<Bytes>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            // Cloned rather than taken, so that a poll after completion cannot panic.
            StateProj::Rejected { rejection, .. } => {
                Poll::Ready(Ok(rejection.clone().into_response()))
            }
            StateProj::Authorizing { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "inner",
            State::Rejected { .. } => "rejected",
            State::Authorizing { .. } => "authorizing",
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
    use crate::authorization::{AuthorizationHandler, HandlerOutcome};

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
                    let layer = RequirePolicy::named(&policies, "Fast").unwrap();
                    Box::new(move |s, r| Box::pin(layer.layer(s).oneshot(r)))
                }),
                ("RequirePolicy async", {
                    let layer = RequirePolicy::named(&policies, "Slow").unwrap();
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
            let mut service = RequirePolicy::named(&policies, case.policy)
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
        let service = RequirePolicy::new(Policy::authenticated()).layer(ok);
        let inner = service.into_inner();
        let response = inner.oneshot(Request::new(Bytes::new())).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
