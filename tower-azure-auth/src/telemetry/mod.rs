//! Observability: metrics through the OpenTelemetry API (feature `opentelemetry`), `tracing`
//! spans with OpenTelemetry semantic-convention field names, and the tag values both use.
//!
//! # Metrics
//!
//! With the `opentelemetry` feature, the validator, the policies and the confidential client
//! record into an OpenTelemetry `Meter` named `tower-azure-auth`, taken from
//! the global meter provider when each is built (install the provider first, with
//! `opentelemetry::global::set_meter_provider`), or given to its builder
//! (`TokenValidatorBuilder::meter`, `PoliciesBuilder::meter`,
//! `ConfidentialClientBuilder::meter`). The crate depends on the API only: the application
//! chooses the SDK and the exporter. Without a provider every instrument is a no-op.
//!
//! Inbound instruments:
//!
//! | instrument | type | unit | tags |
//! |---|---|---|---|
//! | `tower_azure_auth.validations` | counter | `{validation}` | `outcome` (`accepted`, `rejected`), `reason` ([`AuthErrorKind::as_str`](crate::AuthErrorKind::as_str), `none` when accepted) |
//! | `tower_azure_auth.validation.duration` | histogram | `s` | `outcome`, `cached` (`true`: the verified-token cache answered) |
//! | `tower_azure_auth.token_cache.hits` / `.misses` / `.evictions` | counter | `{token}` | – |
//! | `tower_azure_auth.token_cache.size` | gauge (observed) | `By` | – |
//! | `tower_azure_auth.key_refreshes` | counter | `{refresh}` | `trigger` ([`RefreshTrigger`]), `outcome` (`success`, `failure`), `server.address` |
//! | `tower_azure_auth.key_refresh.duration` | histogram | `s` | `trigger`, `outcome`, `server.address` |
//! | `tower_azure_auth.keys.age` | gauge (observed) | `s` | `server.address`: seconds since the last successful refresh |
//! | `tower_azure_auth.authorization.decisions` | counter | `{decision}` | `policy` (the registered name, `inline` for an unnamed policy), `outcome` (`allowed`, `denied`) |
//!
//! Outbound instruments reuse MSAL.NET's names, units and tag names (meter
//! `MicrosoftIdentityClient_Common_Meter` there), so that .NET and Rust services share
//! dashboards: `MsalSuccess`, `MsalFailure`, `MsalTotalDuration.1A` (ms),
//! `MsalDurationInHttp.1A` (ms), `MsalDurationInL1CacheInUs.1B` (us),
//! `MsalRemainingTokenLifetime.1A` (s), with the tags `MsalVersion` (this crate's version),
//! `Platform` (`tower-azure-auth`), `ApiId` (`AcquireTokenForClient`), `TokenType` (1,
//! bearer), `TokenSource` (`IdentityProvider`, `Cache`), `CacheLevel` (`None`, `L1Cache`,
//! `L2Cache`), `CacheRefreshReason`, and on failures `ErrorCode` and `RawStsErrorCode` (the
//! AADSTS number, digits only, when the authority sent one). Three are this crate's own:
//! `tower_azure_auth.client.background_refreshes` (`outcome`),
//! `tower_azure_auth.client.extended_lifetime_served` (cached tokens served from their
//! `ext_expires_in` while the authority failed) and
//! `tower_azure_auth.client.retry_after` (s, the waits the authority asked for). No tag
//! carries a token, a secret or the tenant (as in MSAL); the client id is a tag (`ClientId`)
//! only with PII logging on.
//!
//! # Spans
//!
//! [`TokenValidator::validate`](crate::TokenValidator::validate) and
//! [`validate_with_current_keys`](crate::TokenValidator::validate_with_current_keys) run in
//! a `validate_access_token` span (level debug: the hot path; a disabled span costs a branch),
//! a token acquisition in an `acquire_token` span (info), a key refresh in a
//! `refresh_signing_keys` span (info, with its `tower_azure_auth.trigger`), and every call to
//! the authority
//! (metadata, keys, token endpoint) in a client span (info) named by its method, with
//! `http.request.method`, `server.address`, `server.port`, `url.full` (never a query or
//! credentials), `http.response.status_code` and `error.type`. Fields are named as the
//! OpenTelemetry conventions name them, and `otel.name`, `otel.kind` and `otel.status_code`
//! as `tracing-opentelemetry` reads them. Nothing secret is recorded.

#[cfg(feature = "opentelemetry")]
mod metrics;
pub(crate) mod spans;

use std::time::Duration;

use crate::error::AuthErrorKind;

/// Where a token returned by a confidential client came from: the `source` of an
/// acquisition, rendered as MSAL's `TokenSource` and `CacheLevel` tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenSource {
    /// The client's in-memory cache.
    L1Cache,
    /// A cache shared by replicas (e.g. Redis).
    L2Cache,
    /// The identity provider's token endpoint.
    IdentityProvider,
}

impl TokenSource {
    /// A short stable name: `l1_cache`, `l2_cache`, `identity_provider`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L1Cache => "l1_cache",
            Self::L2Cache => "l2_cache",
            Self::IdentityProvider => "identity_provider",
        }
    }

    /// MSAL's `TokenSource` value.
    #[must_use]
    pub fn msal_token_source(self) -> &'static str {
        match self {
            Self::L1Cache | Self::L2Cache => "Cache",
            Self::IdentityProvider => "IdentityProvider",
        }
    }

    /// MSAL's `CacheLevel` value.
    #[must_use]
    pub fn msal_cache_level(self) -> &'static str {
        match self {
            Self::L1Cache => "L1Cache",
            Self::L2Cache => "L2Cache",
            Self::IdentityProvider => "None",
        }
    }
}

/// Why signing keys were fetched: the `trigger` tag of the key-refresh instruments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefreshTrigger {
    /// The first fetch of the background refresh, at start.
    Startup,
    /// The background refresh's period passed.
    Scheduled,
    /// A token named a key that is not published (at most once per interval).
    UnknownKey,
    /// No keys could be fetched yet and a request needed them.
    KeysUnavailable,
    /// [`TokenValidator::refresh`](crate::TokenValidator::refresh) was called.
    Manual,
}

impl RefreshTrigger {
    /// A short stable name: `startup`, `scheduled`, `unknown_key`, `keys_unavailable`,
    /// `manual`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Scheduled => "scheduled",
            Self::UnknownKey => "unknown_key",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Manual => "manual",
        }
    }

    /// The trigger of a refresh forced by a validation that failed with `kind`.
    pub(crate) fn for_error(kind: AuthErrorKind) -> Self {
        match kind {
            AuthErrorKind::KeysUnavailable => Self::KeysUnavailable,
            _ => Self::UnknownKey,
        }
    }
}

/// MSAL's `CacheRefreshReason`: why an acquisition did (or did not) go to the authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheRefreshReason {
    /// Answered from the cache.
    NotApplicable,
    /// A forced refresh (`force_refresh`, or a refusal by the called API).
    ForceRefresh,
    /// Nothing cached for these scopes.
    NoCachedAccessToken,
    /// The cached token is too close to its expiry.
    Expired,
    /// A background refresh ahead of expiry.
    ProactivelyRefreshed,
}

impl CacheRefreshReason {
    #[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NotApplicable => "NotApplicable",
            Self::ForceRefresh => "ForceRefreshOrClaims",
            Self::NoCachedAccessToken => "NoCachedAccessToken",
            Self::Expired => "Expired",
            Self::ProactivelyRefreshed => "ProactivelyRefreshed",
        }
    }
}

/// When a measured operation started: an `Instant` with the feature, nothing without.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start(#[cfg(feature = "opentelemetry")] Option<std::time::Instant>);

impl Start {
    /// Now (a clock read with the feature).
    #[inline]
    pub(crate) fn now() -> Self {
        Self(
            #[cfg(feature = "opentelemetry")]
            Some(std::time::Instant::now()),
        )
    }

    #[cfg(feature = "opentelemetry")]
    pub(crate) fn elapsed(self) -> Duration {
        self.0.map(|start| start.elapsed()).unwrap_or_default()
    }
}

/// The instruments of one validator, policy registry or client: no-ops without the
/// `opentelemetry` feature (a zero-sized value whose methods compile to nothing).
#[derive(Clone, Default)]
pub(crate) struct Telemetry {
    #[cfg(feature = "opentelemetry")]
    instruments: Option<std::sync::Arc<metrics::Instruments>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// A validation's outcome as the instruments see it.
pub(crate) type ValidationOutcome = Result<(), AuthErrorKind>;

#[cfg_attr(
    not(feature = "opentelemetry"),
    allow(clippy::unused_self, unused_variables)
)]
impl Telemetry {
    /// The instruments of the global meter provider's `tower-azure-auth` meter: none
    /// without the feature, or while no provider is installed (nothing could record them,
    /// then or later: see [`metrics::global_meter`]).
    pub(crate) fn global() -> Self {
        #[cfg(feature = "opentelemetry")]
        {
            metrics::global_meter().map_or_else(Self::default, |meter| Self::with_meter(&meter))
        }
        #[cfg(not(feature = "opentelemetry"))]
        Self::default()
    }

    /// The instruments of `meter`.
    #[cfg(feature = "opentelemetry")]
    pub(crate) fn with_meter(meter: &opentelemetry::metrics::Meter) -> Self {
        Self {
            instruments: Some(std::sync::Arc::new(metrics::Instruments::new(meter))),
        }
    }

    /// Whether the client id may be a tag (PII logging on).
    pub(crate) fn with_client_id(self, client_id: Option<&str>) -> Self {
        #[cfg(feature = "opentelemetry")]
        {
            let mut this = self;
            if let (Some(instruments), Some(client_id)) = (&mut this.instruments, client_id) {
                std::sync::Arc::make_mut(instruments).client_id = Some(client_id.to_owned());
            }
            this
        }
        #[cfg(not(feature = "opentelemetry"))]
        self
    }

    /// Starts timing an operation: no clock read when nothing records.
    #[inline]
    pub(crate) fn start(&self) -> Start {
        #[cfg(feature = "opentelemetry")]
        if self.instruments.is_none() {
            return Start(None);
        }
        Start::now()
    }

    /// A finished validation.
    #[inline]
    pub(crate) fn validation(&self, outcome: ValidationOutcome, cached: bool, started: Start) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.validation(outcome, cached, started.elapsed());
        }
    }

    /// A verified-token cache lookup.
    #[inline]
    pub(crate) fn token_cache_lookup(&self, hit: bool) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.token_cache_lookup(hit);
        }
    }

    /// A verified token evicted for room.
    pub(crate) fn token_cache_eviction(&self) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.token_cache_evictions.add(1, &[]);
        }
    }

    /// Observes the verified-token cache's size in bytes (`None`: the cache is gone).
    pub(crate) fn observe_token_cache_size(
        &self,
        size: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.observe_token_cache_size(size);
        }
    }

    /// A key refresh that fetched (successfully or not).
    pub(crate) fn key_refresh(
        &self,
        trigger: RefreshTrigger,
        server: &str,
        success: bool,
        started: Start,
    ) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.key_refresh(trigger, server, success, started.elapsed());
        }
    }

    /// Observes the age of the keys (`None`: never refreshed, or the validator is gone).
    pub(crate) fn observe_key_age(
        &self,
        server: &str,
        age: impl Fn() -> Option<Duration> + Send + Sync + 'static,
    ) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.observe_key_age(server, age);
        }
    }

    /// An authorization decision.
    #[inline]
    pub(crate) fn authorization(&self, policy: Option<&str>, allowed: bool) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.authorization(policy, allowed);
        }
    }

    /// A token acquisition that returned a token.
    pub(crate) fn acquisition_succeeded(
        &self,
        source: TokenSource,
        reason: CacheRefreshReason,
        remaining: Duration,
        started: Start,
    ) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.acquisition_succeeded(source, reason, remaining, started.elapsed());
        }
    }

    /// A token acquisition that failed.
    pub(crate) fn acquisition_failed(
        &self,
        reason: CacheRefreshReason,
        error_code: &str,
        sts_code: Option<u32>,
    ) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.acquisition_failed(reason, error_code, sts_code);
        }
    }

    /// A token-endpoint request that returned a token.
    pub(crate) fn token_http(&self, started: Start) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.token_http(started.elapsed());
        }
    }

    /// A background refresh ahead of expiry, finished.
    pub(crate) fn background_refresh(&self, success: bool) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.background_refresh(success);
        }
    }

    /// A cached token served from its extended lifetime while the authority fails.
    pub(crate) fn extended_lifetime_served(&self) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.extended_lifetime_served.add(1, &[]);
        }
    }

    /// The authority asked to wait this long (`Retry-After`).
    pub(crate) fn retry_after(&self, wait: Duration) {
        #[cfg(feature = "opentelemetry")]
        if let Some(instruments) = &self.instruments {
            instruments.retry_after.record(wait.as_secs_f64(), &[]);
        }
    }
}

#[cfg(all(test, feature = "opentelemetry"))]
mod tests;
