//! The instruments (feature `opentelemetry`), read back through the SDK's in-memory exporter:
//! every instrument with its unit and tags, for validations over real HTTP (a metadata + JWKS
//! server on 127.0.0.1, an axum app behind the layers), key refreshes by trigger and outcome,
//! the verified-token cache, authorization decisions, and token acquisitions from a token
//! endpoint on 127.0.0.1 (MSAL's names). Also readiness, and the refusal's cause seen from an
//! outer layer.
#![cfg(all(feature = "opentelemetry", feature = "axum"))]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use serde_json::{json, Value};
use tower_azure_auth::authorization::{Policies, Policy};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::credentials::{ClientCertificate, ConfidentialClient};
use tower_azure_auth::layers::{RequirePolicyLayer, ValidateAccessTokenLayer};
use tower_azure_auth::validation::KeysState;
use tower_azure_auth::{Authority, TokenValidator};

use crate::credentials_support::{rsa_cert, Reply, TokenServer};
use crate::support::{serve, TestIdp, TestKey};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const CALLER: &str = "11111111-2222-3333-4444-555555555555";
const NOW: u64 = 1_800_000_000;
const POLICY: &str = "ValidateAccessTokenPolicy";

/// One data point as the tests compare them.
#[derive(Debug, Clone)]
struct Point {
    unit: String,
    kind: &'static str,
    tags: BTreeMap<String, String>,
    /// The counter's or gauge's value; the histogram's count.
    value: f64,
    /// The histogram's sum.
    sum: f64,
}

/// A meter provider of the SDK with the in-memory exporter.
struct Metrics {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Metrics {
    fn new() -> Self {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Self { provider, exporter }
    }

    fn meter(&self) -> Meter {
        self.provider.meter("tower-azure-auth")
    }

    /// Every point of the latest export, by instrument name.
    fn collect(&self) -> BTreeMap<String, Vec<Point>> {
        self.exporter.reset();
        self.provider.force_flush().expect("flush");
        let exported = self.exporter.get_finished_metrics().expect("metrics");
        let latest = exported.last().expect("an export");
        let mut out: BTreeMap<String, Vec<Point>> = BTreeMap::new();
        for scope in latest.scope_metrics() {
            for metric in scope.metrics() {
                let points = out.entry(metric.name().to_owned()).or_default();
                let unit = metric.unit().to_owned();
                let tags = |attrs: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                    attrs
                        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                        .collect::<BTreeMap<_, _>>()
                };
                macro_rules! points {
                    ($data:expr) => {
                        match $data {
                            MetricData::Sum(sum) => {
                                for p in sum.data_points() {
                                    points.push(Point {
                                        unit: unit.clone(),
                                        kind: "counter",
                                        tags: tags(&mut p.attributes()),
                                        value: p.value() as f64,
                                        sum: 0.0,
                                    });
                                }
                            }
                            MetricData::Gauge(gauge) => {
                                for p in gauge.data_points() {
                                    points.push(Point {
                                        unit: unit.clone(),
                                        kind: "gauge",
                                        tags: tags(&mut p.attributes()),
                                        value: p.value() as f64,
                                        sum: 0.0,
                                    });
                                }
                            }
                            MetricData::Histogram(histogram) => {
                                for p in histogram.data_points() {
                                    points.push(Point {
                                        unit: unit.clone(),
                                        kind: "histogram",
                                        tags: tags(&mut p.attributes()),
                                        value: p.count() as f64,
                                        sum: p.sum() as f64,
                                    });
                                }
                            }
                            MetricData::ExponentialHistogram(_) => panic!("not used"),
                        }
                    };
                }
                match metric.data() {
                    AggregatedMetrics::F64(data) => points!(data),
                    AggregatedMetrics::U64(data) => points!(data),
                    AggregatedMetrics::I64(data) => points!(data),
                }
            }
        }
        out
    }
}

/// The value of the points of `name` whose tags include `tags` (summed), checking the
/// instrument's kind and unit.
fn value(
    metrics: &BTreeMap<String, Vec<Point>>,
    name: &str,
    kind: &str,
    unit: &str,
    tags: &[(&str, &str)],
) -> f64 {
    let points = metrics
        .get(name)
        .unwrap_or_else(|| panic!("no instrument {name}; have {:?}", metrics.keys()));
    let mut total = 0.0;
    for point in points {
        assert_eq!(point.kind, kind, "{name}: kind");
        assert_eq!(point.unit, unit, "{name}: unit");
        if tags
            .iter()
            .all(|(k, v)| point.tags.get(*k).map(String::as_str) == Some(*v))
        {
            total += point.value;
        }
    }
    total
}

fn claims(idp: &TestIdp, changes: &Value) -> Value {
    let mut claims = json!({
        "aud": API, "iss": idp.issuer_v2(), "iat": NOW - 60, "nbf": NOW - 60,
        "exp": NOW + 3600, "azp": CALLER, "azpacr": "2", "roles": ["service-api"],
        "tid": TENANT, "ver": "2.0", "sub": "s", "oid": "o",
    });
    for (name, value) in changes.as_object().expect("object") {
        claims[name] = value.clone();
    }
    claims
}

#[tokio::test]
async fn validations_refreshes_cache_and_decisions_are_counted_with_their_tags() {
    let metrics = Metrics::new();
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let clock = ManualClock::at_unix(NOW);
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(clock.clone()))
        .meter(metrics.meter())
        .build()
        .unwrap();
    validator.refresh().await.unwrap();
    assert_eq!(validator.readiness().keys, KeysState::Loaded);
    let policies = Policies::builder()
        .add_policy(
            POLICY,
            Policy::builder().require_role("service-api").build(),
        )
        .meter(metrics.meter())
        .build();
    let app = Router::new()
        .route("/weatherforecast", get(|| async { "ok" }))
        .layer(RequirePolicyLayer::named(&policies, POLICY).unwrap())
        .layer(ValidateAccessTokenLayer::new(validator.clone()));
    let url = serve(app).await;
    let http = reqwest::Client::new();
    let send = |token: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.get(format!("{url}/weatherforecast"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let accepted = key.token(&claims(&idp, &json!({})));
    struct Case {
        name: &'static str,
        token: String,
        status: u16,
    }
    let cases = [
        Case {
            name: "accepted",
            token: accepted.clone(),
            status: 200,
        },
        Case {
            name: "accepted again (cached)",
            token: accepted,
            status: 200,
        },
        Case {
            name: "expired",
            token: key.token(&claims(
                &idp,
                &json!({"exp": NOW - 3600, "iat": NOW - 7200, "nbf": NOW - 7200}),
            )),
            status: 401,
        },
        Case {
            name: "wrong audience",
            token: key.token(&claims(&idp, &json!({"aud": "api://someone-else"}))),
            status: 401,
        },
        Case {
            name: "forbidden (no role)",
            token: key.token(&claims(&idp, &json!({"roles": ["reader"]}))),
            status: 403,
        },
    ];
    for case in cases {
        assert_eq!(send(case.token).await, case.status, "{}", case.name);
    }
    // An unknown kid: one refresh triggered by it, then accepted.
    let key2 = TestKey::generate("key-2");
    idp.set_keys(&[&key, &key2]);
    assert_eq!(send(key2.token(&claims(&idp, &json!({})))).await, 200);
    // A failed manual refresh keeps the keys: still ready, the error reported.
    idp.set_down(true);
    assert!(validator.refresh().await.is_err());
    clock.advance(Duration::from_secs(30));
    let readiness = validator.readiness();
    assert!(readiness.is_ready(), "{readiness}");
    assert!(readiness.last_error.is_some());
    assert_eq!(readiness.last_refresh_age, Some(Duration::from_secs(30)));

    let m = metrics.collect();
    const V: &str = "tower_azure_auth.validations";
    let count = |outcome: &str, reason: &str| {
        value(
            &m,
            V,
            "counter",
            "{validation}",
            &[("outcome", outcome), ("reason", reason)],
        )
    };
    assert_eq!(
        count("accepted", "none"),
        4.0,
        "two, the forbidden one, key-2's"
    );
    assert_eq!(count("rejected", "expired"), 1.0);
    assert_eq!(count("rejected", "invalid_audience"), 1.0);
    assert_eq!(
        value(&m, V, "counter", "{validation}", &[]),
        6.0,
        "one per request: the unknown kid's first answer is not counted"
    );
    const D: &str = "tower_azure_auth.validation.duration";
    assert_eq!(value(&m, D, "histogram", "s", &[("cached", "true")]), 1.0);
    assert_eq!(value(&m, D, "histogram", "s", &[("cached", "false")]), 5.0);
    assert_eq!(
        value(&m, D, "histogram", "s", &[("outcome", "rejected")]),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "tower_azure_auth.token_cache.hits",
            "counter",
            "{token}",
            &[]
        ),
        1.0
    );
    assert_eq!(
        value(&m, "tower_azure_auth.token_cache.misses", "counter", "{token}", &[]),
        7.0,
        "lookups: four tokens seen once, key-2's three times (the layer's look, validate's, and after the refresh)"
    );
    assert!(value(&m, "tower_azure_auth.token_cache.size", "gauge", "By", &[]) > 1000.0);
    const R: &str = "tower_azure_auth.key_refreshes";
    let refreshes = |tags: &[(&str, &str)]| value(&m, R, "counter", "{refresh}", tags);
    assert_eq!(refreshes(&[("outcome", "success")]), 2.0);
    assert_eq!(
        refreshes(&[("trigger", "unknown_key"), ("outcome", "success")]),
        1.0
    );
    assert_eq!(
        refreshes(&[("trigger", "manual"), ("outcome", "failure")]),
        1.0
    );
    assert_eq!(
        refreshes(&[("server.address", "127.0.0.1")]),
        3.0,
        "tagged with the authority's host"
    );
    assert_eq!(
        value(
            &m,
            "tower_azure_auth.key_refresh.duration",
            "histogram",
            "s",
            &[("outcome", "failure")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "tower_azure_auth.keys.age",
            "gauge",
            "s",
            &[("server.address", "127.0.0.1")]
        ),
        30.0
    );
    const A: &str = "tower_azure_auth.authorization.decisions";
    assert_eq!(
        value(
            &m,
            A,
            "counter",
            "{decision}",
            &[("policy", POLICY), ("outcome", "allowed")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            A,
            "counter",
            "{decision}",
            &[("policy", POLICY), ("outcome", "denied")]
        ),
        1.0
    );
    // Bounded tags: nothing of a token or a client in any tag value.
    for (name, points) in &m {
        for point in points {
            for (tag, value) in &point.tags {
                assert!(
                    !value.contains("eyJ") && !value.contains(CALLER),
                    "{name} {tag}={value}"
                );
            }
        }
    }
}

#[tokio::test]
async fn evictions_from_the_verified_token_cache_are_counted() {
    let metrics = Metrics::new();
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .verified_token_cache(16 * 1024)
        .meter(metrics.meter())
        .build()
        .unwrap();
    validator.refresh().await.unwrap();
    for i in 0..40 {
        let token = key.token(&claims(&idp, &json!({"uti": format!("token-{i}")})));
        validator.validate(&token).await.unwrap();
    }
    let m = metrics.collect();
    let evictions = value(
        &m,
        "tower_azure_auth.token_cache.evictions",
        "counter",
        "{token}",
        &[],
    );
    let held = validator.cached_tokens() as f64;
    assert!(evictions >= 1.0, "evictions {evictions}");
    assert_eq!(
        evictions + held,
        40.0,
        "every token inserted is held or was evicted"
    );
    assert!(value(&m, "tower_azure_auth.token_cache.size", "gauge", "By", &[]) <= 16.0 * 1024.0);
}

#[tokio::test]
async fn token_acquisitions_are_counted_under_msal_names_and_tags() {
    const CLIENT_ID: &str = "e4c9ab4e-bd27-40d5-8459-230ba2a757fb";
    const SCOPE: &str = "api://b178f3a5-7588-492a-924f-72d7887b7e48/.default";
    for pii in [false, true] {
        let metrics = Metrics::new();
        let clock = ManualClock::at_unix(NOW);
        let cert = rsa_cert("weather-client");
        let server = TokenServer::start(CLIENT_ID, Some(cert.clone()), clock.clone()).await;
        let client = ConfidentialClient::builder(CLIENT_ID)
            .authority(Authority::entra(&server.instance(), "tenant-1").unwrap())
            .certificate(
                ClientCertificate::loader()
                    .clock(Arc::new(clock.clone()))
                    .from_pem(cert.combined_pem().as_bytes())
                    .unwrap(),
            )
            .clock(Arc::new(clock.clone()))
            .retry_delay(Duration::from_millis(1))
            .enable_pii_logging(pii)
            .meter(metrics.meter())
            .build()
            .unwrap();
        // From the identity provider, then from the L1 cache, then forced.
        client.acquire_token_for_client(&[SCOPE]).await.unwrap();
        client.acquire_token_for_client(&[SCOPE]).await.unwrap();
        client.force_refresh(&[SCOPE]).await.unwrap();
        // Refused by the authority with an AADSTS code.
        server.push(Reply::Status {
            status: 401,
            body: json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": [7000215]}),
            retry_after: None,
        });
        assert!(client.force_refresh(&[SCOPE]).await.is_err());
        // Throttled: Retry-After 30 s.
        server.push(Reply::Status {
            status: 429,
            body: json!({"error": "temporarily_unavailable"}),
            retry_after: Some("30"),
        });
        assert!(client.force_refresh(&[SCOPE]).await.is_err());
        // A background refresh ahead of expiry (the token is past 80 % of its lifetime).
        clock.advance(Duration::from_secs(3000));
        let before = server.requests();
        client.acquire_token_for_client(&[SCOPE]).await.unwrap();
        // The throttle held for 30 s after the 429: long passed on the test clock. Waits
        // (bounded) for the background refresh to be recorded.
        for _ in 0..500 {
            let recorded = metrics
                .collect()
                .get("tower_azure_auth.client.background_refreshes")
                .is_some_and(|points| !points.is_empty());
            if server.requests() > before && recorded {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let m = metrics.collect();
        let msal = [
            ("MsalVersion", env!("CARGO_PKG_VERSION")),
            ("Platform", "tower-azure-auth"),
            ("ApiId", "AcquireTokenForClient"),
            ("TokenType", "1"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut tags = msal.to_vec();
            tags.extend_from_slice(extra);
            tags
        };
        let success = |extra: &[(&'static str, &'static str)]| {
            value(&m, "MsalSuccess", "counter", "", &with(extra))
        };
        assert_eq!(
            success(&[
                ("TokenSource", "IdentityProvider"),
                ("CacheLevel", "None"),
                ("CacheRefreshReason", "NoCachedAccessToken")
            ]),
            1.0
        );
        assert_eq!(
            success(&[
                ("TokenSource", "Cache"),
                ("CacheLevel", "L1Cache"),
                ("CacheRefreshReason", "NotApplicable")
            ]),
            2.0,
            "the second call and the one that started the background refresh"
        );
        assert_eq!(
            success(&[("CacheRefreshReason", "ForceRefreshOrClaims")]),
            1.0
        );
        assert_eq!(
            success(&[("CacheRefreshReason", "ProactivelyRefreshed")]),
            1.0
        );
        let failure = |extra: &[(&'static str, &'static str)]| {
            value(&m, "MsalFailure", "counter", "", &with(extra))
        };
        assert_eq!(
            failure(&[
                ("ErrorCode", "invalid_client"),
                ("RawStsErrorCode", "7000215")
            ]),
            1.0
        );
        assert_eq!(failure(&[("ErrorCode", "throttled")]), 1.0);
        assert_eq!(
            value(&m, "MsalTotalDuration.1A", "histogram", "ms", &with(&[])),
            5.0
        );
        assert_eq!(
            value(&m, "MsalDurationInHttp.1A", "histogram", "ms", &with(&[])),
            3.0,
            "the three tokens from the endpoint"
        );
        assert_eq!(
            value(
                &m,
                "MsalDurationInL1CacheInUs.1B",
                "histogram",
                "us",
                &with(&[])
            ),
            2.0
        );
        let lifetime = &m["MsalRemainingTokenLifetime.1A"];
        let first = lifetime
            .iter()
            .find(|p| {
                p.tags.get("CacheRefreshReason").map(String::as_str) == Some("NoCachedAccessToken")
            })
            .expect("the first token's lifetime");
        assert_eq!((first.unit.as_str(), first.sum), ("s", 3600.0));
        assert_eq!(
            value(
                &m,
                "tower_azure_auth.client.background_refreshes",
                "counter",
                "{refresh}",
                &[("outcome", "success")]
            ),
            1.0
        );
        let waits = &m["tower_azure_auth.client.retry_after"];
        assert_eq!(
            (waits[0].unit.as_str(), waits[0].value, waits[0].sum),
            ("s", 1.0, 30.0)
        );
        // The client id is a tag only with PII logging on.
        for name in ["MsalSuccess", "MsalFailure", "MsalTotalDuration.1A"] {
            for point in &m[name] {
                assert_eq!(
                    point.tags.get("ClientId").map(String::as_str),
                    pii.then_some(CLIENT_ID),
                    "{name} pii={pii}"
                );
            }
        }
    }
}
