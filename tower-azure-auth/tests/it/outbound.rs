//! The confidential client against a real token endpoint (axum on 127.0.0.1:0 verifying the
//! assertions with jsonwebtoken), the token cache, and the layer and middleware against a real
//! API server.

use crate::credentials_support as support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use serde_json::json;
use support::*;
use tower::{Service, ServiceExt};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::credentials::{
    ClientCertificate, ConfidentialClient, CredentialDescriptions, TokenError,
};
use tower_azure_auth::layers::AddAccessTokenLayer;
use tower_azure_auth::Authority;

const SCOPE: &str = "api://weather/.default";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const START: u64 = 1_900_000_000;

struct Setup {
    server: TokenServer,
    client: ConfidentialClient,
    clock: ManualClock,
    cert: TestCert,
}

async fn setup() -> Setup {
    let clock = ManualClock::at_unix(START);
    let cert = rsa_cert("weather-client");
    let server = TokenServer::start(CLIENT_ID, Some(cert.clone()), clock.clone()).await;
    let certificate = ClientCertificate::loader()
        .clock(Arc::new(clock.clone()))
        .from_pem(cert.combined_pem().as_bytes())
        .unwrap();
    let client = ConfidentialClient::builder(CLIENT_ID)
        .authority(Authority::entra(&server.instance(), "tenant-1").unwrap())
        .certificate(certificate)
        .clock(Arc::new(clock.clone()))
        .retry_delay(Duration::from_millis(1))
        .build()
        .unwrap();
    Setup {
        server,
        client,
        clock,
        cert,
    }
}

/// Waits (bounded) until `condition` holds; the bound only guards against hangs.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn a_cached_token_is_returned_without_io() {
    let s = setup().await;
    let first = s.client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(first.secret(), "token-1");
    assert_eq!(s.server.requests(), 1);
    let form = s.server.state.last_form.lock().unwrap().clone();
    assert_eq!(form.get("scope").map(String::as_str), Some(SCOPE));
    assert_eq!(
        s.server.state.last_capability.lock().unwrap().as_deref(),
        Some("retry-after, h429")
    );
    s.clock.advance(Duration::from_secs(600));
    let second = s.client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(second.secret(), "token-1");
    assert_eq!(s.server.requests(), 1, "a hit makes no request");
    assert!(
        !format!("{second:?}").contains("token-1"),
        "Debug hides the token"
    );
    assert!(s.server.problems().is_empty(), "{:?}", s.server.problems());
}

#[tokio::test]
async fn a_hundred_concurrent_callers_on_a_cold_cache_make_one_request() {
    let s = setup().await;
    s.server.state.gate_on.store(true, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let client = s.client.clone();
        tasks.push(tokio::spawn(async move {
            client.acquire_token_for_client(&[SCOPE]).await
        }));
    }
    eventually("the first request reaches the server", || {
        s.server.requests() == 1
    })
    .await;
    s.server.state.gate.add_permits(1000);
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().secret(), "token-1");
    }
    assert_eq!(s.server.requests(), 1);
}

#[tokio::test]
async fn refresh_ahead_of_expiry_happens_once_in_the_background() {
    let s = setup().await;
    s.server.push(Reply::Token {
        expires_in: json!(3600),
        refresh_in: Some(1800),
    });
    assert_eq!(
        s.client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap()
            .secret(),
        "token-1"
    );
    s.clock.advance(Duration::from_secs(1801));
    // The refresh request is held at the server: callers must not wait for it.
    s.server.state.gate_on.store(true, Ordering::SeqCst);
    for _ in 0..20 {
        let token = tokio::time::timeout(
            Duration::from_secs(30),
            s.client.acquire_token_for_client(&[SCOPE]),
        )
        .await
        .expect("a caller was blocked by the background refresh")
        .unwrap();
        assert_eq!(token.secret(), "token-1");
    }
    eventually("the background refresh reaches the server", || {
        s.server.requests() == 2
    })
    .await;
    assert_eq!(
        s.client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap()
            .secret(),
        "token-1"
    );
    s.server.state.gate.add_permits(10);
    let client = s.client.clone();
    let mut latest = String::new();
    for _ in 0..2000 {
        latest = client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap()
            .secret()
            .to_owned();
        if latest == "token-2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(latest, "token-2");
    assert_eq!(s.server.requests(), 2, "one refresh however many callers");
}

#[tokio::test]
async fn without_refresh_in_the_token_is_refreshed_before_the_margin_and_replaced_inside_it() {
    struct Case {
        name: &'static str,
        advance: u64,
        background: bool,
    }
    let cases = [
        Case {
            name: "at 80 % of the usable lifetime: background",
            advance: 2700,
            background: true,
        },
        Case {
            name: "inside the 5-minute margin: foreground",
            advance: 3400,
            background: false,
        },
    ];
    for case in cases {
        let s = setup().await;
        // expires_in as a numeric string, as AAD v1-like endpoints send it
        s.server.push(Reply::Token {
            expires_in: json!("3600"),
            refresh_in: None,
        });
        s.client.acquire_token_for_client(&[SCOPE]).await.unwrap();
        s.clock.advance(Duration::from_secs(case.advance));
        let token = s.client.acquire_token_for_client(&[SCOPE]).await.unwrap();
        if case.background {
            assert_eq!(token.secret(), "token-1", "{}", case.name);
            eventually(case.name, || {
                s.server.state.issued.load(Ordering::SeqCst) == 2
            })
            .await;
        } else {
            assert_eq!(token.secret(), "token-2", "{}", case.name);
        }
        assert_eq!(s.server.requests(), 2, "{}", case.name);
    }
}

#[tokio::test]
async fn retry_after_is_honoured_by_failing_fast() {
    struct Case {
        name: &'static str,
        status: u16,
        retry_after: &'static str,
        seconds: u64,
    }
    let cases = [
        Case {
            name: "429 with seconds",
            status: 429,
            retry_after: "120",
            seconds: 120,
        },
        Case {
            name: "503 with seconds",
            status: 503,
            retry_after: "30",
            seconds: 30,
        },
        Case {
            name: "capped at one hour",
            status: 429,
            retry_after: "86400",
            seconds: 3600,
        },
    ];
    for case in cases {
        let s = setup().await;
        s.server.push(Reply::Status {
            status: case.status,
            body: json!({"error": "temporarily_unavailable", "error_codes": [50196]}),
            retry_after: Some(case.retry_after),
        });
        let error = s
            .client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap_err();
        assert!(
            matches!(error, TokenError::Throttled { retry_after } if retry_after.as_secs() == case.seconds),
            "{}: {error:?}",
            case.name
        );
        let again = s
            .client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap_err();
        assert!(
            matches!(again, TokenError::Throttled { .. }),
            "{}: {again:?}",
            case.name
        );
        assert_eq!(
            s.server.requests(),
            1,
            "{}: identical requests fail without I/O",
            case.name
        );
        s.clock.advance(Duration::from_secs(case.seconds + 1));
        assert_eq!(
            s.client
                .acquire_token_for_client(&[SCOPE])
                .await
                .unwrap()
                .secret(),
            "token-1",
            "{}",
            case.name
        );
        assert_eq!(s.server.requests(), 2, "{}", case.name);
    }
}

#[tokio::test]
async fn server_errors_are_retried_once() {
    struct Case {
        name: &'static str,
        replies: Vec<Reply>,
        ok: bool,
        requests: usize,
    }
    let status = |status: u16, error: &str| Reply::Status {
        status,
        body: json!({"error": error}),
        retry_after: None,
    };
    let cases = [
        Case {
            name: "503 then a token",
            replies: vec![status(503, "server_error")],
            ok: true,
            requests: 2,
        },
        Case {
            name: "500 twice",
            replies: vec![status(500, "server_error"), status(500, "server_error")],
            ok: false,
            requests: 2,
        },
        Case {
            name: "400 is not retried",
            replies: vec![status(400, "invalid_request")],
            ok: false,
            requests: 1,
        },
    ];
    for case in cases {
        let s = setup().await;
        for reply in case.replies {
            s.server.push(reply);
        }
        let result = s.client.acquire_token_for_client(&[SCOPE]).await;
        assert_eq!(result.is_ok(), case.ok, "{}: {result:?}", case.name);
        assert_eq!(s.server.requests(), case.requests, "{}", case.name);
    }
}

#[tokio::test]
async fn network_errors_are_retried_once_then_reported() {
    // A port with nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cert = rsa_cert("c");
    let client = ConfidentialClient::builder(CLIENT_ID)
        .authority(Authority::entra(&format!("http://{addr}/"), "t").unwrap())
        .certificate(ClientCertificate::from_pem(cert.combined_pem().as_bytes()).unwrap())
        .retry_delay(Duration::from_millis(1))
        .build()
        .unwrap();
    let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
    assert!(matches!(error, TokenError::Transport(_)), "{error:?}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn authority_errors_carry_the_aadsts_code_and_advice() {
    // The server knows another certificate: AADSTS700027.
    let s = setup().await;
    *s.server.state.accepted.lock().unwrap() = vec![rsa_cert("registered")];
    let error = s
        .client
        .acquire_token_for_client(&[SCOPE])
        .await
        .unwrap_err();
    assert_eq!(error.aadsts_code(), Some(700027), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("AADSTS700027") && text.contains("registered"),
        "{text}"
    );
    assert_eq!(error.authority_error().unwrap().error, "invalid_client");

    // A wrong secret: AADSTS7000215.
    *s.server.state.secret.lock().unwrap() = Some("right".into());
    let with_secret = ConfidentialClient::builder(CLIENT_ID)
        .authority(Authority::entra(&s.server.instance(), "tenant-1").unwrap())
        .client_secret("s3cr3t-wrong-value")
        .build()
        .unwrap();
    let error = with_secret
        .acquire_token_for_client(&[SCOPE])
        .await
        .unwrap_err();
    assert_eq!(error.aadsts_code(), Some(7000215), "{error}");
    assert!(
        !format!("{error} {error:?} {with_secret:?}").contains("s3cr3t-wrong-value"),
        "no secret in messages"
    );
    let form = s.server.state.last_form.lock().unwrap().clone();
    assert!(form.contains_key("client_secret") && !form.contains_key("client_assertion"));

    // The right secret works.
    let right = ConfidentialClient::builder(CLIENT_ID)
        .authority(Authority::entra(&s.server.instance(), "tenant-1").unwrap())
        .client_secret("right")
        .build()
        .unwrap();
    assert!(right.acquire_token_for_client(&[SCOPE]).await.is_ok());
}

#[tokio::test]
async fn entra_scopes_must_end_with_default() {
    let s = setup().await;
    for scope in ["api://weather/read", "", "api://weather/.default extra"] {
        let error = s
            .client
            .acquire_token_for_client(&[scope])
            .await
            .unwrap_err();
        assert!(
            matches!(error, TokenError::InvalidScope { .. }),
            "{scope}: {error:?}"
        );
    }
    let none: [&str; 0] = [];
    assert!(matches!(
        s.client.acquire_token_for_client(&none).await,
        Err(TokenError::InvalidScope { .. })
    ));
    assert_eq!(s.server.requests(), 0);
}

#[tokio::test]
async fn force_refresh_skips_the_cache() {
    let s = setup().await;
    assert_eq!(
        s.client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap()
            .secret(),
        "token-1"
    );
    assert_eq!(
        s.client.force_refresh(&[SCOPE]).await.unwrap().secret(),
        "token-2"
    );
    assert_eq!(
        s.client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap()
            .secret(),
        "token-2"
    );
    // Scope sets are cached separately; order does not matter.
    let two = ["api://a/.default", "api://b/.default"];
    let two_reversed = ["api://b/.default", "api://a/.default"];
    let t = s.client.acquire_token_for_client(&two).await.unwrap();
    assert_eq!(
        s.client
            .acquire_token_for_client(&two_reversed)
            .await
            .unwrap()
            .secret(),
        t.secret()
    );
    assert_eq!(s.server.requests(), 3);
}

#[tokio::test]
async fn a_generic_oidc_authority_gets_rs256_and_the_endpoint_from_discovery() {
    let clock = ManualClock::at_unix(START);
    let cert = rsa_cert("oidc-client");
    let server = TokenServer::start(CLIENT_ID, Some(cert.clone()), clock.clone()).await;
    *server.state.expected_alg.lock().unwrap() = jsonwebtoken::Algorithm::RS256;
    *server.state.endpoint.lock().unwrap() = format!("http://{}/oidc/token", server.addr);
    let client = ConfidentialClient::builder(CLIENT_ID)
        .authority(Authority::oidc(&format!("http://{}/oidc", server.addr)).unwrap())
        .certificate(
            ClientCertificate::loader()
                .clock(Arc::new(clock.clone()))
                .from_pem(cert.combined_pem().as_bytes())
                .unwrap(),
        )
        .send_x5c(true)
        .clock(Arc::new(clock))
        .build()
        .unwrap();
    // Any scope is allowed for non-Entra authorities.
    let token = client
        .acquire_token_for_client(&["weather.read"])
        .await
        .unwrap();
    assert_eq!(token.secret(), "token-1");
    assert!(server.problems().is_empty(), "{:?}", server.problems());
    client.force_refresh(&["weather.read"]).await.unwrap();
    assert_eq!(
        server.requests(),
        2,
        "the discovery document is not a token request"
    );
}

#[tokio::test]
async fn a_rotated_certificate_is_reloaded_when_the_authority_refuses_the_old_one() {
    let clock = ManualClock::at_unix(START);
    let old = rsa_cert("old");
    let new = rsa_cert("new");
    let server = TokenServer::start(CLIENT_ID, Some(old.clone()), clock.clone()).await;
    let dir = std::env::temp_dir().join(format!("taa-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("client.pem"), old.combined_pem()).unwrap();
    let options: tower_azure_auth::CallApiOptions =
        tower_azure_auth::config::ConfigSource::from_json_str(&format!(
            r#"{{"CallApi":{{"ClientId":"{CLIENT_ID}","Instance":"{}","TenantId":"tenant-1",
            "ClientCertificates":[{{"SourceType":"Path","CertificateDiskPath":"client.pem"}}]}}}}"#,
            server.instance()
        ))
        .unwrap()
        .section("CallApi")
        .unwrap();
    let client = ConfidentialClient::builder_from_options(&options)
        .unwrap()
        .credential_source(Arc::new(
            CredentialDescriptions::from_call_api(&options).base_dir(&dir),
        ))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    client.load_credential().await.unwrap();
    assert_eq!(
        client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap()
            .secret(),
        "token-1"
    );

    // The certificate is rotated: the file is replaced and the app registration now only
    // knows the new one.
    std::fs::write(dir.join("client.pem"), new.combined_pem()).unwrap();
    *server.state.accepted.lock().unwrap() = vec![new.clone()];
    let token = client.force_refresh(&[SCOPE]).await.unwrap();
    assert_eq!(token.secret(), "token-2");
    assert_eq!(server.requests(), 3, "refused once, reloaded, accepted");
    match client.credential() {
        Some(tower_azure_auth::credentials::ClientCredential::Certificate(c)) => {
            assert_eq!(c.der(), new.cert_der.as_slice())
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The called API: accepts one token, answers 401 `invalid_token` to others, counts calls.
struct Api {
    addr: std::net::SocketAddr,
    accepted: Arc<Mutex<String>>,
    calls: Arc<AtomicUsize>,
}

async fn api(accepted: &str) -> Api {
    let accepted = Arc::new(Mutex::new(accepted.to_owned()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, c) = (Arc::clone(&accepted), Arc::clone(&calls));
    let app = Router::new().route(
        "/weatherforecast",
        any(move |headers: HeaderMap| {
            let (a, c) = (Arc::clone(&a), Arc::clone(&c));
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                let expected = format!("Bearer {}", a.lock().unwrap());
                if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str()) {
                    axum::Json(json!([{"summary": "Mild"}])).into_response()
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        [("www-authenticate", r#"Bearer error="invalid_token", error_description="the token expired""#)],
                    )
                        .into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Api {
        addr,
        accepted,
        calls,
    }
}

/// A tower "HTTP client" sending `http::Request<String>` over real HTTP with reqwest, and
/// recording whether the Authorization header was marked sensitive.
pub(crate) fn http_client(
    sensitive: Arc<Mutex<Vec<bool>>>,
) -> impl Service<
    http::Request<String>,
    Response = http::Response<String>,
    Error = reqwest::Error,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let client = reqwest::Client::new();
    tower::service_fn(move |request: http::Request<String>| {
        let client = client.clone();
        let sensitive = Arc::clone(&sensitive);
        async move {
            sensitive.lock().unwrap().push(
                request
                    .headers()
                    .get("authorization")
                    .is_some_and(|v| v.is_sensitive()),
            );
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.text().await?;
            let mut converted = http::Response::new(body);
            *converted.status_mut() = status;
            *converted.headers_mut() = headers;
            Ok(converted)
        }
    })
}

#[tokio::test]
async fn the_tower_layer_attaches_a_sensitive_bearer_token_and_retries_once_after_invalid_token() {
    struct Case {
        name: &'static str,
        accepted: &'static str,
        method: &'static str,
        body: &'static str,
        status: u16,
        api_calls: usize,
        token_requests: usize,
    }
    let cases = [
        Case {
            name: "accepted",
            accepted: "token-1",
            method: "GET",
            body: "",
            status: 200,
            api_calls: 1,
            token_requests: 1,
        },
        Case {
            name: "401 invalid_token, refreshed, replayed",
            accepted: "token-2",
            method: "GET",
            body: "",
            status: 200,
            api_calls: 2,
            token_requests: 2,
        },
        Case {
            name: "401 with a body: refreshed, not replayed",
            accepted: "token-2",
            method: "POST",
            body: "data",
            status: 401,
            api_calls: 1,
            token_requests: 2,
        },
        Case {
            name: "refused for good: one retry only",
            accepted: "never",
            method: "GET",
            body: "",
            status: 401,
            api_calls: 2,
            token_requests: 2,
        },
    ];
    for case in cases {
        let s = setup().await;
        let api = api(case.accepted).await;
        let sensitive = Arc::new(Mutex::new(Vec::new()));
        let mut service = tower::ServiceBuilder::new()
            .layer(
                AddAccessTokenLayer::new(
                    s.client.clone(),
                    [SCOPE],
                    &format!("http://{}", api.addr),
                )
                .unwrap(),
            )
            .service(http_client(Arc::clone(&sensitive)));
        let request = http::Request::builder()
            .method(case.method)
            .uri(format!("http://{}/weatherforecast", api.addr))
            .body(case.body.to_owned())
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        assert_eq!(
            api.calls.load(Ordering::SeqCst),
            case.api_calls,
            "{}",
            case.name
        );
        assert_eq!(s.server.requests(), case.token_requests, "{}", case.name);
        assert!(
            sensitive.lock().unwrap().iter().all(|s| *s),
            "{}: header marked sensitive",
            case.name
        );
        let _ = (&api.accepted, &s.cert);
    }
}

/// A client whose token endpoint is a closed port: every acquisition fails in transport.
fn unreachable_client(cert: &TestCert) -> ConfidentialClient {
    ConfidentialClient::builder(CLIENT_ID)
        .authority(Authority::entra("http://127.0.0.1:1/", "tenant-1").unwrap())
        .certificate(ClientCertificate::from_pem(cert.combined_pem().as_bytes()).unwrap())
        .retry_delay(Duration::from_millis(1))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_tower_layer_reports_token_failures_as_token_errors() {
    let s = setup().await;
    let api = api("token-1").await;
    let mut service = tower::ServiceBuilder::new()
        .layer(
            AddAccessTokenLayer::new(
                unreachable_client(&s.cert),
                [SCOPE],
                &format!("http://{}", api.addr),
            )
            .unwrap(),
        )
        .service(http_client(Arc::default()));
    let request = http::Request::get(format!("http://{}/weatherforecast", api.addr))
        .body(String::new())
        .unwrap();
    let error = service
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error.downcast_ref::<TokenError>(),
            Some(TokenError::Transport(_))
        ),
        "{error}"
    );
    assert_eq!(api.calls.load(Ordering::SeqCst), 0);
}

#[cfg(feature = "reqwest")]
#[tokio::test]
async fn the_reqwest_middleware_attaches_the_token_and_retries_once_after_invalid_token() {
    use tower_azure_auth::middleware::AccessTokenMiddleware;
    struct Case {
        name: &'static str,
        accepted: &'static str,
        status: u16,
        api_calls: usize,
        token_requests: usize,
    }
    let cases = [
        Case {
            name: "accepted",
            accepted: "token-1",
            status: 200,
            api_calls: 1,
            token_requests: 1,
        },
        Case {
            name: "401 invalid_token, refreshed, replayed",
            accepted: "token-2",
            status: 200,
            api_calls: 2,
            token_requests: 2,
        },
        Case {
            name: "refused for good: one retry only",
            accepted: "never",
            status: 401,
            api_calls: 2,
            token_requests: 2,
        },
    ];
    for case in cases {
        let s = setup().await;
        let api = api(case.accepted).await;
        let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(
                AccessTokenMiddleware::new(
                    s.client.clone(),
                    [SCOPE],
                    &format!("http://{}", api.addr),
                )
                .unwrap(),
            )
            .build();
        let response = http
            .post(format!("http://{}/weatherforecast", api.addr))
            .body("replayable")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        assert_eq!(
            api.calls.load(Ordering::SeqCst),
            case.api_calls,
            "{}",
            case.name
        );
        assert_eq!(s.server.requests(), case.token_requests, "{}", case.name);
    }
    // Token failures surface as middleware errors wrapping the TokenError.
    let s = setup().await;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            AccessTokenMiddleware::new(
                unreachable_client(&s.cert),
                [SCOPE],
                &format!("http://{}", s.server.addr),
            )
            .unwrap(),
        )
        .build();
    let error = http
        .get(format!("http://{}/", s.server.addr))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("not a middleware error: {error}");
    };
    assert!(
        matches!(
            error.downcast_ref::<TokenError>(),
            Some(TokenError::Transport(_))
        ),
        "{error}"
    );
}

/// A server that records the `Authorization` header of every request (`None` when absent)
/// and answers 200.
#[cfg(feature = "reqwest")]
struct Recorder {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

#[cfg(feature = "reqwest")]
impl Recorder {
    async fn start() -> Self {
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let s = Arc::clone(&seen);
        let app = Router::new().fallback(any(move |headers: HeaderMap| {
            let s = Arc::clone(&s);
            async move {
                s.lock().unwrap().push(
                    headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                );
                StatusCode::OK
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }
}

#[cfg(feature = "reqwest")]
#[tokio::test]
async fn the_outbound_token_went_to_every_origin_now_only_to_the_configured_one() {
    use tower_azure_auth::middleware::AccessTokenMiddleware;
    let s = setup().await;
    let api = Recorder::start().await;
    let elsewhere = Recorder::start().await;
    let token = Some("Bearer token-1".to_owned());

    // reqwest middleware, bound to the API's base address (a path in it does not matter).
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            AccessTokenMiddleware::new(s.client.clone(), [SCOPE], &format!("{}/api/", api.url()))
                .unwrap(),
        )
        .build();
    for url in [
        format!("{}/weatherforecast", api.url()),
        format!("{}/collect", elsewhere.url()),
    ] {
        assert_eq!(http.get(url).send().await.unwrap().status(), 200);
    }
    assert_eq!(
        api.seen(),
        std::slice::from_ref(&token),
        "the API gets the token"
    );
    assert_eq!(
        elsewhere.seen(),
        [None],
        "another origin is called without it"
    );

    // The tower layer, with two origins from the builder.
    let second = Recorder::start().await;
    let layer = AddAccessTokenLayer::builder(Arc::new(s.client.clone()), [SCOPE])
        .add_origin(api.url())
        .add_origin(second.url())
        .build()
        .unwrap();
    let mut service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(http_client(Arc::default()));
    for url in [
        format!("{}/weatherforecast", api.url()),
        format!("{}/weatherforecast", second.url()),
        format!("{}/collect", elsewhere.url()),
    ] {
        let request = http::Request::get(url).body(String::new()).unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    // A relative URI names no origin: no token.
    let relative = http::Request::get("/weatherforecast")
        .body(String::new())
        .unwrap();
    let mut bare = tower::ServiceBuilder::new()
        .layer(AddAccessTokenLayer::new(s.client.clone(), [SCOPE], &api.url()).unwrap())
        .service(tower::service_fn(
            |request: http::Request<String>| async move {
                assert!(request.headers().get("authorization").is_none());
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            },
        ));
    bare.ready().await.unwrap().call(relative).await.unwrap();

    assert_eq!(api.seen(), [token.clone(), token.clone()]);
    assert_eq!(second.seen(), [token]);
    assert_eq!(elsewhere.seen(), [None, None]);
    assert_eq!(s.server.requests(), 1, "one token, from the cache after");
}

#[cfg(feature = "reqwest")] // the layer and the middleware side by side
#[tokio::test]
async fn plain_http_to_a_non_loopback_origin_is_refused_when_building() {
    use tower_azure_auth::middleware::AccessTokenMiddleware;
    use tower_azure_auth::ConfigError;
    let s = setup().await;
    let shared: Arc<dyn tower_azure_auth::credentials::TokenSource> = Arc::new(s.client.clone());
    struct Case {
        name: &'static str,
        origins: &'static [&'static str],
        allow_http: bool,
        expected: Result<(), &'static str>,
    }
    let cases = [
        Case {
            name: "https",
            origins: &["https://weather.example.com/api"],
            allow_http: false,
            expected: Ok(()),
        },
        Case {
            name: "loopback http",
            origins: &[
                "http://127.0.0.1:5000",
                "http://localhost:5000",
                "http://[::1]:5000",
            ],
            allow_http: false,
            expected: Ok(()),
        },
        Case {
            name: "plain http to another host",
            origins: &["https://weather.example.com", "http://weather.example.com"],
            allow_http: false,
            expected: Err("InsecureUrl"),
        },
        Case {
            name: "plain http, allowed explicitly",
            origins: &["http://weather.internal"],
            allow_http: true,
            expected: Ok(()),
        },
        Case {
            name: "no origin",
            origins: &[],
            allow_http: false,
            expected: Err("Missing"),
        },
        Case {
            name: "not a URL",
            origins: &["weather.example.com"],
            allow_http: false,
            expected: Err("Invalid"),
        },
        Case {
            name: "another scheme",
            origins: &["ftp://weather.example.com"],
            allow_http: true,
            expected: Err("Invalid"),
        },
    ];
    let kind = |error: &ConfigError| match error {
        ConfigError::InsecureUrl { .. } => "InsecureUrl",
        ConfigError::Missing { .. } => "Missing",
        ConfigError::Invalid { .. } => "Invalid",
        _ => "other",
    };
    for case in cases {
        let mut layer =
            AddAccessTokenLayer::builder(Arc::clone(&shared), [SCOPE]).allow_http(case.allow_http);
        let mut middleware = AccessTokenMiddleware::builder(Arc::clone(&shared), [SCOPE])
            .allow_http(case.allow_http);
        for origin in case.origins {
            layer = layer.add_origin(*origin);
            middleware = middleware.add_origin(*origin);
        }
        let layer = layer.build().map(drop);
        let middleware = middleware.build().map(drop);
        for (what, result) in [("layer", layer), ("middleware", middleware)] {
            match (&result, case.expected) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(expected)) => {
                    assert_eq!(kind(e), expected, "{} ({what}): {e}", case.name);
                    assert!(
                        e.to_string().contains("ApiBaseAddress") || expected == "InsecureUrl",
                        "{} ({what}): {e}",
                        case.name
                    );
                }
                _ => panic!(
                    "{} ({what}): {result:?}, expected {:?}",
                    case.name, case.expected
                ),
            }
        }
    }
    // The one-origin constructors check the same way.
    assert!(matches!(
        AddAccessTokenLayer::new(s.client.clone(), [SCOPE], "http://weather.example.com"),
        Err(ConfigError::InsecureUrl { .. })
    ));
    assert!(matches!(
        AccessTokenMiddleware::new(s.client, [SCOPE], "http://weather.example.com"),
        Err(ConfigError::InsecureUrl { .. })
    ));
}

#[cfg(feature = "reqwest")]
#[tokio::test]
async fn an_api_answering_401_invalid_token_forever_made_the_client_request_a_token_per_call() {
    use entra_dev_authority::{
        generate_certificate, DevApi, DevApplication, DevAuthority, Endpoint,
    };
    use tower_azure_auth::middleware::AccessTokenMiddleware;
    const API_ID: &str = "6f8a1c52-0000-4000-8000-000000000001";
    let clock = ManualClock::at_unix(START);
    let certificate = generate_certificate("CN=weather-client").unwrap();
    let authority = DevAuthority::builder()
        .clock(Arc::new(clock.clone()))
        .api(DevApi::new(API_ID).app_id_uri("api://weather"))
        .application(
            DevApplication::new(CLIENT_ID)
                .certificate_pem(&certificate.cert_pem)
                .unwrap()
                .grant("api://weather", Vec::<String>::new()),
        )
        .start()
        .await
        .unwrap();
    let client = ConfidentialClient::builder(CLIENT_ID)
        .authority(Authority::entra(&authority.instance(), authority.tenant_id()).unwrap())
        .certificate(
            ClientCertificate::loader()
                .clock(Arc::new(clock.clone()))
                .from_pem(certificate.combined_pem().as_bytes())
                .unwrap(),
        )
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    // The hostile API: every token is refused as invalid.
    let hostile = api("never").await;
    let base = format!("http://{}", hostile.addr);
    let url = format!("{base}/weatherforecast");

    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AccessTokenMiddleware::new(client.clone(), [SCOPE], &base).unwrap())
        .build();
    for _ in 0..20 {
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    // The first token, then one forced refresh (the first 401's); the other 19 refusals get
    // the cached token, and a refused token that did not change is not sent again.
    assert_eq!(authority.request_count(Endpoint::Token), 2);
    assert_eq!(hostile.calls.load(Ordering::SeqCst), 21);

    // Past the interval, a refusal forces exactly one more request.
    clock.advance(Duration::from_secs(31));
    for _ in 0..5 {
        http.get(&url).send().await.unwrap();
    }
    assert_eq!(authority.request_count(Endpoint::Token), 3);
    assert_eq!(hostile.calls.load(Ordering::SeqCst), 21 + 2 + 4);

    // The tower layer shares the limit: it is the client's, per scope set.
    let mut service = tower::ServiceBuilder::new()
        .layer(AddAccessTokenLayer::new(client.clone(), [SCOPE], &base).unwrap())
        .service(http_client(Arc::default()));
    for _ in 0..20 {
        let request = http::Request::get(&url).body(String::new()).unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 401);
    }
    assert_eq!(authority.request_count(Endpoint::Token), 3);

    // The interval is configurable; an explicit force_refresh is not limited.
    let eager = ConfidentialClient::builder(CLIENT_ID)
        .authority(Authority::entra(&authority.instance(), authority.tenant_id()).unwrap())
        .certificate(
            ClientCertificate::loader()
                .clock(Arc::new(clock.clone()))
                .from_pem(certificate.combined_pem().as_bytes())
                .unwrap(),
        )
        .clock(Arc::new(clock.clone()))
        .forced_refresh_interval(Duration::from_secs(300))
        .build()
        .unwrap();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AccessTokenMiddleware::new(eager.clone(), [SCOPE], &base).unwrap())
        .build();
    http.get(&url).send().await.unwrap();
    assert_eq!(authority.request_count(Endpoint::Token), 5);
    clock.advance(Duration::from_secs(31));
    http.get(&url).send().await.unwrap();
    assert_eq!(authority.request_count(Endpoint::Token), 5, "inside 300 s");
    eager.force_refresh(&[SCOPE]).await.unwrap();
    eager.force_refresh(&[SCOPE]).await.unwrap();
    assert_eq!(authority.request_count(Endpoint::Token), 7);
}

#[tokio::test]
async fn a_token_endpoint_redirect_was_followed_with_the_client_secret() {
    use tower_azure_auth::HttpClient;
    // The second origin counts what reaches it.
    let stolen = Arc::new(AtomicUsize::new(0));
    let st = Arc::clone(&stolen);
    let thief = Router::new().fallback(any(move || {
        let st = Arc::clone(&st);
        async move {
            st.fetch_add(1, Ordering::SeqCst);
            axum::Json(
                json!({"token_type": "Bearer", "access_token": "stolen", "expires_in": 3600}),
            )
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let thief_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, thief).await.unwrap() });
    // The authority: its token endpoint and its discovery document answer 307 to it.
    let location = format!("http://{thief_addr}/collect");
    let app = Router::new().fallback(any(move || {
        let location = location.clone();
        async move {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", format!("{location}?from=authority"))],
            )
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // A user-built reqwest client with reqwest's default policy (follow up to 10 redirects).
    let http = HttpClient::from_reqwest(reqwest::Client::builder(), 1 << 20).unwrap();
    let client = ConfidentialClient::builder(CLIENT_ID)
        .authority(Authority::entra(&format!("http://{addr}/"), "tenant-1").unwrap())
        .client_secret("s3cret-value")
        .http_client(http.clone())
        .retry_delay(Duration::from_millis(1))
        .build()
        .unwrap();
    let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
    let text = tower_azure_auth::error::error_chain(&error);
    assert!(
        text.contains("the authority redirected the token request") && text.contains("307"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!error.is_transient(), "a redirect is not retried: {text}");
    // The metadata / JWKS path: a GET is not followed either.
    let metadata =
        url::Url::parse(&format!("http://{addr}/.well-known/openid-configuration")).unwrap();
    let error = http
        .get_json::<serde_json::Value>(&metadata)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("redirected (HTTP 307"),
        "{error}"
    );
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "nothing reached the other origin"
    );
}
