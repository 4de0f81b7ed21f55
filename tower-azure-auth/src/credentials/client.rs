//! [`ConfidentialClient`]: client credentials (certificate or secret) → access tokens, cached.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use tracing::{debug, info, warn};
use url::Url;

use crate::authority::{require_secure, Authority, FetchError, HttpClient, OidcMetadata};
use crate::clock::SharedClock;
use crate::error::ConfigError;

use super::assertion::AssertionAlgorithm;
use super::cache::{unix_millis, CacheKey, Slot, TokenCache, EXPIRY_MARGIN, MAX_RETRY_AFTER};
use super::certificate::ClientCertificate;
use super::credential::BoxFuture;
use super::credential::{ClientCredential, ClientSecret, CredentialContext, CredentialSource};
use super::observe::Acquisition;
use super::observer::{CertificateObserver, Observers};
use super::protocol::{Attempt, TokenRequest};
use super::refresh_event::{BackgroundRefreshEvent, RefreshHook};
use super::resilience::ExtendedLifetime;
use super::rotation::{Rotation, DEFAULT_PROACTIVE_WINDOW};
use super::shared_cache::{Need, SharedTokenCache};
use super::signer::Signer;
use super::token::{AccessToken, CredentialError, TokenError};
use super::token_source::TokenSource;
use super::transport::TransportOptions;
use crate::error::error_chain;
use crate::telemetry::{CacheRefreshReason, Telemetry};

const TARGET: &str = "tower_azure_auth::credentials";

mod builder;
mod hit;
mod options;

use self::hit::has_whitespace;

pub use self::builder::ConfidentialClientBuilder;
pub use self::options::AcquireTokenOptions;
use self::options::Target;

/// An application that gets tokens for itself (client credentials flow), like MSAL's
/// `IConfidentialClientApplication`. Cheap to clone; clones share the token cache.
///
/// Tokens are cached per scope set and returned while they have more than 5 minutes left;
/// they are refreshed in the background ahead of that (at `refresh_in` when the authority
/// sends it, else when 80 % of the usable lifetime has passed) while callers keep getting the
/// current one; concurrent misses share one request; a 5xx or network failure is retried once;
/// `Retry-After` (429 and 5xx) is honoured by refusing identical requests until it passes.
/// While the authority fails with a retryable error, a cached token past its usable point
/// but inside its extended lifetime (`ext_expires_in`) is still returned and refreshed in
/// the background with backoff ([`ConfidentialClientBuilder::extended_token_lifetime`]).
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
    shared: Option<Arc<SharedTokenCache>>,
    telemetry: Telemetry,
    rotation: Rotation,
    /// Client capabilities (`cp1`), sent in the `claims` parameter of every request.
    capabilities: Vec<String>,
    extended_lifetime: ExtendedLifetime,
    on_background_refresh: Option<RefreshHook>,
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
            .field("shared_token_cache", &inner.shared)
            .finish_non_exhaustive()
    }
}

impl ConfidentialClient {
    /// A builder for the given client (application) id.
    pub fn builder(client_id: impl Into<String>) -> ConfidentialClientBuilder {
        ConfidentialClientBuilder::new(client_id.into())
    }

    /// When the credential source will be reloaded ahead of the certificate's expiry
    /// ([`ConfidentialClientBuilder::proactive_reload`]), once a certificate was loaded from
    /// it.
    #[must_use]
    pub fn next_proactive_reload(&self) -> Option<SystemTime> {
        self.inner.rotation.next_reload()
    }

    /// The client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The authority.
    #[must_use]
    pub fn authority(&self) -> &Authority {
        &self.inner.authority
    }

    /// The credential in use, if loaded.
    #[must_use]
    pub fn credential(&self) -> Option<ClientCredential> {
        self.inner.credential.load_full().map(|c| (*c).clone())
    }

    /// Loads (or reloads) the credential from the source now, to fail at startup rather than
    /// at the first request. Without a source, checks that a credential is set.
    ///
    /// # Errors
    ///
    /// When the source cannot produce a credential (see [`CredentialError`]);
    /// [`CredentialError::Configuration`] without a source or credential.
    pub async fn load_credential(&self) -> Result<(), CredentialError> {
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
        if let Some(token) = self.inner.cached_token(scopes) {
            return Ok(token);
        }
        self.acquire_token_for_client_with(scopes, &AcquireTokenOptions::new())
            .await
    }

    /// Like [`acquire_token_for_client`](Self::acquire_token_for_client) with per-call
    /// options: a claims request (it skips the cache; the token it gets replaces the cached
    /// one), a tenant override (cached per tenant), a forced refresh.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidClaims`] and [`TokenError::InvalidTenant`] for refused options,
    /// before any request; otherwise see [`TokenError`].
    pub async fn acquire_token_for_client_with<S: AsRef<str>>(
        &self,
        scopes: &[S],
        options: &AcquireTokenOptions,
    ) -> Result<AccessToken, TokenError> {
        let scopes: Vec<String> = scopes.iter().map(|s| s.as_ref().to_owned()).collect();
        let fetch = if options.is_force_refresh() {
            Fetch::Forced
        } else {
            Fetch::Cached
        };
        self.inner.acquire(&scopes, fetch, options).await
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
        self.acquire_token_for_client_with(scopes, &AcquireTokenOptions::new().force_refresh(true))
            .await
    }

    /// A new token after the called API refused the current one: a forced refresh at most
    /// once per [`forced_refresh_interval`](ConfidentialClientBuilder::forced_refresh_interval)
    /// per scope set, else the cached token.
    pub(crate) async fn refresh_after_refusal(
        &self,
        scopes: &[String],
    ) -> Result<AccessToken, TokenError> {
        self.inner
            .acquire(scopes, Fetch::AfterRefusal, &AcquireTokenOptions::new())
            .await
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

    fn token_with_claims<'a>(
        &'a self,
        scopes: &'a [String],
        claims: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            let options = AcquireTokenOptions::new().claims(claims);
            self.acquire_token_for_client_with(scopes, &options).await
        })
    }

    fn requires_default_scope(&self) -> bool {
        self.inner.authority.is_entra()
    }

    fn cached_token(&self, scopes: &[String]) -> Option<AccessToken> {
        self.inner.cached_token(scopes)
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

    fn check_scopes<S: AsRef<str>>(&self, scopes: &[S]) -> Result<(), TokenError> {
        if scopes.is_empty() {
            return Err(TokenError::InvalidScope {
                scope: String::new(),
                reason: "at least one scope is required, e.g. api://{api client id}/.default",
            });
        }
        for scope in scopes.iter().map(AsRef::as_ref) {
            // Without whitespace, `trim` changes nothing: an empty scope is the only blank one.
            if scope.is_empty() || has_whitespace(scope) {
                return Err(TokenError::InvalidScope {
                    scope: scope.to_owned(),
                    reason: "a scope must be one non-empty word",
                });
            }
            if self.authority.is_entra() && !scope.ends_with("/.default") {
                return Err(TokenError::InvalidScope {
                    scope: scope.to_owned(),
                    reason: "client credential scopes must end with `/.default` (e.g. api://{api client id}/.default; IDW10404)",
                });
            }
        }
        Ok(())
    }

    /// One acquisition, in its span, reported to the instruments.
    async fn acquire(
        self: &Arc<Self>,
        scopes: &[String],
        fetch: Fetch,
        options: &AcquireTokenOptions,
    ) -> Result<AccessToken, TokenError> {
        use tracing::Instrument as _;
        let span = crate::telemetry::spans::acquisition();
        let mut acquisition = Acquisition::start(&self.telemetry);
        let result = self
            .acquire_observed(scopes, fetch, options, &mut acquisition)
            .instrument(span.clone())
            .await;
        acquisition.report(&self.telemetry, &span, &result, self.now());
        result
    }

    async fn acquire_observed(
        self: &Arc<Self>,
        scopes: &[String],
        fetch: Fetch,
        options: &AcquireTokenOptions,
        acquisition: &mut Acquisition,
    ) -> Result<AccessToken, TokenError> {
        self.check_scopes(scopes)?;
        let target = Target::resolve(
            options,
            &self.authority,
            &self.authority_key,
            &self.capabilities,
        )?;
        // A claims request skips the cached token (MSAL); capabilities alone do not.
        let fetch = if target.has_claims {
            Fetch::Forced
        } else {
            fetch
        };
        let key = CacheKey::new(&target.authority_key, &self.client_id, scopes);
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
        let mut reason = CacheRefreshReason::ForceRefresh;
        if !force {
            reason = CacheRefreshReason::NoCachedAccessToken;
            if let Some(token) = slot.token.load_full() {
                if token.usable_at(now, EXPIRY_MARGIN) {
                    if now >= token.refresh_on() {
                        self.spawn_refresh(&key, &slot, scopes, &target, now);
                    }
                    return Ok((*token).clone());
                }
                let served =
                    self.extended_lifetime
                        .serve_during_outage(&slot, &token, now, &self.telemetry);
                if let Some(token) = served {
                    self.spawn_refresh(&key, &slot, scopes, &target, now);
                    return Ok(token);
                }
                reason = CacheRefreshReason::Expired;
            }
        }
        if let Some(retry_after) = slot.throttled(now) {
            debug!(target: TARGET, ?retry_after, "token request refused: the authority asked to wait");
            let error = TokenError::Throttled { retry_after };
            return self
                .extended_lifetime
                .after_failure(&slot, error, force, now, &self.telemetry);
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
            let error = TokenError::Throttled { retry_after };
            return self
                .extended_lifetime
                .after_failure(&slot, error, force, now, &self.telemetry);
        }
        acquisition.goes_to_identity_provider(reason);
        let need = if force { Need::Fresh } else { Need::Token };
        let token = match self
            .fetch_shared(&key, need, scopes, &target, &slot, acquisition)
            .await
        {
            Ok(token) => token,
            Err(error) => {
                let served =
                    self.extended_lifetime
                        .after_failure(&slot, error, force, now, &self.telemetry);
                if served.is_ok() {
                    acquisition.source = crate::telemetry::TokenSource::L1Cache;
                }
                return served;
            }
        };
        self.extended_lifetime.recovered(&slot);
        slot.store(token.clone());
        Ok(token)
    }

    /// [`fetch`](Self::fetch) through the shared cache (L2) when there is one.
    /// When the token came from the shared cache rather than the identity provider,
    /// `acquisition`'s source says so.
    async fn fetch_shared(
        &self,
        key: &CacheKey,
        need: Need,
        scopes: &[String],
        target: &Target,
        slot: &Slot,
        acquisition: &mut Acquisition,
    ) -> Result<AccessToken, TokenError> {
        match &self.shared {
            Some(shared) => {
                let asked = std::sync::atomic::AtomicBool::new(false);
                let fetch = || {
                    asked.store(true, std::sync::atomic::Ordering::Relaxed);
                    self.fetch(scopes, target, slot)
                };
                let result = shared.acquire(key, need, &self.context.clock, fetch).await;
                if result.is_ok() && !asked.load(std::sync::atomic::Ordering::Relaxed) {
                    acquisition.source = crate::telemetry::TokenSource::L2Cache;
                }
                result
            }
            None => self.fetch(scopes, target, slot).await,
        }
    }

    fn spawn_refresh(
        self: &Arc<Self>,
        key: &CacheKey,
        slot: &Arc<Slot>,
        scopes: &[String],
        target: &Target,
        now: SystemTime,
    ) {
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
        let key = key.clone();
        let target = target.without_claims_request(&self.capabilities);
        runtime.spawn(async move {
            let current = slot.token.load_full();
            if let (Some(shared), Some(current)) = (&inner.shared, &current) {
                // Replicas refresh at random moments: the first one asks, the others share.
                tokio::time::sleep(shared.refresh_delay(current, inner.now())).await;
            }
            let need = current.map_or(Need::Token, |t| Need::NewerThan(t.expires_on()));
            let mut acquisition = Acquisition::start(&inner.telemetry);
            acquisition.goes_to_identity_provider(CacheRefreshReason::ProactivelyRefreshed);
            let started = std::time::Instant::now();
            let result = {
                use tracing::Instrument as _;
                let _flight = slot.flight.lock().await;
                let span = crate::telemetry::spans::acquisition();
                let fetched = inner
                    .fetch_shared(&key, need, &scopes, &target, &slot, &mut acquisition)
                    .instrument(span.clone())
                    .await;
                acquisition.report(&inner.telemetry, &span, &fetched, inner.now());
                fetched.inspect(|token| {
                    inner.extended_lifetime.recovered(&slot);
                    slot.store(token.clone());
                })
            };
            inner.telemetry.background_refresh(result.is_ok());
            match &result {
                Ok(_) => slot.end_refresh(inner.now(), false),
                Err(error) => {
                    warn!(target: TARGET, %error, "background token refresh failed; the current token stays in use");
                    slot.end_refresh(inner.now(), true);
                    inner.extended_lifetime.refresh_failed(&slot, error, inner.now());
                }
            }
            if let Some(hook) = &inner.on_background_refresh {
                hook.call(&BackgroundRefreshEvent::new(&scopes, started.elapsed(), result.as_ref()));
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
            .map_err(TokenError::from_load)
    }

    /// Whether the scheduled reload is due: a source, an interval, and a credential loaded
    /// from that source longer ago than the interval.
    fn reload_due(&self) -> bool {
        if self.source.is_none() {
            return false;
        }
        let loaded_at = self.loaded_at.load(std::sync::atomic::Ordering::SeqCst);
        if loaded_at == 0 {
            // Given to the builder, never loaded from the source: reload only on refusal.
            return false;
        }
        if self.rotation.due(self.now()) {
            return true;
        }
        let Some(interval) = self.reload_interval else {
            return false;
        };
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
                self.rotation
                    .load_failed(Some(&current), &error, self.now());
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
        if let ClientCredential::Signer(signer) = credential.as_ref() {
            let certificate = signer.certificate();
            info!(target: TARGET, subject = %self.pii_value(certificate.subject()),
                thumbprint = %certificate.thumbprints().sha1_hex(), backend = signer.backend(),
                "client certificate loaded (its key signs outside the process)");
        }
        let previous = self.credential.swap(Some(Arc::clone(&credential)));
        self.rotation
            .installed(previous.as_deref(), &credential, self.now());
        self.loaded_at.store(
            unix_millis(self.now()).max(1),
            std::sync::atomic::Ordering::SeqCst,
        );
        credential
    }

    async fn reload_credential(&self) -> Result<Arc<ClientCredential>, CredentialError> {
        let Some(source) = &self.source else {
            return self.credential.load_full().ok_or_else(|| {
                CredentialError::Configuration(ConfigError::Missing {
                    key: "CallApi:ClientCertificates",
                    hint: "set a certificate, a client secret or a credential source",
                })
            });
        };
        let _reload = self.reload.lock().await;
        match source.load(&self.context).await {
            Ok(credential) => Ok(self.install(credential)),
            Err(error) => {
                let current = self.credential.load_full();
                self.rotation
                    .load_failed(current.as_deref(), &error, self.now());
                Err(error)
            }
        }
    }

    /// Requests a token; when the authority refuses the credential itself and a source is
    /// configured, reloads the credential once and tries again (certificate rotation).
    async fn fetch(
        &self,
        scopes: &[String],
        target: &Target,
        slot: &Slot,
    ) -> Result<AccessToken, TokenError> {
        let endpoint = match &target.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => self.token_endpoint().await?,
        };
        let claims = target.claims.as_deref();
        let credential = self.current_credential().await?;
        let result = match self
            .request_with_retry(&endpoint, &credential, scopes, claims, slot)
            .await
        {
            Err(TokenError::Rejected(error))
                if error.is_credential_rejected() && self.source.is_some() =>
            {
                warn!(target: TARGET, code = ?error.code,
                    "the authority refused the client credential; reloading it once (rotation)");
                self.rotation.failed(Some(&credential), &error);
                let credential = self
                    .reload_credential()
                    .await
                    .map_err(TokenError::from_load)?;
                let result = self
                    .request_with_retry(&endpoint, &credential, scopes, claims, slot)
                    .await;
                self.observe(&credential, &result);
                return result;
            }
            // The key's holder refused (a disabled or deleted key version after a rotation):
            // the source may have a newer one.
            Err(TokenError::Signing(error)) if !error.is_transient() && self.source.is_some() => {
                warn!(target: TARGET, error = %error_chain(&error),
                    "the signer refused to sign; reloading the credential once (rotation)");
                self.rotation.failed(Some(&credential), &error);
                let credential = self
                    .reload_credential()
                    .await
                    .map_err(TokenError::from_load)?;
                let result = self
                    .request_with_retry(&endpoint, &credential, scopes, claims, slot)
                    .await;
                self.observe(&credential, &result);
                return result;
            }
            other => other,
        };
        self.observe(&credential, &result);
        result
    }

    /// Tells the observers how a token request with `credential` ended.
    fn observe(&self, credential: &ClientCredential, result: &Result<AccessToken, TokenError>) {
        match result {
            Ok(_) => self.rotation.used(credential),
            Err(error @ (TokenError::Signing(_) | TokenError::Assertion(_))) => {
                self.rotation.failed(Some(credential), error);
            }
            Err(TokenError::Rejected(error)) if error.is_credential_rejected() => {
                self.rotation.failed(Some(credential), error.as_ref());
            }
            Err(_) => {}
        }
    }

    async fn request_with_retry(
        &self,
        endpoint: &Url,
        credential: &ClientCredential,
        scopes: &[String],
        claims: Option<&str>,
        slot: &Slot,
    ) -> Result<AccessToken, TokenError> {
        let mut retried = false;
        loop {
            let request = TokenRequest {
                endpoint,
                client_id: &self.client_id,
                credential,
                scopes,
                claims,
                algorithm: self.algorithm,
                send_x5c: self.send_x5c,
                context: &self.context,
                pii: self.pii,
            };
            let started = self.telemetry.start();
            match request.send().await {
                Attempt::Token(token) => {
                    self.telemetry.token_http(started);
                    return Ok(token);
                }
                Attempt::Throttled(retry_after) => {
                    let retry_after = retry_after.min(MAX_RETRY_AFTER);
                    self.telemetry.retry_after(retry_after);
                    slot.throttle(self.now(), retry_after);
                    warn!(target: TARGET, ?retry_after, "the authority asked to wait (Retry-After)");
                    return Err(TokenError::Throttled { retry_after });
                }
                Attempt::Retryable(error) if !retried => {
                    retried = true;
                    warn!(target: TARGET, %error, delay = ?self.retry_delay, "token request failed; retrying once");
                    tokio::time::sleep(self.retry_delay).await;
                }
                Attempt::Failed(error) | Attempt::Retryable(error) => return Err(error),
            }
        }
    }
}
