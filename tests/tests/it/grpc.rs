//! The weather service over real gRPC (HTTP/2 on 127.0.0.1) with tokens from the dev authority:
//! hostile tokens answered `UNAUTHENTICATED` with the RFC 6750 challenge as metadata, the seed's
//! policy answered `PERMISSION_DENIED`, claims reaching the handler, per-service policies
//! (reflection open, `WeatherForecasts` protected) and the outbound replay of a refused call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use entra_dev_authority::{DevApi, DevApplication, DevAuthority, IssueToken};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use tower_azure_auth::claims::{ClientAuthentication, TokenVersion};
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::credentials::{AccessToken, BoxFuture, TokenError, TokenSource};
use tower_azure_auth::layers::AddAccessTokenLayer;
use tower_azure_auth::AzureAdOptions;
use weather_grpc::pb::weather_forecasts_client::WeatherForecastsClient;
use weather_grpc::pb::GetForecastRequest;

use super::weather_api::without_elapsed_seconds;

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const SERVICE: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const STRANGER: &str = "0a0a0a0a-1111-2222-3333-444444444444";

/// The client certificate registered for `SERVICE` (the client mode signs with it).
pub(crate) fn certificate() -> &'static entra_dev_authority::GeneratedCertificate {
    static CERTIFICATE: std::sync::OnceLock<entra_dev_authority::GeneratedCertificate> =
        std::sync::OnceLock::new();
    CERTIFICATE
        .get_or_init(|| entra_dev_authority::generate_certificate("CN=weather-grpc").unwrap())
}

pub(crate) async fn authority() -> DevAuthority {
    DevAuthority::builder()
        .tenant_id(TENANT)
        .api(
            DevApi::new(SERVICE)
                .app_id_uri(format!("api://{SERVICE}"))
                .app_roles(["service-api", "weather.read"])
                .token_version(TokenVersion::V2),
        )
        .api(
            DevApi::new("c3a1f7e2-9d4b-4e8a-b6c5-2f1e0d9c8b7a")
                .app_id_uri("api://inventory")
                .app_roles(["inventory.read"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(SERVICE)
                .grant(format!("api://{SERVICE}"), ["service-api"])
                .certificate_pem(&certificate().cert_pem)
                .unwrap(),
        )
        .application(
            DevApplication::new(STRANGER).grant(format!("api://{SERVICE}"), ["service-api"]),
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

/// Starts the weather-grpc service on 127.0.0.1:0; its `http://` address.
pub(crate) async fn start(authority: &DevAuthority) -> String {
    let service = weather_grpc::WeatherGrpc::from_options(&options(authority)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { service.serve(listener).await.unwrap() });
    address
}

async fn channel(address: &str) -> Channel {
    Endpoint::from_shared(address.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `token` with its JOSE header replaced by `header` (and the signature by `signature`).
fn with_header(token: &str, header: &serde_json::Value, signature: Option<&str>) -> String {
    let mut parts = token.split('.');
    let (_, payload, original) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    format!(
        "{}.{payload}.{}",
        b64(header.to_string().as_bytes()),
        signature.unwrap_or(original)
    )
}

struct Case {
    name: &'static str,
    token: Option<String>,
    code: Code,
    /// The start of the status message.
    message: &'static str,
    /// The `www-authenticate` metadata, exactly, or its start when it ends with `…`.
    challenge: Option<&'static str>,
}

fn cases(authority: &DevAuthority) -> Vec<Case> {
    let token = |request: IssueToken| Some(authority.issue_token(&request).unwrap());
    let seed = || IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["service-api"]);
    let good = authority.issue_token(&seed()).unwrap();
    let tampered = {
        let (rest, signature) = good.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        format!("{rest}.{flipped}{}", &signature[1..])
    };
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(good.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut none = header.clone();
    none["alg"] = "none".into();
    let mut unknown_kid = header;
    unknown_kid["kid"] = "no-such-key".into();
    let invalid = "Bearer error=\"invalid_token\", error_description=…";
    vec![
        Case {
            name: "valid token",
            token: Some(good.clone()),
            code: Code::Ok,
            message: "",
            challenge: None,
        },
        Case {
            name: "v1 token",
            token: token(seed().version(TokenVersion::V1)),
            code: Code::Ok,
            message: "",
            challenge: None,
        },
        Case {
            name: "no token",
            token: None,
            code: Code::Unauthenticated,
            message: "no bearer token",
            challenge: Some("Bearer"),
        },
        Case {
            name: "expired",
            token: token(
                seed()
                    .claim("exp", 1_000_000_000u64)
                    .claim("nbf", 999_000_000u64)
                    .claim("iat", 999_000_000u64),
            ),
            code: Code::Unauthenticated,
            message: "the token expired at 1000000000",
            challenge: Some(invalid),
        },
        Case {
            name: "wrong audience",
            token: token(IssueToken::new(SERVICE, "api://inventory").roles(["inventory.read"])),
            code: Code::Unauthenticated,
            message: "the audience is not accepted",
            challenge: Some(invalid),
        },
        Case {
            name: "bad signature",
            token: Some(tampered),
            code: Code::Unauthenticated,
            message: "the signature is invalid",
            challenge: Some(invalid),
        },
        Case {
            name: "alg none",
            token: Some(with_header(&good, &none, Some(""))),
            code: Code::Unauthenticated,
            message: "the algorithm 'none' is not accepted",
            challenge: Some(invalid),
        },
        Case {
            name: "unknown kid",
            token: Some(with_header(&good, &unknown_kid, None)),
            code: Code::Unauthenticated,
            message: "the signing key was not found",
            challenge: Some(invalid),
        },
        Case {
            name: "missing role",
            token: token(IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["weather.read"])),
            code: Code::PermissionDenied,
            message: "the caller does not satisfy the authorization policy `ValidateAccessTokenPolicy`: the caller must have the `service-api` application role",
            challenge: None,
        },
        Case {
            name: "azpacr 1 (a secret)",
            token: token(seed().client_authentication(ClientAuthentication::Secret)),
            code: Code::PermissionDenied,
            message: "the caller does not satisfy the authorization policy `ValidateAccessTokenPolicy`",
            challenge: None,
        },
        Case {
            name: "wrong azp",
            token: token(IssueToken::new(STRANGER, format!("api://{SERVICE}")).roles(["service-api"])),
            code: Code::PermissionDenied,
            message: "the caller does not satisfy the authorization policy `ValidateAccessTokenPolicy`",
            challenge: None,
        },
    ]
}

/// What the HTTP weather API (axum) answers the same token: `error_description` (for a `403`,
/// followed by the failed requirements as the gRPC message lists them) and `WWW-Authenticate`.
async fn http_answer(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
) -> (String, Option<String>) {
    let mut request = http.get(format!("{base}/weatherforecast"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = response.json().await.unwrap();
    let mut description = body["error_description"].as_str().unwrap().to_owned();
    if let Some(failed) = body["failed_requirements"].as_array() {
        let failed: Vec<&str> = failed.iter().map(|f| f.as_str().unwrap()).collect();
        description = format!("{description}: {}", failed.join(" | "));
    }
    (description, challenge)
}

/// Every hostile token and every policy denial over real gRPC: the status code, the message
/// and the challenge as metadata, which say exactly what the HTTP API says to the same token
/// (`error_description`, `WWW-Authenticate`), never the token; the accepted calls get five
/// forecasts from a handler that reads the claims (it answers `UNAUTHENTICATED` itself when
/// they are missing).
#[tokio::test]
async fn hostile_tokens_and_policy_denials_get_grpc_statuses() {
    let authority = authority().await;
    let address = start(&authority).await;
    let mut client = WeatherForecastsClient::new(channel(&address).await);
    let app = weather_api_axum::app(&options(&authority)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    for case in cases(&authority) {
        let mut request = Request::new(GetForecastRequest {});
        if let Some(token) = &case.token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        match client.get_forecast(request).await {
            Ok(response) => {
                assert_eq!(case.code, Code::Ok, "{}: answered OK", case.name);
                assert_eq!(response.into_inner().forecasts.len(), 5, "{}", case.name);
            }
            Err(status) => {
                assert_eq!(status.code(), case.code, "{}: {status:?}", case.name);
                assert!(
                    status.message().starts_with(case.message),
                    "{}: message {:?}",
                    case.name,
                    status.message()
                );
                if let Some(token) = &case.token {
                    let signature = token.rsplit('.').next().unwrap();
                    assert!(
                        signature.is_empty() || !status.message().contains(signature),
                        "{}: the token is not in the message",
                        case.name
                    );
                }
                let challenge = status
                    .metadata()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_owned());
                match (case.challenge, challenge.as_deref()) {
                    (None, None) => {}
                    (Some(expected), Some(actual)) if expected.ends_with('…') => assert!(
                        actual.starts_with(expected.trim_end_matches('…')),
                        "{}: {actual}",
                        case.name
                    ),
                    (expected, actual) => assert_eq!(actual, expected, "{}", case.name),
                }
                let (description, http_challenge) =
                    http_answer(&http, &http_base, case.token.as_deref()).await;
                assert_eq!(
                    without_elapsed_seconds(status.message()),
                    without_elapsed_seconds(&description),
                    "{}: the HTTP description",
                    case.name
                );
                assert_eq!(
                    challenge.as_deref().map(without_elapsed_seconds),
                    http_challenge.as_deref().map(without_elapsed_seconds),
                    "{}: the HTTP challenge",
                    case.name
                );
            }
        }
    }
}

/// Per-service policies on one server: reflection is declared anonymous and answers without a
/// token, while `WeatherForecasts` needs one.
#[tokio::test]
async fn reflection_is_open_while_the_weather_service_is_protected() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let authority = authority().await;
    let address = start(&authority).await;
    let channel = channel(&address).await;
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream_once(request))
        .await
        .expect("reflection without a token")
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&weather_grpc::SERVICE), "{names:?}");

    let refused = WeatherForecastsClient::new(channel)
        .get_forecast(GetForecastRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

fn tokio_stream_once<T: Send + 'static>(item: T) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::iter([item])
}

/// A token source whose cached token the service refuses (signed, but for another audience)
/// and whose forced refresh gives a good one, counting both.
#[derive(Debug)]
struct StaleThenFresh {
    stale: String,
    fresh: String,
    asked: AtomicUsize,
    forced: AtomicUsize,
}

impl TokenSource for StaleThenFresh {
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let secret = if force_refresh {
            self.forced.fetch_add(1, Ordering::SeqCst);
            self.fresh.clone()
        } else {
            self.stale.clone()
        };
        Box::pin(async move {
            Ok(AccessToken::new(
                secret,
                SystemTime::now() + Duration::from_secs(3600),
                scopes.to_vec(),
            ))
        })
    }
}

/// Outbound: `AddAccessTokenLayer` in front of a tonic `Channel` sends the token as metadata;
/// when the service answers `UNAUTHENTICATED` with `invalid_token`, it refreshes once and
/// replays the unary call once, with the same request message, and the call succeeds.
#[tokio::test]
async fn a_refused_unary_call_is_replayed_once_with_a_refreshed_token() {
    let authority = authority().await;
    let address = start(&authority).await;
    let source = Arc::new(StaleThenFresh {
        stale: authority
            .issue_token(&IssueToken::new(SERVICE, "api://inventory").roles(["inventory.read"]))
            .unwrap(),
        fresh: authority
            .issue_token(
                &IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["service-api"]),
            )
            .unwrap(),
        asked: AtomicUsize::new(0),
        forced: AtomicUsize::new(0),
    });
    let layer = AddAccessTokenLayer::from_shared(
        source.clone(),
        [format!("api://{SERVICE}/.default")],
        &address,
    )
    .unwrap();
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(channel(&address).await);
    let mut client = WeatherForecastsClient::with_origin(service, address.parse().unwrap());

    let forecasts = client
        .get_forecast(GetForecastRequest {})
        .await
        .expect("replayed with the fresh token")
        .into_inner()
        .forecasts;
    assert_eq!(forecasts.len(), 5);
    assert_eq!(
        source.asked.load(Ordering::SeqCst),
        2,
        "the cached token, then one refresh"
    );
    assert_eq!(source.forced.load(Ordering::SeqCst), 1);

    // A refusal that is not `invalid_token` (the policy) is not retried.
    let denied = Arc::new(StaleThenFresh {
        stale: authority
            .issue_token(
                &IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["weather.read"]),
            )
            .unwrap(),
        fresh: String::from("never-used"),
        asked: AtomicUsize::new(0),
        forced: AtomicUsize::new(0),
    });
    let layer = AddAccessTokenLayer::from_shared(
        denied.clone(),
        [format!("api://{SERVICE}/.default")],
        &address,
    )
    .unwrap();
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(channel(&address).await);
    let status = WeatherForecastsClient::with_origin(service, address.parse().unwrap())
        .get_forecast(GetForecastRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(denied.forced.load(Ordering::SeqCst), 0);
}

/// The client mode of the example: a certificate-acquired token from the dev authority, then
/// `GetForecast`.
#[tokio::test]
async fn the_client_mode_calls_with_a_certificate_token() {
    let authority = authority().await;
    let address = start(&authority).await;
    let dir = std::env::temp_dir().join(format!("weather-grpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("client.pem");
    std::fs::write(&pem, certificate().combined_pem()).unwrap();
    let options = ConfigSource::new()
        .with_env([
            ("CallApi__Instance".to_owned(), authority.instance()),
            ("CallApi__TenantId".to_owned(), TENANT.to_owned()),
            ("CallApi__ClientId".to_owned(), SERVICE.to_owned()),
            ("CallApi__ApiBaseAddress".to_owned(), address),
            (
                "CallApi__ScopeForAccessToken".to_owned(),
                format!("api://{SERVICE}/.default"),
            ),
            (
                "CallApi__ClientCertificates__0__SourceType".to_owned(),
                "Path".to_owned(),
            ),
            (
                "CallApi__ClientCertificates__0__CertificateDiskPath".to_owned(),
                pem.display().to_string(),
            ),
        ])
        .section("CallApi")
        .unwrap();
    let forecasts = weather_grpc::call(&options).await.unwrap();
    assert_eq!(forecasts.len(), 5);
    std::fs::remove_dir_all(dir).unwrap();
}

/// While the authority's keys cannot be fetched (nothing listens at the authority), a call is
/// answered `UNAVAILABLE` (retry with a backoff), not `UNAUTHENTICATED`: the caller did nothing
/// wrong.
#[tokio::test]
async fn keys_that_cannot_be_fetched_give_unavailable() {
    let authority = authority().await;
    let token = authority
        .issue_token(&IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["service-api"]))
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let options: AzureAdOptions = ConfigSource::new()
        .with_env([
            ("AzureAd__Instance".to_owned(), nowhere),
            ("AzureAd__TenantId".to_owned(), TENANT.to_owned()),
            ("AzureAd__ClientId".to_owned(), SERVICE.to_owned()),
        ])
        .section("AzureAd")
        .unwrap();
    let service = weather_grpc::WeatherGrpc::from_options(&options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { service.serve(listener).await.unwrap() });

    let mut request = Request::new(GetForecastRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let status = WeatherForecastsClient::new(channel(&address).await)
        .get_forecast(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.metadata().get("www-authenticate").is_none());
    assert_eq!(status.metadata().get("retry-after").unwrap(), "5");
}
