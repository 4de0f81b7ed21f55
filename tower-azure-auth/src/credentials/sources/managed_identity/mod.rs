//! [`ManagedIdentityCredential`]: tokens from the Azure managed identity endpoint of the
//! machine (IMDS on VMs and AKS nodes; `IDENTITY_ENDPOINT` on App Service, Functions and
//! Container Apps).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{debug, warn};
use url::Url;

use crate::authority::{require_secure, FetchError, HttpClient};
use crate::clock::SharedClock;
use crate::error::ConfigError;

use self::response::{error_from_body, parse_response, resource_from_scopes};
use super::environment::Environment;
use crate::credentials::cache::{CacheKey, Slot, TokenCache, EXPIRY_MARGIN};
use crate::credentials::credential::{BoxFuture, ClientSecret};
use crate::credentials::token::{AccessToken, CredentialError, TokenError};
use crate::credentials::token_source::TokenSource;
use crate::credentials::transport::TransportOptions;

mod response;

const TARGET: &str = "tower_azure_auth::credentials::managed_identity";

/// The Azure Instance Metadata Service token endpoint.
pub(crate) const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// The IMDS address: the one plain-http host allowed besides loopback.
const IMDS_HOST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 169, 254);

/// Which managed identity: the system-assigned one, or a user-assigned one named by client
/// id, object (principal) id or Azure resource id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ManagedIdentityId {
    /// The resource's system-assigned identity.
    #[default]
    SystemAssigned,
    /// A user-assigned identity by client id (`client_id=`).
    ClientId(String),
    /// A user-assigned identity by object (principal) id (`object_id=` / `principal_id=`).
    ObjectId(String),
    /// A user-assigned identity by Azure resource id (`msi_res_id=` / `mi_res_id=`).
    ResourceId(String),
}

impl ManagedIdentityId {
    fn cache_key(&self) -> String {
        match self {
            Self::SystemAssigned => "system".into(),
            Self::ClientId(id) => format!("client_id:{id}"),
            Self::ObjectId(id) => format!("object_id:{id}"),
            Self::ResourceId(id) => format!("resource_id:{id}"),
        }
    }
}

/// The endpoint flavour.
#[derive(Clone)]
enum Source {
    /// IMDS: `GET {endpoint}?api-version=2018-02-01&resource=…` with `Metadata: true`.
    Imds { endpoint: Url },
    /// App Service / Functions / Container Apps: `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…`
    /// with `X-IDENTITY-HEADER`.
    AppService { endpoint: Url, header: ClientSecret },
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Self::Imds { .. } => "IMDS",
            Self::AppService { .. } => "App Service",
        }
    }

    fn endpoint(&self) -> &Url {
        match self {
            Self::Imds { endpoint } | Self::AppService { endpoint, .. } => endpoint,
        }
    }

    /// What errors name: `the IMDS managed identity endpoint `{url}``.
    fn origin(&self) -> String {
        format!(
            "the {} managed identity endpoint `{}`",
            self.name(),
            self.endpoint()
        )
    }

    /// MSAL.NET's retry conditions: IMDS 404/408/410/429/5xx, App Service
    /// 404/408/429/500/503/504.
    fn retryable(&self, status: u16) -> bool {
        match self {
            Self::Imds { .. } => matches!(status, 404 | 408 | 410 | 429) || status >= 500,
            Self::AppService { .. } => matches!(status, 404 | 408 | 429 | 500 | 503 | 504),
        }
    }

    /// IMDS backs off exponentially (1 s, 2 s, 4 s), App Service linearly (1 s).
    fn delay(&self, base: Duration, attempt: u32) -> Duration {
        match self {
            Self::Imds { .. } => base.saturating_mul(1 << attempt.min(6)),
            Self::AppService { .. } => base,
        }
    }
}

/// Checks a managed identity endpoint: https, or plain http to loopback or to the IMDS
/// address `169.254.169.254`, nothing else.
fn check_endpoint(value: &str, key: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim()).map_err(|e| ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("`{value}` is not a URL: {e}"),
    })?;
    let imds = url.scheme() == "http" && url.host() == Some(url::Host::Ipv4(IMDS_HOST));
    if !imds {
        require_secure(&url, key)?;
    }
    if url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("`{value}` must not have a fragment"),
        });
    }
    Ok(url)
}

/// Builds a [`ManagedIdentityCredential`].
#[must_use]
pub struct ManagedIdentityBuilder {
    id: ManagedIdentityId,
    imds_endpoint: Option<String>,
    app_service: Option<(String, ClientSecret)>,
    environment: Environment,
    transport: TransportOptions,
    max_retries: u32,
    max_cache_entries: usize,
}

impl fmt::Debug for ManagedIdentityBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityBuilder")
            .field("id", &self.id)
            .field("imds_endpoint", &self.imds_endpoint)
            .field(
                "app_service_endpoint",
                &self.app_service.as_ref().map(|(e, _)| e),
            )
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl ManagedIdentityBuilder {
    /// Which identity (default: system-assigned).
    pub fn id(mut self, id: ManagedIdentityId) -> Self {
        self.id = id;
        self
    }

    /// A user-assigned identity by client id; `None` or empty keeps the system-assigned one.
    pub fn client_id(mut self, client_id: Option<impl Into<String>>) -> Self {
        if let Some(id) = client_id.map(Into::into).filter(|id| !id.trim().is_empty()) {
            self.id = ManagedIdentityId::ClientId(id);
        }
        self
    }

    /// Uses an IMDS-shaped endpoint at this URL instead of detecting one (e.g.
    /// `http://127.0.0.1:PORT/metadata/identity/oauth2/token` in tests). Must be https, or
    /// http to loopback or `169.254.169.254`.
    pub fn imds_endpoint(mut self, url: impl Into<String>) -> Self {
        self.imds_endpoint = Some(url.into());
        self
    }

    /// Uses an App Service-shaped endpoint (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`) instead
    /// of detecting one.
    pub fn app_service(mut self, endpoint: impl Into<String>, header: impl Into<String>) -> Self {
        self.app_service = Some((endpoint.into(), ClientSecret::new(header)));
        self
    }

    /// Where detection reads its variables (default: the process environment).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The HTTP client (default: [`HttpClient::new`]). Plain-http endpoints (IMDS, loopback)
    /// are called without its proxy.
    pub fn http_client(mut self, http: HttpClient) -> Self {
        self.transport.http = Some(http);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.transport.clock = clock;
        self
    }

    /// The first wait before a retry (default 1 s; IMDS doubles it each time).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.transport.retry_delay = delay;
        self
    }

    /// How many times a retryable failure (404, 408, 429, 5xx, network) is retried (default
    /// 3, as MSAL).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The least time between two token requests forced by a called API (or a vault)
    /// refusing a token ([`TokenSource::token`] with `force_refresh`), per resource; default
    /// 30 s. Inside it such a refusal gets the cached token without asking the endpoint.
    pub fn forced_refresh_interval(mut self, interval: Duration) -> Self {
        self.transport.forced_refresh_interval = interval;
        self
    }

    /// Picks the endpoint: an explicit one; else `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`
    /// (App Service); else `MSAL_MANAGED_IDENTITY_ENDPOINT` (a full IMDS-shaped URL, as MSAL
    /// Python) or `AZURE_POD_IDENTITY_AUTHORITY_HOST` (a host, as MSAL.NET); else IMDS.
    fn source(&self) -> Result<Source, ConfigError> {
        if let Some((endpoint, header)) = &self.app_service {
            return Ok(Source::AppService {
                endpoint: check_endpoint(endpoint, "IDENTITY_ENDPOINT")?,
                header: header.clone(),
            });
        }
        if let Some(endpoint) = &self.imds_endpoint {
            return Ok(Source::Imds {
                endpoint: check_endpoint(endpoint, "ManagedIdentity:Endpoint")?,
            });
        }
        let env = &self.environment;
        if let Some(endpoint) = env.get("IDENTITY_ENDPOINT") {
            if env.get("IDENTITY_SERVER_THUMBPRINT").is_some() {
                return Err(ConfigError::Invalid {
                    key: "IDENTITY_ENDPOINT".into(),
                    reason: "Service Fabric managed identity (IDENTITY_SERVER_THUMBPRINT) is not supported".into(),
                });
            }
            let Some(header) = env.get("IDENTITY_HEADER") else {
                return Err(ConfigError::Invalid {
                    key: "IDENTITY_ENDPOINT".into(),
                    reason: "IDENTITY_ENDPOINT is set without IDENTITY_HEADER (Azure Arc managed identity is not supported)".into(),
                });
            };
            return Ok(Source::AppService {
                endpoint: check_endpoint(&endpoint, "IDENTITY_ENDPOINT")?,
                header: ClientSecret::new(header),
            });
        }
        if let Some(endpoint) = env.get("MSAL_MANAGED_IDENTITY_ENDPOINT") {
            return Ok(Source::Imds {
                endpoint: check_endpoint(&endpoint, "MSAL_MANAGED_IDENTITY_ENDPOINT")?,
            });
        }
        if let Some(host) = env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") {
            let endpoint = format!(
                "{}/metadata/identity/oauth2/token",
                host.trim().trim_end_matches('/')
            );
            return Ok(Source::Imds {
                endpoint: check_endpoint(&endpoint, "AZURE_POD_IDENTITY_AUTHORITY_HOST")?,
            });
        }
        Ok(Source::Imds {
            endpoint: check_endpoint(IMDS_ENDPOINT, "ManagedIdentity:Endpoint")?,
        })
    }

    /// Builds the credential.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InsecureUrl`] / [`ConfigError::Invalid`] for an unusable endpoint,
    /// [`ConfigError::HttpClient`] when the default HTTP client cannot be built.
    pub fn build(self) -> Result<ManagedIdentityCredential, ConfigError> {
        let source = self.source()?;
        let mut transport = self.transport;
        let http = transport.http_client()?;
        // IMDS must not be reached through a proxy (Azure's IMDS documentation, "Proxies"),
        // nor can App Service's local endpoint be: plain-http endpoints (IMDS or loopback,
        // nothing else passes `source()`) are called directly.
        let http = if source.endpoint().scheme() == "http" {
            http.without_proxy()?
        } else {
            http
        };
        debug!(target: TARGET, source = source.name(), endpoint = %source.endpoint(), "managed identity configured");
        Ok(ManagedIdentityCredential {
            inner: Arc::new(Inner {
                cache_authority: format!("managed-identity:{}", source.endpoint()),
                source,
                id: self.id,
                http,
                clock: transport.clock,
                retry_delay: transport.retry_delay,
                max_retries: self.max_retries,
                cache: TokenCache::new(self.max_cache_entries),
                forced_refresh_interval: transport.forced_refresh_interval,
            }),
        })
    }
}

/// Tokens for the machine's managed identity, from IMDS (VMs, VM scale sets, AKS nodes) or
/// the App Service / Functions / Container Apps identity endpoint, detected from the
/// environment as MSAL does.
///
/// It implements [`TokenSource`], so it feeds
/// [`AddAccessTokenLayer`](crate::layers::AddAccessTokenLayer), the reqwest middleware and
/// [`KeyVaultCertificate`](crate::credentials::KeyVaultCertificate). Scopes are converted to the
/// endpoint's `resource` (`https://vault.azure.net/.default` → `https://vault.azure.net`);
/// one scope per request. Tokens are cached per resource and refreshed ahead of expiry: at
/// half their lifetime when they live longer than 2 hours (MSAL's managed-identity rule),
/// otherwise when less than 5 minutes are left; concurrent misses share one request.
/// Failures with 404, 408, 429 and 5xx statuses (IMDS also 410) and network errors are
/// retried up to 3 times (IMDS: 1 s, 2 s, 4 s; App Service: 1 s each).
///
/// Response numbers may be strings; `expires_on` may be epoch seconds (values before 2001
/// are taken as relative), or a date string; `expires_in` is used when `expires_on` is
/// absent.
///
/// ```
/// use tower_azure_auth::credentials::{Environment, ManagedIdentityCredential, TokenSource};
///
/// // On App Service the endpoint comes from IDENTITY_ENDPOINT / IDENTITY_HEADER.
/// let env = Environment::from_pairs([
///     ("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/msi/token"),
///     ("IDENTITY_HEADER", "header-secret"),
/// ]);
/// let credential = ManagedIdentityCredential::builder().environment(env).build()?;
/// assert!(format!("{credential:?}").contains("App Service"));
/// assert!(!format!("{credential:?}").contains("header-secret"));
///
/// // Plain http is refused except to loopback and the IMDS address.
/// let refused = ManagedIdentityCredential::builder()
///     .imds_endpoint("http://metadata.example.com/token")
///     .build();
/// assert!(refused.is_err());
/// # Ok::<(), tower_azure_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ManagedIdentityCredential {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    id: ManagedIdentityId,
    cache_authority: String,
    http: HttpClient,
    clock: SharedClock,
    retry_delay: Duration,
    max_retries: u32,
    cache: TokenCache,
    forced_refresh_interval: Duration,
}

impl fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityCredential")
            .field("source", &self.inner.source.name())
            .field("endpoint", &self.inner.source.endpoint().as_str())
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

/// One failed exchange: worth a retry or not.
enum Failure {
    Retryable(TokenError),
    Final(TokenError),
}

impl ManagedIdentityCredential {
    /// A builder: system-assigned identity, endpoint detected from the process environment.
    pub fn builder() -> ManagedIdentityBuilder {
        ManagedIdentityBuilder {
            id: ManagedIdentityId::SystemAssigned,
            imds_endpoint: None,
            app_service: None,
            environment: Environment::process(),
            transport: TransportOptions::default(),
            max_retries: 3,
            max_cache_entries: 64,
        }
    }

    /// The identity this credential asks for.
    #[must_use]
    pub fn id(&self) -> &ManagedIdentityId {
        &self.inner.id
    }

    /// The endpoint it calls.
    #[must_use]
    pub fn endpoint(&self) -> &Url {
        self.inner.source.endpoint()
    }

    /// A token for one scope (`{resource}/.default`) or resource, from the cache while it
    /// has more than 5 minutes left.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidScope`] for no or several scopes; otherwise see [`TokenError`].
    pub async fn get_token<S: AsRef<str>>(&self, scopes: &[S]) -> Result<AccessToken, TokenError> {
        let scopes: Vec<String> = scopes.iter().map(|s| s.as_ref().to_owned()).collect();
        self.inner.acquire(&scopes, false).await
    }
}

impl TokenSource for ManagedIdentityCredential {
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        Box::pin(self.inner.acquire(scopes, force_refresh))
    }
}

impl Inner {
    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    async fn acquire(
        self: &Arc<Self>,
        scopes: &[String],
        force: bool,
    ) -> Result<AccessToken, TokenError> {
        let resource = resource_from_scopes(scopes)?;
        let key = CacheKey::new(
            &self.cache_authority,
            &self.id.cache_key(),
            std::slice::from_ref(&resource),
        );
        let now = self.now();
        let slot = self.cache.slot(&key, now);
        // A forced refresh comes from a refusal (`TokenSource`): at most one per interval.
        let force = force
            && {
                let claimed = slot.claim_forced(now, self.forced_refresh_interval);
                if !claimed {
                    debug!(target: TARGET,
                    "a token was refused again inside the forced-refresh interval; the cached token is used");
                    drop(slot.flight.lock().await);
                }
                claimed
            };
        if !force {
            if let Some(token) = slot.token.load_full() {
                if token.usable_at(now, EXPIRY_MARGIN) {
                    if now >= token.refresh_on() {
                        self.spawn_refresh(&slot, &resource, scopes, now);
                    }
                    return Ok((*token).clone());
                }
            }
        }
        let seen = slot.generation.load(Ordering::SeqCst);
        let _flight = slot.flight.lock().await;
        if slot.generation.load(Ordering::SeqCst) != seen {
            // Another caller fetched while this one waited.
            if let Some(token) = slot.token.load_full() {
                if token.usable_at(self.now(), EXPIRY_MARGIN) {
                    return Ok((*token).clone());
                }
            }
        }
        let token = self.fetch(&resource, scopes).await?;
        slot.store(token.clone());
        Ok(token)
    }

    fn spawn_refresh(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        resource: &str,
        scopes: &[String],
        now: SystemTime,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !slot.claim_refresh(now) {
            return;
        }
        debug!(target: TARGET, "refreshing a managed identity token in the background");
        let inner = Arc::clone(self);
        let slot = Arc::clone(slot);
        let resource = resource.to_owned();
        let scopes = scopes.to_vec();
        runtime.spawn(async move {
            let result = {
                let _flight = slot.flight.lock().await;
                inner
                    .fetch(&resource, &scopes)
                    .await
                    .map(|token| slot.store(token))
            };
            match result {
                Ok(()) => slot.end_refresh(inner.now(), false),
                Err(error) => {
                    warn!(target: TARGET, %error, "background managed identity refresh failed; the current token stays in use");
                    slot.end_refresh(inner.now(), true);
                }
            }
        });
    }

    async fn fetch(&self, resource: &str, scopes: &[String]) -> Result<AccessToken, TokenError> {
        let mut attempt = 0;
        loop {
            match self.request(resource, scopes).await {
                Ok(token) => return Ok(token),
                Err(Failure::Retryable(error)) if attempt < self.max_retries => {
                    let delay = self.source.delay(self.retry_delay, attempt);
                    attempt += 1;
                    warn!(target: TARGET, %error, ?delay, attempt, "managed identity request failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(Failure::Retryable(error) | Failure::Final(error)) => return Err(error),
            }
        }
    }

    async fn request(&self, resource: &str, scopes: &[String]) -> Result<AccessToken, Failure> {
        let mut url = self.source.endpoint().clone();
        let (api_version, object_param, resource_param) = match &self.source {
            Source::Imds { .. } => ("2018-02-01", "object_id", "msi_res_id"),
            Source::AppService { .. } => ("2019-08-01", "principal_id", "mi_res_id"),
        };
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("api-version", api_version);
            query.append_pair("resource", resource);
            match &self.id {
                ManagedIdentityId::SystemAssigned => {}
                ManagedIdentityId::ClientId(id) => {
                    query.append_pair("client_id", id);
                }
                ManagedIdentityId::ObjectId(id) => {
                    query.append_pair(object_param, id);
                }
                ManagedIdentityId::ResourceId(id) => {
                    query.append_pair(resource_param, id);
                }
            }
        }
        let mut request = self
            .http
            .reqwest()
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json");
        request = match &self.source {
            Source::Imds { .. } => request.header("Metadata", "true"),
            Source::AppService { header, .. } => {
                let mut value = http::HeaderValue::from_str(header.expose()).map_err(|_| {
                    Failure::Final(TokenError::Configuration(ConfigError::Invalid {
                        key: "IDENTITY_HEADER".into(),
                        reason: "the value cannot be sent in a header".into(),
                    }))
                })?;
                value.set_sensitive(true);
                request.header("X-IDENTITY-HEADER", value)
            }
        };
        let endpoint = self.source.endpoint().as_str();
        debug!(target: TARGET, source = self.source.name(), %resource, "requesting a managed identity token");
        let unreachable = |source| {
            TokenError::Credential(CredentialError::Unreachable {
                origin: self.source.origin(),
                source,
            })
        };
        let response = self
            .http
            .send(request, endpoint)
            .await
            .map_err(|e| match e {
                // Never followed, and not worth a retry.
                FetchError::Redirected { .. } => Failure::Final(unreachable(e)),
                e => Failure::Retryable(unreachable(e)),
            })?;
        let status = response.status().as_u16();
        let body = self
            .http
            .read_body(response)
            .await
            .map_err(|e| Failure::Retryable(unreachable(e)))?;
        if (200..300).contains(&status) {
            return parse_response(&body, self.now(), scopes).map_err(|reason| {
                Failure::Final(TokenError::Credential(CredentialError::InvalidResponse {
                    origin: self.source.origin(),
                    reason,
                }))
            });
        }
        let error = error_from_body(self.source.origin(), status, &body);
        debug!(target: TARGET, status, "managed identity request refused");
        if self.source.retryable(status) {
            Err(Failure::Retryable(error))
        } else {
            Err(Failure::Final(error))
        }
    }
}

/// An error status: the OAuth 2 shape (`error`, `error_description`) when the endpoint
/// sends it, else the message of App Service's `{"statusCode","message"}` or
/// `{"error":{"code","message"}}`.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_detection() {
        struct Case {
            name: &'static str,
            env: &'static [(&'static str, &'static str)],
            explicit_imds: Option<&'static str>,
            expected: Result<(&'static str, &'static str), ()>,
        }
        let cases = [
            Case {
                name: "default imds",
                env: &[],
                explicit_imds: None,
                expected: Ok(("IMDS", IMDS_ENDPOINT)),
            },
            Case {
                name: "app service",
                env: &[
                    ("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token"),
                    ("IDENTITY_HEADER", "h"),
                ],
                explicit_imds: None,
                expected: Ok(("App Service", "http://localhost:42356/msi/token")),
            },
            Case {
                name: "arc is refused",
                env: &[
                    ("IDENTITY_ENDPOINT", "http://localhost:40342/x"),
                    ("IMDS_ENDPOINT", "http://localhost:40342"),
                ],
                explicit_imds: None,
                expected: Err(()),
            },
            Case {
                name: "service fabric is refused",
                env: &[
                    ("IDENTITY_ENDPOINT", "https://localhost:2377/x"),
                    ("IDENTITY_HEADER", "h"),
                    ("IDENTITY_SERVER_THUMBPRINT", "t"),
                ],
                explicit_imds: None,
                expected: Err(()),
            },
            Case {
                name: "msal python override",
                env: &[(
                    "MSAL_MANAGED_IDENTITY_ENDPOINT",
                    "http://127.0.0.1:9/metadata/identity/oauth2/token",
                )],
                explicit_imds: None,
                expected: Ok(("IMDS", "http://127.0.0.1:9/metadata/identity/oauth2/token")),
            },
            Case {
                name: "msal.net host override",
                env: &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9/")],
                explicit_imds: None,
                expected: Ok(("IMDS", "http://127.0.0.1:9/metadata/identity/oauth2/token")),
            },
            Case {
                name: "plain http elsewhere is refused",
                env: &[("MSAL_MANAGED_IDENTITY_ENDPOINT", "http://10.0.0.1/token")],
                explicit_imds: None,
                expected: Err(()),
            },
            Case {
                name: "a link-local neighbour of imds is refused",
                env: &[],
                explicit_imds: Some("http://169.254.169.253/metadata/identity/oauth2/token"),
                expected: Err(()),
            },
            Case {
                name: "explicit wins over the environment",
                env: &[
                    ("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token"),
                    ("IDENTITY_HEADER", "h"),
                ],
                explicit_imds: Some("https://imds.example/token"),
                expected: Ok(("IMDS", "https://imds.example/token")),
            },
        ];
        for case in cases {
            let mut builder = ManagedIdentityCredential::builder()
                .environment(Environment::from_pairs(case.env.iter().copied()));
            if let Some(url) = case.explicit_imds {
                builder = builder.imds_endpoint(url);
            }
            let source = builder.source();
            match (case.expected, source) {
                (Ok((name, url)), Ok(source)) => {
                    assert_eq!(source.name(), name, "{}", case.name);
                    assert_eq!(source.endpoint().as_str(), url, "{}", case.name);
                }
                (Err(()), Err(_)) => {}
                (expected, Ok(source)) => panic!(
                    "{}: expected {expected:?}, got {}",
                    case.name,
                    source.endpoint()
                ),
                (expected, Err(e)) => panic!("{}: expected {expected:?}, got {e}", case.name),
            }
        }
    }
}
