//! Microsoft Entra ID (Azure AD) access-token validation and ASP.NET Core-style authorization
//! policies for actix-web 4, on the core of [`tower_azure_auth`].
//!
//! actix-web 4 is on `http` 0.2 and its services are not `Send`, so this crate does not wrap
//! the Tower layers: it calls the same core ([`TokenValidator`], [`Policies`]) and converts
//! the same [`Rejection`]s, so an actix-web service decides and answers exactly like an axum or
//! Tower one (same status, headers and body bytes).
//!
//! * [`ValidateAccessTokenLayer`] (`wrap()`): `Authorization: Bearer` → verified [`Claims`] in the
//!   request extensions; `401`/`503` per RFC 6750 otherwise.
//! * [`AuthorizeLayer`] (`wrap()` on the `App`): each route's own policy, the default policy, none
//!   (anonymous routes), or the registry's fallback policy for every route that declares
//!   nothing; see [Router-wide authorization](#router-wide-authorization).
//! * [`RequirePolicyLayer`], [`RequireRole`], [`RequireClaim`], [`RequireClientAuthentication`]
//!   (`wrap()`): `403` with a JSON body naming the failed requirements; `401` when there are
//!   no claims.
//! * [`Authenticated`] / `Option<Authenticated>`: the claims as a handler argument.
//! * [`rejection_response`]: any shared [`Rejection`] as an `HttpResponse`, with its cause
//!   ([`AuthError`] or [`AuthorizationFailure`]) in the response's extensions, as every refusal
//!   of the middlewares has, for an outer metrics or logging middleware.
//!
//! # Names
//!
//! The names are the Tower layers' names, so that one vocabulary serves both crates:
//! `ValidateAccessTokenLayer` (here the `Transform` passed to `wrap()`) → `ValidateAccessToken<S>`
//! (the middleware service) → [`ResponseFuture`]; `RequirePolicyLayer` → `RequirePolicy<S>`;
//! `AuthorizeLayer` → `Authorize<S>`; the shorthands [`RequireRole`], [`RequireClaim`] and
//! [`RequireClientAuthentication`] build the same `RequirePolicy<S>` service. The one
//! difference is the claims extractor: axum's is `Claims` itself, here it is the newtype
//! [`Authenticated`], because neither actix-web's `FromRequest` nor `Claims` belongs to this
//! crate (the orphan rule).
//!
//! The core types an actix-web service needs are re-exported here ([`TokenValidator`],
//! [`AzureAdOptions`], [`Policies`], [`Policy`], [`Claims`], …), and the core itself as
//! [`tower_azure_auth`].
//!
//! # Features
//!
//! This crate has no features of its own. The core's (`reqwest`, `azure-core`, …, see
//! [`tower_azure_auth`]) are enabled on your `tower-azure-auth` dependency; outbound calls
//! use the core's [`ConfidentialClient`](tower_azure_auth::credentials::ConfidentialClient)
//! directly.
//!
//! # Layer order
//!
//! actix-web runs the middleware registered by the **last** `wrap()` **first**. The
//! authorization middlewares read the claims that [`ValidateAccessTokenLayer`] inserts, so wrap them
//! first and [`ValidateAccessTokenLayer`] last, or put [`ValidateAccessTokenLayer`] on an enclosing scope
//! or on the `App` (an `App`'s middleware runs before a scope's or a resource's):
//!
//! ```text
//! web::resource("/report")
//!     .route(web::get().to(report))
//!     .wrap(RequirePolicyLayer::named(&policies, "ValidateAccessTokenPolicy")?) // runs second
//!     .wrap(ValidateAccessTokenLayer::new(validator.clone()))                   // runs first
//! ```
//!
//! An open route (a health check) must not sit under a refusing [`ValidateAccessTokenLayer`]: wrap
//! the protected resources or scope, or declare the route anonymous in [`AuthorizeLayer`] and let
//! the validation defer its refusals.
//!
//! # Router-wide authorization
//!
//! As ASP.NET Core's `UseAuthentication()` + `UseAuthorization()` with a fallback policy:
//!
//! ```text
//! App::new()
//!     .route("/report", web::get().to(report))
//!     .route("/healthz", web::get().to(health))
//!     .wrap(AuthorizeLayer::new(&policies)                                  // runs second
//!         .route("/report", "ValidateAccessTokenPolicy")?
//!         .anonymous("/healthz"))
//!     .wrap(ValidateAccessTokenLayer::new(validator.clone()).defer_refusals()) // runs first
//! ```
//!
//! Every route not listed gets the fallback policy of [`Policies`]; the listed ones their own
//! (or the default policy, [`AuthorizeLayer::default_for`]); `/healthz` is open even with a missing
//! or refused token. See [`AuthorizeLayer`] for a tested example.
//!
//! # Example
//!
//! A request without a token is refused by [`ValidateAccessTokenLayer`]; then, with a stand-in for
//! the validation that inserts claims from a test header, [`RequireRole`] accepts the caller
//! with the role and refuses the other one.
//!
//! ```
//! use actix_azure_auth::{Authenticated, RequireRole, ValidateAccessTokenLayer};
//! use actix_web::dev::Service as _;
//! use actix_web::{test, web, App, HttpMessage as _};
//! use tower_azure_auth::{Authority, Claims, TokenValidator};
//!
//! async fn report(caller: Authenticated) -> String {
//!     format!("report for {}", caller.client_id().unwrap_or("unknown"))
//! }
//!
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = TokenValidator::builder(Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
//!     .client_id("b178f3a5-7588-492a-924f-72d7887b7e48")
//!     .build()?;
//! let app = test::init_service(App::new().service(
//!     web::resource("/report")
//!         .route(web::get().to(report))
//!         .wrap(RequireRole("service-api"))
//!         .wrap(ValidateAccessTokenLayer::new(validator)),
//! ))
//! .await;
//! let response = test::call_service(&app, test::TestRequest::get().uri("/report").to_request()).await;
//! assert_eq!(response.status(), 401);
//! assert_eq!(response.headers().get("www-authenticate").unwrap(), "Bearer");
//!
//! // Stand-in for ValidateAccessTokenLayer: claims from the `x-test-roles` header.
//! let app = test::init_service(
//!     App::new()
//!         .route("/report", web::get().to(report))
//!         .wrap(RequireRole("service-api"))
//!         .wrap_fn(|request, service| {
//!             if let Some(roles) = request.headers().get("x-test-roles").and_then(|v| v.to_str().ok()) {
//!                 let claims = serde_json::json!({ "azp": "e4c9ab4e-bd27-40d5-8459-230ba2a757fb", "roles": roles.split(',').collect::<Vec<_>>() });
//!                 if let Ok(claims) = Claims::from_json(claims) {
//!                     request.extensions_mut().insert(claims);
//!                 }
//!             }
//!             service.call(request)
//!         }),
//! )
//! .await;
//! let request = |roles: &str| test::TestRequest::get().uri("/report").insert_header(("x-test-roles", roles.to_owned())).to_request();
//!
//! let accepted = test::call_service(&app, request("service-api")).await;
//! assert_eq!(accepted.status(), 200);
//! assert_eq!(test::read_body(accepted).await, "report for e4c9ab4e-bd27-40d5-8459-230ba2a757fb");
//!
//! let refused = test::call_service(&app, request("reader")).await;
//! assert_eq!(refused.status(), 403);
//! assert!(refused.headers().get("www-authenticate").is_none());
//! # Ok(()) }
//! ```
//!
//! A whole server: [`TokenValidator`] and [`Policies`] are built once (they are `Send + Sync`
//! and cheap to clone) and cloned into each worker's `App`:
//!
//! ```no_run
//! use actix_azure_auth::{Authenticated, RequirePolicyLayer, ValidateAccessTokenLayer};
//! use actix_web::{web, App, HttpServer};
//! use tower_azure_auth::authorization::{Policies, Policy};
//! use tower_azure_auth::{AzureAdOptions, TokenValidator};
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let options = AzureAdOptions::load(None)?; // AzureAd__Instance, AzureAd__TenantId, …
//!     let validator = TokenValidator::new(&options)?;
//!     let policies = Policies::builder()
//!         .add_policy("ValidateAccessTokenPolicy", Policy::builder().require_role("service-api").build())
//!         .build();
//!     let require = RequirePolicyLayer::named(&policies, "ValidateAccessTokenPolicy")?; // startup error on a typo
//!     HttpServer::new(move || {
//!         App::new().service(
//!             web::resource("/report")
//!                 .route(web::get().to(|caller: Authenticated| async move {
//!                     caller.client_id().unwrap_or_default().to_owned()
//!                 }))
//!                 .wrap(require.clone())
//!                 .wrap(ValidateAccessTokenLayer::new(validator.clone())),
//!         )
//!     })
//!     .bind("127.0.0.1:5000")?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Authorization handlers
//!
//! Custom [`AuthorizationHandler`](tower_azure_auth::authorization::AuthorizationHandler)s
//! registered in [`Policies`] work unchanged, asynchronous ones included. They see the claims
//! and the request's method, URI and headers (converted to `http` 1 types); the request
//! extensions they see are empty, as actix-web's extensions are another type (see
//! [`RequirePolicyLayer`]).
//!
//! # Logging
//!
//! Each refused request is logged once with `tracing::debug!` under the target
//! `actix_azure_auth` (method, path, status, kind and reason; never the token). The core logs
//! its own decisions under `tower_azure_auth::*`.
//!

// Temporary: the workspace lints taken from axum's (root Cargo.toml) flag code in modules that
// are being renamed. Remove these allows and fix what `cargo clippy --all-targets
// --all-features` then reports.
#![allow(
    clippy::must_use_candidate,
    clippy::trivially_copy_pass_by_ref,
    clippy::single_match_else
)]

/// The crate's README (its crates.io page), doctested.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod authorize;
mod extract;
mod readiness;
mod require;
mod response;
mod validate;

pub use tower_azure_auth;
pub use tower_azure_auth::authorization::{AuthorizationFailure, Policies, Policy};
pub use tower_azure_auth::claims::ClientAuthentication;
pub use tower_azure_auth::rejection::Rejection;
pub use tower_azure_auth::{
    AuthError, AuthErrorKind, Authority, AzureAdOptions, Claims, ConfigError, TokenValidator,
};

pub use authorize::{Authorize, AuthorizeLayer};
pub use extract::{Authenticated, MissingClaims};
pub use readiness::{readiness, readiness_response};
pub use require::{
    RequireClaim, RequireClientAuthentication, RequirePolicy, RequirePolicyLayer, RequireRole,
};
pub use response::{rejection_response, ResponseFuture};
pub use validate::{DefaultRejection, OnRejection, ValidateAccessToken, ValidateAccessTokenLayer};
