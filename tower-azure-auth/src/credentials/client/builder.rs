//! [`ConfidentialClientBuilder`]: the client's settings, their defaults, and the build.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Builds a [`ConfidentialClient`], like MSAL's `ConfidentialClientApplicationBuilder`.
#[must_use]
pub struct ConfidentialClientBuilder {
    client_id: String,
    authority: Option<Authority>,
    credential: Option<ClientCredential>,
    source: Option<Arc<dyn CredentialSource>>,
    send_x5c: bool,
    algorithm: Option<AssertionAlgorithm>,
    transport: TransportOptions,
    pii: bool,
    max_cache_entries: usize,
    reload_interval: Option<Duration>,
    shared: Option<SharedTokenCache>,
    #[cfg(feature = "opentelemetry")]
    meter: Option<opentelemetry::metrics::Meter>,
    observers: Observers,
    proactive_window: Option<Duration>,
    capabilities: Vec<String>,
    extended_lifetime: bool,
    on_background_refresh: Option<RefreshHook>,
}

impl fmt::Debug for ConfidentialClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfidentialClientBuilder")
            .field("authority", &self.authority)
            .field("credential", &self.credential)
            .field("source", &self.source)
            .field("send_x5c", &self.send_x5c)
            .field("algorithm", &self.algorithm)
            .field("shared_token_cache", &self.shared)
            .finish_non_exhaustive()
    }
}

impl ConfidentialClientBuilder {
    /// Records token acquisitions with this meter (feature `opentelemetry`; default: the
    /// global meter provider's, taken at [`build`](Self::build)), under MSAL.NET's
    /// instrument and tag names (`MsalSuccess`, `MsalFailure`, `MsalTotalDuration.1A`, …;
    /// see [`telemetry`](crate::telemetry)). The client id is a tag only with
    /// [`enable_pii_logging`](Self::enable_pii_logging).
    #[cfg(feature = "opentelemetry")]
    pub fn meter(mut self, meter: opentelemetry::metrics::Meter) -> Self {
        self.meter = Some(meter);
        self
    }

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

    /// Authenticates with client assertions signed by `signer` (a key in Azure Key Vault, an
    /// HSM, any [`Signer`]); the private key need not be in the process.
    pub fn signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.credential = Some(ClientCredential::Signer(signer));
        self
    }

    /// Tells `observer` which certificate is selected, replaced, fails or is successfully
    /// used (Microsoft.Identity.Web's `ICertificatesObserver`); may be called more than once.
    pub fn certificate_observer(mut self, observer: Arc<dyn CertificateObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Reloads the [`credential_source`](Self::credential_source) ahead of the certificate's
    /// `notAfter` (or its Key Vault key version's `exp`, whichever is first), at a random
    /// moment between `window` and `window / 2` before it (the window is at most half the
    /// certificate's validity), so that a rotated certificate is picked up before Entra
    /// refuses the old one and a fleet of replicas does not read the vault at the same
    /// moment. Checked when a token is requested from the authority, like
    /// [`reload_interval`](Self::reload_interval); a reload that brings the same certificate
    /// is tried again after 10 minutes. Default 24 hours; `None` turns it off (the reload on
    /// AADSTS700027-class refusals stays).
    pub fn proactive_reload(mut self, window: Option<Duration>) -> Self {
        self.proactive_window = window;
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
        self.transport.http = Some(http);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.transport.clock = clock;
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
        self.transport.retry_delay = delay;
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
        self.transport.forced_refresh_interval = interval;
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

    /// A token cache shared by the client's replicas (L2, e.g. Redis), under the in-memory
    /// one: a token another replica obtained is taken from it, one replica at a time asks the
    /// authority, and a store that fails or is slow is a miss (see [`SharedTokenCache`]).
    /// Default: none. A hit in memory never touches it.
    pub fn shared_token_cache(mut self, cache: SharedTokenCache) -> Self {
        self.shared = Some(cache);
        self
    }

    /// Client capabilities (MSAL's `WithClientCapabilities`; `["cp1"]` declares continuous
    /// access evaluation): sent with every token request as the `claims` parameter
    /// `{"access_token":{"xms_cc":{"values":["cp1"]}}}`. Entra then issues long-lived tokens
    /// the resource can revoke, answering with a claims challenge that the
    /// reqwest middleware and [`AddAccessTokenLayer`](crate::layers::AddAccessTokenLayer)
    /// follow once. Capabilities
    /// alone do not skip the token cache.
    pub fn client_capabilities<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities = capabilities
            .into_iter()
            .map(Into::into)
            .filter(|c: &String| !c.trim().is_empty())
            .collect();
        self
    }

    /// Keeps serving a cached token past its usable point (within 5 minutes of `expires_in`,
    /// or past it) while the authority fails with a retryable error (5xx, 429, timeout, no
    /// connection) and the token is inside the extended lifetime Entra sends for exactly this
    /// (`ext_expires_in`); never past it. Meanwhile the token is refreshed in the background
    /// with exponential backoff (5 s, doubling, at most 2 minutes), each such token is counted
    /// (`tower_azure_auth.client.extended_lifetime_served`) and the outage's start and end
    /// are logged at warn. A token without `ext_expires_in`, a refusal (4xx) and a
    /// [`force_refresh`](ConfidentialClient::force_refresh) get the error as before.
    ///
    /// Default **on**: the token stays valid at the resource for its extended lifetime,
    /// so an outage of the authority need not become one of every service calling an API.
    /// (MSAL.NET keeps this behind an internal switch, off.) `false` turns it off.
    pub fn extended_token_lifetime(mut self, enabled: bool) -> Self {
        self.extended_lifetime = enabled;
        self
    }

    /// Calls `hook` when a background refresh ends, successful or not, with its scopes and
    /// duration (never the token), as MSAL.NET's `OnBackgroundTokenRefreshCompleted`. It
    /// runs on the refresh's task: keep it short. A panic in it is caught and logged, and the
    /// client goes on (with `panic = "abort"` there is nothing to catch).
    pub fn on_background_refresh(
        mut self,
        hook: impl Fn(&BackgroundRefreshEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_background_refresh = Some(RefreshHook::new(hook));
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
        let mut transport = self.transport;
        let http = transport.http_client()?;
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
        #[cfg(feature = "opentelemetry")]
        let telemetry = match &self.meter {
            Some(meter) => Telemetry::with_meter(meter),
            None => Telemetry::global(),
        };
        #[cfg(not(feature = "opentelemetry"))]
        let telemetry = Telemetry::global();
        let telemetry = telemetry.with_client_id(self.pii.then_some(self.client_id.as_str()));
        Ok(ConfidentialClient {
            inner: Arc::new(ClientInner {
                telemetry,
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
                    clock: transport.clock,
                },
                pii: self.pii,
                retry_delay: transport.retry_delay,
                cache: TokenCache::new(self.max_cache_entries),
                forced_refresh_interval: transport.forced_refresh_interval,
                shared: self.shared.map(Arc::new),
                token_endpoint: tokio::sync::OnceCell::new(),
                rotation: Rotation::new(self.proactive_window, self.observers),
                capabilities: self.capabilities,
                extended_lifetime: ExtendedLifetime {
                    enabled: self.extended_lifetime,
                },
                on_background_refresh: self.on_background_refresh,
            }),
        })
    }
}

impl ConfidentialClientBuilder {
    /// The defaults, for [`ConfidentialClient::builder`].
    pub(super) fn new(client_id: String) -> Self {
        Self {
            client_id,
            authority: None,
            credential: None,
            source: None,
            send_x5c: false,
            algorithm: None,
            transport: TransportOptions::default(),
            pii: false,
            max_cache_entries: 256,
            reload_interval: Some(Duration::from_secs(3600)),
            shared: None,
            #[cfg(feature = "opentelemetry")]
            meter: None,
            observers: Observers::default(),
            proactive_window: Some(DEFAULT_PROACTIVE_WINDOW),
            capabilities: Vec::new(),
            extended_lifetime: true,
            on_background_refresh: None,
        }
    }
}
