//! The seed's whole flow in one process, against the built-in dev authority:
//!
//! 1. a certificate is generated and registered for the weather service's app registration
//!    (in the seed it lives in Azure Key Vault and its `.cer` is uploaded to the registration);
//! 2. the dev authority (a local Entra ID) and the weather API (the axum example) start on
//!    127.0.0.1;
//! 3. the client gets a token with the certificate (an RFC 7523 client assertion, PS256 with
//!    `x5t#S256`, as MSAL sends it), calls `GET /weatherforecast` and gets the forecast;
//! 4. the refused calls: no token (401), a token for another API (401), the same app
//!    authenticated with a secret instead of the certificate (403, `azpacr` 1), a client
//!    without the `service-api` role (403).
//!
//! [`run`] returns a [`Report`] that narrates each step (the certificate and its thumbprints,
//! the registrations, the token and its algorithms, each call and its answer) and how long
//! the flow took; the binary prints it, ends with what to do next, and exits 0 only when
//! every outcome was the expected one. The end-to-end tests run it too. At the end it reads a few figures from
//! the API's `/metrics` (the OpenTelemetry SDK with the Prometheus exporter, shared by the API
//! and the demo's clients): validations by reason, authorization decisions, token
//! acquisitions by source, key refreshes.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;

use entra_dev_authority::{generate_certificate, DevApi, DevApplication, DevAuthority};
use reqwest::StatusCode;
use tower_azure_auth::claims::TokenVersion;
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::credentials::{
    AssertionAlgorithm, ClientCertificate, ConfidentialClient, TokenError,
};
use tower_azure_auth::middleware::AccessTokenMiddleware;
use tower_azure_auth::{Authority, AzureAdOptions, ConfigError};

/// The seed's tenant.
pub const TENANT_ID: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
/// The seed's app registration: the Service API, which also calls itself with its certificate
/// (`CallApi:ClientId` = `AzureAd:ClientId`, scope `api://{ClientId}/.default`).
pub const SERVICE_CLIENT_ID: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
/// Another application, allowed as a caller but granted only `weather.read`.
pub const REPORTING_CLIENT_ID: &str = "5d0c4a8e-7b1f-4f3e-9c2d-8a6b1e0f3c47";
/// Another API of the tenant.
pub const INVENTORY_CLIENT_ID: &str = "c3a1f7e2-9d4b-4e8a-b6c5-2f1e0d9c8b7a";
/// The weather service's client secret (the policy refuses secret-authenticated callers).
pub const SERVICE_SECRET: &str = "demo-secret-that-the-policy-refuses";

/// What happened to one call.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What was tried.
    pub name: &'static str,
    /// The status expected.
    pub expected: u16,
    /// The status received.
    pub status: u16,
    /// Why the API answered so: its `WWW-Authenticate` description or its 403 body.
    pub reason: String,
}

impl Outcome {
    /// Whether the status was the expected one.
    #[must_use]
    pub fn as_expected(&self) -> bool {
        self.expected == self.status
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.as_expected() { "ok " } else { "BAD" };
        write!(
            f,
            "[{mark}] {:<52} -> {} (expected {})\n        {}",
            self.name, self.status, self.expected, self.reason
        )
    }
}

/// What the demo saw.
#[derive(Debug)]
pub struct Report {
    /// The dev authority's token endpoint.
    pub token_endpoint: String,
    /// The weather API's base URL.
    pub api: String,
    /// The forecast the allowed call returned.
    pub forecast: serde_json::Value,
    /// Every call, the allowed one first.
    pub outcomes: Vec<Outcome>,
    /// A few series from the API's `/metrics` at the end (Prometheus text, the
    /// instrumentation-scope labels left out).
    pub figures: Vec<String>,
    /// What the demo set up, step by step, in plain language (never a token, key or secret);
    /// the calls and their answers are [`outcomes`](Self::outcomes).
    pub steps: Vec<String>,
    /// How long the whole flow took, from the first certificate to the last call.
    pub elapsed: Duration,
}

/// What to read or run after the demo, printed at its end.
pub const WHAT_NEXT: [(&str, &str); 4] = [
    (
        "protect your own API",
        "examples/weather-api-axum (ValidateAccessTokenLayer + RequirePolicyLayer, \
         AzureAdOptions from appsettings.json), or examples/weather-api-actix",
    ),
    (
        "call it",
        "examples/weather-client (ConfidentialClient with a certificate, the token attached \
         by AddAccessTokenLayer or the reqwest middleware)",
    ),
    (
        "test against the dev authority",
        "entra_dev_authority::DevAuthority in your tests: authority.api_validator(API_CLIENT_ID) \
         and authority.confidential_client(CLIENT_ID, &certificate); or run it: \
         cargo run -p entra-dev-authority -- --config registration.json",
    ),
    (
        "when a token is refused",
        "entra-doctor token <JWT> --config appsettings.json: each check the API runs, \
         expected vs actual, and what to change",
    ),
];

/// The SHA-1 thumbprint in upper-case hex, as the Azure portal shows it, from an `x5t`.
fn portal_thumbprint(x5t: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x5t)
        .map(|sha1| sha1.iter().map(|b| format!("{b:02X}")).collect())
        .unwrap_or_default()
}

/// The `alg` and `kid` of a JWS's header (the token itself is never shown).
fn header_alg_kid(jws: &str) -> (String, String) {
    let header = jws
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .unwrap_or_default();
    let field = |name: &str| header[name].as_str().unwrap_or("?").to_owned();
    (field("alg"), field("kid"))
}

fn seconds_left(expires_on: SystemTime) -> u64 {
    expires_on
        .duration_since(SystemTime::now())
        .map_or(0, |left| left.as_secs())
}

/// The series the demo shows at the end.
const FIGURES: [&str; 4] = [
    "tower_azure_auth_validations_total",
    "tower_azure_auth_authorization_decisions_total",
    "tower_azure_auth_key_refreshes_total",
    "MsalSuccess_total",
];

/// The lines of `text` (Prometheus exposition) for [`FIGURES`], without the `otel_scope_*`
/// labels.
fn figures(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| {
            FIGURES.iter().any(|name| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{'))
            })
        })
        .map(|line| {
            let Some((name, rest)) = line.split_once('{') else {
                return line.to_owned();
            };
            let Some((labels, value)) = rest.rsplit_once('}') else {
                return line.to_owned();
            };
            let labels: Vec<&str> = labels
                .split(',')
                .filter(|label| !label.starts_with("otel_scope_") && !label.is_empty())
                .collect();
            format!("{name}{{{}}}{value}", labels.join(","))
        })
        .collect()
}

impl Report {
    /// Whether every call got the expected status and the forecast has five days.
    pub fn all_as_expected(&self) -> bool {
        self.outcomes.iter().all(Outcome::as_expected)
            && self.forecast.as_array().is_some_and(|days| days.len() == 5)
    }
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// Setting something up failed.
    #[error("setup failed")]
    Config(#[from] ConfigError),
    /// The dev authority could not be set up.
    #[error("the dev authority could not be set up")]
    DevAuthority(#[from] entra_dev_authority::DevAuthorityError),
    /// A certificate could not be loaded.
    #[error("certificate")]
    Certificate(#[from] tower_azure_auth::credentials::CertificateError),
    /// Getting a token failed.
    #[error("token acquisition failed")]
    Token(#[from] TokenError),
    /// A call to the API failed at the transport level.
    #[error("calling the weather API failed: {0}")]
    Http(String),
    /// Binding a listener failed.
    #[error("cannot listen on 127.0.0.1")]
    Io(#[from] std::io::Error),
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<(StatusCode, String, String), DemoError> {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| DemoError::Http(e.to_string()))?;
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .text()
        .await
        .map_err(|e| DemoError::Http(e.to_string()))?;
    Ok((status, challenge, body))
}

fn reason(challenge: &str, body: &str) -> String {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(failed) = json.get("failed_requirements").and_then(|f| f.as_array()) {
            let failed: Vec<&str> = failed.iter().filter_map(|f| f.as_str()).collect();
            return format!("forbidden: {}", failed.join("; "));
        }
    }
    if challenge.is_empty() {
        body.chars().take(200).collect()
    } else {
        format!("WWW-Authenticate: {challenge}")
    }
}

/// Runs the demo.
///
/// # Errors
///
/// When something could not be set up; refused calls are outcomes, not errors.
pub async fn run() -> Result<Report, DemoError> {
    let started = Instant::now();
    let mut steps = Vec::new();
    // The certificates (in the seed: created in Key Vault, public part uploaded to the app
    // registration).
    let service_certificate = generate_certificate("CN=weather-service")?;
    let reporting_certificate = generate_certificate("CN=reporting-service")?;
    for certificate in [&service_certificate, &reporting_certificate] {
        steps.push(format!(
            "generated the certificate {} (RSA 2048, self-signed): SHA-1 thumbprint {} \
             (as the Azure portal shows it), x5t#S256 {}",
            certificate.subject,
            portal_thumbprint(&certificate.x5t),
            certificate.x5t_s256
        ));
    }
    let weather_api_uri = format!("api://{SERVICE_CLIENT_ID}");

    // The app registrations of the seed, on a local Entra ID.
    let authority = DevAuthority::builder()
        .tenant_id(TENANT_ID)
        .api(
            DevApi::new(SERVICE_CLIENT_ID)
                .display_name("weather service")
                .app_id_uri(&weather_api_uri)
                .app_roles(["service-api", "weather.read"])
                .token_version(TokenVersion::V2),
        )
        .api(
            DevApi::new(INVENTORY_CLIENT_ID)
                .display_name("inventory")
                .app_id_uri("api://inventory")
                .app_roles(["inventory.read"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(SERVICE_CLIENT_ID)
                .display_name("weather service")
                .certificate_pem(&service_certificate.cert_pem)?
                .secret(SERVICE_SECRET)
                .grant(&weather_api_uri, ["service-api"])
                .grant("api://inventory", ["inventory.read"]),
        )
        .application(
            DevApplication::new(REPORTING_CLIENT_ID)
                .display_name("reporting")
                .certificate_pem(&reporting_certificate.cert_pem)?
                .grant(&weather_api_uri, ["weather.read"]),
        )
        .start()
        .await?;
    steps.push(format!(
        "started the dev authority (a local Entra ID) at {} for tenant {TENANT_ID}",
        authority.authority()
    ));
    steps.push(format!(
        "registered the application \"weather service\" ({SERVICE_CLIENT_ID}): API \
         {weather_api_uri} with app roles service-api and weather.read, v2 tokens; its \
         certificate CN=weather-service and a client secret; granted service-api"
    ));
    steps.push(format!(
        "registered the application \"reporting\" ({REPORTING_CLIENT_ID}): certificate \
         CN=reporting-service; granted only weather.read on {weather_api_uri}"
    ));

    // The weather API, configured as the seed's `AzureAd` section (plus the reporting app as
    // an allowed caller, so that its refusal is about the role alone).
    let options: AzureAdOptions = ConfigSource::new()
        .with_env([
            ("AzureAd__Instance".to_owned(), authority.instance()),
            ("AzureAd__TenantId".to_owned(), TENANT_ID.to_owned()),
            ("AzureAd__ClientId".to_owned(), SERVICE_CLIENT_ID.to_owned()),
            (
                "AzureAd__AllowedClientIds__0".to_owned(),
                SERVICE_CLIENT_ID.to_owned(),
            ),
            (
                "AzureAd__AllowedClientIds__1".to_owned(),
                REPORTING_CLIENT_ID.to_owned(),
            ),
        ])
        .section("AzureAd")?;
    // The API's and the clients' metrics, in one SDK provider, scraped from `/metrics`.
    let metrics = weather_api_axum::Metrics::prometheus("weather-demo")
        .map_err(|e| DemoError::Http(e.to_string()))?;
    let app = weather_api_axum::app_with_metrics(&options, &metrics)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        // The demo ends the process when it is done; a server error shows as failed calls.
        let _ = axum::serve(listener, app).await;
    });
    let forecast_url = format!("{api}/weatherforecast");
    let scope = format!("{weather_api_uri}/.default");
    let entra = Authority::entra(&authority.instance(), TENANT_ID)?;
    steps.push(format!(
        "started the weather API at {api}: GET /weatherforecast requires a valid token with \
         the service-api role, azp {SERVICE_CLIENT_ID} and azpacr 2 (a certificate)"
    ));

    // The seed's client: ConfidentialClientApplicationBuilder.Create(ClientId)
    //   .WithAuthority(Instance + TenantId).WithCertificate(cert).Build()
    let client = Arc::new(
        ConfidentialClient::builder(SERVICE_CLIENT_ID)
            .authority(entra.clone())
            .certificate(ClientCertificate::from_pem(
                service_certificate.combined_pem().as_bytes(),
            )?)
            .assertion_algorithm(AssertionAlgorithm::Ps256)
            .meter(metrics.meter())
            .build()?,
    );
    let token = client.acquire_token_for_client(&[&scope]).await?;
    let (alg, kid) = header_alg_kid(token.secret());
    steps.push(format!(
        "acquired a token for {scope} with the certificate: client assertion signed {} with \
         x5t#S256 (RFC 7523, as MSAL sends it to Entra ID); the access token is signed {alg} \
         by the authority's key {kid} and expires in {} s",
        AssertionAlgorithm::Ps256.as_str(),
        seconds_left(token.expires_on())
    ));
    // ... and the token attached by the reqwest middleware.
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AccessTokenMiddleware::new(
            client.clone(),
            [scope.clone()],
            &api,
        )?)
        .build();
    let response = http
        .get(&forecast_url)
        .send()
        .await
        .map_err(|e| DemoError::Http(e.to_string()))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| DemoError::Http(e.to_string()))?;
    let forecast: serde_json::Value =
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    let mut outcomes = vec![Outcome {
        name: "certificate client with the service-api role",
        expected: 200,
        status: status.as_u16(),
        reason: format!("{} forecasts", forecast.as_array().map_or(0, Vec::len)),
    }];

    let plain = reqwest::Client::new();
    let (status, challenge, body) = call(&plain, &forecast_url, None).await?;
    outcomes.push(Outcome {
        name: "no token",
        expected: 401,
        status: status.as_u16(),
        reason: reason(&challenge, &body),
    });

    let other_api = client
        .acquire_token_for_client(&["api://inventory/.default"])
        .await?;
    let (status, challenge, body) = call(&plain, &forecast_url, Some(other_api.secret())).await?;
    outcomes.push(Outcome {
        name: "a token for another API (api://inventory)",
        expected: 401,
        status: status.as_u16(),
        reason: reason(&challenge, &body),
    });

    let with_secret = ConfidentialClient::builder(SERVICE_CLIENT_ID)
        .authority(entra.clone())
        .client_secret(SERVICE_SECRET)
        .meter(metrics.meter())
        .build()?;
    let token = with_secret.acquire_token_for_client(&[&scope]).await?;
    let (status, challenge, body) = call(&plain, &forecast_url, Some(token.secret())).await?;
    outcomes.push(Outcome {
        name: "the same app with a secret instead of the certificate",
        expected: 403,
        status: status.as_u16(),
        reason: reason(&challenge, &body),
    });

    let reporting = ConfidentialClient::builder(REPORTING_CLIENT_ID)
        .authority(entra)
        .certificate(ClientCertificate::from_pem(
            reporting_certificate.combined_pem().as_bytes(),
        )?)
        .meter(metrics.meter())
        .build()?;
    let token = reporting.acquire_token_for_client(&[&scope]).await?;
    let (status, challenge, body) = call(&plain, &forecast_url, Some(token.secret())).await?;
    outcomes.push(Outcome {
        name: "a certificate client without the service-api role",
        expected: 403,
        status: status.as_u16(),
        reason: reason(&challenge, &body),
    });

    let (_, _, text) = call(&plain, &format!("{api}/metrics"), None).await?;
    let report = Report {
        token_endpoint: authority.token_endpoint(),
        api,
        forecast,
        outcomes,
        figures: figures(&text),
        steps,
        elapsed: started.elapsed(),
    };
    authority.shutdown().await;
    Ok(report)
}
