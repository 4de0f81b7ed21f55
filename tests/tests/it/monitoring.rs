//! Checked by a real Prometheus: the weather APIs (axum and actix-web) export their metrics
//! with the OpenTelemetry SDK and the Prometheus exporter on `/metrics`; a `prometheus` server
//! started here on 127.0.0.1 scrapes both every second; a mix of accepted, expired,
//! wrong-audience and forbidden requests (tokens from the dev authority) is sent to each, and
//! Prometheus's query API must come to show, per API, exactly the counts sent, by reason.
//! Also: `/readyz` answers 200 once keys are loaded, and with OTLP the metrics reach a
//! receiver on 127.0.0.1 as protobuf, and `/metrics` is not served.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::prometheus::{PrometheusServer, Target};
use entra_dev_authority::{DevApi, DevApplication, DevAuthority, IssueToken};
use tower_azure_auth::claims::TokenVersion;
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::AzureAdOptions;
use weather_api_axum::Metrics;

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const SERVICE: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const OTHER_API: &str = "c3a1f7e2-9d4b-4e8a-b6c5-2f1e0d9c8b7a";
/// How long Prometheus may take to show what was sent.
const SETTLE: Duration = Duration::from_secs(60);

async fn authority() -> DevAuthority {
    DevAuthority::builder()
        .tenant_id(TENANT)
        .api(
            DevApi::new(SERVICE)
                .app_id_uri(format!("api://{SERVICE}"))
                .app_roles(["service-api", "weather.read"])
                .token_version(TokenVersion::V2),
        )
        .api(
            DevApi::new(OTHER_API)
                .app_id_uri("api://inventory")
                .app_roles(["inventory.read"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(SERVICE).grant(format!("api://{SERVICE}"), ["service-api"]),
        )
        .start()
        .await
        .unwrap()
}

fn options(authority: &DevAuthority) -> AzureAdOptions {
    ConfigSource::new()
        .with_env([
            ("AzureAd__Instance".to_owned(), authority.instance()),
            ("AzureAd__TenantId".to_owned(), TENANT.to_owned()),
            ("AzureAd__ClientId".to_owned(), SERVICE.to_owned()),
        ])
        .section("AzureAd")
        .unwrap()
}

/// The axum API with its metrics; its address.
async fn start_axum(options: &AzureAdOptions, metrics: &Metrics) -> String {
    let app = weather_api_axum::app_with_metrics(options, metrics).expect("configured");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The actix-web API with its metrics; its address.
async fn start_actix(options: &AzureAdOptions, metrics: &Metrics) -> String {
    let api = weather_api_actix::WeatherApi::with_metrics(options, metrics).expect("configured");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (_handle, addr) = weather_api_actix::start_api(api, listener)
        .await
        .expect("started");
    addr.to_string()
}

/// Waits (bounded) until the API's keys are loaded: `/readyz` answers 200.
async fn ready(http: &reqwest::Client, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "{addr}/readyz answered {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `promql` until its samples, keyed by `key(labels)`, equal `expected`; fails with
/// what Prometheus showed last.
async fn settle(
    prometheus: &PrometheusServer,
    promql: &str,
    key: fn(&serde_json::Map<String, serde_json::Value>) -> String,
    expected: &BTreeMap<String, f64>,
) {
    let deadline = Instant::now() + SETTLE;
    let mut seen = Err("nothing yet".to_owned());
    while Instant::now() < deadline {
        seen = prometheus.query(promql).map(|samples| {
            samples
                .iter()
                .map(|(labels, value)| (key(labels), *value))
                .collect::<BTreeMap<_, _>>()
        });
        if seen.as_ref().is_ok_and(|seen| seen == expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "Prometheus did not show {expected:?} for `{promql}` within {SETTLE:?}; it showed {seen:?}\nlog: {}",
        prometheus.log()
    );
}

fn label(labels: &serde_json::Map<String, serde_json::Value>, name: &str) -> String {
    labels
        .get(name)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("-")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_counts_by_reason_that_were_sent() {
    let authority = authority().await;
    let options = options(&authority);
    let axum_metrics = Metrics::prometheus("weather-api-axum").unwrap();
    let actix_metrics = Metrics::prometheus("weather-api-actix").unwrap();
    let apis = [
        (
            "weather-api-axum",
            start_axum(&options, &axum_metrics).await,
        ),
        (
            "weather-api-actix",
            start_actix(&options, &actix_metrics).await,
        ),
    ];
    let http = reqwest::Client::new();
    for (_, addr) in &apis {
        ready(&http, addr).await;
    }
    let alerts =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dashboards/alerts.yml");
    let prometheus = PrometheusServer::start_with_rules(
        &apis
            .iter()
            .map(|(job, addr)| Target {
                job: (*job).to_owned(),
                address: addr.clone(),
            })
            .collect::<Vec<_>>(),
        &[alerts],
    );

    let token = |request: IssueToken| authority.issue_token(&request).unwrap();
    let seed = || IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["service-api"]);
    // (what, token, status, how many): accepted, expired, wrong audience, forbidden.
    let mix = [
        ("accepted", token(seed()), 200, 3),
        (
            "expired",
            token(
                seed()
                    .claim("exp", 1_000_000_000u64)
                    .claim("nbf", 999_000_000u64)
                    .claim("iat", 999_000_000u64),
            ),
            401,
            2,
        ),
        (
            "wrong audience",
            token(IssueToken::new(SERVICE, "api://inventory").roles(["inventory.read"])),
            401,
            4,
        ),
        (
            "forbidden (no service-api role)",
            token(IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["weather.read"])),
            403,
            5,
        ),
    ];
    for (job, addr) in &apis {
        for (what, token, status, times) in &mix {
            for _ in 0..*times {
                let response = http
                    .get(format!("http://{addr}/weatherforecast"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), *status, "{job}: {what}");
            }
        }
    }

    let mut validations = BTreeMap::new();
    let mut decisions = BTreeMap::new();
    for (job, _) in &apis {
        // The forbidden ones were valid tokens: accepted by validation, denied by the policy.
        validations.insert(format!("{job} accepted none"), 8.0);
        validations.insert(format!("{job} rejected expired"), 2.0);
        validations.insert(format!("{job} rejected invalid_audience"), 4.0);
        decisions.insert(format!("{job} allowed"), 3.0);
        decisions.insert(format!("{job} denied"), 5.0);
    }
    settle(
        &prometheus,
        "sum by (job, outcome, reason) (tower_azure_auth_validations_total)",
        |l| {
            format!(
                "{} {} {}",
                label(l, "job"),
                label(l, "outcome"),
                label(l, "reason")
            )
        },
        &validations,
    )
    .await;
    settle(
        &prometheus,
        "sum by (job, outcome) (tower_azure_auth_authorization_decisions_total{policy=\"ValidateAccessTokenPolicy\"})",
        |l| format!("{} {}", label(l, "job"), label(l, "outcome")),
        &decisions,
    )
    .await;
    // The start-up refresh, with its duration, and the keys' age, per API.
    let refreshes: BTreeMap<String, f64> = apis
        .iter()
        .map(|(job, _)| (format!("{job} success"), 1.0))
        .collect();
    settle(
        &prometheus,
        "sum by (job, outcome) (tower_azure_auth_key_refreshes_total)",
        |l| format!("{} {}", label(l, "job"), label(l, "outcome")),
        &refreshes,
    )
    .await;
    let ages = prometheus
        .query("tower_azure_auth_keys_age_seconds")
        .unwrap();
    assert_eq!(ages.len(), 2, "{ages:?}");
    let durations = prometheus
        .query("sum by (job) (tower_azure_auth_validation_duration_seconds_count)")
        .unwrap();
    assert_eq!(durations.len(), 2, "{durations:?}");
    for (labels, count) in durations {
        assert_eq!(count, 14.0, "{labels:?}");
    }
    alerting_rules_evaluate(&prometheus).await;
    dashboard_queries_run(&prometheus).await;
}

/// The alerting rules of `examples/dashboards/alerts.yml` are loaded and evaluate without
/// error against the scraped series.
async fn alerting_rules_evaluate(prometheus: &PrometheusServer) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let data = prometheus.api("/api/v1/rules").unwrap();
        let rules: Vec<&serde_json::Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().into_iter().flatten())
            .collect();
        let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "SigningKeyRefreshFailing",
                "AccessTokenRefusalRatioHigh",
                "AccessTokenExpiringWithoutRefresh"
            ]
        );
        let evaluated = rules.iter().all(|r| {
            r["health"] == "ok"
                && !r["lastEvaluation"]
                    .as_str()
                    .unwrap_or("0001")
                    .starts_with("0001")
        });
        if evaluated {
            return;
        }
        assert!(Instant::now() < deadline, "rules not evaluated: {data}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every panel query of `examples/dashboards/tower-azure-auth.json` is valid PromQL that
/// Prometheus runs over the scraped series, and the inbound panels come to have data (a
/// rate needs two scrapes of the series).
async fn dashboard_queries_run(prometheus: &PrometheusServer) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/dashboards/tower-azure-auth.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*");
            let title = panel["title"].as_str().unwrap_or_default();
            let needs_data =
                title.starts_with("Validations by outcome") || title.starts_with("Seconds since");
            let deadline = Instant::now() + SETTLE;
            loop {
                let samples = prometheus
                    .query(&expr)
                    .unwrap_or_else(|e| panic!("{title}: {expr}: {e}"));
                if !needs_data || !samples.is_empty() {
                    break;
                }
                assert!(Instant::now() < deadline, "{title}: no data for {expr}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} queries");
}

/// With OTLP, the metrics are pushed as protobuf to the collector's `/v1/metrics` (a receiver
/// on 127.0.0.1 here), and `/metrics` is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_otlp_the_metrics_reach_the_collector() {
    let authority = authority().await;
    let options = options(&authority);
    let received: Arc<Mutex<Vec<(String, Vec<u8>)>>> = Arc::default();
    let sink = Arc::clone(&received);
    let collector = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = Arc::clone(&sink);
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    sink.lock().unwrap().push((content_type, body.to_vec()));
                    ""
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });

    let metrics = Metrics::otlp("weather-api-axum", Some(&collector_url)).unwrap();
    let addr = start_axum(&options, &metrics).await;
    let http = reqwest::Client::new();
    ready(&http, &addr).await;
    let token = authority
        .issue_token(&IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["service-api"]))
        .unwrap();
    let response = http
        .get(format!("http://{addr}/weatherforecast"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metrics_route = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    // No route: the path falls to the protected router's fallback (401 without a token).
    assert_ne!(
        metrics_route.status(),
        200,
        "OTLP pushes; nothing to scrape"
    );
    // The exporter's blocking client runs on its own thread: flush off the runtime.
    let flushing = metrics.clone();
    tokio::task::spawn_blocking(move || flushing.shutdown())
        .await
        .unwrap();
    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "nothing reached the collector");
    let (content_type, body) = &received[received.len() - 1];
    assert_eq!(content_type, "application/x-protobuf");
    let has = |needle: &str| body.windows(needle.len()).any(|w| w == needle.as_bytes());
    for name in [
        "tower_azure_auth.validations",
        "tower_azure_auth.authorization.decisions",
        "weather-api-axum",
    ] {
        assert!(has(name), "{name} not in the export");
    }
    assert!(!has(&token), "no token in the export");
}
