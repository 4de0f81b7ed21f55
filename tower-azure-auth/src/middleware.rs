//! A [`reqwest_middleware::Middleware`] that attaches access tokens: the reqwest counterpart
//! of [`AddAccessTokenLayer`](crate::layers::AddAccessTokenLayer), sharing its
//! [`TokenSource`]. (The module is not called `reqwest`, which would clash with the crate.)
//!
//! The token goes only to the API's origins (scheme, host and port), named when the middleware
//! is built ([`AccessTokenMiddleware::new`], or [`AccessTokenMiddleware::builder`] for several):
//! a request to any other origin is **sent without the token** (logged at debug under
//! `tower_azure_auth::credentials`), so a client shared with other calls, or a URL built from
//! data, never hands the API's token to another host. An origin on plain http is refused when
//! the middleware is built unless it is a loopback address (`127.0.0.1`, `::1`, `localhost`)
//! or [`AccessTokenMiddlewareBuilder::allow_http`] is on.
//!
//! A request to the API gets `Authorization: Bearer <token>` (marked sensitive). When the API
//! answers 401 with `WWW-Authenticate: Bearer error="invalid_token"`, a refreshed token is
//! asked for and, **if it differs from the refused one and reqwest can clone the request**
//! ([`reqwest::Request::try_clone`]: any request without a streaming body), the request is
//! sent once more with it; otherwise the 401 is returned. The token source rate-limits these
//! forced refreshes (see [`TokenSource::token`]), so an API that refuses every token cannot
//! make the client hammer the authority. Token failures are
//! [`reqwest_middleware::Error::Middleware`] wrapping the
//! [`TokenError`](crate::credentials::TokenError).
//!
//! A claims challenge (continuous access evaluation: `401` with `WWW-Authenticate: Bearer
//! error="insufficient_claims", claims="<base64>"`) gets a token carrying those claims
//! ([`TokenSource::token_with_claims`]) and the request, if it can be cloned, is sent once
//! more with it; a second challenge in a row is returned to the caller. For an Entra
//! [`ConfidentialClient`](crate::credentials::ConfidentialClient), a scope without
//! `/.default` is refused when the middleware is built.
//!
//! ```no_run
//! use tower_azure_auth::{Authority, credentials::{ClientCertificate, ConfidentialClient}};
//! use tower_azure_auth::middleware::AccessTokenMiddleware;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ConfidentialClient::builder("b178f3a5-7588-492a-924f-72d7887b7e48")
//!     .authority(Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
//!     .certificate(ClientCertificate::from_file("client.pfx", Some("password"))?)
//!     .build()?;
//! let middleware = AccessTokenMiddleware::new(
//!     client, ["api://weather/.default"], "https://weather.example.com")?;
//! let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(middleware)
//!     .build();
//! let forecast = http.get("https://weather.example.com/weatherforecast").send().await?;
//! assert!(forecast.status().is_success());
//! // Another origin: sent, without the token.
//! let other = http.get("https://status.example.org/").send().await?;
//! # let _ = other;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;

use http::header::AUTHORIZATION;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};

#[cfg(doc)]
use crate::credentials::TokenSource;
use crate::credentials::{bearer_auth_builder, BearerAuth};

/// Attaches access tokens to reqwest requests to the API's origins; see the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct AccessTokenMiddleware {
    auth: BearerAuth,
}

bearer_auth_builder!(
    AccessTokenMiddleware,
    AccessTokenMiddlewareBuilder,
    "middleware"
);

impl AccessTokenMiddleware {
    async fn run(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if !self.auth.allows_url(request.url()) {
            return next.run(request, extensions).await;
        }
        let replay = request.try_clone();
        let sent = self
            .auth
            .header(false)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        request.headers_mut().insert(AUTHORIZATION, sent.clone());
        let response = next.clone().run(request, extensions).await?;
        let header = match self
            .auth
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
        let Some(mut retry) = replay else {
            tracing::debug!(target: "tower_azure_auth::credentials",
                "the API refused the token; refreshed it, but the request cannot be cloned and is not replayed");
            return Ok(response);
        };
        tracing::debug!(target: "tower_azure_auth::credentials",
            "the API refused the token; retrying once with a refreshed token");
        retry.headers_mut().insert(AUTHORIZATION, header);
        next.run(retry, extensions).await
    }
}

impl Middleware for AccessTokenMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: reqwest::Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> Pin<
        Box<
            dyn Future<Output = reqwest_middleware::Result<reqwest::Response>>
                + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.run(req, extensions, next))
    }
}
