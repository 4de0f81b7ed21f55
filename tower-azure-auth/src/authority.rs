//! Authorities (Entra ID `Instance` + `TenantId`, or any OpenID Connect issuer), their
//! discovery documents, and the bounded HTTP client every fetch goes through.
//!
//! ```
//! use tower_azure_auth::authority::Authority;
//!
//! let entra = Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com").unwrap();
//! assert_eq!(
//!     entra.token_endpoint().unwrap().as_str(),
//!     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
//! );
//! assert_eq!(
//!     entra.metadata_url().as_str(),
//!     "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"
//! );
//! // Plain http is refused except on loopback.
//! assert!(Authority::oidc("http://idp.example.com").is_err());
//! assert!(Authority::oidc("http://127.0.0.1:8080/realm").is_ok());
//! ```

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use crate::config::AzureAdOptions;
use crate::error::ConfigError;
use crate::telemetry::spans;

/// Hosts of Entra ID's clouds: an `Authority` on one of these is treated as Entra.
const ENTRA_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.partner.microsoftonline.cn",
    "login.chinacloudapi.cn",
    "login.microsoft.com",
    "login.windows.net",
    "login.sovcloud-identity.fr",
    "login.sovcloud-identity.de",
    "login.sovcloud-identity.sg",
];

/// Where tokens come from.
#[derive(Clone, PartialEq, Eq)]
pub struct Authority {
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    /// Entra-shaped: `{instance}{tenant}` with v1 and v2 endpoints below it.
    Entra { instance: Url, tenant: String },
    /// Any OpenID Connect issuer.
    Oidc { url: Url },
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Entra { instance, tenant } => f
                .debug_struct("Authority::Entra")
                .field("instance", &instance.as_str())
                .field("tenant", tenant)
                .finish(),
            Kind::Oidc { url } => f
                .debug_struct("Authority::Oidc")
                .field("url", &url.as_str())
                .finish(),
        }
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Entra { instance, tenant } => write!(f, "{instance}{tenant}"),
            Kind::Oidc { url } => f.write_str(url.as_str().trim_end_matches('/')),
        }
    }
}

/// Checks that `url` is https, or http on a loopback host.
///
/// # Errors
///
/// [`ConfigError::InsecureUrl`] for plain http elsewhere, [`ConfigError::Invalid`] for other
/// schemes.
pub fn require_secure(url: &Url, key: &str) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(ConfigError::InsecureUrl {
            url: url.to_string(),
        }),
        other => Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("unsupported URL scheme `{other}` in `{url}`"),
        }),
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn parse_url(value: &str, key: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim()).map_err(|e| ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("`{value}` is not a URL: {e}"),
    })?;
    require_secure(&url, key)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("`{value}` must not have a query or fragment"),
        });
    }
    Ok(url)
}

fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 256
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

impl Authority {
    /// An Entra ID authority from `Instance` (e.g. `https://login.microsoftonline.com/`) and
    /// `TenantId` (GUID, domain, `common` or `organizations`). Any instance URL is accepted
    /// (a local dev authority too) as long as it is https or loopback http.
    ///
    /// # Errors
    ///
    /// When the instance is not a usable URL or the tenant is not a plain name.
    pub fn entra(instance: &str, tenant: &str) -> Result<Self, ConfigError> {
        let mut instance = parse_url(instance, "AzureAd:Instance")?;
        if !instance.path().ends_with('/') {
            let path = format!("{}/", instance.path());
            instance.set_path(&path);
        }
        let tenant = tenant.trim();
        if !valid_tenant(tenant) {
            return Err(ConfigError::Invalid {
                key: "AzureAd:TenantId".into(),
                reason: format!("`{tenant}` is not a tenant id or domain"),
            });
        }
        Ok(Self {
            kind: Kind::Entra {
                instance,
                tenant: tenant.to_owned(),
            },
        })
    }

    /// An authority from an `Authority` URL. On an Entra host
    /// (`login.microsoftonline.com` …) the tenant is read from the path (`/{tenant}` or
    /// `/{tenant}/v2.0`) and Entra's rules apply; any other URL is an OpenID Connect issuer.
    ///
    /// # Errors
    ///
    /// When the URL is not usable.
    pub fn oidc(authority: &str) -> Result<Self, ConfigError> {
        let url = parse_url(authority, "AzureAd:Authority")?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if ENTRA_HOSTS.contains(&host.as_str()) {
            let segments: Vec<&str> = url
                .path_segments()
                .map(|s| s.filter(|p| !p.is_empty()).collect())
                .unwrap_or_default();
            return match segments.as_slice() {
                [tenant] | [tenant, "v2.0"] => {
                    let instance = format!("{}://{}/", url.scheme(), host);
                    Self::entra(&instance, tenant)
                }
                _ => Err(ConfigError::Invalid {
                    key: "AzureAd:Authority".into(),
                    reason: format!(
                        "`{authority}` should be https://{host}/{{tenant}} or https://{host}/{{tenant}}/v2.0"
                    ),
                }),
            };
        }
        Ok(Self {
            kind: Kind::Oidc { url },
        })
    }

    /// From options: `Authority` if set, else `Instance` + `TenantId`.
    ///
    /// # Errors
    ///
    /// When neither is set, or the values are not usable.
    pub fn from_parts(
        authority: Option<&str>,
        instance: Option<&str>,
        tenant: Option<&str>,
    ) -> Result<Self, ConfigError> {
        if let Some(authority) = authority.filter(|a| !a.trim().is_empty()) {
            return Self::oidc(authority);
        }
        let instance = instance
            .filter(|s| !s.trim().is_empty())
            .unwrap_or("https://login.microsoftonline.com/");
        match tenant.filter(|s| !s.trim().is_empty()) {
            Some(tenant) => Self::entra(instance, tenant),
            None => Err(ConfigError::Missing {
                key: "AzureAd:TenantId",
                hint: "set TenantId (with Instance) or Authority",
            }),
        }
    }

    /// From the `AzureAd` section.
    ///
    /// # Errors
    ///
    /// See [`Authority::from_parts`].
    pub fn from_options(options: &AzureAdOptions) -> Result<Self, ConfigError> {
        Self::from_parts(
            options.authority.as_deref(),
            options.instance.as_deref(),
            options.tenant_id.as_deref(),
        )
    }

    /// Whether Entra's rules (v1 + v2 issuers, tenant templates, PS256 assertions) apply.
    #[must_use]
    pub fn is_entra(&self) -> bool {
        matches!(self.kind, Kind::Entra { .. })
    }

    /// The tenant, for Entra authorities.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        match &self.kind {
            Kind::Entra { tenant, .. } => Some(tenant),
            Kind::Oidc { .. } => None,
        }
    }

    /// Whether the tenant is `common`, `organizations` or `consumers` (multi-tenant).
    #[must_use]
    pub fn is_multi_tenant(&self) -> bool {
        self.tenant().is_some_and(|t| {
            ["common", "organizations", "consumers"]
                .iter()
                .any(|m| t.eq_ignore_ascii_case(m))
        })
    }

    fn join(base: &Url, path: &str) -> Url {
        // `base` ends with '/', `path` is relative: join cannot fail.
        base.join(path).unwrap_or_else(|_| base.clone())
    }

    fn with_trailing_slash(url: &Url) -> Url {
        let mut url = url.clone();
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        url
    }

    /// The discovery document (v2 for Entra).
    #[must_use]
    pub fn metadata_url(&self) -> Url {
        match &self.kind {
            Kind::Entra { instance, tenant } => Self::join(
                instance,
                &format!("{tenant}/v2.0/.well-known/openid-configuration"),
            ),
            Kind::Oidc { url } => Self::join(
                &Self::with_trailing_slash(url),
                ".well-known/openid-configuration",
            ),
        }
    }

    /// The v1 discovery document (Entra only): its `issuer` is the v1 issuer
    /// (`https://sts.windows.net/{tenantid}/` on the public cloud).
    #[must_use]
    pub fn v1_metadata_url(&self) -> Option<Url> {
        match &self.kind {
            Kind::Entra { instance, tenant } => Some(Self::join(
                instance,
                &format!("{tenant}/.well-known/openid-configuration"),
            )),
            Kind::Oidc { .. } => None,
        }
    }

    /// The v2 token endpoint for Entra authorities; `None` for other issuers (read it from
    /// the discovery document).
    #[must_use]
    pub fn token_endpoint(&self) -> Option<Url> {
        match &self.kind {
            Kind::Entra { instance, tenant } => {
                Some(Self::join(instance, &format!("{tenant}/oauth2/v2.0/token")))
            }
            Kind::Oidc { .. } => None,
        }
    }
}

/// The parts of an OpenID Connect discovery document this library reads.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct OidcMetadata {
    /// `issuer`; for Entra's multi-tenant metadata a template with `{tenantid}`.
    pub issuer: String,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// `token_endpoint`.
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

impl OidcMetadata {
    /// Fetches and parses a discovery document.
    ///
    /// # Errors
    ///
    /// See [`FetchError`].
    pub async fn fetch(client: &HttpClient, url: &Url) -> Result<Self, FetchError> {
        let metadata: Self = client.get_json(url).await?;
        let jwks = Url::parse(&metadata.jwks_uri).map_err(|e| FetchError::Invalid {
            url: url.to_string(),
            reason: format!("jwks_uri `{}` is not a URL: {e}", metadata.jwks_uri),
        })?;
        require_secure(&jwks, "jwks_uri").map_err(|e| FetchError::Invalid {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(metadata)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_proxy_credentials() {
        let builder = HttpClient::builder().proxy("http://alice:s3cret@proxy.contoso.com:3128");
        let debug = format!("{builder:?}");
        assert!(
            debug.contains("Url(http://proxy.contoso.com:3128)"),
            "{debug}"
        );
        assert!(
            !debug.contains("s3cret") && !debug.contains("alice"),
            "{debug}"
        );
        let client = builder.build().unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn authority_forms() {
        struct Case {
            name: &'static str,
            authority: Option<&'static str>,
            instance: Option<&'static str>,
            tenant: Option<&'static str>,
            metadata: Result<&'static str, &'static str>,
        }
        let cases = [
            Case {
                name: "instance + tenant",
                authority: None,
                instance: Some("https://login.microsoftonline.com/"),
                tenant: Some("t1"),
                metadata: Ok(
                    "https://login.microsoftonline.com/t1/v2.0/.well-known/openid-configuration",
                ),
            },
            Case {
                name: "instance without trailing slash",
                authority: None,
                instance: Some("http://127.0.0.1:5100"),
                tenant: Some("t1"),
                metadata: Ok("http://127.0.0.1:5100/t1/v2.0/.well-known/openid-configuration"),
            },
            Case {
                name: "entra authority with v2.0",
                authority: Some("https://login.microsoftonline.com/t2/v2.0"),
                instance: None,
                tenant: None,
                metadata: Ok(
                    "https://login.microsoftonline.com/t2/v2.0/.well-known/openid-configuration",
                ),
            },
            Case {
                name: "generic issuer",
                authority: Some("https://idp.example.com/realms/x"),
                instance: None,
                tenant: None,
                metadata: Ok("https://idp.example.com/realms/x/.well-known/openid-configuration"),
            },
            Case {
                name: "http elsewhere than loopback",
                authority: Some("http://idp.example.com"),
                instance: None,
                tenant: None,
                metadata: Err("must use https"),
            },
            Case {
                name: "no tenant",
                authority: None,
                instance: None,
                tenant: None,
                metadata: Err("TenantId"),
            },
            Case {
                name: "tenant with a slash",
                authority: None,
                instance: None,
                tenant: Some("a/b"),
                metadata: Err("not a tenant"),
            },
        ];
        for case in cases {
            let result = Authority::from_parts(case.authority, case.instance, case.tenant);
            match (result, case.metadata) {
                (Ok(a), Ok(expected)) => {
                    assert_eq!(a.metadata_url().as_str(), expected, "{}", case.name)
                }
                (Err(e), Err(expected)) => {
                    assert!(e.to_string().contains(expected), "{}: {e}", case.name)
                }
                (result, expected) => panic!("{}: {result:?} vs {expected:?}", case.name),
            }
        }
    }
}
