//! [`RequirePolicyLayer`], [`RequireRole`] and [`RequireClaim`]: the actix-web counterparts of the
//! Tower authorization layers, deciding with the same [`Policies`] and answering with the same
//! responses.

use std::fmt;
use std::future::{ready, Ready};
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{Error, HttpMessage};
use tower_azure_auth::authorization::{AuthorizationContext, Policies, Policy, RequestFacts};
use tower_azure_auth::claims::ClientAuthentication;
use tower_azure_auth::rejection::Rejection;
use tower_azure_auth::{AuthError, Claims, ConfigError};

use crate::response::{refuse, rejection_response, Refusal, ResponseFuture};

/// Requires a [`Policy`]: a registered one by name, the registry's default one, or one built
/// inline; use with `wrap()` on an `App`, a `web::scope` or a `web::resource`, inside
/// [`ValidateAccessTokenLayer`](crate::ValidateAccessTokenLayer).
///
/// Without claims in the request extensions the answer is `401` with `WWW-Authenticate:
/// Bearer`; a caller that is not authorized gets `403` with a JSON body naming the failed
/// requirements ([`Rejection::forbidden`]).
///
/// Requirement handlers see the claims and the request's method, URI and headers, converted to
/// `http` 1 types (actix-web 4 is on `http` 0.2). They see an **empty**
/// [`extensions`](tower_azure_auth::authorization::AuthorizationContext::extensions): actix-web's
/// request extensions are a different type and cannot be lent as `http::Extensions`. A handler
/// that needs data from an earlier middleware should derive it from the claims or a header.
///
/// A policy decided synchronously (built-in requirements, synchronous handlers) does not box;
/// one with an asynchronous handler awaits it in a boxed future (actix-web futures need not be
/// `Send`; the handlers are `Send` anyway, as [`Policies`] requires).
///
/// ```
/// use actix_azure_auth::RequirePolicyLayer;
/// use tower_azure_auth::authorization::{Policies, Policy};
/// use tower_azure_auth::ConfigError;
///
/// let policies = Policies::builder()
///     .add_policy("ValidateAccessTokenPolicy", Policy::builder().require_role("service-api").build())
///     .build();
/// let middleware = RequirePolicyLayer::named(&policies, "ValidateAccessTokenPolicy").unwrap();
/// # let _ = middleware;
/// // a misspelt name fails when the application is built, not per request
/// assert!(matches!(
///     RequirePolicyLayer::named(&policies, "ValidateAccesTokenPolicy"),
///     Err(ConfigError::UnknownPolicy { .. })
/// ));
/// ```
#[derive(Debug, Clone)]
pub struct RequirePolicyLayer {
    policies: Policies,
    policy: Policy,
    /// Whether requirements may look at the request; `false` only for the built-in
    /// single-requirement middlewares, which never do.
    request_facts: bool,
    refusal: Refusal,
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
    pub fn default_policy(policies: &Policies) -> Self {
        Self::with_handlers(policies, policies.default_policy())
    }

    /// An inline policy, with no handler: requirements that do not decide themselves are not
    /// satisfied. Use [`with_handlers`](Self::with_handlers) for those.
    pub fn new(policy: Policy) -> Self {
        Self::with_handlers(&Policies::default(), policy)
    }

    /// An inline policy, decided with the handlers (and PII setting) of `policies`.
    pub fn with_handlers(policies: &Policies, policy: Policy) -> Self {
        Self {
            policies: policies.clone(),
            policy,
            request_facts: true,
            refusal: Refusal::default(),
        }
    }

    /// Swaps the refusal response builder: a closure from the shared [`Rejection`] (`401`/`503`
    /// with its [`Rejection::auth_error`], `403` with its [`Rejection::authorization_failure`])
    /// to an `HttpResponse`, as the Tower layer's `with_rejection`; the cause stays in the
    /// response's extensions.
    #[must_use]
    pub fn with_rejection(
        mut self,
        builder: impl Fn(Rejection) -> actix_web::HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.refusal = Refusal::new(builder);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn middleware<S>(&self, service: S) -> RequirePolicy<S> {
        RequirePolicy {
            service: Rc::new(service),
            require: self.clone(),
        }
    }
}

/// Requires an application role: `.wrap(RequireRole("service-api"))`.
///
/// The role may be any `AsRef<str>`. Answers as the Tower `RequireRole`, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireRole<R>(pub R);

/// Requires a claim with a value: `.wrap(RequireClaim("tid", tenant_id))`.
///
/// A string claim must equal the value; an array claim must contain it. Answers as the Tower
/// `RequireClaim`, byte for byte. For the calling client's authentication, which v1 tokens
/// carry in `appidacr` rather than `azpacr`, use [`RequireClientAuthentication`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireClaim<N, V>(pub N, pub V);

/// Requires the calling client to have authenticated this way, in v2 tokens (`azpacr`) and v1
/// tokens (`appidacr`) alike:
/// `.wrap(RequireClientAuthentication(ClientAuthentication::Certificate))`. Answers as the
/// Tower `RequireClientAuthentication`, byte for byte.
///
/// ```
/// use actix_azure_auth::RequireClientAuthentication;
/// use actix_web::dev::Service as _;
/// use actix_web::{test, web, App, HttpMessage as _};
/// use tower_azure_auth::claims::{Claims, ClientAuthentication};
///
/// # #[actix_web::main]
/// # async fn main() {
/// let app = test::init_service(
///     App::new()
///         .route("/", web::get().to(|| async { "ok" }))
///         .wrap(RequireClientAuthentication(ClientAuthentication::Certificate))
///         // stand-in for ValidateAccessTokenLayer: claims from the `x-test-claims` header
///         .wrap_fn(|request, service| {
///             let claims = request.headers().get("x-test-claims")
///                 .and_then(|v| serde_json::from_slice(v.as_bytes()).ok())
///                 .and_then(|v| Claims::from_json(v).ok());
///             if let Some(claims) = claims {
///                 request.extensions_mut().insert(claims);
///             }
///             service.call(request)
///         }),
/// )
/// .await;
/// let status = |claims: &'static str| {
///     let request = test::TestRequest::get().uri("/").insert_header(("x-test-claims", claims));
///     let app = &app;
///     async move { test::call_service(app, request.to_request()).await.status().as_u16() }
/// };
/// assert_eq!(status(r#"{"ver":"2.0","azpacr":"2"}"#).await, 200);
/// assert_eq!(status(r#"{"ver":"1.0","appidacr":"2"}"#).await, 200);
/// assert_eq!(status(r#"{"ver":"2.0","azpacr":"1"}"#).await, 403);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireClientAuthentication(pub ClientAuthentication);

impl RequireClientAuthentication {
    fn require(&self) -> RequirePolicyLayer {
        RequirePolicyLayer {
            request_facts: false,
            ..RequirePolicyLayer::new(
                Policy::builder()
                    .require_client_authentication(self.0)
                    .build(),
            )
        }
    }
}

impl<R: AsRef<str>> RequireRole<R> {
    fn require(&self) -> RequirePolicyLayer {
        RequirePolicyLayer {
            request_facts: false,
            ..RequirePolicyLayer::new(
                Policy::builder()
                    .require_role(self.0.as_ref().to_owned())
                    .build(),
            )
        }
    }
}

impl<N: AsRef<str>, V: AsRef<str>> RequireClaim<N, V> {
    fn require(&self) -> RequirePolicyLayer {
        RequirePolicyLayer {
            request_facts: false,
            ..RequirePolicyLayer::new(
                Policy::builder()
                    .require_claim(self.0.as_ref().to_owned(), [self.1.as_ref().to_owned()])
                    .build(),
            )
        }
    }
}

macro_rules! transform {
    ($ty:ty, [$($generics:tt)*], $this:ident => $require:expr) => {
        impl<S, B, $($generics)*> Transform<S, ServiceRequest> for $ty
        where
            S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
            B: 'static,
        {
            type Response = ServiceResponse<EitherBody<B>>;
            type Error = Error;
            type Transform = RequirePolicy<S>;
            type InitError = ();
            type Future = Ready<Result<Self::Transform, Self::InitError>>;

            fn new_transform(&self, service: S) -> Self::Future {
                let $this = self;
                ready(Ok($require.middleware(service)))
            }
        }
    };
}

transform!(RequirePolicyLayer, [], this => this);
transform!(RequireRole<R>, [R: AsRef<str>], this => this.require());
transform!(RequireClaim<N, V>, [N: AsRef<str>, V: AsRef<str>], this => this.require());
transform!(RequireClientAuthentication, [], this => this.require());

/// The service of [`RequirePolicyLayer`], [`RequireRole`], [`RequireClaim`] and
/// [`RequireClientAuthentication`].
pub struct RequirePolicy<S> {
    service: Rc<S>,
    require: RequirePolicyLayer,
}

impl<S> fmt::Debug for RequirePolicy<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequirePolicy")
            .field("policy", &self.require.policy)
            .finish_non_exhaustive()
    }
}

/// The request facts a handler sees, converted to `http` 1 and owned, so that they can
/// outlive the borrow of the request (the asynchronous path moves them into its future).
struct OwnedFacts {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    extensions: http::Extensions,
}

impl OwnedFacts {
    /// `None` if the request line or a header cannot be represented in `http` 1 (both crates
    /// accept the same bytes, so this does not happen for a request actix-web parsed).
    fn from_request(request: &ServiceRequest) -> Option<Self> {
        let method = http::Method::from_bytes(request.method().as_str().as_bytes()).ok()?;
        let uri = http::Uri::try_from(request.uri().to_string()).ok()?;
        let mut headers = http::HeaderMap::with_capacity(request.headers().len());
        for (name, value) in request.headers().iter() {
            let name = http::HeaderName::from_bytes(name.as_str().as_bytes()).ok()?;
            let mut converted = http::HeaderValue::from_bytes(value.as_bytes()).ok()?;
            converted.set_sensitive(value.is_sensitive());
            headers.append(name, converted);
        }
        Some(Self {
            method,
            uri,
            headers,
            extensions: http::Extensions::new(),
        })
    }

    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts::new(&self.method, &self.uri, &self.headers, &self.extensions)
    }
}

fn context<'a>(claims: &'a Claims, facts: Option<&'a OwnedFacts>) -> AuthorizationContext<'a> {
    match facts {
        Some(facts) => AuthorizationContext::for_request(claims, facts.facts()),
        None => AuthorizationContext::new(claims),
    }
}

impl<S, B> Service<ServiceRequest> for RequirePolicy<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let RequirePolicyLayer {
            policies,
            policy,
            request_facts,
            refusal,
        } = &self.require;
        authorize(
            &self.service,
            policies,
            policy,
            *request_facts,
            refusal,
            request,
        )
    }
}

/// The `401` (or `503`) for a request without claims: with the authentication failure that a
/// deferring [`ValidateAccessTokenLayer`](crate::ValidateAccessTokenLayer) recorded, else for a missing
/// token.
pub(crate) fn not_authenticated<B>(
    request: ServiceRequest,
    refusal: &Refusal,
) -> ServiceResponse<EitherBody<B>> {
    let recorded = request.extensions().get::<AuthError>().cloned();
    match recorded {
        Some(error) => {
            let response = refusal.respond(Rejection::unauthenticated(&error));
            refuse(request, response, error.kind().as_str(), &error.reason())
        }
        None => {
            let error = AuthError::missing_token();
            let response = refusal.respond(Rejection::unauthenticated(&error));
            refuse(
                request,
                response,
                error.kind().as_str(),
                &"no verified claims in the request extensions: not authenticated (is ValidateAccessTokenLayer wrapped around this middleware?)",
            )
        }
    }
}

/// Decides `policy` for `request` and calls `service` when the caller satisfies it:
/// synchronously when the policy allows, else in a boxed future.
pub(crate) fn authorize<S, B>(
    service: &Rc<S>,
    policies: &Policies,
    policy: &Policy,
    request_facts: bool,
    refusal: &Refusal,
    request: ServiceRequest,
) -> ResponseFuture<S::Future, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    let claims = request.extensions().get::<Claims>().cloned();
    let Some(claims) = claims else {
        return ResponseFuture::refused(not_authenticated(request, refusal));
    };
    let facts = if request_facts {
        match OwnedFacts::from_request(&request) {
            Some(facts) => Some(facts),
            None => {
                let response = rejection_response(&Rejection::json(
                    http::StatusCode::BAD_REQUEST,
                    &serde_json::json!({
                        "error": "invalid_request",
                        "error_description": "the request line or headers cannot be represented for authorization",
                    }),
                ));
                return ResponseFuture::refused(refuse(
                    request,
                    response,
                    "invalid_request",
                    &"request not representable in http 1",
                ));
            }
        }
    } else {
        None
    };
    let decided = policies.authorize_sync(policy, &context(&claims, facts.as_ref()));
    match decided {
        Some(Ok(())) => ResponseFuture::inner(service.call(request)),
        Some(Err(failure)) => {
            let response = refusal.respond(Rejection::forbidden(&failure));
            ResponseFuture::refused(refuse(request, response, "forbidden", &failure))
        }
        None => {
            // An asynchronous handler must be awaited.
            let service = Rc::clone(service);
            let policies = policies.clone();
            let policy = policy.clone();
            let refusal = refusal.clone();
            ResponseFuture::boxed(async move {
                let result = policies
                    .authorize(&policy, &context(&claims, facts.as_ref()))
                    .await;
                match result {
                    Ok(()) => service
                        .call(request)
                        .await
                        .map(ServiceResponse::map_into_left_body),
                    Err(failure) => {
                        let response = refusal.respond(Rejection::forbidden(&failure));
                        Ok(refuse(request, response, "forbidden", &failure))
                    }
                }
            })
        }
    }
}
