//! [`RequirePolicy`], [`RequireRole`] and [`RequireClaim`]: the actix-web counterparts of the
//! Tower authorization layers, deciding with the same [`Policies`] and answering with the same
//! responses.

use std::fmt;
use std::future::{ready, Ready};
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{Error, HttpMessage};
use tower_azure_auth::authorization::{AuthorizationContext, Policies, Policy, RequestFacts};
use tower_azure_auth::rejection::Rejection;
use tower_azure_auth::{AuthError, Claims, ConfigError};

use crate::response::{refuse, rejection_response, ResponseFuture};

/// Requires a [`Policy`]: a registered one by name, the registry's default one, or one built
/// inline; use with `wrap()` on an `App`, a `web::scope` or a `web::resource`, inside
/// [`ValidateAccessToken`](crate::ValidateAccessToken).
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
/// use actix_azure_auth::RequirePolicy;
/// use tower_azure_auth::authorization::{Policies, Policy};
/// use tower_azure_auth::ConfigError;
///
/// let policies = Policies::builder()
///     .add_policy("ValidateAccessTokenPolicy", Policy::builder().require_role("service-api").build())
///     .build();
/// let middleware = RequirePolicy::named(&policies, "ValidateAccessTokenPolicy").unwrap();
/// # let _ = middleware;
/// // a misspelt name fails when the application is built, not per request
/// assert!(matches!(
///     RequirePolicy::named(&policies, "ValidateAccesTokenPolicy"),
///     Err(ConfigError::UnknownPolicy { .. })
/// ));
/// ```
#[derive(Debug, Clone)]
pub struct RequirePolicy {
    policies: Policies,
    policy: Policy,
    /// Whether requirements may look at the request; `false` only for the built-in
    /// single-requirement middlewares, which never do.
    request_facts: bool,
}

impl RequirePolicy {
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
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn middleware<S>(&self, service: S) -> RequirePolicyMiddleware<S> {
        RequirePolicyMiddleware {
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

/// Requires a claim with a value: `.wrap(RequireClaim("azpacr", "2"))`.
///
/// A string claim must equal the value; an array claim must contain it. Answers as the Tower
/// `RequireClaim`, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireClaim<N, V>(pub N, pub V);

impl<R: AsRef<str>> RequireRole<R> {
    fn require(&self) -> RequirePolicy {
        RequirePolicy {
            request_facts: false,
            ..RequirePolicy::new(
                Policy::builder()
                    .require_role(self.0.as_ref().to_owned())
                    .build(),
            )
        }
    }
}

impl<N: AsRef<str>, V: AsRef<str>> RequireClaim<N, V> {
    fn require(&self) -> RequirePolicy {
        RequirePolicy {
            request_facts: false,
            ..RequirePolicy::new(
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
            type Transform = RequirePolicyMiddleware<S>;
            type InitError = ();
            type Future = Ready<Result<Self::Transform, Self::InitError>>;

            fn new_transform(&self, service: S) -> Self::Future {
                let $this = self;
                ready(Ok($require.middleware(service)))
            }
        }
    };
}

transform!(RequirePolicy, [], this => this);
transform!(RequireRole<R>, [R: AsRef<str>], this => this.require());
transform!(RequireClaim<N, V>, [N: AsRef<str>, V: AsRef<str>], this => this.require());

/// The service of [`RequirePolicy`], [`RequireRole`] and [`RequireClaim`].
pub struct RequirePolicyMiddleware<S> {
    service: Rc<S>,
    require: RequirePolicy,
}

impl<S> fmt::Debug for RequirePolicyMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequirePolicyMiddleware")
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

impl<S, B> Service<ServiceRequest> for RequirePolicyMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let claims = request.extensions().get::<Claims>().cloned();
        let Some(claims) = claims else {
            let error = AuthError::missing_token();
            let response = rejection_response(&Rejection::unauthenticated(&error));
            return ResponseFuture::refused(refuse(
                request,
                response,
                error.kind().as_str(),
                &"no verified claims in the request extensions: not authenticated (is ValidateAccessToken wrapped around this middleware?)",
            ));
        };
        let facts = if self.require.request_facts {
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
        let RequirePolicy {
            policies, policy, ..
        } = &self.require;
        let decided = policies.authorize_sync(policy, &context(&claims, facts.as_ref()));
        match decided {
            Some(Ok(())) => ResponseFuture::inner(self.service.call(request)),
            Some(Err(failure)) => {
                let response = rejection_response(&Rejection::forbidden(&failure));
                ResponseFuture::refused(refuse(request, response, "forbidden", &failure))
            }
            None => {
                // An asynchronous handler must be awaited.
                let service = Rc::clone(&self.service);
                let policies = policies.clone();
                let policy = policy.clone();
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
                            let response = rejection_response(&Rejection::forbidden(&failure));
                            Ok(refuse(request, response, "forbidden", &failure))
                        }
                    }
                })
            }
        }
    }
}
