//! The OpenTelemetry instruments (feature `opentelemetry`): created once per validator,
//! policy registry or client from a [`Meter`], recorded with static tag values (no allocation
//! on the hot path).

use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::{InstrumentationScope, KeyValue};

use super::{CacheRefreshReason, RefreshTrigger, TokenSource, ValidationOutcome};

/// The meter's name (the instrumentation scope).
pub(crate) const METER: &str = "tower-azure-auth";

/// MSAL's `MsalVersion` and `Platform` tags carry this crate's version and name.
const VERSION: &str = env!("CARGO_PKG_VERSION");
const PLATFORM: &str = "tower-azure-auth";

/// Buckets for durations in seconds (OpenTelemetry's `http.server.request.duration` ones,
/// with finer steps below a millisecond for cached validations).
const SECONDS: [f64; 19] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
    0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Buckets for MSAL's millisecond histograms.
const MILLISECONDS: [f64; 14] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// The global provider's `tower-azure-auth` meter, or `None` while the global provider is
/// the API's no-op one (nothing installed): a meter taken from it stays a no-op even after a
/// provider is installed (`opentelemetry::global` documents this), so there is nothing to
/// record, and the hot path can skip even the timing.
///
/// The no-op provider is recognised as the only zero-sized one: a provider that records holds
/// its pipeline (the SDK's `SdkMeterProvider` is an `Arc`).
pub(crate) fn global_meter() -> Option<Meter> {
    let provider = opentelemetry::global::meter_provider();
    if size_of_val(&*provider) == 0 {
        return None;
    }
    Some(
        provider.meter_with_scope(
            InstrumentationScope::builder(METER)
                .with_version(VERSION)
                .build(),
        ),
    )
}

#[derive(Clone)]
pub(crate) struct Instruments {
    meter: Meter,
    validations: Counter<u64>,
    validation_duration: Histogram<f64>,
    token_cache_hits: Counter<u64>,
    token_cache_misses: Counter<u64>,
    pub(crate) token_cache_evictions: Counter<u64>,
    key_refreshes: Counter<u64>,
    key_refresh_duration: Histogram<f64>,
    authorization_decisions: Counter<u64>,
    msal_success: Counter<u64>,
    msal_failure: Counter<u64>,
    msal_total_duration: Histogram<u64>,
    msal_duration_in_http: Histogram<u64>,
    msal_duration_in_l1: Histogram<u64>,
    msal_remaining_lifetime: Histogram<u64>,
    background_refreshes: Counter<u64>,
    pub(crate) extended_lifetime_served: Counter<u64>,
    pub(crate) retry_after: Histogram<f64>,
    /// The `ClientId` tag, only with PII logging on.
    pub(crate) client_id: Option<String>,
}

fn accepted(outcome: ValidationOutcome) -> (&'static str, &'static str) {
    match outcome {
        Ok(()) => ("accepted", "none"),
        Err(kind) => ("rejected", kind.as_str()),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// MSAL's `ErrorCode`: a low-cardinality name; an authority's `error` only when it looks
/// like an OAuth 2 error code (lowercase letters and `_`, at most 64), else `_OTHER`.
pub(crate) fn bounded_error_code(code: &str) -> String {
    if !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        code.to_owned()
    } else {
        "_OTHER".to_owned()
    }
}

impl Instruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(SECONDS.to_vec())
                .build()
        };
        let msal_ms = |name: &'static str, description: &'static str| {
            meter
                .u64_histogram(name)
                .with_unit("ms")
                .with_description(description)
                .with_boundaries(MILLISECONDS.to_vec())
                .build()
        };
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        Self {
            meter: meter.clone(),
            validations: counter(
                "tower_azure_auth.validations",
                "{validation}",
                "Access-token validations by outcome and rejection reason",
            ),
            validation_duration: seconds(
                "tower_azure_auth.validation.duration",
                "Duration of access-token validations, cached or not",
            ),
            token_cache_hits: counter(
                "tower_azure_auth.token_cache.hits",
                "{token}",
                "Validations answered by the verified-token cache",
            ),
            token_cache_misses: counter(
                "tower_azure_auth.token_cache.misses",
                "{token}",
                "Validations the verified-token cache could not answer",
            ),
            token_cache_evictions: counter(
                "tower_azure_auth.token_cache.evictions",
                "{token}",
                "Verified tokens evicted from the cache for room",
            ),
            key_refreshes: counter(
                "tower_azure_auth.key_refreshes",
                "{refresh}",
                "Signing-key refreshes (discovery and JWKS fetches) by trigger and outcome",
            ),
            key_refresh_duration: seconds(
                "tower_azure_auth.key_refresh.duration",
                "Duration of signing-key refreshes",
            ),
            authorization_decisions: counter(
                "tower_azure_auth.authorization.decisions",
                "{decision}",
                "Authorization decisions by policy and outcome",
            ),
            msal_success: meter
                .u64_counter("MsalSuccess")
                .with_description("Successful token acquisitions (as MSAL.NET's MsalSuccess)")
                .build(),
            msal_failure: meter
                .u64_counter("MsalFailure")
                .with_description("Failed token acquisitions (as MSAL.NET's MsalFailure)")
                .build(),
            msal_total_duration: msal_ms(
                "MsalTotalDuration.1A",
                "Duration of successful token acquisitions, in milliseconds",
            ),
            msal_duration_in_http: msal_ms(
                "MsalDurationInHttp.1A",
                "Duration of the token-endpoint request of tokens from the identity provider, in milliseconds",
            ),
            msal_duration_in_l1: meter
                .u64_histogram("MsalDurationInL1CacheInUs.1B")
                .with_unit("us")
                .with_description("Duration of token acquisitions answered by the L1 cache, in microseconds")
                .with_boundaries(vec![1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 10000.0])
                .build(),
            msal_remaining_lifetime: meter
                .u64_histogram("MsalRemainingTokenLifetime.1A")
                .with_unit("s")
                .with_description("Remaining lifetime of the token returned, in seconds")
                .with_boundaries(vec![
                    60.0, 300.0, 600.0, 1200.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0, 86400.0,
                ])
                .build(),
            background_refreshes: counter(
                "tower_azure_auth.client.background_refreshes",
                "{refresh}",
                "Token refreshes ahead of expiry, in the background, by outcome",
            ),
            extended_lifetime_served: counter(
                "tower_azure_auth.client.extended_lifetime_served",
                "{token}",
                "Cached tokens served from their extended lifetime (ext_expires_in) while the authority failed",
            ),
            retry_after: seconds(
                "tower_azure_auth.client.retry_after",
                "Waits the authority asked for (Retry-After on 429 and 5xx)",
            ),
            client_id: None,
        }
    }

    pub(crate) fn validation(&self, outcome: ValidationOutcome, cached: bool, elapsed: Duration) {
        let (outcome_value, reason) = accepted(outcome);
        self.validations.add(
            1,
            &[
                KeyValue::new("outcome", outcome_value),
                KeyValue::new("reason", reason),
            ],
        );
        self.validation_duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("outcome", outcome_value),
                KeyValue::new("cached", cached),
            ],
        );
    }

    pub(crate) fn token_cache_lookup(&self, hit: bool) {
        if hit {
            self.token_cache_hits.add(1, &[]);
        } else {
            self.token_cache_misses.add(1, &[]);
        }
    }

    pub(crate) fn observe_token_cache_size(
        &self,
        size: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) {
        // The callback lives as long as the meter provider; it holds the cache weakly.
        let _gauge = self
            .meter
            .u64_observable_gauge("tower_azure_auth.token_cache.size")
            .with_unit("By")
            .with_description("Heap held by the verified-token cache, in bytes")
            .with_callback(move |observer| {
                if let Some(bytes) = size() {
                    observer.observe(bytes, &[]);
                }
            })
            .build();
    }

    pub(crate) fn key_refresh(
        &self,
        trigger: RefreshTrigger,
        server: &str,
        success: bool,
        elapsed: Duration,
    ) {
        let tags = [
            KeyValue::new("trigger", trigger.as_str()),
            KeyValue::new("outcome", if success { "success" } else { "failure" }),
            KeyValue::new("server.address", server.to_owned()),
        ];
        self.key_refreshes.add(1, &tags);
        self.key_refresh_duration
            .record(elapsed.as_secs_f64(), &tags);
    }

    pub(crate) fn observe_key_age(
        &self,
        server: &str,
        age: impl Fn() -> Option<Duration> + Send + Sync + 'static,
    ) {
        let server = KeyValue::new("server.address", server.to_owned());
        let _gauge = self
            .meter
            .f64_observable_gauge("tower_azure_auth.keys.age")
            .with_unit("s")
            .with_description("Seconds since the signing keys were last refreshed successfully")
            .with_callback(move |observer| {
                if let Some(age) = age() {
                    observer.observe(age.as_secs_f64(), std::slice::from_ref(&server));
                }
            })
            .build();
    }

    pub(crate) fn authorization(&self, policy: Option<&str>, allowed: bool) {
        let policy = match policy {
            Some(name) => KeyValue::new("policy", name.to_owned()),
            None => KeyValue::new("policy", "inline"),
        };
        self.authorization_decisions.add(
            1,
            &[
                policy,
                KeyValue::new("outcome", if allowed { "allowed" } else { "denied" }),
            ],
        );
    }

    /// MSAL's tags common to every outbound instrument, and `ClientId` with PII on.
    fn msal_tags(&self, extra: &[KeyValue]) -> Vec<KeyValue> {
        let mut tags = Vec::with_capacity(extra.len() + 5);
        tags.extend([
            KeyValue::new("MsalVersion", VERSION),
            KeyValue::new("Platform", PLATFORM),
            KeyValue::new("ApiId", "AcquireTokenForClient"),
            KeyValue::new("TokenType", 1_i64),
        ]);
        tags.extend_from_slice(extra);
        if let Some(client_id) = &self.client_id {
            tags.push(KeyValue::new("ClientId", client_id.clone()));
        }
        tags
    }

    pub(crate) fn acquisition_succeeded(
        &self,
        source: TokenSource,
        reason: CacheRefreshReason,
        remaining: Duration,
        elapsed: Duration,
    ) {
        let tags = self.msal_tags(&[
            KeyValue::new("TokenSource", source.msal_token_source()),
            KeyValue::new("CacheLevel", source.msal_cache_level()),
            KeyValue::new("CacheRefreshReason", reason.as_str()),
        ]);
        self.msal_success.add(1, &tags);
        self.msal_total_duration.record(millis(elapsed), &tags);
        self.msal_remaining_lifetime
            .record(remaining.as_secs(), &tags);
        if source == TokenSource::L1Cache {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            self.msal_duration_in_l1.record(micros, &tags);
        }
    }

    pub(crate) fn acquisition_failed(
        &self,
        reason: CacheRefreshReason,
        error_code: &str,
        sts_code: Option<u32>,
    ) {
        let mut extra = vec![
            KeyValue::new("ErrorCode", bounded_error_code(error_code)),
            KeyValue::new("CacheRefreshReason", reason.as_str()),
        ];
        if let Some(code) = sts_code {
            extra.push(KeyValue::new("RawStsErrorCode", code.to_string()));
        }
        self.msal_failure.add(1, &self.msal_tags(&extra));
    }

    pub(crate) fn token_http(&self, elapsed: Duration) {
        self.msal_duration_in_http
            .record(millis(elapsed), &self.msal_tags(&[]));
    }

    pub(crate) fn background_refresh(&self, success: bool) {
        self.background_refreshes.add(
            1,
            &[KeyValue::new(
                "outcome",
                if success { "success" } else { "failure" },
            )],
        );
    }
}
