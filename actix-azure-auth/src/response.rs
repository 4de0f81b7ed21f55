//! The bridge from the shared [`Rejection`] (`http` 1) to actix-web's `HttpResponse`
//! (`http` 0.2), and the response future of the middlewares.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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
/// service refuses byte for byte like the Tower layers.
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
    response.map_into_boxed_body()
}

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
    /// The response future of [`ValidateAccessTokenMiddleware`](crate::ValidateAccessTokenMiddleware)
    /// and [`RequirePolicyMiddleware`](crate::RequirePolicyMiddleware): the inner service's
    /// future (no boxing) when the request is decided synchronously, a ready refusal, or a boxed
    /// future while keys are refreshed or an asynchronous authorization handler runs.
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
        match self.project().state.project() {
            StateProj::Inner { future } => {
                future.poll(cx).map_ok(ServiceResponse::map_into_left_body)
            }
            StateProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled after completion: never ready again, never a panic.
                None => Poll::Pending,
            },
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "inner",
            State::Refused { .. } => "refused",
            State::Boxed { .. } => "boxed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
