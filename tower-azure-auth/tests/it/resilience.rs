//! Outage resilience and background-refresh events against the dev authority over real HTTP:
//! the token endpoint fails (injected 503s) while the cached token is past `expires_in` but
//! inside `ext_expires_in`; the client keeps serving it, retries in the background with
//! backoff, stops at the end of the extended lifetime, and recovers once the authority answers.
//! Time is the shared manual clock of the client and the authority.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entra_dev_authority::{
    generate_certificate, DevApi, DevApplication, DevAuthority, Endpoint, Fault,
    GeneratedCertificate,
};
use http::StatusCode;
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::credentials::{
    BackgroundRefreshEvent, ClientCertificate, ConfidentialClient, ConfidentialClientBuilder,
    TokenError,
};
use tower_azure_auth::Authority;

const CLIENT: &str = "0b7c5d2e-0000-4000-8000-0000000000b1";
const API: &str = "6f8a1c52-0000-4000-8000-0000000000b2";
const SCOPE: &str = "api://resilient/.default";
const LIFETIME: Duration = Duration::from_secs(3600);
const EXTENSION: Duration = Duration::from_secs(3600);

struct Fixture {
    authority: DevAuthority,
    clock: ManualClock,
    certificate: GeneratedCertificate,
}

/// What the hook saw: success, scopes, whether an error was transient.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    succeeded: bool,
    scopes: Vec<String>,
    transient_error: Option<bool>,
    has_expiry: bool,
}

async fn fixture(extension: Option<Duration>) -> Fixture {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = ManualClock::at_unix(now);
    let certificate = generate_certificate("CN=resilient-client").unwrap();
    let mut builder = DevAuthority::builder()
        .clock(Arc::new(clock.clone()))
        .token_lifetime(LIFETIME)
        .api(
            DevApi::new(API)
                .app_id_uri("api://resilient")
                .app_roles(["service-api"]),
        )
        .application(
            DevApplication::new(CLIENT)
                .certificate_pem(&certificate.cert_pem)
                .unwrap()
                .grant("api://resilient", ["service-api"]),
        );
    if let Some(extension) = extension {
        builder = builder.extended_token_lifetime(extension);
    }
    Fixture {
        authority: builder.start().await.unwrap(),
        clock,
        certificate,
    }
}

impl Fixture {
    fn builder(&self) -> ConfidentialClientBuilder {
        let certificate = ClientCertificate::loader()
            .clock(Arc::new(self.clock.clone()))
            .from_pem(
                format!(
                    "{}\n{}",
                    self.certificate.cert_pem, self.certificate.key_pem
                )
                .as_bytes(),
            )
            .unwrap();
        ConfidentialClient::builder(CLIENT)
            .authority(
                Authority::entra(&self.authority.instance(), self.authority.tenant_id()).unwrap(),
            )
            .certificate(certificate)
            .clock(Arc::new(self.clock.clone()))
            .retry_delay(Duration::from_millis(1))
    }

    fn outage(&self) {
        self.authority.inject_fault(
            Endpoint::Token,
            Fault::fail(StatusCode::SERVICE_UNAVAILABLE).times(u32::MAX),
        );
    }

    fn token_requests(&self) -> u64 {
        self.authority.request_count(Endpoint::Token)
    }
}

/// A hook recording what it is told.
fn recorder() -> (
    Arc<Mutex<Vec<Seen>>>,
    impl Fn(&BackgroundRefreshEvent<'_>) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let hook = move |event: &BackgroundRefreshEvent<'_>| {
        sink.lock().unwrap().push(Seen {
            succeeded: event.succeeded(),
            scopes: event.scopes().to_vec(),
            transient_error: event.error().map(TokenError::is_transient),
            has_expiry: event.expires_on().is_some(),
        });
    };
    (seen, hook)
}

/// Waits (bounded) until `condition` holds; the bound only guards against hangs.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..4000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn the_cached_token_is_served_during_an_outage_until_ext_expires_in_then_the_client_recovers()
{
    let f = fixture(Some(EXTENSION)).await;
    let client = f.builder().build().unwrap();
    let first = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    let ext = first.ext_expires_on().expect("ext_expires_in was sent");
    assert_eq!(
        ext.duration_since(first.expires_on()).unwrap(),
        EXTENSION,
        "ext_expires_in = expires_in + the extension"
    );
    assert_eq!(f.token_requests(), 1);

    // Entra is down; the token is past expires_in, inside ext_expires_in.
    f.outage();
    f.clock.advance(LIFETIME + Duration::from_secs(1));
    let served = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(
        served.secret(),
        first.secret(),
        "the cached token is served"
    );
    assert_eq!(f.token_requests(), 3, "the request and its one retry");

    // Inside the backoff, callers get it without asking the authority again.
    for _ in 0..10 {
        let again = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
        assert_eq!(again.secret(), first.secret());
    }
    assert_eq!(f.token_requests(), 3, "no request inside the backoff");

    // After the backoff (5 s), one background retry; it fails too (and is retried once).
    f.clock.advance(Duration::from_secs(5));
    let again = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(again.secret(), first.secret());
    eventually("the background retry", || f.token_requests() == 5).await;

    // A forced refresh is not served from the extended lifetime.
    let forced = client.force_refresh(&[SCOPE]).await.unwrap_err();
    assert!(forced.is_transient(), "{forced}");

    // At ext_expires_in it stops: the outage's error, never the expired token.
    f.clock
        .set_unix(ext.duration_since(UNIX_EPOCH).unwrap().as_secs());
    let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
    assert_eq!(
        error.authority_error().map(|e| e.status),
        Some(503),
        "{error}"
    );

    // Entra is back: a new token.
    f.authority.clear_faults();
    let recovered = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_ne!(recovered.secret(), first.secret());
    assert!(recovered.expires_on() > ext);
    f.authority.shutdown().await;
}

#[tokio::test]
async fn the_background_retry_replaces_the_served_token_once_the_authority_answers_and_the_hook_hears_both(
) {
    let f = fixture(Some(EXTENSION)).await;
    let (seen, hook) = recorder();
    let client = f.builder().on_background_refresh(hook).build().unwrap();
    let first = client.acquire_token_for_client(&[SCOPE]).await.unwrap();

    f.outage();
    f.clock.advance(LIFETIME);
    assert_eq!(
        client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap()
            .secret(),
        first.secret()
    );
    // The first background retry (after 5 s) fails.
    f.clock.advance(Duration::from_secs(5));
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    eventually("the failed background retry is reported", || {
        seen.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(
        seen.lock().unwrap()[0],
        Seen {
            succeeded: false,
            scopes: vec![SCOPE.to_owned()],
            transient_error: Some(true),
            has_expiry: false,
        }
    );

    // The next one waits twice as long (10 s): nothing at 9 s.
    f.authority.clear_faults();
    f.clock.advance(Duration::from_secs(9));
    let requests = f.token_requests();
    assert_eq!(
        client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap()
            .secret(),
        first.secret()
    );
    assert_eq!(f.token_requests(), requests, "still inside the backoff");

    // At 10 s the background retry succeeds and its token replaces the served one.
    f.clock.advance(Duration::from_secs(1));
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    eventually("the successful background retry is reported", || {
        seen.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(
        seen.lock().unwrap()[1],
        Seen {
            succeeded: true,
            scopes: vec![SCOPE.to_owned()],
            transient_error: None,
            has_expiry: true,
        }
    );
    let fresh = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_ne!(fresh.secret(), first.secret());
    assert_eq!(f.token_requests(), requests + 1);
    f.authority.shutdown().await;
}

#[tokio::test]
async fn with_the_extended_lifetime_turned_off_the_outage_is_an_error() {
    let f = fixture(Some(EXTENSION)).await;
    let client = f.builder().extended_token_lifetime(false).build().unwrap();
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    f.outage();
    f.clock.advance(LIFETIME);
    let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    f.authority.shutdown().await;
}

#[tokio::test]
async fn inside_the_expiry_margin_the_token_is_served_even_when_ext_expires_in_equals_expires_in() {
    // Entra usually sends ext_expires_in = expires_in: the token still has minutes left at the
    // resource when the cache stops returning it (5 minutes before expiry).
    let f = fixture(None).await;
    let client = f.builder().build().unwrap();
    let first = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(first.ext_expires_on(), Some(first.expires_on()));
    f.outage();
    f.clock.advance(LIFETIME - Duration::from_secs(120));
    let served = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(served.secret(), first.secret());
    // Past expires_in (= ext_expires_in): the error.
    f.clock.advance(Duration::from_secs(120));
    assert!(client.acquire_token_for_client(&[SCOPE]).await.is_err());
    f.authority.shutdown().await;
}

#[tokio::test]
async fn a_refusal_is_not_an_outage_and_gets_no_extended_token() {
    let f = fixture(Some(EXTENSION)).await;
    let client = f.builder().build().unwrap();
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    f.authority.inject_fault(
        Endpoint::Token,
        Fault::fail(StatusCode::BAD_REQUEST).times(u32::MAX),
    );
    f.clock.advance(LIFETIME);
    let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
    f.authority.shutdown().await;
}

#[tokio::test]
async fn a_panicking_background_refresh_hook_does_not_break_the_client() {
    let f = fixture(None).await;
    let calls = Arc::new(Mutex::new(0u32));
    let counted = Arc::clone(&calls);
    let client = f
        .builder()
        .on_background_refresh(move |event| {
            *counted.lock().unwrap() += 1;
            assert!(!event.scopes().is_empty());
            panic!("a hook that panics");
        })
        .build()
        .unwrap();
    let first = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    // Past the refresh point (80 % of the usable lifetime), still usable: a background refresh.
    f.clock.advance(Duration::from_secs(3000));
    assert_eq!(
        client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap()
            .secret(),
        first.secret()
    );
    eventually("the hook was called", || *calls.lock().unwrap() == 1).await;
    // The refreshed token was stored despite the panic, and the client keeps working.
    let mut latest = first.secret().to_owned();
    for _ in 0..4000 {
        latest = client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap()
            .secret()
            .to_owned();
        if latest != first.secret() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_ne!(latest, first.secret(), "the refreshed token is served");
    assert_eq!(f.token_requests(), 2);
    f.authority.shutdown().await;
}

#[cfg(feature = "opentelemetry")]
#[tokio::test]
async fn each_token_served_from_its_extended_lifetime_is_counted() {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let served = || -> u64 {
        exporter.reset();
        provider.force_flush().unwrap();
        let exported = exporter.get_finished_metrics().unwrap();
        let mut total = 0;
        for scope in exported.last().expect("an export").scope_metrics() {
            for metric in scope.metrics() {
                if metric.name() != "tower_azure_auth.client.extended_lifetime_served" {
                    continue;
                }
                if let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() {
                    total += sum.data_points().map(|p| p.value()).sum::<u64>();
                }
            }
        }
        total
    };
    let f = fixture(Some(EXTENSION)).await;
    let client = f
        .builder()
        .meter(provider.meter("tower-azure-auth"))
        .build()
        .unwrap();
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(served(), 0);
    f.outage();
    f.clock.advance(LIFETIME);
    for _ in 0..3 {
        client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    }
    assert_eq!(served(), 3);
    f.authority.shutdown().await;
}
