//! ASP.NET Core-style authorization, independent of the HTTP stack: [`Requirement`]s,
//! [`AuthorizationHandler`]s, [`Policy`]s, the [`Policies`] registry (named, default and
//! fallback policies) and the [`RoutePolicies`] route table. The Tower layers that apply them
//! are in [`layers`](crate::layers): per route [`RequireRole`](crate::layers::RequireRole),
//! [`RequireClaim`](crate::layers::RequireClaim),
//! [`RequireClientAuthentication`](crate::layers::RequireClientAuthentication),
//! [`RequirePolicyLayer`](crate::layers::RequirePolicyLayer); router-wide, with the default and fallback
//! policies and anonymous routes, [`AuthorizeLayer`](crate::layers::AuthorizeLayer). The
//! actix-web adapter calls [`Policies`] and [`RoutePolicies`] directly.
//!
//! A request that reaches a layer carries the caller's verified [`Claims`] in its extensions
//! (put there by [`ValidateAccessTokenLayer`](crate::layers::ValidateAccessTokenLayer)); here
//! the test inserts them itself:
//!
//! ```
//! use axum::body::Body;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_azure_auth::claims::Claims;
//! use tower_azure_auth::layers::RequireRole;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let api = RequireRole("service-api").layer(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Body::from("forecast")))
//! }));
//!
//! let with_roles = |roles: serde_json::Value| {
//!     let claims = Claims::from_json(serde_json::json!({ "roles": roles })).unwrap();
//!     let mut request = Request::new(Body::empty());
//!     request.extensions_mut().insert(claims);
//!     request
//! };
//!
//! let accepted = api.clone().oneshot(with_roles(serde_json::json!(["service-api"]))).await.unwrap();
//! assert_eq!(accepted.status(), StatusCode::OK);
//!
//! let refused = api.oneshot(with_roles(serde_json::json!(["reader"]))).await.unwrap();
//! assert_eq!(refused.status(), StatusCode::FORBIDDEN);
//! assert!(refused.headers().get("www-authenticate").is_none());
//! # }
//! ```
//!
//! ASP.NET Core's `Startup.ConfigureServices` with a custom requirement decided by an (async) handler
//! next to two claim requirements:
//!
//! ```
//! use std::borrow::Cow;
//! use axum::body::Body;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_azure_auth::authorization::{
//!     AuthorizationContext, AuthorizationHandler, HandlerOutcome, Policies, Policy, Requirement,
//! };
//! use tower_azure_auth::claims::Claims;
//! use tower_azure_auth::layers::RequirePolicyLayer;
//!
//! #[derive(Debug)]
//! struct HasServiceApiRoleRequirement;
//!
//! impl Requirement for HasServiceApiRoleRequirement {
//!     fn description(&self) -> Cow<'_, str> {
//!         "the caller must have the `service-api` role".into()
//!     }
//! }
//!
//! #[derive(Debug)]
//! struct HasServiceApiRoleHandler;
//!
//! impl AuthorizationHandler for HasServiceApiRoleHandler {
//!     type Requirement = HasServiceApiRoleRequirement;
//!
//!     async fn handle(
//!         &self,
//!         ctx: &AuthorizationContext<'_>,
//!         _requirement: &HasServiceApiRoleRequirement,
//!     ) -> HandlerOutcome {
//!         // a real handler could await a database or a directory lookup here
//!         tokio::task::yield_now().await;
//!         if ctx.claims().has_role("service-api") {
//!             HandlerOutcome::Succeed
//!         } else {
//!             HandlerOutcome::Abstain
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_azure_auth::ConfigError> {
//! let client_id = "11111111-1111-1111-1111-111111111111"; // Configuration["AzureAd:ClientId"]
//! let policies = Policies::builder()
//!     .add_handler(HasServiceApiRoleHandler)
//!     .add_policy(
//!         "ValidateAccessTokenPolicy",
//!         Policy::builder()
//!             .requirement(HasServiceApiRoleRequirement)
//!             .require_claim("azp", [client_id])
//!             .require_claim("azpacr", ["2"])
//!             .build(),
//!     )
//!     .build();
//!
//! let api = RequirePolicyLayer::named(&policies, "ValidateAccessTokenPolicy")?.layer(service_fn(
//!     |_req: Request<Body>| async { Ok::<_, std::convert::Infallible>(Response::new(Body::empty())) },
//! ));
//!
//! let request = |claims: serde_json::Value| {
//!     let mut request = Request::new(Body::empty());
//!     request.extensions_mut().insert(Claims::from_json(claims).unwrap());
//!     request
//! };
//! let good = serde_json::json!({ "roles": ["service-api"], "azp": client_id, "azpacr": "2" });
//! let response = api.clone().oneshot(request(good)).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let secret = serde_json::json!({ "roles": ["service-api"], "azp": client_id, "azpacr": "1" });
//! let response = api.oneshot(request(secret)).await.unwrap();
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```
//!
//! # Semantics (as ASP.NET Core)
//!
//! * A policy succeeds when every requirement succeeds; a policy without requirements accepts
//!   any authenticated caller.
//! * A requirement succeeds when it decides so itself ([`Requirement::decide`]) or a handler
//!   registered for its type returns [`HandlerOutcome::Succeed`], unless any handler returns
//!   [`HandlerOutcome::Fail`], which fails the evaluation whatever the others say.
//! * A requirement that defers to handlers, with none registered, is not satisfied (and the
//!   failure says so).
//!
//! The built-in requirements ([`RolesRequirement`], [`ClaimRequirement`],
//! [`ScopesRequirement`], [`ScopeOrAppPermissionRequirement`], [`ClientIdRequirement`],
//! [`ClientAuthenticationRequirement`], [`AssertionRequirement`]) decide synchronously without
//! allocating; [`Policies::authorize_sync`] evaluates a policy without a future when no handler
//! needs awaiting, [`Policies::authorize`] otherwise.
//!
//! # Failures and logging
//!
//! An [`AuthorizationFailure`] lists each failed requirement with its description and why it
//! failed, e.g. ``claim `azpacr` must be one of [2]; the token has a different value or none``.
//! The caller's claim values appear only when PII logging is on
//! ([`PoliciesBuilder::pii_logging`]); a token never does. Each denial is logged with
//! `tracing::debug!` under the target `tower_azure_auth::authorization`.
//! [`Rejection::forbidden`](crate::rejection::Rejection::forbidden) turns a failure into the
//! 403 response.
//!
//! [`Claims`]: crate::claims::Claims

mod context;
mod diagnose;
mod failure;
mod handler;
mod policies;
mod policy;
mod requirement;
mod routes;

pub use context::{AuthorizationContext, RequestFacts};
pub use diagnose::{PolicyDiagnosis, RequirementCheck};
pub use failure::{AuthorizationFailure, AuthorizationResult, FailedRequirement};
pub use handler::{
    async_handler_fn, handler_fn, AsyncHandlerFn, AuthorizationHandler, HandlerFn, HandlerFuture,
    HandlerOutcome,
};
pub use policies::{Policies, PoliciesBuilder};
pub use policy::{Policy, PolicyBuilder};
pub use requirement::{
    AssertionRequirement, ClaimRequirement, ClientAuthenticationRequirement, ClientIdRequirement,
    Decision, Requirement, RolesRequirement, ScopeOrAppPermissionRequirement, ScopesRequirement,
};
pub use routes::{RouteAuthorization, RoutePolicies};

/// The `tracing` target of denials.
pub(crate) const LOG_TARGET: &str = "tower_azure_auth::authorization";

#[cfg(test)]
mod tests;
