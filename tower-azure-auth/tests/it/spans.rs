//! The `tracing` spans, as a subscriber sees them when they close (over real HTTP: a metadata +
//! JWKS server and a token endpoint on 127.0.0.1): one span per validation with its outcome
//! and failure kind, one per token acquisition with its source, and a client span per call to
//! the authority with OpenTelemetry's HTTP field names; no token and no assertion in any.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::credentials::{ClientCertificate, ConfidentialClient};
use tower_azure_auth::{Authority, TokenValidator};
use tracing_subscriber::fmt::format::FmtSpan;

use crate::credentials_support::{rsa_cert, TokenServer};
use crate::support::{TestIdp, TestKey};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const NOW: u64 = 1_800_000_000;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The lines of the spans named `name` closing (not of their children), of everything this
/// crate traced on this thread.
fn lines(log: &Captured, name: &str) -> Vec<String> {
    String::from_utf8_lossy(&log.0.lock().unwrap())
        .lines()
        .filter(|line| {
            // `parent{..}:child{..}: target: close …`: the closing span is the last one.
            let path = line.split("}: ").next().unwrap_or_default();
            let closing = path.rsplit("}:").next().unwrap_or_default();
            closing.contains(&format!("{name}{{")) && line.contains(": close time.busy=")
        })
        .map(str::to_owned)
        .collect()
}

/// Runs in a process of its own (this test binary, started again for this test alone): a
/// callsite's interest is process-wide in `tracing`, and other tests validating tokens on
/// other threads at the same time can make this thread's subscriber miss spans.
#[test]
fn validations_acquisitions_and_http_calls_run_in_spans_with_semantic_convention_fields() {
    const CHILD: &str = "TOWER_AZURE_AUTH_SPANS_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(traced());
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "spans::validations_acquisitions_and_http_calls_run_in_spans_with_semantic_convention_fields",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the test in its own process failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn traced() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("tower_azure_auth=trace"))
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .build()
        .unwrap();
    validator.refresh().await.unwrap();
    let claims = |exp: u64| {
        json!({"aud": API, "iss": idp.issuer_v2(), "iat": NOW - 7200, "exp": exp,
            "azp": "caller", "roles": ["service-api"], "tid": TENANT, "ver": "2.0"})
    };
    let accepted = key.token(&claims(NOW + 600));
    let expired = key.token(&claims(NOW - 3600));
    validator.validate(&accepted).await.unwrap();
    validator.validate(&accepted).await.unwrap();
    assert!(validator.validate(&expired).await.is_err());

    let clock = ManualClock::at_unix(NOW);
    let cert = rsa_cert("weather-client");
    let server = TokenServer::start("client-1", Some(cert.clone()), clock.clone()).await;
    let client = ConfidentialClient::builder("client-1")
        .authority(Authority::entra(&server.instance(), "tenant-1").unwrap())
        .certificate(
            ClientCertificate::loader()
                .clock(Arc::new(clock.clone()))
                .from_pem(cert.combined_pem().as_bytes())
                .unwrap(),
        )
        .clock(Arc::new(clock))
        .retry_delay(Duration::from_millis(1))
        .build()
        .unwrap();
    let scope = "api://b178f3a5-7588-492a-924f-72d7887b7e48/.default";
    let token = client.acquire_token_for_client(&[scope]).await.unwrap();
    client.acquire_token_for_client(&[scope]).await.unwrap();

    let validations = lines(&log, "validate_access_token");
    assert_eq!(validations.len(), 3, "{validations:#?}");
    assert!(
        validations[0].contains("tower_azure_auth.outcome=\"accepted\""),
        "{}",
        validations[0]
    );
    assert!(
        validations[0].contains("tower_azure_auth.cached=false"),
        "{}",
        validations[0]
    );
    assert!(
        validations[1].contains("tower_azure_auth.cached=true"),
        "{}",
        validations[1]
    );
    assert!(
        validations[2].contains("tower_azure_auth.outcome=\"rejected\""),
        "{}",
        validations[2]
    );
    assert!(
        validations[2].contains("error.type=\"expired\""),
        "{}",
        validations[2]
    );

    let http = lines(&log, "HTTP");
    let metadata_url = format!(
        "url.full=http://127.0.0.1:{}/{TENANT}/v2.0/.well-known/openid-configuration ",
        idp.addr.port()
    );
    let metadata = http
        .iter()
        .find(|line| line.contains(&metadata_url))
        .unwrap_or_else(|| panic!("no span for the metadata: {http:#?}"));
    for field in [
        "otel.name=\"GET\"".to_owned(),
        "otel.kind=\"client\"".to_owned(),
        "http.request.method=\"GET\"".to_owned(),
        "server.address=\"127.0.0.1\"".to_owned(),
        format!("server.port={}", idp.addr.port()),
        "http.response.status_code=200".to_owned(),
    ] {
        assert!(metadata.contains(&field), "{field} in {metadata}");
    }
    assert!(
        http.iter().any(|line| line.contains("discovery/v2.0/keys")),
        "a span for the JWKS: {http:#?}"
    );
    assert!(
        http.iter()
            .any(|line| line.contains("refresh_signing_keys{")
                && line.contains("discovery/v2.0/keys")),
        "the JWKS call is a child of the refresh's span: {http:#?}"
    );
    let refreshes = lines(&log, "refresh_signing_keys");
    assert!(
        refreshes
            .iter()
            .any(|line| line.contains("tower_azure_auth.trigger=")),
        "{refreshes:#?}"
    );
    let token_call = http
        .iter()
        .find(|line| line.contains("oauth2/v2.0/token"))
        .unwrap_or_else(|| panic!("no span for the token endpoint: {http:#?}"));
    assert!(
        token_call.contains("http.request.method=\"POST\""),
        "{token_call}"
    );
    assert!(
        token_call.contains("http.response.status_code=200"),
        "{token_call}"
    );

    let acquisitions = lines(&log, "acquire_token");
    assert_eq!(acquisitions.len(), 2, "{acquisitions:#?}");
    assert!(
        acquisitions[0].contains("tower_azure_auth.token_source=\"identity_provider\""),
        "{}",
        acquisitions[0]
    );
    assert!(
        acquisitions[1].contains("tower_azure_auth.token_source=\"l1_cache\""),
        "{}",
        acquisitions[1]
    );

    let everything = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    for secret in [token.secret(), accepted.as_str(), expired.as_str()] {
        assert!(!everything.contains(secret), "a token in the trace");
    }
    assert!(
        !everything.contains("eyJ"),
        "no JWT (token or assertion) in the trace"
    );
}
