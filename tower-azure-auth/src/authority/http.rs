//! The bounded HTTP client every fetch of the crate goes through ([`HttpClient`]: timeouts,
//! body caps, no redirects, proxies), and its error ([`FetchError`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::ConfigError;
use crate::telemetry::spans;

/// An HTTP fetch that failed. Messages name the URL, never a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connection, TLS or timeout failure ([`is_timeout`](Self::is_timeout) tells a timeout
    /// apart).
    #[error("request to {url} failed")]
    Transport {
        /// The URL.
        url: String,
        /// The cause (the HTTP client's error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A non-success status.
    #[error("{url} answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The server answered with a redirect (3xx). Redirects are never followed, so a
    /// request (and the credential or token it carries) is never sent again elsewhere.
    #[error("{url} redirected (HTTP {status}{}); redirects are never followed", location.as_deref().map(|l| format!(" to {l}")).unwrap_or_default())]
    Redirected {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// Where it pointed (`Location` without its query), when it said.
        location: Option<String>,
    },
    /// The body is larger than the limit.
    #[error("{url} sent more than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The body is not the expected JSON.
    #[error("{url} sent an unexpected body")]
    Json {
        /// The URL.
        url: String,
        /// The cause (the JSON parser's error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The body is JSON but its content is unusable.
    #[error("{url} sent an unusable document: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl FetchError {
    /// Whether the request timed out (connect or whole-request timeout of the
    /// [`HttpClient`]): worth trying again later, and worth a longer timeout when it keeps
    /// happening.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        let Self::Transport { source, .. } = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(error) = cause {
            if error
                .downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_timeout)
            {
                return true;
            }
            cause = error.source();
        }
        false
    }
}

/// The HTTP client for metadata, keys, tokens, Key Vault and managed identity: bounded time
/// (connect 5 s, whole request 10 s by default), bounded bodies (1 MiB by default), no
/// redirects. Proxies come from `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` unless
/// [`HttpClientBuilder::proxy`] or [`HttpClientBuilder::no_proxy`] says otherwise; the
/// managed identity endpoints on plain http (IMDS, App Service's local endpoint) are always
/// called directly, as Azure requires for IMDS.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    max_body: usize,
    /// What the client was built from, to build its proxy-less twin.
    settings: Arc<HttpClientBuilder>,
}

/// Where requests go through.
#[derive(Clone)]
enum ProxyChoice {
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` (reqwest's default).
    Environment,
    /// Every request through this proxy.
    Url(String),
    /// No proxy at all.
    Direct,
}

impl fmt::Debug for ProxyChoice {
    /// A proxy URL may carry credentials (`http://user:password@proxy:3128`): only its
    /// scheme, host and port are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Environment => f.write_str("Environment"),
            Self::Direct => f.write_str("Direct"),
            Self::Url(url) => match Url::parse(url) {
                Ok(url) => write!(
                    f,
                    "Url({}://{}{})",
                    url.scheme(),
                    url.host_str().unwrap_or(""),
                    url.port().map(|p| format!(":{p}")).unwrap_or_default()
                ),
                Err(_) => f.write_str("Url(<unparsable>)"),
            },
        }
    }
}

/// Builds an [`HttpClient`].
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpClientBuilder {
    timeout: Duration,
    connect_timeout: Duration,
    max_body: usize,
    root_certificates: Vec<Vec<u8>>,
    proxy: ProxyChoice,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_body: 1024 * 1024,
            root_certificates: Vec::new(),
            proxy: ProxyChoice::Environment,
        }
    }
}

impl HttpClientBuilder {
    /// The whole-request timeout (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connect timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest body read (default 1 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Trusts one more root certificate (DER), e.g. a local test CA.
    pub fn add_root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(der.into());
        self
    }

    /// Sends every request (http and https) through this proxy, e.g.
    /// `http://proxy.contoso.com:3128`, instead of the one the environment names. Managed
    /// identity endpoints on plain http are still called directly.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = ProxyChoice::Url(url.into());
        self
    }

    /// Uses no proxy at all, whatever the environment says.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyChoice::Direct;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// When TLS cannot be initialised, a root certificate is not DER or the proxy URL is not
    /// usable.
    pub fn build(self) -> Result<HttpClient, ConfigError> {
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tower-azure-auth/", env!("CARGO_PKG_VERSION")));
        for der in &self.root_certificates {
            let cert = reqwest::Certificate::from_der(der).map_err(ConfigError::http_client)?;
            builder = builder.add_root_certificate(cert);
        }
        builder = match &self.proxy {
            ProxyChoice::Environment => builder,
            ProxyChoice::Url(url) => {
                builder.proxy(reqwest::Proxy::all(url.as_str()).map_err(ConfigError::http_client)?)
            }
            ProxyChoice::Direct => builder.no_proxy(),
        };
        Ok(HttpClient {
            client: builder.build().map_err(ConfigError::http_client)?,
            max_body: self.max_body,
            settings: Arc::new(self),
        })
    }
}

impl HttpClient {
    /// A client with the defaults.
    ///
    /// # Errors
    ///
    /// When TLS cannot be initialised.
    pub fn new() -> Result<Self, ConfigError> {
        Self::builder().build()
    }

    /// A builder.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::default()
    }

    /// Builds the client from a `reqwest::ClientBuilder` the caller configured (its timeouts,
    /// TLS, proxy and other settings apply); bodies are bounded by `max_body`.
    ///
    /// The builder's redirect policy is replaced by [`reqwest::redirect::Policy::none`]: this
    /// client never follows a redirect, so a token endpoint answering 307 cannot make it post
    /// the client assertion or secret to another origin (the 3xx becomes
    /// [`FetchError::Redirected`]). A built `reqwest::Client` is not accepted because its
    /// redirect policy can be neither read nor changed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_azure_auth::HttpClient;
    ///
    /// let builder = reqwest::Client::builder().timeout(Duration::from_secs(3));
    /// let http = HttpClient::from_reqwest(builder, 64 * 1024)?;
    /// assert_eq!(http.max_body(), 64 * 1024);
    /// # Ok::<(), tower_azure_auth::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::HttpClient`] when reqwest cannot build the client.
    pub fn from_reqwest(
        builder: reqwest::ClientBuilder,
        max_body: usize,
    ) -> Result<Self, ConfigError> {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ConfigError::http_client)?;
        Ok(Self {
            client,
            max_body,
            settings: Arc::new(HttpClientBuilder::default().max_body(max_body)),
        })
    }

    /// The same client without any proxy (for a client from [`HttpClient::from_reqwest`]:
    /// the default timeouts and roots), for endpoints that must not be proxied.
    ///
    /// # Errors
    ///
    /// When the client cannot be built.
    pub(crate) fn without_proxy(&self) -> Result<Self, ConfigError> {
        if matches!(self.settings.proxy, ProxyChoice::Direct) {
            return Ok(self.clone());
        }
        (*self.settings).clone().no_proxy().build()
    }

    /// The underlying client.
    #[must_use]
    pub(crate) fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    /// The body limit.
    #[must_use]
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Sends a request and returns the response, whatever its status except a redirect.
    ///
    /// # Errors
    ///
    /// [`FetchError::Transport`]; [`FetchError::Redirected`] for any 3xx answer (redirects
    /// are never followed).
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, FetchError> {
        use tracing::Instrument as _;
        let (client, request) = request.build_split();
        let request = request.map_err(|source| FetchError::Transport {
            url: url.to_owned(),
            source: Box::new(source),
        })?;
        let span = spans::http_client(request.method().as_str(), request.url());
        let response = client
            .execute(request)
            .instrument(span.clone())
            .await
            .map_err(|source| {
                spans::http_error(
                    &span,
                    if source.is_timeout() {
                        "timeout"
                    } else {
                        "transport"
                    },
                );
                FetchError::Transport {
                    url: url.to_owned(),
                    source: Box::new(source),
                }
            })?;
        spans::http_status(&span, response.status().as_u16());
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(|location| {
                    location
                        .split(['?', '#'])
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                });
            return Err(FetchError::Redirected {
                url: url.to_owned(),
                status: response.status().as_u16(),
                location,
            });
        }
        Ok(response)
    }

    /// Reads a body up to the limit.
    ///
    /// # Errors
    ///
    /// [`FetchError::TooLarge`] past the limit, [`FetchError::Transport`] on a broken body.
    pub(crate) async fn read_body(
        &self,
        mut response: reqwest::Response,
    ) -> Result<Bytes, FetchError> {
        let url = response.url().to_string();
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body as u64)
        {
            return Err(FetchError::TooLarge {
                url,
                limit: self.max_body,
            });
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|source| FetchError::Transport {
                url: url.clone(),
                source: Box::new(source),
            })?
        {
            if body.len() + chunk.len() > self.max_body {
                return Err(FetchError::TooLarge {
                    url,
                    limit: self.max_body,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// GETs a JSON document; non-2xx statuses are errors.
    ///
    /// # Errors
    ///
    /// See [`FetchError`].
    pub async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T, FetchError> {
        let response = self
            .send(self.client.get(url.clone()), url.as_str())
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let body = self.read_body(response).await?;
        serde_json::from_slice(&body).map_err(|source| FetchError::Json {
            url: url.to_string(),
            source: Box::new(source),
        })
    }
}
