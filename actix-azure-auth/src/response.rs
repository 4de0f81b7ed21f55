//! The bridge from the shared [`Rejection`] (`http` 1) to actix-web's `HttpResponse`
//! (`http` 0.2), and the response future of the middlewares.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use actix_web::body::EitherBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{Error, HttpResponse};
use pin_project_lite::pin_project;
use tower_azure_auth::rejection::Rejection;

/// The `tracing` target of the adapter's refusal log lines.
pub(crate) const LOG_TARGET: &str = "actix_azure_auth";

/// Converts the shared [`Rejection`] into an actix-web response: the same status, every
/// header (in order, repeated ones kept) and the same body bytes, so that an actix-web
/// service refuses byte for byte like the Tower layers; and, as there, the cause in the
/// response's extensions ([`AuthError`](tower_azure_auth::AuthError) or
/// [`AuthorizationFailure`](tower_azure_auth::authorization::AuthorizationFailure)), for an
/// outer metrics or logging middleware.
///
/// ```
/// use actix_azure_auth::rejection_response;
/// use tower_azure_auth::rejection::Rejection;
/// use tower_azure_auth::AuthError;
///
/// let response = rejection_response(&Rejection::unauthenticated(&AuthError::missing_token()));
/// assert_eq!(response.status().as_u16(), 401);
/// assert_eq!(response.headers().get("www-authenticate").unwrap(), "Bearer");
/// assert_eq!(response.headers().get("content-type").unwrap(), "application/json");
/// assert!(response.extensions().get::<AuthError>().is_some());
/// ```
pub fn rejection_response(rejection: &Rejection) -> HttpResponse {
    // `http` 0.2 and 1 accept the same status codes, header names and values, so these
    // conversions cannot fail for a `Rejection`; the fallbacks only keep this panic-free.
    let status = StatusCode::from_u16(rejection.status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::with_body(status, rejection.body().clone());
    for (name, value) in rejection.headers() {
        match (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            (Ok(name), Ok(value)) => response.headers_mut().append(name, value),
            _ => {
                tracing::warn!(target: LOG_TARGET, header = %name, "rejection header not representable in actix-web; dropped")
            }
        }
    }
    if let Some(error) = rejection.auth_error() {
        response.extensions_mut().insert(error.clone());
    }
    if let Some(failure) = rejection.authorization_failure() {
        response.extensions_mut().insert(failure.clone());
    }
    response.map_into_boxed_body()
}

/// How the authorization middlewares answer a refusal: the shared response, or the one of a
/// `with_rejection` builder; either way with the cause in the response's extensions.
#[derive(Clone, Default)]
pub(crate) struct Refusal(Option<Arc<dyn Fn(Rejection) -> HttpResponse + Send + Sync>>);

impl Refusal {
    pub(crate) fn new(builder: impl Fn(Rejection) -> HttpResponse + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(builder)))
    }

    /// The response for `rejection`.
    pub(crate) fn respond(&self, rejection: Rejection) -> HttpResponse {
        let Some(builder) = &self.0 else {
            return rejection_response(&rejection);
        };
        let (error, failure) = (
            rejection.auth_error().cloned(),
            rejection.authorization_failure().cloned(),
        );
        let mut response = builder(rejection);
        if let Some(error) = error {
            response.extensions_mut().insert(error);
        }
        if let Some(failure) = failure {
            response.extensions_mut().insert(failure);
        }
        response
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Custom"
        } else {
            "Default"
        })
    }
}

/// The panic message of a [`ResponseFuture`] polled after completion.
const POLLED_AFTER_COMPLETION: &str = "`ResponseFuture` polled after completion";

/// Answers `request` with a refusal, logging one line with the reason.
pub(crate) fn refuse<B>(
    request: ServiceRequest,
    response: HttpResponse,
    kind: &str,
    reason: &dyn fmt::Display,
) -> ServiceResponse<EitherBody<B>> {
    tracing::debug!(
        target: LOG_TARGET,
        method = %request.method(),
        path = request.path(),
        status = response.status().as_u16(),
        %kind,
        %reason,
        "request refused"
    );
    request.into_response(response).map_into_right_body()
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

pin_project! {
    /// The response future of [`ValidateAccessToken`](crate::ValidateAccessToken),
    /// [`RequirePolicy`](crate::RequirePolicy) and [`Authorize`](crate::Authorize): the inner
    /// service's future (no boxing) when the request is decided synchronously, a ready refusal,
    /// or a boxed future while keys are refreshed or an asynchronous authorization handler runs.
    ///
    /// # Panics
    ///
    /// When polled after it completed, as the Tower layers' futures.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] future: F },
        Refused { response: Option<ServiceResponse<EitherBody<B>>> },
        Boxed { future: LocalBoxFuture<Result<ServiceResponse<EitherBody<B>>, Error>> },
        Done,
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn refused(response: ServiceResponse<EitherBody<B>>) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }

    pub(crate) fn boxed(
        future: impl Future<Output = Result<ServiceResponse<EitherBody<B>>, Error>> + 'static,
    ) -> Self {
        Self {
            state: State::Boxed {
                future: Box::pin(future),
            },
        }
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let output = match this.state.as_mut().project() {
            StateProj::Inner { future } => {
                ready!(future.poll(cx)).map(ServiceResponse::map_into_left_body)
            }
            StateProj::Refused { response } => Ok(response.take().expect(POLLED_AFTER_COMPLETION)),
            StateProj::Boxed { future } => ready!(future.as_mut().poll(cx)),
            StateProj::Done => panic!("{}", POLLED_AFTER_COMPLETION),
        };
        this.state.set(State::Done);
        Poll::Ready(output)
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "inner",
            State::Refused { .. } => "refused",
            State::Boxed { .. } => "boxed",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use actix_web::dev::Service as _;
    use actix_web::{test, web, App, HttpMessage as _};
    use tower_azure_auth::authorization::{AuthorizationFailure, Policy};
    use tower_azure_auth::rejection::Rejection;
    use tower_azure_auth::{AuthError, AuthErrorKind, Authority, Claims, TokenValidator};

    use crate::{RequirePolicyLayer, RequireRole, ValidateAccessTokenLayer};

    /// Every refusal carries its cause in the response's extensions, also when a
    /// `with_rejection` builder made the response, so an outer middleware can label it.
    #[actix_web::test]
    async fn refusals_carry_their_cause_in_extensions() {
        let validator = TokenValidator::builder(
            Authority::entra(
                "https://login.microsoftonline.com/",
                "contoso.onmicrosoft.com",
            )
            .unwrap(),
        )
        .client_id("b178f3a5-7588-492a-924f-72d7887b7e48")
        .build()
        .unwrap();
        let custom = ValidateAccessTokenLayer::new(validator.clone())
            .with_rejection(|_: &AuthError| actix_web::HttpResponse::Unauthorized().finish());
        let default = test::init_service(
            App::new()
                .route("/", web::get().to(|| async { "ok" }))
                .wrap(ValidateAccessTokenLayer::new(validator)),
        )
        .await;
        let swapped = test::init_service(
            App::new()
                .route("/", web::get().to(|| async { "ok" }))
                .wrap(custom),
        )
        .await;
        for (name, response) in [
            (
                "default",
                test::call_service(&default, test::TestRequest::get().uri("/").to_request()).await,
            ),
            (
                "with_rejection",
                test::call_service(&swapped, test::TestRequest::get().uri("/").to_request()).await,
            ),
        ] {
            assert_eq!(response.status(), 401, "{name}");
            let kind = response
                .response()
                .extensions()
                .get::<AuthError>()
                .map(AuthError::kind);
            assert_eq!(kind, Some(AuthErrorKind::MissingToken), "{name}");
        }

        let with_claims = |request: actix_web::dev::ServiceRequest| {
            let claims = serde_json::json!({ "roles": ["reader"] });
            request
                .extensions_mut()
                .insert(Claims::from_json(claims).unwrap());
            request
        };
        let default = test::init_service(
            App::new()
                .route("/", web::get().to(|| async { "ok" }))
                .wrap(RequireRole("service-api"))
                .wrap_fn(move |request, service| service.call(with_claims(request))),
        )
        .await;
        let policy = Policy::builder().require_role("service-api").build();
        let swapped = test::init_service(
            App::new()
                .route("/", web::get().to(|| async { "ok" }))
                .wrap(
                    RequirePolicyLayer::new(policy).with_rejection(|rejection: Rejection| {
                        actix_web::HttpResponse::build(
                            actix_web::http::StatusCode::from_u16(rejection.status().as_u16())
                                .unwrap(),
                        )
                        .body("custom")
                    }),
                )
                .wrap_fn(move |request, service| service.call(with_claims(request))),
        )
        .await;
        for (name, response) in [
            (
                "default",
                test::call_service(&default, test::TestRequest::get().uri("/").to_request()).await,
            ),
            (
                "with_rejection",
                test::call_service(&swapped, test::TestRequest::get().uri("/").to_request()).await,
            ),
        ] {
            assert_eq!(response.status(), 403, "{name}");
            let extensions = response.response().extensions();
            assert!(extensions.get::<AuthorizationFailure>().is_some(), "{name}");
        }
    }
}
