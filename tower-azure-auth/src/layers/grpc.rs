//! gRPC: the refusals as gRPC statuses ([`GrpcRefusal`]) and per-method policies
//! ([`GrpcAuthorizeLayer`]), for tonic servers and any other gRPC stack on `http` 1.
//!
//! [`ValidateAccessTokenLayer`] and the authorization layers
//! already answer a gRPC call (`content-type: application/grpc*`) with a trailers-only gRPC
//! status when their response body is `From<Bytes>` (axum's, a router that serves REST and
//! gRPC side by side). A tonic server's body (`tonic::body::Body`) is not: there, build the
//! layers with `.grpc()` ([`ValidateAccessTokenLayer::grpc`](super::ValidateAccessTokenLayer::grpc),
//! [`RequirePolicyLayer::grpc`](super::RequirePolicyLayer::grpc),
//! [`AuthorizeLayer::grpc`](super::AuthorizeLayer::grpc)), which answers every refusal in the gRPC
//! form with an empty `B::default()` body:
//!
//! | refusal | `grpc-status` | metadata |
//! |---|---|---|
//! | no token | `16` `UNAUTHENTICATED` | `www-authenticate: Bearer` |
//! | refused token (expired, wrong audience, bad signature, …) | `16` `UNAUTHENTICATED` | `www-authenticate: Bearer error="invalid_token", error_description="…"` |
//! | keys not available yet | `14` `UNAVAILABLE` | `retry-after` |
//! | policy denial | `7` `PERMISSION_DENIED` | |
//!
//! `grpc-message` is the HTTP form's `error_description` (percent-encoded; never the token).
//! The verified [`Claims`](crate::Claims) are in the request extensions, which tonic hands to
//! the handler as `Request::extensions()` (with the `tonic` feature, `tower_azure_auth::tonic::claims`
//! reads them).
//!
//! Layer order in tonic: `Server::builder().layer(a).layer(b)` runs `a` first, so the
//! validation comes first and the authorization second.
//!
//! ```
//! use http::{Request, Response};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_azure_auth::authorization::{Policies, Policy};
//! use tower_azure_auth::layers::GrpcAuthorizeLayer;
//! use tower_azure_auth::Claims;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_azure_auth::ConfigError> {
//! let policies = Policies::builder()
//!     .add_policy("ValidateAccessTokenPolicy", Policy::builder().require_role("service-api").build())
//!     .add_policy("Admin", Policy::builder().require_role("admin").build())
//!     // every method that is listed nowhere
//!     .fallback_policy(Policy::builder().require_role("nobody-has-this").build())
//!     .build();
//! let authorize = GrpcAuthorizeLayer::new(&policies)
//!     .service("weather.v1.WeatherForecasts", "ValidateAccessTokenPolicy")?
//!     .method("/weather.v1.WeatherForecasts/Purge", "Admin")?
//!     .anonymous_service("grpc.reflection.v1.ServerReflection");
//! let server = authorize.layer(service_fn(|_: Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("message")))
//! }));
//!
//! let call = |path: &str, roles: &[&str]| {
//!     let mut request = Request::post(path).header("content-type", "application/grpc").body(String::new()).unwrap();
//!     let claims = Claims::from_json(serde_json::json!({ "roles": roles })).unwrap();
//!     request.extensions_mut().insert(claims);
//!     server.clone().oneshot(request)
//! };
//! let status = |response: &Response<String>| {
//!     response.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned())
//! };
//! // the service's policy
//! let ok = call("/weather.v1.WeatherForecasts/GetForecast", &["service-api"]).await.unwrap();
//! assert_eq!(status(&ok), None); // the handler answered
//! // the method's own policy, and only that one
//! let denied = call("/weather.v1.WeatherForecasts/Purge", &["service-api"]).await.unwrap();
//! assert_eq!(status(&denied).as_deref(), Some("7")); // PERMISSION_DENIED
//! let admin = call("/weather.v1.WeatherForecasts/Purge", &["admin"]).await.unwrap();
//! assert_eq!(status(&admin), None);
//! // anonymous, and the fallback for what is not listed
//! let reflection = call("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", &[]).await.unwrap();
//! assert_eq!(status(&reflection), None);
//! let other = call("/billing.v1.Invoices/List", &["service-api"]).await.unwrap();
//! assert_eq!(status(&other).as_deref(), Some("7"));
//! # Ok(()) }
//! ```

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::authorize::AuthorizeLayer;
use super::require::{authorize, OnRefusal, RequirePolicyLayer, ResponseFuture};
use super::validate_access_token::{OnRejection, ValidateAccessTokenLayer};
use crate::authorization::{Policies, Policy, RouteAuthorization, RoutePolicies};
use crate::error::{AuthError, ConfigError};
use crate::rejection::Rejection;

/// Answers every refusal in the gRPC form ([`Rejection::into_grpc_response`]), with an empty
/// `B::default()` body: for tonic servers, whose body type is not `From<Bytes>`. Used by the
/// `.grpc()` builders and by [`GrpcAuthorizeLayer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRefusal;

impl<B: Default> OnRejection<B> for GrpcRefusal {
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        Rejection::unauthenticated(error).into_grpc_response()
    }
}

impl<B: Default> OnRefusal<B> for GrpcRefusal {
    fn on_refusal(&self, rejection: Rejection) -> Response<B> {
        rejection.into_grpc_response()
    }
}

impl<R> ValidateAccessTokenLayer<R> {
    /// Answers every refusal as a gRPC status ([`GrpcRefusal`]): for a tonic server
    /// (`Server::builder().layer(ValidateAccessTokenLayer::new(validator).grpc())`).
    #[must_use]
    pub fn grpc(self) -> ValidateAccessTokenLayer<GrpcRefusal> {
        self.with_rejection(GrpcRefusal)
    }
}

impl<R> RequirePolicyLayer<R> {
    /// Answers every refusal as a gRPC status ([`GrpcRefusal`]): for a tonic server.
    #[must_use]
    pub fn grpc(self) -> RequirePolicyLayer<GrpcRefusal> {
        self.with_rejection(GrpcRefusal)
    }
}

impl<R> AuthorizeLayer<R> {
    /// Answers every refusal as a gRPC status ([`GrpcRefusal`]): for a tonic server. For
    /// per-method and per-service policies, see [`GrpcAuthorizeLayer`].
    #[must_use]
    pub fn grpc(self) -> AuthorizeLayer<GrpcRefusal> {
        self.with_rejection(GrpcRefusal)
    }
}

/// Per-method authorization for gRPC, the counterpart of per-route layers: each method
/// (`/package.Service/Method`) or whole service (`package.Service`) gets its own policy, the
/// default policy or none (anonymous, e.g. server reflection or health); a method that is
/// listed neither by itself nor by its service gets the registry's fallback policy
/// ([`PoliciesBuilder::fallback_policy`](crate::authorization::PoliciesBuilder::fallback_policy)),
/// or is left open when there is none (as [`AuthorizeLayer`]). A method's entry wins over its
/// service's. See the [module docs](self) for an example.
///
/// The table is a [`RoutePolicies`] keyed by the request path (which is the method's full
/// name in gRPC; a service is kept as `/package.Service/`), decided by the same code as
/// [`AuthorizeLayer`]. Refusals are gRPC statuses ([`GrpcRefusal`]) unless
/// [`with_rejection`](Self::with_rejection) swaps the builder. With
/// [`defer_refusals`](super::ValidateAccessTokenLayer::defer_refusals) on the validation,
/// anonymous methods are reached with a missing or refused token.
#[derive(Debug, Clone)]
pub struct GrpcAuthorizeLayer<R = GrpcRefusal> {
    routes: RoutePolicies,
    refusal: R,
}

/// `/package.Service/`, the key of a whole service.
fn service_key(service: &str) -> String {
    format!("/{}/", service.trim_matches('/'))
}

/// `/package.Service/Method` with its leading slash.
fn method_key(method: &str) -> String {
    if method.starts_with('/') {
        method.to_owned()
    } else {
        format!("/{method}")
    }
}

impl GrpcAuthorizeLayer {
    /// A layer over the policies and handlers of `policies`, with nothing listed yet: every
    /// method gets the fallback policy (or is left open without one).
    #[must_use]
    pub fn new(policies: &Policies) -> Self {
        Self {
            routes: RoutePolicies::new(policies),
            refusal: GrpcRefusal,
        }
    }
}

impl<R> GrpcAuthorizeLayer<R> {
    /// Swaps the refusal response builder (an [`OnRefusal`] or a closure
    /// `Fn(Rejection) -> Response<B>`); the cause stays in the response's extensions.
    pub fn with_rejection<R2>(self, refusal: R2) -> GrpcAuthorizeLayer<R2> {
        GrpcAuthorizeLayer {
            routes: self.routes,
            refusal,
        }
    }

    /// The method `/package.Service/Method` requires the policy registered under `name`,
    /// and only that one.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownPolicy`] when no policy has that name.
    pub fn method(self, method: &str, name: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            routes: self.routes.route(method_key(method), name)?,
            ..self
        })
    }

    /// The method requires an inline `policy`, decided with the registry's handlers.
    #[must_use]
    pub fn method_policy(self, method: &str, policy: Policy) -> Self {
        Self {
            routes: self.routes.route_policy(method_key(method), policy),
            ..self
        }
    }

    /// The method is anonymous: no policy, and authentication failures are ignored there
    /// (with a deferring validation).
    #[must_use]
    pub fn anonymous_method(self, method: &str) -> Self {
        Self {
            routes: self.routes.anonymous(method_key(method)),
            ..self
        }
    }

    /// Every method of `package.Service` that is not listed by itself requires the policy
    /// registered under `name`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownPolicy`] when no policy has that name.
    pub fn service(self, service: &str, name: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            routes: self.routes.route(service_key(service), name)?,
            ..self
        })
    }

    /// Every method of the service not listed by itself requires an inline `policy`.
    #[must_use]
    pub fn service_policy(self, service: &str, policy: Policy) -> Self {
        Self {
            routes: self.routes.route_policy(service_key(service), policy),
            ..self
        }
    }

    /// Every method of the service not listed by itself requires the default policy.
    #[must_use]
    pub fn default_for_service(self, service: &str) -> Self {
        Self {
            routes: self.routes.default_for(service_key(service)),
            ..self
        }
    }

    /// Every method of the service not listed by itself is anonymous (server reflection,
    /// health checks).
    #[must_use]
    pub fn anonymous_service(self, service: &str) -> Self {
        Self {
            routes: self.routes.anonymous(service_key(service)),
            ..self
        }
    }

    /// The table.
    pub fn routes(&self) -> &RoutePolicies {
        &self.routes
    }

    /// What the call to `path` (`/package.Service/Method`) gets: the method's entry, else its
    /// service's, else the fallback policy (or open without one).
    #[must_use]
    pub fn for_method(&self, path: &str) -> RouteAuthorization<'_> {
        decide(&self.routes, path)
    }
}

fn decide<'a>(routes: &'a RoutePolicies, path: &str) -> RouteAuthorization<'a> {
    if let Some(declared) = routes.declared(path) {
        return declared;
    }
    if let Some(end) = path.rfind('/').filter(|&end| end > 0) {
        if let Some(declared) = routes.declared(&path[..=end]) {
            return declared;
        }
    }
    // Not listed: the fallback. No pattern is passed: paths come from callers, and an
    // unlisted one must not be logged at warn per distinct path.
    routes.for_route(None, path)
}

impl<S, R: Clone> Layer<S> for GrpcAuthorizeLayer<R> {
    type Service = GrpcAuthorize<S, R>;

    fn layer(&self, inner: S) -> GrpcAuthorize<S, R> {
        GrpcAuthorize {
            inner,
            routes: self.routes.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

/// The service of [`GrpcAuthorizeLayer`].
#[derive(Debug, Clone)]
pub struct GrpcAuthorize<S, R = GrpcRefusal> {
    inner: S,
    routes: RoutePolicies,
    refusal: R,
}

inner_service_accessors!(GrpcAuthorize<S, R>);

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcAuthorize<S, R>
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
        match decide(&self.routes, request.uri().path()) {
            RouteAuthorization::Policy(policy) => authorize(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_then_service_then_fallback() {
        let policies = Policies::builder()
            .add_policy("A", Policy::builder().require_role("a").build())
            .add_policy("B", Policy::builder().require_role("b").build())
            .fallback_policy(Policy::builder().require_role("f").build())
            .build();
        let layer = GrpcAuthorizeLayer::new(&policies)
            .service("pkg.Svc", "A")
            .unwrap()
            .method("pkg.Svc/Special", "B")
            .unwrap()
            .anonymous_method("/pkg.Svc/Open")
            .anonymous_service("/grpc.health.v1.Health/");
        struct Case {
            name: &'static str,
            path: &'static str,
            /// The policy's role, `None` for anonymous.
            role: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "service entry",
                path: "/pkg.Svc/Get",
                role: Some("a"),
            },
            Case {
                name: "method entry wins",
                path: "/pkg.Svc/Special",
                role: Some("b"),
            },
            Case {
                name: "anonymous method",
                path: "/pkg.Svc/Open",
                role: None,
            },
            Case {
                name: "anonymous service",
                path: "/grpc.health.v1.Health/Check",
                role: None,
            },
            Case {
                name: "unlisted service",
                path: "/other.Svc/Get",
                role: Some("f"),
            },
            Case {
                name: "the service key is not a method",
                path: "/pkg.Svc/",
                role: Some("a"),
            },
            Case {
                name: "no slash",
                path: "",
                role: Some("f"),
            },
            Case {
                name: "prefix of a service name",
                path: "/pkg.SvcX/Get",
                role: Some("f"),
            },
        ];
        for case in cases {
            let decided = layer.for_method(case.path);
            match (decided, case.role) {
                (RouteAuthorization::Anonymous, None) => {}
                (RouteAuthorization::Policy(policy), Some(role)) => {
                    let description = format!("{policy:?}");
                    assert!(description.contains(role), "{}: {description}", case.name);
                }
                (other, expected) => panic!("{}: {other:?}, expected {expected:?}", case.name),
            }
        }
    }
}
