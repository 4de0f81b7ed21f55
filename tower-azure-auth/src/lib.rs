//! Microsoft Entra ID (Azure AD) service-to-service authentication for Tower and axum: the
//! Rust counterpart of Microsoft.Identity.Web and MSAL for the client credentials flow with a
//! client certificate.
//!
//! # What you get
//!
//! - **Inbound**: [`TokenValidator`] decides whether an access token is valid (signature
//!   against the authority's published keys, an algorithm allow-list, the issuer by Entra's
//!   v1/v2 and multi-tenant rules, audience, lifetime, size); keys are refreshed in the
//!   background, and on an unknown `kid` at most once per five minutes.
//!   [`ValidateAccessTokenLayer`](layers::ValidateAccessTokenLayer) puts the verified
//!   [`Claims`] into the request extensions and answers refusals per RFC 6750.
//! - **Authorization** like ASP.NET Core: requirements, handlers (async allowed) and named
//!   policies with a default and a fallback ([`authorization`]), applied per route with
//!   [`RequireRole`](layers::RequireRole), [`RequireClaim`](layers::RequireClaim),
//!   [`RequireClientAuthentication`](layers::RequireClientAuthentication) and
//!   [`RequirePolicy`](layers::RequirePolicy), or router-wide with
//!   [`AuthorizeLayer`](layers::AuthorizeLayer). A caller who is not authorized gets `403`
//!   with a body naming the failed requirements.
//! - **Outbound**: [`ConfidentialClient`](credentials::ConfidentialClient)
//!   (`acquire_token_for_client`) with a certificate (PEM, PKCS#12, base64, Key Vault) or a
//!   secret, managed identity and workload identity, and a token cache that refreshes ahead
//!   of expiry with one request however many callers wait and rides out an outage of the
//!   authority inside the token's extended lifetime (`ext_expires_in`); Entra's public,
//!   US Government, China, Bleu, Delos and GovSG clouds and External ID (`*.ciamlogin.com`);
//!   per-call options as MSAL's ([`AcquireTokenOptions`](credentials::AcquireTokenOptions):
//!   a tenant per request, cached per tenant; claims; a forced refresh); continuous access
//!   evaluation (`client_capabilities(["cp1"])`, claims challenges answered once);
//!   background-refresh events (`on_background_refresh`).
//!   [`AddAccessTokenLayer`](layers::AddAccessTokenLayer) attaches the token to requests to
//!   the API's origin, and only there.
//! - **Diagnosis**: [`TokenValidator::diagnose`] runs every check on a token and reports each
//!   one with what it expected and what the token holds (the `entra-doctor` CLI is built on
//!   it).
//! - **Configuration** with Microsoft.Identity.Web's `appsettings.json` shape and key names
//!   ([`AzureAdOptions`], [`CallApiOptions`]), environment variables overriding the file.
//!
//! The actix-web adapter is the `actix-azure-auth` crate.
//!
//! # Features
//!
//! Nothing is needed for the layers, [`TokenValidator`], the policies and
//! [`ConfidentialClient`](credentials::ConfidentialClient).
//!
//! | feature | gives |
//! |---|---|
//! | `axum` | the [`Claims`] and `Option<Claims>` extractors ([axum module][mod-axum]) |
//! | `reqwest` | [`AccessTokenMiddleware`][middleware] for `reqwest-middleware` clients |
//! | `azure-core` | any `azure_core` `TokenCredential` as a token source or to read Key Vault (`AzureCoreCredential`); `ConfidentialClient` and `ManagedIdentityCredential` as `TokenCredential`s for Azure SDK clients |
//! | `tower-http` | `AuthorizeAccessToken`, the validator as tower-http's `AsyncAuthorizeRequest` |
//! | `tonic` | [`tonic::claims`][mod-tonic] for handlers, and the replay of unary gRPC calls refused with `UNAUTHENTICATED` |
//! | `redis` | a fleet of replicas: [`SharedTokenCache`](credentials::SharedTokenCache) over `RedisTokenStore` (sealed, fleet-wide single flight), last-known-good keys and revocation in Redis (`validation::fleet`) |
//! | `pkcs11` | `Pkcs11Source` / `Pkcs11Signer`: client assertions signed by a key in an HSM (PKCS#11, `cryptoki`) |
//! | `opentelemetry` | metrics through the OpenTelemetry API (validations, keys, cache, decisions, token acquisitions under MSAL's names): [`telemetry`] |
//!
//! gRPC needs no feature for the server side: the layers answer gRPC calls with gRPC statuses
//! ([`layers::grpc`]).
//!
//! Without any feature, every validation, token acquisition and call to the authority runs in
//! a `tracing` span with OpenTelemetry's field names, and [`TokenValidator::readiness`] feeds a
//! readiness probe ([`telemetry`] lists them).
//!
//! For tests, the `entra-dev-authority` crate is a local Entra ID (`DevAuthority`).
//!
#![cfg_attr(feature = "axum", doc = "[mod-axum]: crate::axum")]
#![cfg_attr(not(feature = "axum"), doc = "[mod-axum]: #features")]
#![cfg_attr(
    feature = "reqwest",
    doc = "[middleware]: crate::middleware::AccessTokenMiddleware"
)]
#![cfg_attr(not(feature = "reqwest"), doc = "[middleware]: #features")]
#![cfg_attr(feature = "tonic", doc = "[mod-tonic]: crate::tonic::claims")]
#![cfg_attr(not(feature = "tonic"), doc = "[mod-tonic]: #features")]
//!
//! # Protecting an axum API
//!
//! [`ValidateAccessTokenLayer`](layers::ValidateAccessTokenLayer) goes outside the
//! authorization layers, which read the claims it inserts (in axum the last `.layer()` runs
//! first). Here a caller with the role is accepted, a request without a token gets `401` and a
//! caller without the role `403`. The validator pins a key made by the example; in production
//! it takes the keys from the authority's discovery document and you only give it the
//! authority and the API's client id.
//!
//! ```
//! use axum::{body::Body, routing::get, Extension, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt as _;
//! use tower_azure_auth::layers::{RequireRole, ValidateAccessTokenLayer};
//! use tower_azure_auth::{Authority, Claims, TokenValidator};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use aws_lc_rs::signature::KeyPair as _;
//! # use base64::Engine as _;
//! # let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
//! # let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)?;
//! # let public = key.public_key();
//! # let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1",
//! #     "n": b64(public.modulus().big_endian_without_leading_zero()),
//! #     "e": b64(public.exponent().big_endian_without_leading_zero())}]}).to_string();
//! # let sign = |claims: serde_json::Value| {
//! #     let message = format!("{}.{}", b64(br#"{"typ":"JWT","alg":"RS256","kid":"k1"}"#), b64(claims.to_string().as_bytes()));
//! #     let mut signature = vec![0; key.public_modulus_len()];
//! #     key.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(),
//! #         message.as_bytes(), &mut signature).unwrap();
//! #     format!("{message}.{}", b64(&signature))
//! # };
//! # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let tenant = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
//! let api = "b178f3a5-7588-492a-924f-72d7887b7e48";
//! let issuer = format!("https://login.microsoftonline.com/{tenant}/v2.0");
//! # let token = |roles: &[&str]| sign(serde_json::json!({"iss": issuer, "aud": api, "tid": tenant,
//! #     "ver": "2.0", "iat": now, "nbf": now, "exp": now + 600, "azp": "e4c9ab4e-bd27-40d5-8459-230ba2a757fb",
//! #     "azpacr": "2", "roles": roles}));
//! let validator = TokenValidator::builder(Authority::entra("https://login.microsoftonline.com/", tenant)?)
//!     .client_id(api)
//!     .static_keys(&issuer, jwks.as_bytes())? // only here: the example's own key
//!     .build()?;
//!
//! async fn report(Extension(caller): Extension<Claims>) -> String {
//!     format!("report for {}", caller.client_id().unwrap_or("unknown"))
//! }
//! let app = Router::new()
//!     .route("/report", get(report))
//!     .layer(RequireRole("service-api"))
//!     .layer(ValidateAccessTokenLayer::new(validator));
//!
//! let call = |token: Option<String>| {
//!     let mut request = Request::get("/report");
//!     if let Some(token) = token {
//!         request = request.header("authorization", format!("Bearer {token}"));
//!     }
//!     app.clone().oneshot(request.body(Body::empty()).unwrap())
//! };
//! let accepted = call(Some(token(&["service-api"]))).await?;
//! assert_eq!(accepted.status(), StatusCode::OK);
//!
//! let anonymous = call(None).await?;
//! assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
//!
//! let without_role = call(Some(token(&["reader"]))).await?;
//! assert_eq!(without_role.status(), StatusCode::FORBIDDEN);
//! # Ok(()) }
//! ```
//!
//! With the `axum` feature a handler takes [`Claims`] (or `Option<Claims>` on an open route)
//! directly. Named policies with custom requirements and handlers are in [`authorization`];
//! a router-wide default and fallback policy, with anonymous routes, in
//! [`layers::authorize`]. From an `appsettings.json`-shaped configuration,
//! [`TokenValidator::new`] takes [`AzureAdOptions`].
//!
//! # Calling an API with a certificate
//!
//! [`ConfidentialClient`](credentials::ConfidentialClient) gets tokens with a client assertion
//! signed by the certificate's key (PS256 with `x5t#S256`, as MSAL does for Entra ID) and
//! caches them; [`AddAccessTokenLayer`](layers::AddAccessTokenLayer) attaches them to requests
//! sent through any Tower client. Here the token endpoint is a stand-in on `127.0.0.1`.
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use tower::{Service as _, ServiceBuilder, ServiceExt as _};
//! use tower_azure_auth::credentials::{ClientCertificate, ConfidentialClient};
//! use tower_azure_auth::layers::AddAccessTokenLayer;
//! use tower_azure_auth::Authority;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)?;
//! # let pkcs8 = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa)?;
//! # let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_ref().into(), &rcgen::PKCS_RSA_SHA256)?;
//! # let cert = rcgen::CertificateParams::new(Vec::<String>::new())?.self_signed(&key)?;
//! # let pem = format!("{}{}", cert.pem(), key.serialize_pem());
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let instance = format!("http://{}/", listener.local_addr()?);
//! # let endpoint = axum::Router::new().route("/{tenant}/oauth2/v2.0/token", axum::routing::post(|| async {
//! #     axum::Json(serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "eyJ0eXAi.stand-in.token"}))
//! # }));
//! # tokio::spawn(async move { axum::serve(listener, endpoint).await });
//! let client = ConfidentialClient::builder("e4c9ab4e-bd27-40d5-8459-230ba2a757fb")
//!     .authority(Authority::entra(&instance, "7ff95b15-dc21-4ba6-bc92-824856578fc1")?)
//!     .certificate(ClientCertificate::from_pem(pem.as_bytes())?) // or from_file, from_pkcs12, Key Vault
//!     .build()?;
//! let scope = "api://b178f3a5-7588-492a-924f-72d7887b7e48/.default";
//! let token = client.acquire_token_for_client(&[scope]).await?; // cached until near expiry
//! assert!(!token.secret().is_empty());
//!
//! // The API: 200 with a bearer token, 401 without.
//! let api = tower::service_fn(|request: Request<String>| async move {
//!     let status = match request.headers().get("authorization") {
//!         Some(value) if value.to_str().is_ok_and(|v| v.starts_with("Bearer ")) => StatusCode::OK,
//!         _ => StatusCode::UNAUTHORIZED,
//!     };
//!     let mut response = Response::new(String::new());
//!     *response.status_mut() = status;
//!     Ok::<_, std::convert::Infallible>(response)
//! });
//! let layer = AddAccessTokenLayer::new(Arc::new(client), [scope], "https://api.contoso.com")?;
//! let mut http = ServiceBuilder::new().layer(layer).service(api);
//!
//! let to_api = Request::get("https://api.contoso.com/report").body(String::new())?;
//! assert_eq!(http.ready().await?.call(to_api).await?.status(), StatusCode::OK);
//!
//! // Another origin: the request goes out without the token.
//! let elsewhere = Request::get("https://elsewhere.example.org/").body(String::new())?;
//! assert_eq!(http.ready().await?.call(elsewhere).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! The same token source feeds the `reqwest-middleware` middleware (feature `reqwest`).
//! Errors from the authority are typed, with the AADSTS code
//! ([`TokenError`]); a credential source that fails at run time says so with a
//! [`CredentialError`] and whether retrying may help. Sources from configuration (Key Vault, files,
//! managed identity, workload identity) are in [`credentials`].
#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
pub mod authority;
pub mod authorization;
pub mod bearer;
pub mod claims;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod error;
pub mod layers;
pub mod rejection;
pub mod telemetry;
pub mod validation;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "reqwest")]
pub mod middleware;
#[cfg(feature = "tonic")]
pub mod tonic;
#[cfg(feature = "tower-http")]
pub mod tower_http;

pub use crate::algorithm::SignatureAlgorithm;
pub use crate::authority::{Authority, FetchError, HttpClient};
pub use crate::authorization::{Policies, Policy};
pub use crate::claims::{Claims, ClientAuthentication, TokenVersion};
pub use crate::config::{AzureAdOptions, CallApiOptions};
pub use crate::credentials::{
    ClientCertificate, ConfidentialClient, CredentialError, TokenError, TokenSource,
};
pub use crate::error::{AuthError, AuthErrorKind, CertificateError, ConfigError};
pub use crate::validation::TokenValidator;

/// The crate's own README (its crates.io page), doctested with the default features. The
/// workspace README is doctested by the end-to-end crate, which has the features it needs.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
