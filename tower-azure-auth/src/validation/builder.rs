//! [`TokenValidatorBuilder`]: the validator's settings, their defaults, and the build that
//! wires keys, rules, cache, revocation and telemetry together.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Builds a [`TokenValidator`].
#[derive(Debug)]
#[must_use]
pub struct TokenValidatorBuilder {
    authority: Authority,
    client_id: Option<String>,
    audiences: Vec<String>,
    allowed_tenants: Vec<String>,
    allowed_client_ids: Vec<String>,
    algorithms: Vec<SignatureAlgorithm>,
    leeway: Duration,
    max_token_lifetime: Duration,
    max_token_size: usize,
    require_scope_or_role: bool,
    pii: bool,
    detailed_errors: bool,
    validate_metadata_issuer: bool,
    clock: SharedClock,
    http: Option<HttpClient>,
    refresh_interval: Duration,
    min_forced_refresh_interval: Duration,
    unavailable_retry_interval: Duration,
    cache_bytes: usize,
    static_snapshot: Option<Snapshot>,
    last_known_good: Option<Arc<dyn LastKnownGoodStore>>,
    last_known_good_max_age: Duration,
    revocation_channel: Option<Arc<dyn RevocationChannel>>,
    claims_challenge_on_revocation: bool,
    #[cfg(feature = "opentelemetry")]
    meter: Option<opentelemetry::metrics::Meter>,
}

impl TokenValidatorBuilder {
    /// Records the validator's metrics with this meter (feature `opentelemetry`; default:
    /// the global meter provider's `tower-azure-auth` meter, taken at
    /// [`build`](Self::build): install the provider before). The instruments are listed in
    /// [`telemetry`](crate::telemetry).
    #[cfg(feature = "opentelemetry")]
    pub fn meter(mut self, meter: opentelemetry::metrics::Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Memory for the verified-token cache, in bytes (default 16 MiB; 0 turns it off). A
    /// token presented again is accepted without a new signature check while it is within
    /// its lifetime and the key that verified it is still published.
    ///
    /// Each entry weighs the heap it holds: the token's text, its claims (the decoded
    /// payload and what the rules read from it; the full claims map too once a caller has
    /// asked for it, from the next hit on) and the cache's own bookkeeping, so the heap the
    /// cache holds stays within this budget (as requested from the allocator, whose own
    /// per-allocation overhead comes on top).
    ///
    /// Besides, each thread that validates keeps the last 8 tokens it found in the cache,
    /// with a copy of their claims (a few KiB per thread, outside this budget), so that
    /// threads serving the same token do not write to shared memory; a hit there is checked
    /// like any other (key still published, lifetime, revocations).
    pub fn verified_token_cache(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// This API's client id: the default audience when no audience is configured —
    /// `ClientId` for v2 tokens, `ClientId` or `api://ClientId` for v1 tokens of an Entra
    /// authority (Microsoft.Identity.Web's rule), and `ClientId` only for any other OpenID
    /// Connect authority, where `api://` URIs mean nothing.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Accepts this audience (replacing the per-version default).
    pub fn add_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts only tokens whose `tid` is one of these (empty: any tenant the issuer rules
    /// accept). Entries are trimmed and compared ignoring ASCII case (tenant ids are GUIDs);
    /// blank entries are ignored. Entra authorities only.
    pub fn allowed_tenants<I, T>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.allowed_tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// Accepts only tokens whose calling application — `azp` in v2 tokens, `appid` in v1
    /// tokens ([`Claims::client_id`]) — is one of these (`AllowedClientIds`; empty, the
    /// default: any caller). Entries are trimmed and compared ignoring ASCII case (client ids
    /// are GUIDs); blank entries are ignored. Any other token, and a token that names no
    /// calling application, is refused with 401 `invalid_token` and
    /// [`AuthErrorKind::ClientNotAllowed`], before any authorization policy runs.
    ///
    /// ```
    /// use tower_azure_auth::{Authority, AuthErrorKind, TokenValidator};
    /// # use base64::Engine as _;
    /// # let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    /// # let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    /// # use aws_lc_rs::signature::KeyPair as _;
    /// # let public = key.public_key();
    /// # let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1",
    /// #     "n": b64(public.modulus().big_endian_without_leading_zero()),
    /// #     "e": b64(public.exponent().big_endian_without_leading_zero())}]}).to_string();
    /// # let sign = |claims: serde_json::Value| {
    /// #     let message = format!("{}.{}", b64(br#"{"alg":"RS256","kid":"k1"}"#), b64(claims.to_string().as_bytes()));
    /// #     let mut signature = vec![0; key.public_modulus_len()];
    /// #     key.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(),
    /// #         message.as_bytes(), &mut signature).unwrap();
    /// #     format!("{message}.{}", b64(&signature))
    /// # };
    /// # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    /// # let token = |azp: &str| sign(serde_json::json!({"iss": "https://idp.example.com",
    /// #     "aud": "api", "exp": now + 600, "azp": azp, "roles": ["r"]}));
    /// let validator = TokenValidator::builder(Authority::oidc("https://idp.example.com")?)
    ///     .client_id("api")
    ///     .allowed_client_ids(["11111111-AAAA-4000-8000-000000000001"])
    ///     .static_keys("https://idp.example.com", jwks.as_bytes())?
    ///     .build()?;
    /// assert!(validator.validate_with_current_keys(&token("11111111-aaaa-4000-8000-000000000001")).is_ok());
    /// let error = validator
    ///     .validate_with_current_keys(&token("22222222-bbbb-4000-8000-000000000002"))
    ///     .unwrap_err();
    /// assert_eq!(error.kind(), AuthErrorKind::ClientNotAllowed);
    /// assert_eq!(error.status(), 401);
    /// # Ok::<(), tower_azure_auth::ConfigError>(())
    /// ```
    pub fn allowed_client_ids<I, T>(mut self, client_ids: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.allowed_client_ids = client_ids.into_iter().map(Into::into).collect();
        self
    }

    /// Keeps the expected and actual values of a refusal (the token's audience, issuer,
    /// tenant, client and key id, and the API's expected ones) in [`AuthError::detail`] and
    /// logs them at debug (`EnablePiiLogging`; default false). Responses still carry only the
    /// check's name unless [`detailed_errors`](Self::detailed_errors) is on too. Tokens are
    /// never logged.
    pub fn enable_pii_logging(mut self, enable: bool) -> Self {
        self.pii = enable;
        self
    }

    /// For development: puts the expected and actual values of a refusal in the response's
    /// `error_description` too (`DetailedErrors`; default false), as
    /// Microsoft.IdentityModel's `ShowPII` does. The values are then also in
    /// [`AuthError::detail`] and in the debug log. Never in production: the caller learns the
    /// API's configuration (audience, issuer, tenant, allowed clients).
    pub fn detailed_errors(mut self, enable: bool) -> Self {
        self.detailed_errors = enable;
        self
    }

    /// The longest lifetime accepted (default 2 days): a token is refused when its `exp` is
    /// more than this after its `nbf` or `iat` (the later of the two), or after now when it
    /// carries neither. Entra's access tokens live 60–90 minutes, at most about 28 hours
    /// (continuous access evaluation); a token valid for longer was not minted by Entra's
    /// usual rules.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// Whether, for an OpenID Connect authority that is not Entra ID, the discovery
    /// document's `issuer` must be the configured authority URL (default true; a trailing `/`
    /// is ignored), as OpenID Connect Discovery §4.3 requires. When it is not, the metadata is
    /// refused (the fetch fails and the last known good keys stay). Turn it off only for an
    /// authority known to publish another issuer than its own URL; tokens must then carry the
    /// metadata's `issuer`.
    pub fn validate_metadata_issuer(mut self, validate: bool) -> Self {
        self.validate_metadata_issuer = validate;
        self
    }

    /// The accepted signature algorithms (default: [`SignatureAlgorithm::Rs256`] alone,
    /// what Entra ID signs with; an empty list means the default). A token whose `alg` is
    /// not listed is refused before its signature is checked.
    pub fn algorithms<I>(mut self, algorithms: I) -> Self
    where
        I: IntoIterator<Item = SignatureAlgorithm>,
    {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Leeway for `exp`, `nbf` and `iat` (default 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Tokens longer than this are refused before any parsing (default 16 KiB).
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = bytes;
        self
    }

    /// Whether a token must carry a non-empty `scp` (a string with at least one scope) or
    /// `roles` (default true, as Microsoft.Identity.Web; `AllowWebApiToBeAuthorizedByACL`
    /// turns it off). `"scp": null` or `""` is no scope.
    pub fn require_scope_or_role(mut self, require: bool) -> Self {
        self.require_scope_or_role = require;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client for metadata and keys (default: [`HttpClient::new`]).
    pub fn http_client(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// How often keys are refreshed in the background (default 12 hours).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// The least time between two refreshes forced by unknown `kid`s (default 5 minutes).
    pub fn min_forced_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_forced_refresh_interval = interval;
        self
    }

    /// While no keys are available at all, the least time between two fetches triggered by
    /// requests (default 10 seconds; the background task retries on its own meanwhile).
    pub fn unavailable_retry_interval(mut self, interval: Duration) -> Self {
        self.unavailable_retry_interval = interval;
        self
    }

    /// Keeps the metadata and keys of every successful fetch in `store`, and starts with the
    /// stored ones when the authority cannot be reached and no keys were fetched yet (default:
    /// no store). Stored keys are used only when they were fetched for this authority no
    /// longer ago than [`last_known_good_max_age`](Self::last_known_good_max_age); the
    /// authority is asked again every 1 to 30 seconds meanwhile and its keys replace the
    /// stored ones as soon as it answers. A stored document that cannot be used is ignored
    /// with a warning. See [`last_known_good`] for the trade-off (a key withdrawn during the
    /// outage is accepted until the authority answers).
    ///
    /// ```
    /// use tower_azure_auth::validation::last_known_good::FileStore;
    /// use tower_azure_auth::{Authority, TokenValidator};
    ///
    /// let validator = TokenValidator::builder(Authority::oidc("https://idp.example.com")?)
    ///     .client_id("api")
    ///     .last_known_good(FileStore::new("/var/lib/weather-api/signing-keys.json"))
    ///     .last_known_good_max_age(std::time::Duration::from_secs(6 * 3600))
    ///     .build()?;
    /// # drop(validator);
    /// # Ok::<(), tower_azure_auth::ConfigError>(())
    /// ```
    pub fn last_known_good(mut self, store: impl LastKnownGoodStore) -> Self {
        self.last_known_good = Some(Arc::new(store));
        self
    }

    /// The oldest stored keys [`last_known_good`](Self::last_known_good) may start with, and
    /// how long they may be served while the authority stays unreachable, counted from when
    /// they were fetched (default 24 hours; `LastKnownGoodKeys:MaxAgeSeconds`).
    pub fn last_known_good_max_age(mut self, max_age: Duration) -> Self {
        self.last_known_good_max_age = max_age;
        self
    }

    /// Shares revocations ([`TokenValidator::revoke`]) with every replica through `channel`,
    /// and honours the ones the others publish, including those published before this
    /// validator started (default: none, revocations stay on this validator). The
    /// validator subscribes when built (inside a Tokio runtime).
    pub fn revocation_channel(mut self, channel: impl RevocationChannel) -> Self {
        self.revocation_channel = Some(Arc::new(channel));
        self
    }

    /// Answers a revoked token ([`TokenValidator::revoke`]) whose client declared continuous
    /// access evaluation (`xms_cc` holds `cp1`) with a claims challenge instead of
    /// `invalid_token`, as Microsoft's CAE resources do: `401` with `WWW-Authenticate: Bearer
    /// realm="", authorization_uri="{authority}/oauth2/authorize", error="insufficient_claims",
    /// claims="<base64 of {"access_token":{"nbf":{"essential":true,"value":"<refusal time>"}}}>"`
    /// (gRPC: `UNAUTHENTICATED` with that `www-authenticate` metadata) and the JSON error
    /// `insufficient_claims`. The client acquires a token issued since and retries. Tokens
    /// without `cp1` keep the `invalid_token` refusal (their client cannot answer a
    /// challenge). Default: off. See [`revocation`](super::revocation).
    pub fn claims_challenge_on_revocation(mut self, enable: bool) -> Self {
        self.claims_challenge_on_revocation = enable;
        self
    }

    /// Uses this fixed key set and issuer instead of OpenID Connect discovery: nothing is
    /// ever fetched (no background refresh, no refresh on an unknown `kid`, which is then
    /// simply refused), and [`TokenValidator::refresh`] does nothing. For offline tests, fuzzing, and
    /// deployments that pin their keys; the issuer and audience rules still apply (`issuer`
    /// may hold Entra's `{tenantid}` template; v1 issuers are not accepted in this mode).
    ///
    /// `jwks_json` is a JWKS document, parsed like a fetched one (RSA signature keys of
    /// 2048 bits or more, at most 64).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `jwks_json` is not a JWKS or holds no usable key.
    ///
    /// ```
    /// use tower_azure_auth::{Authority, AuthErrorKind, TokenValidator};
    /// # use base64::Engine as _;
    /// # let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xC5u8; 256]);
    /// let jwks = format!(r#"{{"keys":[{{"kty":"RSA","kid":"k1","n":"{n}","e":"AQAB"}}]}}"#);
    /// let validator = TokenValidator::builder(Authority::oidc("https://idp.example.com")?)
    ///     .client_id("api")
    ///     .static_keys("https://idp.example.com", jwks.as_bytes())?
    ///     .build()?;
    /// assert!(validator.has_keys());
    /// let error = validator.validate_with_current_keys("not-a-token").unwrap_err();
    /// assert_eq!(error.kind(), AuthErrorKind::MalformedToken);
    /// # Ok::<(), tower_azure_auth::ConfigError>(())
    /// ```
    pub fn static_keys(mut self, issuer: &str, jwks_json: &[u8]) -> Result<Self, ConfigError> {
        let keys = KeySet::from_jwks(jwks_json).map_err(|reason| ConfigError::Invalid {
            key: "jwks".into(),
            reason,
        })?;
        self.static_snapshot = Some(Snapshot {
            keys,
            issuer: issuer.to_owned(),
            v1_issuer: None,
            stored_at: None,
        });
        Ok(self)
    }

    /// Builds the validator and, inside a Tokio runtime, starts the background key refresh
    /// (outside one, keys are fetched on first use and the first validation inside a runtime
    /// starts the background refresh; with [`static_keys`](Self::static_keys), never).
    ///
    /// # Errors
    ///
    /// When no audience can be derived (no `ClientId` and no `Audience`), or the HTTP client
    /// cannot be built.
    pub fn build(self) -> Result<TokenValidator, ConfigError> {
        if self.client_id.is_none() && self.audiences.is_empty() {
            return Err(ConfigError::Missing {
                key: "AzureAd:ClientId",
                hint: "set ClientId (the default audience) or Audience",
            });
        }
        let mut algorithms = Vec::new();
        for algorithm in &self.algorithms {
            let algorithm = match algorithm {
                SignatureAlgorithm::Rs256 => Algorithm::RS256,
                SignatureAlgorithm::Rs384 => Algorithm::RS384,
                SignatureAlgorithm::Rs512 => Algorithm::RS512,
                SignatureAlgorithm::Ps256 => Algorithm::PS256,
                SignatureAlgorithm::Ps384 => Algorithm::PS384,
                SignatureAlgorithm::Ps512 => Algorithm::PS512,
            };
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
        if algorithms.is_empty() {
            algorithms.push(Algorithm::RS256);
        }
        let http = match self.http {
            Some(http) => http,
            None => HttpClient::new()?,
        };
        let trimmed = |list: Vec<String>| -> Vec<String> {
            list.iter()
                .map(|entry| entry.trim())
                .filter(|entry| !entry.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let rules = Rules {
            entra: self.authority.is_entra(),
            audiences: self.audiences,
            default_audience_client_id: self.client_id,
            allowed_tenants: {
                // Folded and sorted once, so that a thousand tenants cost a binary search.
                let mut tenants: Vec<String> = trimmed(self.allowed_tenants)
                    .iter()
                    .map(|t| t.to_ascii_lowercase())
                    .collect();
                tenants.sort_unstable();
                tenants.dedup();
                tenants
            },
            allowed_client_ids: trimmed(self.allowed_client_ids),
            leeway: self.leeway.as_secs(),
            max_token_lifetime: self.max_token_lifetime.as_secs(),
            require_scope_or_role: self.require_scope_or_role,
            pii: self.pii || self.detailed_errors,
            detailed_errors: self.detailed_errors,
        };
        #[cfg(feature = "opentelemetry")]
        let telemetry = match &self.meter {
            Some(meter) => Telemetry::with_meter(meter),
            None => Telemetry::global(),
        };
        #[cfg(not(feature = "opentelemetry"))]
        let telemetry = Telemetry::global();
        let server = self
            .authority
            .metadata_url()
            .host_str()
            .unwrap_or_default()
            .to_owned();
        let claims_challenge = self
            .claims_challenge_on_revocation
            .then(|| claims_challenge::ClaimsChallenge::new(&self.authority));
        let keys = KeyRefresh::new(
            self.authority,
            http,
            self.clock.clone(),
            RefreshSettings {
                validate_metadata_issuer: self.validate_metadata_issuer,
                refresh_interval: self.refresh_interval,
                min_forced_refresh_interval: self.min_forced_refresh_interval,
                unavailable_retry_interval: self.unavailable_retry_interval,
            },
            self.static_snapshot,
            self.last_known_good.map(|store| LastKnownGood {
                store,
                max_age: self.last_known_good_max_age,
            }),
            telemetry.clone(),
        );
        let cache = VerifiedTokens::new(self.cache_bytes, &telemetry).map(Arc::new);
        let revoker = Revoker::new(cache.clone(), self.clock.clone(), rules.pii);
        if let Some(channel) = &self.revocation_channel {
            channel.subscribe(revoker.sink());
        }
        if let Some(cache) = &cache {
            let cache = Arc::downgrade(cache);
            telemetry.observe_token_cache_size(move || cache.upgrade().map(|c| c.weight()));
        }
        let weak_keys = Arc::downgrade(&keys);
        telemetry.observe_key_age(&server, move || {
            weak_keys.upgrade().and_then(|keys| keys.last_refresh_age())
        });
        let inner = Arc::new(Inner {
            keys,
            rules,
            clock: self.clock,
            algorithms,
            max_token_size: self.max_token_size,
            cache,
            revoker,
            claims_challenge,
            revocation_channel: self.revocation_channel,
            telemetry,
        });
        inner.keys.start_refresh_loop();
        Ok(TokenValidator { inner })
    }
}

impl TokenValidatorBuilder {
    /// The defaults, for [`TokenValidator::builder`].
    pub(super) fn new(authority: Authority) -> Self {
        Self {
            authority,
            client_id: None,
            audiences: Vec::new(),
            allowed_tenants: Vec::new(),
            allowed_client_ids: Vec::new(),
            algorithms: Vec::new(),
            leeway: Duration::from_secs(300),
            max_token_lifetime: Duration::from_secs(2 * 24 * 3600),
            max_token_size: 16 * 1024,
            require_scope_or_role: true,
            pii: false,
            detailed_errors: false,
            validate_metadata_issuer: true,
            clock: clock::system(),
            http: None,
            refresh_interval: Duration::from_secs(12 * 3600),
            min_forced_refresh_interval: Duration::from_secs(300),
            unavailable_retry_interval: Duration::from_secs(10),
            cache_bytes: 16 * 1024 * 1024,
            static_snapshot: None,
            last_known_good: None,
            last_known_good_max_age: Duration::from_secs(24 * 3600),
            revocation_channel: None,
            claims_challenge_on_revocation: false,
            #[cfg(feature = "opentelemetry")]
            meter: None,
        }
    }

    /// [`TokenValidator::from_options`].
    pub(super) fn from_section(options: &AzureAdOptions) -> Result<Self, ConfigError> {
        let mut builder = Self::new(Authority::from_options(options)?)
            .allowed_tenants(options.allowed_tenants.iter().cloned())
            .allowed_client_ids(options.allowed_client_ids.iter().cloned())
            .enable_pii_logging(options.enable_pii_logging.unwrap_or(false))
            .detailed_errors(options.detailed_errors.unwrap_or(false))
            .algorithms(options.signature_algorithms()?)
            .require_scope_or_role(
                !options
                    .allow_web_api_to_be_authorized_by_acl
                    .unwrap_or(false),
            );
        if let Some(client_id) = options
            .client_id
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        {
            builder = builder.client_id(client_id.trim());
        }
        for audience in options.audience.iter().chain(&options.audiences) {
            if !audience.trim().is_empty() {
                builder = builder.add_audience(audience.trim());
            }
        }
        if let Some(seconds) = options.clock_skew_seconds {
            builder = builder.leeway(Duration::from_secs(seconds));
        }
        if let Some(bytes) = options.max_token_size {
            builder = builder.max_token_size(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        fleet_options::apply(builder, options)
    }
}
