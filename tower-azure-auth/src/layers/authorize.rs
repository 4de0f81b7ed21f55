//! [`AuthorizeLayer`]: router-wide authorization, as ASP.NET Core's `UseAuthorization()` with
//! endpoint metadata. Each route gets its own policy (`[Authorize(Policy = …)]`), the default
//! policy (`[Authorize]`), none (`[AllowAnonymous]`), or, when it declares nothing, the
//! registry's fallback policy ([`PoliciesBuilder::fallback_policy`]); with no fallback, an
//! undeclared route is left as it is (ASP.NET Core's default).
//!
//! # Why a route table
//!
//! A router-wide layer (axum's `Router::layer`) runs *outside* every per-route `route_layer`,
//! before the route's own layers, so it cannot learn from them whether a route has a policy of
//! its own. The routes therefore declare their authorization in this layer, by the pattern the
//! router matched: axum puts [`MatchedPath`] into the request extensions before the
//! `Router::layer` middleware runs (with this crate's `axum` feature, the layer reads it;
//! nested routers give the full pattern, e.g. `/api/users/{id}`). Where there is no matched
//! pattern (a path no route matches, another router), the exact request path is looked up, so
//! an unmatched path gets the fallback policy. Put the layer on the outermost router: axum
//! answers a path that matches nothing with the outer router's fallback, which a layer on a
//! nested router does not wrap.
//!
//! Declare a route's policy here rather than with its own `route_layer(RequirePolicyLayer …)`: under
//! a fallback policy, a route with only a `route_layer` must satisfy both. A matched route
//! that is not listed while no fallback is set is logged once with `tracing::warn!`, so a
//! misspelt pattern shows.
//!
//! # Layer order and anonymous routes
//!
//! The layer reads the [`Claims`](crate::Claims) that
//! [`ValidateAccessTokenLayer`](super::ValidateAccessTokenLayer) inserts, so it goes inside it:
//! in axum, `.layer(AuthorizeLayer …)` before `.layer(ValidateAccessTokenLayer …)`. For
//! anonymous routes, the validation must not refuse by itself:
//! [`defer_refusals`](super::ValidateAccessTokenLayer::defer_refusals) lets a request with a
//! missing or refused token through with its [`AuthError`](crate::AuthError), and this layer
//! answers `401` with it (the response the validation would have sent, `503` while keys are
//! unavailable) on every route that needs a caller. Anonymous routes ignore authentication
//! failures, as in ASP.NET Core: a missing, expired or forged token does not stop a health
//! check.
//!
//! A caller with claims who does not satisfy the route's policy gets `403` with the failed
//! requirements ([`Rejection::forbidden`](crate::rejection::Rejection::forbidden)).
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use tower::util::MapRequestLayer;
//! use tower::ServiceExt;
//! use tower_azure_auth::authorization::{Policies, Policy};
//! use tower_azure_auth::layers::{AuthorizeLayer, ValidateAccessTokenLayer};
//! use tower_azure_auth::{Authority, Claims, TokenValidator};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policies = Policies::builder()
//!     .add_policy("ValidateAccessTokenPolicy", Policy::builder().require_role("service-api").build())
//!     // for every route that declares nothing
//!     .fallback_policy(Policy::builder().require_role("reader").build())
//!     .build();
//! let authorize = AuthorizeLayer::new(&policies)
//!     .route("/weatherforecast", "ValidateAccessTokenPolicy")? // a typo fails here
//!     .anonymous("/healthz");
//! let routes = || {
//!     Router::new()
//!         .route("/weatherforecast", get(|| async { "forecast" }))
//!         .route("/report", get(|| async { "report" }))
//!         .route("/healthz", get(|| async { "ok" }))
//! };
//! let status = |app: Router, path: &'static str, roles: Option<&'static str>| async move {
//!     let mut request = Request::get(path);
//!     if let Some(roles) = roles {
//!         request = request.header("x-test-roles", roles);
//!     }
//!     app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap().status()
//! };
//!
//! // The real validation, deferring its refusals to `authorize`: no token.
//! let validator = TokenValidator::builder(Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
//!     .client_id("b178f3a5-7588-492a-924f-72d7887b7e48")
//!     .build()?;
//! let app = routes()
//!     .layer(authorize.clone())                                        // runs second
//!     .layer(ValidateAccessTokenLayer::new(validator).defer_refusals()); // runs first
//! assert_eq!(status(app.clone(), "/healthz", None).await, StatusCode::OK);
//! assert_eq!(status(app.clone(), "/weatherforecast", None).await, StatusCode::UNAUTHORIZED);
//! assert_eq!(status(app.clone(), "/report", None).await, StatusCode::UNAUTHORIZED);
//! assert_eq!(status(app, "/no-such-route", None).await, StatusCode::UNAUTHORIZED);
//!
//! // A stand-in for the validation: claims with the roles of the `x-test-roles` header.
//! let app = routes().layer(authorize).layer(MapRequestLayer::new(|mut request: Request<Body>| {
//!     let roles = request.headers().get("x-test-roles").and_then(|v| v.to_str().ok()).map(|v| v.to_owned());
//!     if let Some(roles) = roles {
//!         let claims = serde_json::json!({ "roles": roles.split(',').collect::<Vec<_>>() });
//!         request.extensions_mut().insert(Claims::from_json(claims).unwrap());
//!     }
//!     request
//! }));
//! // `/report` declares nothing: the fallback policy
//! assert_eq!(status(app.clone(), "/report", Some("reader")).await, StatusCode::OK);
//! assert_eq!(status(app.clone(), "/report", Some("service-api")).await, StatusCode::FORBIDDEN);
//! // `/weatherforecast` has its own policy, and only that one
//! assert_eq!(status(app.clone(), "/weatherforecast", Some("service-api")).await, StatusCode::OK);
//! assert_eq!(status(app.clone(), "/weatherforecast", Some("reader")).await, StatusCode::FORBIDDEN);
//! // anonymous
//! assert_eq!(status(app, "/healthz", Some("nobody")).await, StatusCode::OK);
//! # Ok(()) }
//! ```
//!
//! Without the `axum` feature (hyper, tonic), routes are looked up by their exact path.
//!
//! [`PoliciesBuilder::fallback_policy`]: crate::authorization::PoliciesBuilder::fallback_policy
//! [`MatchedPath`]: https://docs.rs/axum/0.8/axum/extract/struct.MatchedPath.html

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

pub use super::require::ResponseFuture;
use super::require::{DefaultRefusal, OnRefusal};
use crate::authorization::{Policies, RouteAuthorization, RoutePolicies};

/// Applies each route's policy, the default policy or the fallback policy, router-wide; see
/// the [module docs](self). Cheap to clone (axum clones it per route).
///
/// Refusals are the shared [`Rejection`](crate::rejection::Rejection)s, with their cause in the
/// response's extensions; [`with_rejection`](Self::with_rejection) swaps the response builder.
#[derive(Debug, Clone)]
pub struct AuthorizeLayer<R = DefaultRefusal> {
    routes: RoutePolicies,
    refusal: R,
}

impl AuthorizeLayer {
    /// A layer over the policies, default and fallback policy and handlers of `policies`, with
    /// no route listed yet: every route gets the fallback policy (or is left as it is without
    /// one).
    #[must_use]
    pub fn new(policies: &Policies) -> Self {
        Self::from(RoutePolicies::new(policies))
    }
}

impl<R> AuthorizeLayer<R> {
    /// Swaps the refusal response builder (a closure `Fn(Rejection) -> Response<B>` or an
    /// [`OnRefusal`] implementation), as
    /// [`RequirePolicyLayer::with_rejection`](super::RequirePolicyLayer::with_rejection); the
    /// cause stays in the response's extensions.
    pub fn with_rejection<R2>(self, refusal: R2) -> AuthorizeLayer<R2> {
        AuthorizeLayer {
            routes: self.routes,
            refusal,
        }
    }

    crate::__route_table_builder_methods!();
}

impl From<RoutePolicies> for AuthorizeLayer {
    fn from(routes: RoutePolicies) -> Self {
        Self {
            routes,
            refusal: DefaultRefusal,
        }
    }
}

impl<S, R: Clone> Layer<S> for AuthorizeLayer<R> {
    type Service = Authorize<S, R>;

    fn layer(&self, inner: S) -> Authorize<S, R> {
        Authorize {
            inner,
            routes: self.routes.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

/// The service of [`AuthorizeLayer`].
#[derive(Debug, Clone)]
pub struct Authorize<S, R = DefaultRefusal> {
    inner: S,
    routes: RoutePolicies,
    refusal: R,
}

inner_service_accessors!(Authorize<S, R>);

/// The pattern of the route axum matched.
#[cfg(feature = "axum")]
fn matched_pattern<B>(request: &Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<::axum::extract::MatchedPath>()
        .map(::axum::extract::MatchedPath::as_str)
}

#[cfg(not(feature = "axum"))]
fn matched_pattern<B>(_: &Request<B>) -> Option<&str> {
    None
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for Authorize<S, R>
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
        let decision = self
            .routes
            .for_route(matched_pattern(&request), request.uri().path());
        match decision {
            RouteAuthorization::Policy(policy) => super::require::authorize(
                &mut self.inner,
                self.routes.policies(),
                policy,
                &self.refusal,
                request,
            ),
            RouteAuthorization::Anonymous | RouteAuthorization::Unprotected => {
                ResponseFuture::inner(self.inner.call(request))
            }
        }
    }
}

#[cfg(all(test, feature = "axum"))]
mod tests {
    use ::axum::body::Body;
    use ::axum::routing::get;
    use ::axum::Router;
    use http::StatusCode;
    use tower::ServiceExt;

    use super::*;
    use crate::authorization::Policy;

    /// Routes are keyed by axum's full matched pattern, also inside nested routers, whether the
    /// layer is on the outer router or on the nested one.
    #[tokio::test]
    async fn nested_routes_are_looked_up_by_their_full_pattern() {
        // Nobody has claims here: the fallback refuses every request with 401.
        let policies = Policies::builder()
            .fallback_policy(Policy::authenticated())
            .build();
        let authorize = AuthorizeLayer::new(&policies).anonymous("/api/items/{id}");
        let items = || {
            Router::new()
                .route("/items/{id}", get(|| async { "item" }))
                .route("/other", get(|| async { "other" }))
        };
        struct Case {
            name: &'static str,
            app: Router,
            /// A path no route matches is answered by the outer router's fallback, which a
            /// layer on a nested router does not wrap.
            unmatched: StatusCode,
        }
        let cases = [
            Case {
                name: "layer on the outer router",
                app: Router::new().nest("/api", items()).layer(authorize.clone()),
                unmatched: StatusCode::UNAUTHORIZED,
            },
            Case {
                name: "layer on the nested router",
                app: Router::new().nest("/api", items().layer(authorize.clone())),
                unmatched: StatusCode::NOT_FOUND,
            },
        ];
        for case in cases {
            for (path, status) in [
                ("/api/items/7", StatusCode::OK),
                ("/api/other", StatusCode::UNAUTHORIZED),
                ("/api/missing", case.unmatched),
            ] {
                let request = http::Request::get(path).body(Body::empty()).unwrap();
                let response = case.app.clone().oneshot(request).await.unwrap();
                assert_eq!(response.status(), status, "{}: {path}", case.name);
            }
        }
    }
}
