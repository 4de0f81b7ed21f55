//! A [`reqwest_middleware::Middleware`] that attaches access tokens: the reqwest counterpart
//! of [`AddAccessTokenLayer`](crate::layers::AddAccessTokenLayer), sharing its
//! [`TokenSource`]. (The module is not called `reqwest`, which would clash with the crate.)
//!
//! Every request gets `Authorization: Bearer <token>` (marked sensitive). When the API answers
//! 401 with `WWW-Authenticate: Bearer error="invalid_token"`, the token is force-refreshed
//! once and the request is sent again **if reqwest can clone it**
//! ([`reqwest::Request::try_clone`]: any request without a streaming body); otherwise the 401
//! is returned. Token failures are [`reqwest_middleware::Error::Middleware`] wrapping the
//! [`TokenError`](crate::credentials::TokenError).
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
//! let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(AccessTokenMiddleware::new(client, ["api://weather/.default"]))
//!     .build();
//! let forecast = http.get("https://weather.example.com/weatherforecast").send().await?;
//! assert!(forecast.status().is_success());
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::credentials::{is_invalid_token, BearerAuth, TokenSource};

/// Attaches access tokens to reqwest requests; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct AccessTokenMiddleware {
    auth: BearerAuth,
}

impl AccessTokenMiddleware {
    /// Tokens for `scopes` (e.g. `["api://{api client id}/.default"]`) from `source`.
    pub fn new<T, I, S>(source: T, scopes: I) -> Self
    where
        T: TokenSource,
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::from_shared(Arc::new(source), scopes)
    }

    /// Like [`new`](Self::new), for a source shared with others (e.g. a tower layer).
    pub fn from_shared<I, S>(source: Arc<dyn TokenSource>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            auth: BearerAuth::new(source, scopes),
        }
    }

    async fn run(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let replay = request.try_clone();
        let header = self
            .auth
            .header(false)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        request.headers_mut().insert(AUTHORIZATION, header);
        let response = next.clone().run(request, extensions).await?;
        if !is_invalid_token(response.status(), response.headers()) {
            return Ok(response);
        }
        let header = match self.auth.header(true).await {
            Ok(header) => header,
            Err(error) => {
                tracing::warn!(target: "tower_azure_auth::credentials", %error,
                    "the API refused the token and a new one could not be obtained");
                return Ok(response);
            }
        };
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
