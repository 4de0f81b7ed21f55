//! [`ConfidentialClient`]: client credentials (certificate or secret) → access tokens, cached.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use tracing::{debug, info, warn};
use url::Url;

use crate::authority::{require_secure, Authority, FetchError, HttpClient, OidcMetadata};
use crate::clock::{self, SharedClock};
use crate::error::ConfigError;

use super::assertion::{AssertionAlgorithm, AssertionRequest};
use super::cache::{
    unix_millis, CacheKey, Slot, TokenCache, EXPIRY_MARGIN, FORCED_REFRESH_INTERVAL,
    MAX_RETRY_AFTER,
};
use super::certificate::ClientCertificate;
use super::credential::BoxFuture;
use super::credential::{ClientCredential, ClientSecret, CredentialContext, CredentialSource};
use super::token::{AccessToken, AuthorityError, TokenError};
use super::token_source::TokenSource;
use crate::error::error_chain;

const TARGET: &str = "tower_azure_auth::credentials";

/// Builds a [`ConfidentialClient`], like MSAL's `ConfidentialClientApplicationBuilder`.
#[must_use]
pub struct ConfidentialClientBuilder {
    client_id: String,
    authority: Option<Authority>,
    credential: Option<ClientCredential>,
    source: Option<Arc<dyn CredentialSource>>,
    send_x5c: bool,
    algorithm: Option<AssertionAlgorithm>,
    http: Option<HttpClient>,
    clock: SharedClock,
    pii: bool,
    retry_delay: Duration,
    max_cache_entries: usize,
    reload_interval: Option<Duration>,
    forced_refresh_interval: Duration,
}

impl fmt::Debug for ConfidentialClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfidentialClientBuilder")
            .field("authority", &self.authority)
            .field("credential", &self.credential)
            .field("source", &self.source)
            .field("send_x5c", &self.send_x5c)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl ConfidentialClientBuilder {
    /// The authority (`Authority::entra(instance, tenant)` or any OpenID Connect issuer).
    pub fn authority(mut self, authority: Authority) -> Self {
        self.authority = Some(authority);
        self
    }

    /// Authenticates with a certificate (client assertions).
    pub fn certificate(mut self, certificate: ClientCertificate) -> Self {
        self.credential = Some(ClientCredential::Certificate(certificate));
        self
    }

    /// Authenticates with a client secret.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.credential = Some(ClientCredential::Secret(ClientSecret::new(secret)));
        self
    }

    /// Authenticates with the given credential.
    pub fn credential(mut self, credential: ClientCredential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Loads the credential from a source (first use, or [`ConfidentialClient::load_credential`])
    /// and reloads it when the authority refuses it (certificate rotation).
    pub fn credential_source(mut self, source: Arc<dyn CredentialSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Sends the certificate (`x5c`) in assertions, for subject name + issuer authentication.
    /// Default false.
    pub fn send_x5c(mut self, send: bool) -> Self {
        self.send_x5c = send;
        self
    }

    /// The assertion algorithm. Default: PS256 (`x5t#S256`) for Entra authorities, RS256
    /// (`x5t`) for others, as MSAL.
    pub fn assertion_algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }

    /// The HTTP client (default: [`HttpClient::new`]).
    pub fn http_client(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Logs client ids and tenants (MSAL's `enablePiiLogging`). Tokens, secrets and
    /// assertions are never logged, even with this on. Default false.
    pub fn enable_pii_logging(mut self, enable: bool) -> Self {
        self.pii = enable;
        self
    }

    /// The wait before the one retry after a 5xx without `Retry-After` or a network error
    /// (default 1 s).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The most scope sets kept in the cache (default 256).
    pub fn max_cache_entries(mut self, entries: usize) -> Self {
        self.max_cache_entries = entries;
        self
    }

    /// The least time between two token requests forced by the called API refusing a token
    /// (a 401 `invalid_token` seen by [`AddAccessTokenLayer`](crate::layers::AddAccessTokenLayer),
    /// the reqwest middleware or a Key Vault load), per scope set; default 30 s. Inside it
    /// such a refusal gets the cached token (a newer one when another request refreshed it
    /// meanwhile) without asking the authority, so an API that refuses every token cannot
    /// make the client hammer the authority (and be throttled by it).
    /// [`ConfidentialClient::force_refresh`], called explicitly, is not limited.
    pub fn forced_refresh_interval(mut self, interval: Duration) -> Self {
        self.forced_refresh_interval = interval;
        self
    }

    /// How often the credential source is read again (certificate rotation in a vault or on
    /// disk), default 1 hour; `None` reloads only when the authority refuses the credential.
    /// The check happens when a token is requested from the authority (not on cache hits),
    /// so an idle client does no I/O; a failed reload keeps the current credential. Only
    /// with a [`credential_source`](Self::credential_source).
    pub fn reload_interval(mut self, interval: Option<Duration>) -> Self {
        self.reload_interval = interval;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] without an authority, a client id or a credential;
    /// [`ConfigError::HttpClient`] when the default HTTP client cannot be built.
    pub fn build(self) -> Result<ConfidentialClient, ConfigError> {
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::Missing {
                key: "CallApi:ClientId",
                hint: "set the client (application) id",
            });
        }
        let authority = self.authority.ok_or(ConfigError::Missing {
            key: "CallApi:TenantId",
            hint: "set the authority (Instance + TenantId, or Authority)",
        })?;
        if self.credential.is_none() && self.source.is_none() {
            return Err(ConfigError::Missing {
                key: "CallApi:ClientCertificates",
                hint: "set a certificate, a client secret or a credential source",
            });
        }
        let http = match self.http {
            Some(http) => http,
            None => HttpClient::new()?,
        };
        let algorithm = self.algorithm.unwrap_or(if authority.is_entra() {
            AssertionAlgorithm::Ps256
        } else {
            AssertionAlgorithm::Rs256
        });
        if self.pii {
            info!(target: TARGET, client_id = %self.client_id, authority = %authority, "confidential client built");
        } else {
            info!(target: TARGET, "confidential client built (PII logging off)");
        }
        Ok(ConfidentialClient {
            inner: Arc::new(ClientInner {
                authority_key: authority.to_string(),
                client_id: self.client_id,
                authority,
                credential: ArcSwapOption::new(self.credential.map(Arc::new)),
                source: self.source,
                reload: tokio::sync::Mutex::new(()),
                reload_interval: self.reload_interval,
                loaded_at: std::sync::atomic::AtomicU64::new(0),
                algorithm,
                send_x5c: self.send_x5c,
                context: CredentialContext {
                    http,
                    clock: self.clock,
                },
                pii: self.pii,
                retry_delay: self.retry_delay,
                cache: TokenCache::new(self.max_cache_entries),
                forced_refresh_interval: self.forced_refresh_interval,
                token_endpoint: tokio::sync::OnceCell::new(),
            }),
        })
    }
}

/// An application that gets tokens for itself (client credentials flow), like MSAL's
/// `IConfidentialClientApplication`. Cheap to clone; clones share the token cache.
///
/// Tokens are cached per scope set and returned while they have more than 5 minutes left;
/// they are refreshed in the background ahead of that (at `refresh_in` when the authority
/// sends it, else when 80 % of the usable lifetime has passed) while callers keep getting the
/// current one; concurrent misses share one request; a 5xx or network failure is retried once;
/// `Retry-After` (429 and 5xx) is honoured by refusing identical requests until it passes.
///
/// ```no_run
/// use tower_azure_auth::{Authority, credentials::{ClientCertificate, ConfidentialClient}};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let certificate = ClientCertificate::from_file("client.pfx", Some("password"))?;
/// let client = ConfidentialClient::builder("b178f3a5-7588-492a-924f-72d7887b7e48")
///     .authority(Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com")?)
///     .certificate(certificate)
///     .build()?;
/// let token = client
///     .acquire_token_for_client(&["api://b178f3a5-7588-492a-924f-72d7887b7e48/.default"])
///     .await?;
/// println!("expires at {:?}", token.expires_on());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ConfidentialClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    client_id: String,
    authority: Authority,
    authority_key: String,
    credential: ArcSwapOption<ClientCredential>,
    source: Option<Arc<dyn CredentialSource>>,
    reload: tokio::sync::Mutex<()>,
    reload_interval: Option<Duration>,
    /// Unix milliseconds of the last load from the source (0: never).
    loaded_at: std::sync::atomic::AtomicU64,
    algorithm: AssertionAlgorithm,
    send_x5c: bool,
    context: CredentialContext,
    pii: bool,
    retry_delay: Duration,
    cache: TokenCache,
    forced_refresh_interval: Duration,
    token_endpoint: tokio::sync::OnceCell<Url>,
}

impl fmt::Debug for ConfidentialClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("ConfidentialClient")
            .field("client_id", &inner.pii_value(&inner.client_id))
            .field("authority", &inner.authority)
            .field(
                "credential",
                &inner
                    .credential
                    .load()
                    .as_deref()
                    .map(ClientCredential::kind),
            )
            .field("algorithm", &inner.algorithm)
            .field("send_x5c", &inner.send_x5c)
            .finish_non_exhaustive()
    }
}

impl ConfidentialClient {
    /// A builder for the given client (application) id.
    pub fn builder(client_id: impl Into<String>) -> ConfidentialClientBuilder {
        ConfidentialClientBuilder {
            client_id: client_id.into(),
            authority: None,
            credential: None,
            source: None,
            send_x5c: false,
            algorithm: None,
            http: None,
            clock: clock::system(),
            pii: false,
            retry_delay: Duration::from_secs(1),
            max_cache_entries: 256,
            reload_interval: Some(Duration::from_secs(3600)),
            forced_refresh_interval: FORCED_REFRESH_INTERVAL,
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The authority.
    pub fn authority(&self) -> &Authority {
        &self.inner.authority
    }

    /// The credential in use, if loaded.
    pub fn credential(&self) -> Option<ClientCredential> {
        self.inner.credential.load_full().map(|c| (*c).clone())
    }

    /// Loads (or reloads) the credential from the source now, to fail at startup rather than
    /// at the first request. Without a source, checks that a credential is set.
    ///
    /// # Errors
    ///
    /// When the source cannot produce a credential.
    pub async fn load_credential(&self) -> Result<(), ConfigError> {
        self.inner.reload_credential().await.map(|_| ())
    }

    /// Gets a token for the application itself (client credentials), from the cache when it
    /// has more than 5 minutes left. For Entra authorities every scope must end with
    /// `/.default` (e.g. `api://{api client id}/.default`).
    ///
    /// # Errors
    ///
    /// See [`TokenError`].
    pub async fn acquire_token_for_client<S: AsRef<str>>(
        &self,
        scopes: &[S],
    ) -> Result<AccessToken, TokenError> {
        let scopes: Vec<String> = scopes.iter().map(|s| s.as_ref().to_owned()).collect();
        self.inner.acquire(&scopes, Fetch::Cached).await
    }

    /// Like [`acquire_token_for_client`](Self::acquire_token_for_client) but skips the
    /// cached token (MSAL's `WithForceRefresh(true)`); concurrent forced refreshes of the same
    /// scopes share one request.
    ///
    /// # Errors
    ///
    /// See [`TokenError`].
    pub async fn force_refresh<S: AsRef<str>>(
        &self,
        scopes: &[S],
    ) -> Result<AccessToken, TokenError> {
        let scopes: Vec<String> = scopes.iter().map(|s| s.as_ref().to_owned()).collect();
        self.inner.acquire(&scopes, Fetch::Forced).await
    }

    /// A new token after the called API refused the current one: a forced refresh at most
    /// once per [`forced_refresh_interval`](ConfidentialClientBuilder::forced_refresh_interval)
    /// per scope set, else the cached token.
    pub(crate) async fn refresh_after_refusal(
        &self,
        scopes: &[String],
    ) -> Result<AccessToken, TokenError> {
        self.inner.acquire(scopes, Fetch::AfterRefusal).await
    }
}

impl TokenSource for ConfidentialClient {
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            if force_refresh {
                self.refresh_after_refusal(scopes).await
            } else {
                self.acquire_token_for_client(scopes).await
            }
        })
    }
}

/// How [`ClientInner::acquire`] treats the cached token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// Returned while usable.
    Cached,
    /// Skipped (an explicit forced refresh).
    Forced,
    /// Skipped at most once per forced-refresh interval (the called API refused it).
    AfterRefusal,
}

/// The outcome of one HTTP exchange with the token endpoint.
enum Attempt {
    Token(AccessToken),
    /// 5xx without `Retry-After`, or a network failure: worth one retry.
    Retryable(TokenError),
    /// `Retry-After` was given.
    Throttled(Duration),
    Failed(TokenError),
}

impl ClientInner {
    fn pii_value<'a>(&self, value: &'a str) -> &'a str {
        if self.pii {
            value
        } else {
            "<pii>"
        }
    }

    fn now(&self) -> SystemTime {
        self.context.clock.now()
    }

    fn check_scopes(&self, scopes: &[String]) -> Result<(), TokenError> {
        if scopes.is_empty() {
            return Err(TokenError::InvalidScope {
                scope: String::new(),
                reason: "at least one scope is required, e.g. api://{api client id}/.default",
            });
        }
        for scope in scopes {
            if scope.trim().is_empty() || scope.contains(char::is_whitespace) {
                return Err(TokenError::InvalidScope {
                    scope: scope.clone(),
                    reason: "a scope must be one non-empty word",
                });
            }
            if self.authority.is_entra() && !scope.ends_with("/.default") {
                return Err(TokenError::InvalidScope {
                    scope: scope.clone(),
                    reason: "client credential scopes must end with `/.default` (e.g. api://{api client id}/.default; IDW10404)",
                });
            }
        }
        Ok(())
    }

    async fn acquire(
        self: &Arc<Self>,
        scopes: &[String],
        fetch: Fetch,
    ) -> Result<AccessToken, TokenError> {
        self.check_scopes(scopes)?;
        let key = CacheKey::new(&self.authority_key, &self.client_id, scopes);
        let now = self.now();
        let slot = self.cache.slot(&key, now);
        let force = match fetch {
            Fetch::Cached => false,
            Fetch::Forced => true,
            Fetch::AfterRefusal => {
                let claimed = slot.claim_forced(now, self.forced_refresh_interval);
                if !claimed {
                    debug!(target: TARGET,
                        "the API refused the token again inside the forced-refresh interval; the cached token is used");
                    // A request to the authority in flight may bring a newer token: wait for it.
                    drop(slot.flight.lock().await);
                }
                claimed
            }
        };
        if !force {
            if let Some(token) = slot.token.load_full() {
                if token.usable_at(now, EXPIRY_MARGIN) {
                    if now >= token.refresh_on() {
                        self.spawn_refresh(&slot, scopes, now);
                    }
                    return Ok((*token).clone());
                }
            }
        }
        if let Some(retry_after) = slot.throttled(now) {
            debug!(target: TARGET, ?retry_after, "token request refused: the authority asked to wait");
            return Err(TokenError::Throttled { retry_after });
        }
        let seen = slot.generation.load(std::sync::atomic::Ordering::SeqCst);
        let _flight = slot.flight.lock().await;
        let now = self.now();
        if slot.generation.load(std::sync::atomic::Ordering::SeqCst) != seen {
            // Someone else fetched while this caller waited.
            if let Some(token) = slot.token.load_full() {
                if token.usable_at(now, EXPIRY_MARGIN) {
                    return Ok((*token).clone());
                }
            }
        }
        if let Some(retry_after) = slot.throttled(now) {
            return Err(TokenError::Throttled { retry_after });
        }
        let token = self.fetch(scopes, &slot).await?;
        slot.store(token.clone());
        Ok(token)
    }

    fn spawn_refresh(self: &Arc<Self>, slot: &Arc<Slot>, scopes: &[String], now: SystemTime) {
        if slot.throttled(now).is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !slot.claim_refresh(now) {
            return;
        }
        debug!(target: TARGET, "refreshing a token in the background ahead of its expiry");
        let inner = Arc::clone(self);
        let slot = Arc::clone(slot);
        let scopes = scopes.to_vec();
        runtime.spawn(async move {
            let result = {
                let _flight = slot.flight.lock().await;
                match inner.fetch(&scopes, &slot).await {
                    Ok(token) => {
                        slot.store(token);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            };
            match result {
                Ok(()) => slot.end_refresh(inner.now(), false),
                Err(error) => {
                    warn!(target: TARGET, %error, "background token refresh failed; the current token stays in use");
                    slot.end_refresh(inner.now(), true);
                }
            }
        });
    }

    async fn token_endpoint(&self) -> Result<Url, TokenError> {
        if let Some(endpoint) = self.authority.token_endpoint() {
            return Ok(endpoint);
        }
        let endpoint = self
            .token_endpoint
            .get_or_try_init(|| async {
                let url = self.authority.metadata_url();
                let metadata = OidcMetadata::fetch(&self.context.http, &url)
                    .await
                    .map_err(TokenError::Metadata)?;
                let invalid = |reason: String| {
                    TokenError::Metadata(FetchError::Invalid {
                        url: url.to_string(),
                        reason,
                    })
                };
                let endpoint = metadata
                    .token_endpoint
                    .ok_or_else(|| invalid("it has no token_endpoint".into()))?;
                let endpoint = Url::parse(&endpoint).map_err(|e| {
                    invalid(format!("token_endpoint `{endpoint}` is not a URL: {e}"))
                })?;
                require_secure(&endpoint, "token_endpoint").map_err(|e| invalid(e.to_string()))?;
                Ok::<_, TokenError>(endpoint)
            })
            .await?;
        Ok(endpoint.clone())
    }

    async fn current_credential(&self) -> Result<Arc<ClientCredential>, TokenError> {
        if let Some(credential) = self.credential.load_full() {
            if self.reload_due() {
                let _reload = self.reload.lock().await;
                // Another caller may have reloaded while this one waited.
                if self.reload_due() {
                    return Ok(self.scheduled_reload(credential).await);
                }
                return Ok(self.credential.load_full().unwrap_or(credential));
            }
            return Ok(credential);
        }
        self.reload_credential()
            .await
            .map_err(TokenError::Configuration)
    }

    /// Whether the scheduled reload is due: a source, an interval, and a credential loaded
    /// from that source longer ago than the interval.
    fn reload_due(&self) -> bool {
        let (Some(_), Some(interval)) = (&self.source, self.reload_interval) else {
            return false;
        };
        let loaded_at = self.loaded_at.load(std::sync::atomic::Ordering::SeqCst);
        if loaded_at == 0 {
            // Given to the builder, never loaded from the source: reload only on refusal.
            return false;
        }
        let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        unix_millis(self.now()) >= loaded_at.saturating_add(interval)
    }

    /// Reloads on schedule (the reload lock is held); on failure keeps `current` and tries
    /// again after the next interval.
    async fn scheduled_reload(&self, current: Arc<ClientCredential>) -> Arc<ClientCredential> {
        let Some(source) = &self.source else {
            return current;
        };
        debug!(target: TARGET, "reloading the client credential (reload interval passed)");
        match source.load(&self.context).await {
            Ok(credential) => self.install(credential),
            Err(error) => {
                warn!(target: TARGET, error = %error_chain(&error),
                    "scheduled reload of the client credential failed; the current one stays in use");
                self.loaded_at.store(
                    unix_millis(self.now()).max(1),
                    std::sync::atomic::Ordering::SeqCst,
                );
                current
            }
        }
    }

    fn install(&self, credential: ClientCredential) -> Arc<ClientCredential> {
        let credential = Arc::new(credential);
        if let ClientCredential::Certificate(certificate) = credential.as_ref() {
            info!(target: TARGET, subject = %self.pii_value(certificate.subject()),
                thumbprint = %certificate.thumbprints().sha1_hex(), "client certificate loaded");
        }
        self.credential.store(Some(Arc::clone(&credential)));
        self.loaded_at.store(
            unix_millis(self.now()).max(1),
            std::sync::atomic::Ordering::SeqCst,
        );
        credential
    }

    async fn reload_credential(&self) -> Result<Arc<ClientCredential>, ConfigError> {
        let Some(source) = &self.source else {
            return self.credential.load_full().ok_or(ConfigError::Missing {
                key: "CallApi:ClientCertificates",
                hint: "set a certificate, a client secret or a credential source",
            });
        };
        let _reload = self.reload.lock().await;
        let credential = source.load(&self.context).await?;
        Ok(self.install(credential))
    }

    /// Requests a token; when the authority refuses the credential itself and a source is
    /// configured, reloads the credential once and tries again (certificate rotation).
    async fn fetch(&self, scopes: &[String], slot: &Slot) -> Result<AccessToken, TokenError> {
        let endpoint = self.token_endpoint().await?;
        let credential = self.current_credential().await?;
        match self
            .request_with_retry(&endpoint, &credential, scopes, slot)
            .await
        {
            Err(TokenError::Rejected(error))
                if error.is_credential_rejected() && self.source.is_some() =>
            {
                warn!(target: TARGET, code = ?error.code,
                    "the authority refused the client credential; reloading it once (rotation)");
                let credential = self
                    .reload_credential()
                    .await
                    .map_err(TokenError::Configuration)?;
                self.request_with_retry(&endpoint, &credential, scopes, slot)
                    .await
            }
            other => other,
        }
    }

    async fn request_with_retry(
        &self,
        endpoint: &Url,
        credential: &ClientCredential,
        scopes: &[String],
        slot: &Slot,
    ) -> Result<AccessToken, TokenError> {
        let mut retried = false;
        loop {
            match self.request(endpoint, credential, scopes).await {
                Attempt::Token(token) => return Ok(token),
                Attempt::Failed(error) => return Err(error),
                Attempt::Throttled(retry_after) => {
                    let retry_after = retry_after.min(MAX_RETRY_AFTER);
                    slot.throttle(self.now(), retry_after);
                    warn!(target: TARGET, ?retry_after, "the authority asked to wait (Retry-After)");
                    return Err(TokenError::Throttled { retry_after });
                }
                Attempt::Retryable(error) if !retried => {
                    retried = true;
                    warn!(target: TARGET, %error, delay = ?self.retry_delay, "token request failed; retrying once");
                    tokio::time::sleep(self.retry_delay).await;
                }
                Attempt::Retryable(error) => return Err(error),
            }
        }
    }

    async fn request(
        &self,
        endpoint: &Url,
        credential: &ClientCredential,
        scopes: &[String],
    ) -> Attempt {
        let scope = scopes.join(" ");
        let mut form: Vec<(&str, String)> = vec![("client_id", self.client_id.clone())];
        match credential {
            ClientCredential::Certificate(certificate) => {
                let assertion = certificate.client_assertion(&AssertionRequest {
                    client_id: &self.client_id,
                    audience: endpoint.as_str(),
                    algorithm: self.algorithm,
                    send_x5c: self.send_x5c,
                    now: self.context.clock.unix_seconds(),
                });
                let assertion = match assertion {
                    Ok(assertion) => assertion,
                    Err(e) => return Attempt::Failed(TokenError::Assertion(e)),
                };
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
            ClientCredential::Secret(secret) => {
                form.push(("client_secret", secret.expose().to_owned()))
            }
            ClientCredential::Assertion(provider) => {
                let assertion = match provider.assertion(&self.context).await {
                    Ok(assertion) => assertion,
                    Err(e) => return Attempt::Failed(e),
                };
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
        }
        form.push(("scope", scope));
        form.push(("grant_type", "client_credentials".into()));
        debug!(target: TARGET, endpoint = %self.pii_value(endpoint.as_str()), client_id = %self.pii_value(&self.client_id),
            credential = credential.kind(), "requesting a token");

        let http = &self.context.http;
        let request = http
            .reqwest()
            .post(endpoint.clone())
            .header("x-ms-lib-capability", "retry-after, h429")
            .header(http::header::ACCEPT, "application/json")
            .form(&form);
        let response = match http.send(request, endpoint.as_str()).await {
            Ok(response) => response,
            // Not followed and not retried: the credential goes to the token endpoint only.
            Err(e @ FetchError::Redirected { .. }) => {
                return Attempt::Failed(TokenError::BadResponse {
                    reason: format!("the authority redirected the token request: {e}"),
                })
            }
            Err(e) => return Attempt::Retryable(TokenError::Transport(e)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.now()));
        let body = match http.read_body(response).await {
            Ok(body) => body,
            Err(e) => return Attempt::Retryable(TokenError::Transport(e)),
        };
        if status.is_success() {
            return match parse_token_response(&body, self.now(), scopes) {
                Ok(token) => {
                    debug!(target: TARGET, expires_on = ?token.expires_on(), "token received");
                    Attempt::Token(token)
                }
                Err(e) => Attempt::Failed(e),
            };
        }
        if let Some(retry_after) = retry_after {
            if status.as_u16() == 429 || status.is_server_error() {
                return Attempt::Throttled(retry_after);
            }
        }
        let error = match AuthorityError::parse(status.as_u16(), &body) {
            Some(error) => TokenError::Rejected(Box::new(error)),
            None => TokenError::BadResponse {
                reason: format!("HTTP {} without an OAuth 2 error body", status.as_u16()),
            },
        };
        debug!(target: TARGET, status = status.as_u16(), code = ?error.aadsts_code(), "token request refused");
        if status.is_server_error() {
            Attempt::Retryable(error)
        } else {
            Attempt::Failed(error)
        }
    }
}

/// `Retry-After`: delta-seconds or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = parse_http_date(value)?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_http_date(value: &str) -> Option<SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let (_, rest) = value.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    // Years past 9999 are not HTTP dates (and would overflow the arithmetic below).
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), for years >= 1970.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + s))
}

fn number(value: Option<&serde_json::Value>) -> Result<Option<u64>, ()> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(()),
        Some(serde_json::Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

/// Parses a successful token response (numbers may be numeric strings, as from AAD v1-like
/// endpoints).
pub(crate) fn parse_token_response(
    body: &[u8],
    now: SystemTime,
    scopes: &[String],
) -> Result<AccessToken, TokenError> {
    let bad = |reason: &str| TokenError::BadResponse {
        reason: reason.to_owned(),
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| bad("the body is not JSON"))?;
    let token_type = value
        .get("token_type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("`token_type` is missing"))?;
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::BadResponse {
            reason: format!("`token_type` is `{token_type}`, expected Bearer"),
        });
    }
    let token = value
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("`access_token` is missing"))?;
    if http::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
        return Err(bad(
            "`access_token` has characters that cannot go in a header",
        ));
    }
    let expires_in = number(value.get("expires_in"))
        .map_err(|()| bad("`expires_in` is not a number"))?
        .unwrap_or(600);
    let refresh_in =
        number(value.get("refresh_in")).map_err(|()| bad("`refresh_in` is not a number"))?;
    let ext_expires_in = number(value.get("ext_expires_in"))
        .map_err(|()| bad("`ext_expires_in` is not a number"))?;
    let expires_in = expires_in.min(10 * 365 * 86_400);
    let expires_on = now + Duration::from_secs(expires_in);
    // Refresh when 80 % of the usable lifetime (before the 5-minute margin) has passed, or
    // at `refresh_in` when the authority asks for earlier.
    let usable = expires_in.saturating_sub(EXPIRY_MARGIN.as_secs());
    let default_refresh = usable * 4 / 5;
    let refresh_after = refresh_in.map_or(default_refresh, |r| r.min(default_refresh));
    Ok(AccessToken::with_times(
        token.to_owned(),
        now,
        expires_on,
        now + Duration::from_secs(refresh_after),
        ext_expires_in.map(|e| now + Duration::from_secs(e.min(10 * 365 * 86_400))),
        scopes.to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses() {
        struct Case {
            name: &'static str,
            body: &'static str,
            ok: bool,
            expires_in: u64,
            refresh_after: u64,
        }
        let cases = [
            Case {
                name: "numbers",
                body: r#"{"token_type":"Bearer","access_token":"a.b.c","expires_in":3599,"ext_expires_in":3599}"#,
                ok: true,
                expires_in: 3599,
                refresh_after: 2639,
            },
            Case {
                name: "numeric strings",
                body: r#"{"token_type":"bearer","access_token":"a.b.c","expires_in":"3600"}"#,
                ok: true,
                expires_in: 3600,
                refresh_after: 2640,
            },
            Case {
                name: "refresh_in earlier",
                body: r#"{"token_type":"Bearer","access_token":"a","expires_in":3600,"refresh_in":1800}"#,
                ok: true,
                expires_in: 3600,
                refresh_after: 1800,
            },
            Case {
                name: "refresh_in later is capped",
                body: r#"{"token_type":"Bearer","access_token":"a","expires_in":3600,"refresh_in":3500}"#,
                ok: true,
                expires_in: 3600,
                refresh_after: 2640,
            },
            Case {
                name: "not bearer",
                body: r#"{"token_type":"pop","access_token":"a","expires_in":3600}"#,
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
            Case {
                name: "no token_type",
                body: r#"{"access_token":"a","expires_in":3600}"#,
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
            Case {
                name: "no token",
                body: r#"{"token_type":"Bearer","expires_in":3600}"#,
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
            Case {
                name: "bad expires_in",
                body: r#"{"token_type":"Bearer","access_token":"a","expires_in":"soon"}"#,
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
            Case {
                name: "token with a newline",
                body: r#"{"token_type":"Bearer","access_token":"a\nb","expires_in":3600}"#,
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
            Case {
                name: "not json",
                body: "<html>",
                ok: false,
                expires_in: 0,
                refresh_after: 0,
            },
        ];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for case in cases {
            let result = parse_token_response(case.body.as_bytes(), now, &["s/.default".into()]);
            assert_eq!(result.is_ok(), case.ok, "{}: {result:?}", case.name);
            if let Ok(token) = result {
                assert_eq!(
                    token.expires_on(),
                    now + Duration::from_secs(case.expires_in),
                    "{}",
                    case.name
                );
                assert_eq!(
                    token.refresh_on(),
                    now + Duration::from_secs(case.refresh_after),
                    "{}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn retry_after_values() {
        struct Case {
            name: &'static str,
            value: &'static str,
            expected: Option<u64>,
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let cases = [
            Case {
                name: "seconds",
                value: "120",
                expected: Some(120),
            },
            Case {
                name: "date in the future",
                value: "Sun, 06 Nov 1994 08:50:37 GMT",
                expected: Some(60),
            },
            Case {
                name: "date in the past",
                value: "Sun, 06 Nov 1994 08:00:00 GMT",
                expected: Some(0),
            },
            Case {
                name: "garbage",
                value: "soon",
                expected: None,
            },
            Case {
                name: "negative",
                value: "-5",
                expected: None,
            },
            Case {
                name: "retry_after_date_with_a_huge_year_overflowed",
                value: "Sun, 06 Nov 99999999999999 08:49:37 GMT",
                expected: None,
            },
            Case {
                name: "year 10000 is not an HTTP date",
                value: "Sat, 01 Jan 10000 00:00:00 GMT",
                expected: None,
            },
            Case {
                name: "year 9999 is",
                value: "Fri, 31 Dec 9999 23:59:59 GMT",
                expected: Some(253_402_300_799 - 784_111_777),
            },
            Case {
                name: "huge delta-seconds",
                value: "18446744073709551615",
                expected: Some(u64::MAX),
            },
        ];
        for case in cases {
            assert_eq!(
                parse_retry_after(case.value, now).map(|d| d.as_secs()),
                case.expected,
                "{}",
                case.name
            );
        }
    }
}
