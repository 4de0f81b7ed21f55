//! Outbound: [`AddAccessTokenLayer`] puts `Authorization: Bearer <token>` (marked sensitive)
//! on the requests to the API sent through any tower `Service<http::Request<B>>` — a
//! hyper-util client, a tonic channel, a tower client stack.
//!
//! The token goes only to the API's origins (scheme, host and port of an absolute request
//! URI), named when the layer is built ([`AddAccessTokenLayer::new`], or
//! [`AddAccessTokenLayer::builder`] for several): a request to any other origin, or with a
//! relative URI, is **sent without the token** (logged at debug under
//! `tower_azure_auth::credentials`). An origin on plain http is refused when the layer is
//! built unless it is a loopback address (`127.0.0.1`, `::1`, `localhost`) or
//! [`AddAccessTokenLayerBuilder::allow_http`] is on.
//!
//! Tokens come from a [`TokenSource`] (usually a
//! [`ConfidentialClient`](crate::credentials::ConfidentialClient), whose cache makes this
//! cheap). When the called API answers 401 with `WWW-Authenticate: Bearer
//! error="invalid_token"`, the layer asks for a refreshed token and, **if it differs from the
//! refused one and the request body is empty** (`http_body::Body::is_end_stream()` was true
//! when the request came in, e.g. a GET), sends the request once more with the new token and
//! an empty body made with `B::default()`. Requests with a body are not replayed (the body
//! has been consumed): their 401 goes back to the caller, and the next request carries the
//! refreshed token. The token source rate-limits these forced refreshes (see
//! [`TokenSource::token`]), so an API that refuses every token cannot make the client hammer
//! the authority.
//!
//! A claims challenge (continuous access evaluation: `401` with `WWW-Authenticate: Bearer
//! error="insufficient_claims", claims="<base64>"`, or its gRPC form) is answered the same
//! way, once: the layer asks the source for a token carrying those claims
//! ([`TokenSource::token_with_claims`]; a
//! [`ConfidentialClient`](crate::credentials::ConfidentialClient) sends them merged with its
//! client capabilities, bypassing its cache) and replays a replayable request with it. A
//! second challenge in a row goes back to the caller, so a hostile API cannot make the layer
//! loop.
//!
//! For a source on an Entra authority (a `ConfidentialClient`), every scope must end with
//! `/.default`: [`AddAccessTokenLayer::new`] refuses other scopes when the layer is built.
//!
//! # gRPC (tonic)
//!
//! In front of a tonic `Channel` the layer puts the token in the `authorization` metadata.
//! Build the generated client with `with_origin(service, origin)` so that requests carry the
//! absolute URI the origin check needs (a bare `new(service)` sends relative URIs, which
//! never get the token). gRPC's counterpart of the `401` (HTTP `200` with `grpc-status: 16`,
//! `UNAUTHENTICATED`, and a `www-authenticate` `Bearer error="invalid_token"` in the
//! trailers-only headers) is treated the same way. With the `tonic` feature, a call whose
//! request body is complete when it is sent (every unary call; at most 4 MiB) is kept in
//! memory and **replayed once** with the refreshed token; a streaming call that is still
//! producing messages is not replayed.
//!
//! Errors: the service's error type is [`BoxError`]; a token failure is a
//! [`TokenError`](crate::credentials::TokenError) inside (downcast it), the inner service's
//! error is passed through boxed.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_azure_auth::credentials::{AccessToken, BoxFuture, TokenError, TokenSource};
//! use tower_azure_auth::layers::AddAccessTokenLayer;
//!
//! // A token source that hands out a fixed token for one scope, and refuses others.
//! #[derive(Debug)]
//! struct Fixed;
//! impl TokenSource for Fixed {
//!     fn token<'a>(&'a self, scopes: &'a [String], _force: bool) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
//!         Box::pin(async move {
//!             if scopes.iter().any(|s| !s.ends_with("/.default")) {
//!                 return Err(TokenError::InvalidScope { scope: scopes.join(" "), reason: "must end with /.default" });
//!             }
//!             Ok(AccessToken::new("eyJ.abc.def", SystemTime::now() + Duration::from_secs(3600), scopes.to_vec()))
//!         })
//!     }
//! }
//!
//! // The "API": 200 with the right bearer token, else 401.
//! let api = tower::service_fn(|request: Request<String>| async move {
//!     let ok = request.headers().get("authorization").is_some_and(|v| v == "Bearer eyJ.abc.def");
//!     let status = if ok { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
//!     Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(String::new()).unwrap())
//! });
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! # async fn run<S>(api: S) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
//! # where S: Service<Request<String>, Response = Response<String>, Error = std::convert::Infallible> + Clone + Send + 'static, S::Future: Send + 'static {
//! let layer = AddAccessTokenLayer::new(Fixed, ["api://weather/.default"], "https://weather.example.com")?;
//! let mut client = ServiceBuilder::new().layer(layer).service(api.clone());
//! let to_api = Request::get("https://weather.example.com/weatherforecast").body(String::new())?;
//! let response = client.ready().await?.call(to_api).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // Another origin: the request is sent without the token.
//! let elsewhere = Request::get("https://other.example.org/weatherforecast").body(String::new())?;
//! let response = client.ready().await?.call(elsewhere).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//!
//! // No token can be obtained for this scope: the call fails with the TokenError inside.
//! let layer = AddAccessTokenLayer::new(Fixed, ["api://weather/read"], "https://weather.example.com")?;
//! let mut refused = ServiceBuilder::new().layer(layer).service(api);
//! let to_api = Request::get("https://weather.example.com/weatherforecast").body(String::new())?;
//! let error = refused.ready().await?.call(to_api).await.unwrap_err();
//! assert!(error.downcast_ref::<TokenError>().is_some(), "{error}");
//! # Ok(()) }
//! # run(api).await.unwrap();
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::POLLED_AFTER_COMPLETION;
#[cfg(doc)]
use crate::credentials::TokenSource;
use crate::credentials::{bearer_auth_builder, BearerAuth};

/// The error type of [`AddAccessToken`]: a boxed [`TokenError`](crate::credentials::TokenError)
/// or the inner service's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Adds `Authorization: Bearer <token>` to requests to the API's origins; see the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct AddAccessTokenLayer {
    auth: BearerAuth,
}

bearer_auth_builder!(AddAccessTokenLayer, AddAccessTokenLayerBuilder, "layer");

impl<S> Layer<S> for AddAccessTokenLayer {
    type Service = AddAccessToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AddAccessToken {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service made by [`AddAccessTokenLayer`].
#[derive(Clone, Debug)]
pub struct AddAccessToken<S> {
    inner: S,
    auth: BearerAuth,
}

inner_service_accessors!(AddAccessToken<S>);

impl<S, B, ResBody> Service<Request<B>> for AddAccessToken<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Default + Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<Response<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        ResponseFuture {
            future: Some(Box::pin(async move {
                if !auth.allows_uri(request.uri()) {
                    return inner.call(request).await.map_err(Into::into);
                }
                // A gRPC call's complete body is kept for a replay (feature `tonic`).
                let (mut request, kept) = super::replay::keep_body(request).await;
                let replay = (kept.is_some() || request.body().is_end_stream())
                    .then(|| Replay::of(&request));
                let sent = auth.header(false).await?;
                request.headers_mut().insert(AUTHORIZATION, sent.clone());
                let response = inner.call(request).await.map_err(Into::into)?;
                let header = match auth
                    .header_after(response.status(), response.headers())
                    .await
                {
                    None => return Ok(response),
                    Some(Ok(header)) => header,
                    Some(Err(error)) => {
                        tracing::warn!(target: "tower_azure_auth::credentials", %error,
                            "the API refused the token and a new one could not be obtained");
                        return Ok(response);
                    }
                };
                if header == sent {
                    tracing::debug!(target: "tower_azure_auth::credentials",
                        "the API refused the token and no newer one is available yet (forced refreshes are rate-limited); not replayed");
                    return Ok(response);
                }
                let Some(replay) = replay else {
                    tracing::debug!(target: "tower_azure_auth::credentials",
                        "the API refused the token; refreshed it, but the request has a body and is not replayed");
                    return Ok(response);
                };
                tracing::debug!(target: "tower_azure_auth::credentials",
                    "the API refused the token; retrying once with a refreshed token");
                let mut retry = replay.into_request(super::replay::replay_body::<B>(kept));
                retry.headers_mut().insert(AUTHORIZATION, header);
                futures_util::future::poll_fn(|cx| inner.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                inner.call(retry).await.map_err(Into::into)
            })),
        }
    }
}

/// What is needed to send a body-less request again.
struct Replay {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    extensions: http::Extensions,
}

impl Replay {
    fn of<B>(request: &Request<B>) -> Self {
        Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
            extensions: request.extensions().clone(),
        }
    }

    fn into_request<B>(self, body: B) -> Request<B> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers;
        *request.extensions_mut() = self.extensions;
        request
    }
}

/// The response future of [`AddAccessToken`] (boxed: it awaits the token source).
///
/// # Panics
///
/// When polled after it completed.
pub struct ResponseFuture<T> {
    /// `None` once completed.
    future: Option<futures_util::future::BoxFuture<'static, Result<T, BoxError>>>,
}

impl<T> fmt::Debug for ResponseFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<T> Future for ResponseFuture<T> {
    type Output = Result<T, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.future.as_mut().expect(POLLED_AFTER_COMPLETION);
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(output)
    }
}
