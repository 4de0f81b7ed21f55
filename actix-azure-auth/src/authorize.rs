//! [`AuthorizeLayer`]: `App`-wide authorization, the actix-web counterpart of the Tower
//! `AuthorizeLayer`, with the same route table ([`RoutePolicies`]) and the same responses.

use std::fmt;
use std::future::{ready, Ready};
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::Error;
use tower_azure_auth::authorization::{Policies, RouteAuthorization, RoutePolicies};
use tower_azure_auth::rejection::Rejection;

use crate::require::authorize;
use crate::response::{Refusal, ResponseFuture};

/// Applies each route's policy, the default policy or the registry's fallback policy to a whole
/// `App` (or scope), as ASP.NET Core's `UseAuthorization()` with `[Authorize(Policy = …)]`,
/// `[Authorize]` and `[AllowAnonymous]`: `.wrap(AuthorizeLayer::new(&policies).route(…)?)`.
///
/// Middleware on an `App` runs before the request is routed, so it cannot learn from a
/// resource's own middleware whether the resource has a policy. The routes therefore declare
/// their authorization here, by the pattern actix-web matches for the request
/// ([`HttpRequest::match_pattern`](actix_web::HttpRequest::match_pattern), resolved from the
/// application's resource map, full pattern including scopes, e.g. `/api/users/{id}`); a path
/// that matches no resource is looked up by its exact path, so it gets the fallback policy.
/// Routes not listed get the fallback policy
/// ([`PoliciesBuilder::fallback_policy`](tower_azure_auth::authorization::PoliciesBuilder::fallback_policy)),
/// or are left as they are when there is none (logged once per route with `tracing::warn!`).
///
/// Wrap [`ValidateAccessTokenLayer`](crate::ValidateAccessTokenLayer) around it (a later `wrap()`),
/// with [`defer_refusals`](crate::ValidateAccessTokenLayer::defer_refusals) so that a missing or
/// refused token does not stop an anonymous route: this middleware answers `401` with the
/// validation's error where a route needs a caller, `403` where the caller fails the policy.
/// Anonymous routes ignore authentication failures, as in ASP.NET Core.
///
/// ```
/// use actix_azure_auth::{AuthorizeLayer, ValidateAccessTokenLayer};
/// use actix_web::dev::Service as _;
/// use actix_web::{test, web, App, HttpMessage as _};
/// use tower_azure_auth::authorization::{Policies, Policy};
/// use tower_azure_auth::{Authority, Claims, TokenValidator};
///
/// # #[actix_web::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let policies = Policies::builder()
///     .add_policy("ValidateAccessTokenPolicy", Policy::builder().require_role("service-api").build())
///     .fallback_policy(Policy::builder().require_role("reader").build())
///     .build();
/// let authorize = AuthorizeLayer::new(&policies)
///     .route("/weatherforecast", "ValidateAccessTokenPolicy")? // a typo fails here
///     .anonymous("/healthz");
/// let routes = |cfg: &mut web::ServiceConfig| {
///     cfg.route("/weatherforecast", web::get().to(|| async { "forecast" }))
///         .route("/report", web::get().to(|| async { "report" }))
///         .route("/healthz", web::get().to(|| async { "ok" }));
/// };
///
/// // The real validation, deferring its refusals to `AuthorizeLayer`: no token.
/// let validator = TokenValidator::builder(Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
///     .client_id("b178f3a5-7588-492a-924f-72d7887b7e48")
///     .build()?;
/// let app = test::init_service(
///     App::new()
///         .configure(routes)
///         .wrap(authorize.clone())                                      // runs second
///         .wrap(ValidateAccessTokenLayer::new(validator).defer_refusals()), // runs first
/// )
/// .await;
/// let get = |path: &str| test::TestRequest::get().uri(path).to_request();
/// assert_eq!(test::call_service(&app, get("/healthz")).await.status(), 200);
/// assert_eq!(test::call_service(&app, get("/weatherforecast")).await.status(), 401);
/// assert_eq!(test::call_service(&app, get("/report")).await.status(), 401);
///
/// // A stand-in for the validation: claims with the roles of the `x-test-roles` header.
/// let app = test::init_service(
///     App::new()
///         .configure(routes)
///         .wrap(authorize)
///         .wrap_fn(|request, service| {
///             if let Some(roles) = request.headers().get("x-test-roles").and_then(|v| v.to_str().ok()) {
///                 let claims = serde_json::json!({ "roles": roles.split(',').collect::<Vec<_>>() });
///                 if let Ok(claims) = Claims::from_json(claims) {
///                     request.extensions_mut().insert(claims);
///                 }
///             }
///             service.call(request)
///         }),
/// )
/// .await;
/// let get = |path: &str, roles: &str| {
///     test::TestRequest::get().uri(path).insert_header(("x-test-roles", roles.to_owned())).to_request()
/// };
/// // `/report` declares nothing: the fallback policy
/// assert_eq!(test::call_service(&app, get("/report", "reader")).await.status(), 200);
/// assert_eq!(test::call_service(&app, get("/report", "service-api")).await.status(), 403);
/// // `/weatherforecast` has its own policy, and only that one
/// assert_eq!(test::call_service(&app, get("/weatherforecast", "service-api")).await.status(), 200);
/// assert_eq!(test::call_service(&app, get("/weatherforecast", "reader")).await.status(), 403);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AuthorizeLayer {
    routes: RoutePolicies,
    refusal: Refusal,
}

impl AuthorizeLayer {
    /// A middleware over the policies, default and fallback policy and handlers of
    /// `policies`, with no route listed yet.
    pub fn new(policies: &Policies) -> Self {
        Self::from(RoutePolicies::new(policies))
    }

    /// Swaps the refusal response builder, as
    /// [`RequirePolicyLayer::with_rejection`](crate::RequirePolicyLayer::with_rejection); the
    /// cause stays in the response's extensions.
    #[must_use]
    pub fn with_rejection(
        mut self,
        builder: impl Fn(Rejection) -> actix_web::HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.refusal = Refusal::new(builder);
        self
    }

    tower_azure_auth::__route_table_builder_methods!();
}

impl From<RoutePolicies> for AuthorizeLayer {
    fn from(routes: RoutePolicies) -> Self {
        Self {
            routes,
            refusal: Refusal::default(),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for AuthorizeLayer
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = Authorize<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(Authorize {
            service: Rc::new(service),
            routes: self.routes.clone(),
            refusal: self.refusal.clone(),
        }))
    }
}

/// The service of [`AuthorizeLayer`].
pub struct Authorize<S> {
    service: Rc<S>,
    routes: RoutePolicies,
    refusal: Refusal,
}

impl<S> fmt::Debug for Authorize<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorize")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for Authorize<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let pattern = request.match_pattern();
        match self.routes.for_route(pattern.as_deref(), request.path()) {
            RouteAuthorization::Policy(policy) => authorize(
                &self.service,
                self.routes.policies(),
                policy,
                true,
                &self.refusal,
                request,
            ),
            RouteAuthorization::Anonymous | RouteAuthorization::Unprotected => {
                ResponseFuture::inner(self.service.call(request))
            }
        }
    }
}
