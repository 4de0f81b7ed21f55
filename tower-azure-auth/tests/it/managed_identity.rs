//! Managed identity and workload identity over real HTTP on 127.0.0.1: the IMDS and App
//! Service wire formats (checked by small recording servers and by the dev authority),
//! bounded retries, half-life refresh, the federated token file read for every request, and
//! a managed identity token used as the client assertion.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use entra_dev_authority::{
    generate_certificate, AssertionReuse, DevApi, DevApplication, DevAuthority, Endpoint, Fault,
};
use serde_json::{json, Value};
use tower_azure_auth::clock::{Clock, ManualClock, SharedClock};
use tower_azure_auth::config::{ConfigSource, CredentialDescription, SourceType};
use tower_azure_auth::credentials::{
    AssertionAlgorithm, AssertionRequest, ClientCertificate, ConfidentialClient,
    CredentialDescriptions, Environment, ManagedIdentityCredential, TokenSource, WorkloadIdentity,
};
use tower_azure_auth::{Authority, HttpClient};

const CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000002";
const API: &str = "6f8a1c52-0000-4000-8000-000000000001";
const IDENTITY: &str = "5a9f0c1e-0000-4000-8000-000000000009";
const VAULT_SCOPE: &str = "https://vault.azure.net/.default";

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// What a recording endpoint saw: the path, query and the headers that matter.
#[derive(Debug, Clone, Default)]
struct Seen {
    path: String,
    query: HashMap<String, String>,
    metadata: Option<String>,
    identity_header: Option<String>,
}

/// A managed identity endpoint that records requests and answers `body`.
async fn recording(body: Value) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = Arc::clone(&seen);
    let handler = move |uri: axum::http::Uri,
                        Query(query): Query<HashMap<String, String>>,
                        headers: HeaderMap| {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        log.lock().unwrap().push(Seen {
            path: uri.path().to_owned(),
            query,
            metadata: header("metadata"),
            identity_header: header("x-identity-header"),
        });
        let body = body.clone();
        async move { Json(body) }
    };
    let app = Router::new()
        .route("/metadata/identity/oauth2/token", get(handler.clone()))
        .route("/msi/token", get(handler));
    (serve(app).await, seen)
}

#[tokio::test]
async fn requests_follow_the_imds_and_app_service_wire_formats() {
    struct Case {
        name: &'static str,
        app_service: bool,
        client_id: Option<&'static str>,
        body: Value,
        expected_query: &'static [(&'static str, &'static str)],
        lifetime: u64,
    }
    let now = 1_900_000_000u64;
    let cases = [
        Case {
            name: "imds, system-assigned, numbers as strings",
            app_service: false,
            client_id: None,
            body: json!({"access_token": "a.b.c", "refresh_token": "", "expires_in": "3599",
                "expires_on": (now + 3599).to_string(), "not_before": (now - 300).to_string(),
                "resource": "https://vault.azure.net", "token_type": "Bearer"}),
            expected_query: &[
                ("api-version", "2018-02-01"),
                ("resource", "https://vault.azure.net"),
            ],
            lifetime: 3599,
        },
        Case {
            name: "imds, user-assigned",
            app_service: false,
            client_id: Some(IDENTITY),
            body: json!({"access_token": "a.b.c", "expires_in": "3600", "token_type": "Bearer"}),
            expected_query: &[
                ("api-version", "2018-02-01"),
                ("resource", "https://vault.azure.net"),
                ("client_id", IDENTITY),
            ],
            lifetime: 3600,
        },
        Case {
            name: "app service, expires_on only",
            app_service: true,
            client_id: Some(IDENTITY),
            body: json!({"access_token": "a.b.c", "expires_on": (now + 7000).to_string(),
                "resource": "https://vault.azure.net", "token_type": "Bearer", "client_id": IDENTITY}),
            expected_query: &[
                ("api-version", "2019-08-01"),
                ("resource", "https://vault.azure.net"),
                ("client_id", IDENTITY),
            ],
            lifetime: 7000,
        },
        Case {
            name: "app service, expires_on as a date",
            app_service: true,
            client_id: None,
            body: json!({"access_token": "a.b.c", "expires_on": "2030-03-17T18:46:40Z", "token_type": "Bearer"}),
            expected_query: &[
                ("api-version", "2019-08-01"),
                ("resource", "https://vault.azure.net"),
            ],
            lifetime: 3600,
        },
    ];
    for case in cases {
        let (addr, seen) = recording(case.body.clone()).await;
        let env = if case.app_service {
            Environment::from_pairs([
                ("IDENTITY_ENDPOINT", format!("http://{addr}/msi/token")),
                ("IDENTITY_HEADER", "header-secret".to_owned()),
            ])
        } else {
            Environment::from_pairs([(
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                format!("http://{addr}"),
            )])
        };
        let clock = ManualClock::at_unix(now);
        let credential = ManagedIdentityCredential::builder()
            .environment(env)
            .client_id(case.client_id)
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        let token = credential
            .get_token(&[VAULT_SCOPE])
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(token.secret(), "a.b.c", "{}", case.name);
        assert_eq!(
            token.expires_on(),
            clock.now() + Duration::from_secs(case.lifetime),
            "{}",
            case.name
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{}", case.name);
        let seen = &seen[0];
        let expected: HashMap<String, String> = case
            .expected_query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(seen.query, expected, "{}", case.name);
        if case.app_service {
            assert_eq!(seen.path, "/msi/token", "{}", case.name);
            assert_eq!(
                seen.identity_header.as_deref(),
                Some("header-secret"),
                "{}",
                case.name
            );
            assert_eq!(seen.metadata, None, "{}", case.name);
        } else {
            assert_eq!(
                seen.path, "/metadata/identity/oauth2/token",
                "{}",
                case.name
            );
            assert_eq!(seen.metadata.as_deref(), Some("true"), "{}", case.name);
        }
        // Cached: the second call does not reach the endpoint.
        credential.get_token(&[VAULT_SCOPE]).await.unwrap();
        assert!(
            !format!("{credential:?}").contains("header-secret"),
            "{}",
            case.name
        );
    }
}

async fn authority(clock: &ManualClock, lifetime: Duration) -> DevAuthority {
    DevAuthority::builder()
        .clock(Arc::new(clock.clone()))
        .token_lifetime(lifetime)
        .managed_identity(IDENTITY)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_dev_authority_issues_managed_identity_tokens_in_both_shapes() {
    let clock = ManualClock::now();
    let authority = authority(&clock, Duration::from_secs(3600)).await;
    struct Case {
        name: &'static str,
        builder: tower_azure_auth::credentials::ManagedIdentityBuilder,
        error: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "imds",
            builder: ManagedIdentityCredential::builder().imds_endpoint(authority.imds_endpoint()),
            error: None,
        },
        Case {
            name: "imds by client id",
            builder: ManagedIdentityCredential::builder()
                .imds_endpoint(authority.imds_endpoint())
                .client_id(Some(IDENTITY)),
            error: None,
        },
        Case {
            name: "app service",
            builder: ManagedIdentityCredential::builder().app_service(
                authority.app_service_identity_endpoint(),
                authority.identity_header(),
            ),
            error: None,
        },
        Case {
            name: "app service with a wrong header",
            builder: ManagedIdentityCredential::builder()
                .app_service(authority.app_service_identity_endpoint(), "wrong"),
            error: Some("HTTP 401"),
        },
        Case {
            name: "unknown identity",
            builder: ManagedIdentityCredential::builder()
                .imds_endpoint(authority.imds_endpoint())
                .client_id(Some("00000000-0000-4000-8000-00000000dead")),
            error: Some("Identity not found"),
        },
    ];
    for case in cases {
        authority.reset_request_counts();
        let credential = case
            .builder
            .clock(Arc::new(clock.clone()))
            .retry_delay(Duration::ZERO)
            .build()
            .unwrap();
        match (credential.get_token(&[VAULT_SCOPE]).await, case.error) {
            (Ok(token), None) => {
                let claims = claims(token.secret());
                assert_eq!(claims["aud"], "https://vault.azure.net", "{}", case.name);
                assert_eq!(claims["appid"], IDENTITY, "{}", case.name);
                assert_eq!(claims["idtyp"], "app", "{}", case.name);
            }
            (Err(error), Some(needle)) => {
                let text = error.to_string();
                assert!(text.contains(needle), "{}: {text}", case.name);
                // 400 and 401 are not retried.
                assert_eq!(
                    authority.request_count(Endpoint::ManagedIdentity),
                    1,
                    "{}",
                    case.name
                );
            }
            (result, expected) => panic!("{}: expected {expected:?}, got {result:?}", case.name),
        }
    }
}

#[tokio::test]
async fn managed_identity_endpoints_are_called_without_the_proxy() {
    let clock = ManualClock::now();
    let authority = authority(&clock, Duration::from_secs(3600)).await;
    // A proxy that refuses what reaches it, as a corporate proxy refuses 169.254.169.254.
    let proxied = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&proxied);
    let proxy = serve(Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            (StatusCode::BAD_GATEWAY, "Fail to directly connect")
        }
    }))
    .await;
    let http = HttpClient::builder()
        .proxy(format!("http://{proxy}"))
        .build()
        .unwrap();

    // The proxy is in the way of everything else, loopback included.
    let refused = http
        .get_json::<serde_json::Value>(&authority.metadata_url().parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, tower_azure_auth::FetchError::Status { status, .. } if status == StatusCode::BAD_GATEWAY.as_u16()),
        "{refused:?}"
    );
    assert_eq!(proxied.load(Ordering::SeqCst), 1);

    let cases = [
        (
            "imds",
            ManagedIdentityCredential::builder().imds_endpoint(authority.imds_endpoint()),
        ),
        (
            "app service",
            ManagedIdentityCredential::builder().app_service(
                authority.app_service_identity_endpoint(),
                authority.identity_header(),
            ),
        ),
    ];
    for (name, builder) in cases {
        let credential = builder
            .http_client(http.clone())
            .clock(Arc::new(clock.clone()))
            .retry_delay(Duration::ZERO)
            .build()
            .unwrap();
        let token = credential
            .get_token(&[VAULT_SCOPE])
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(claims(token.secret())["appid"], IDENTITY, "{name}");
    }
    assert_eq!(
        proxied.load(Ordering::SeqCst),
        1,
        "no managed identity request went through the proxy"
    );
}

#[tokio::test]
async fn retries_are_bounded() {
    struct Case {
        name: &'static str,
        failures: u32,
        status: StatusCode,
        ok: bool,
        requests: u64,
    }
    let cases = [
        Case {
            name: "two 503s then a token",
            failures: 2,
            status: StatusCode::SERVICE_UNAVAILABLE,
            ok: true,
            requests: 3,
        },
        Case {
            name: "a 429 then a token",
            failures: 1,
            status: StatusCode::TOO_MANY_REQUESTS,
            ok: true,
            requests: 2,
        },
        Case {
            name: "500 for ever: 1 + 3 retries",
            failures: 10,
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ok: false,
            requests: 4,
        },
        Case {
            name: "400 is not retried",
            failures: 10,
            status: StatusCode::BAD_REQUEST,
            ok: false,
            requests: 1,
        },
    ];
    let clock = ManualClock::now();
    let authority = authority(&clock, Duration::from_secs(3600)).await;
    for case in cases {
        authority.clear_faults();
        authority.reset_request_counts();
        authority.inject_fault(
            Endpoint::ManagedIdentity,
            Fault::fail(case.status).times(case.failures),
        );
        let credential = ManagedIdentityCredential::builder()
            .imds_endpoint(authority.imds_endpoint())
            .clock(Arc::new(clock.clone()))
            .retry_delay(Duration::ZERO)
            .build()
            .unwrap();
        let result = credential.get_token(&[VAULT_SCOPE]).await;
        assert_eq!(result.is_ok(), case.ok, "{}: {result:?}", case.name);
        assert_eq!(
            authority.request_count(Endpoint::ManagedIdentity),
            case.requests,
            "{}",
            case.name
        );
    }
}

/// Waits (at most 10 s) until a background task made `done` hold. Polls; token expiry
/// itself always comes from the manual clock.
async fn run_until(mut done: impl FnMut() -> bool) -> bool {
    let poll = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lived_tokens_are_refreshed_at_half_life() {
    struct Case {
        name: &'static str,
        lifetime: u64,
        advance: u64,
        refreshed: bool,
    }
    let cases = [
        Case {
            name: "24 h token, just past half-life: background refresh",
            lifetime: 86_400,
            advance: 43_201,
            refreshed: true,
        },
        Case {
            name: "24 h token, before half-life: cached",
            lifetime: 86_400,
            advance: 43_000,
            refreshed: false,
        },
        Case {
            name: "1 h token at 55 min: no half-life rule, still cached",
            lifetime: 3600,
            advance: 3300 - 1,
            refreshed: false,
        },
    ];
    for case in cases {
        let clock = ManualClock::now();
        let authority = authority(&clock, Duration::from_secs(case.lifetime)).await;
        let credential = ManagedIdentityCredential::builder()
            .imds_endpoint(authority.imds_endpoint())
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        let first = credential.get_token(&[VAULT_SCOPE]).await.unwrap();
        clock.advance(Duration::from_secs(case.advance));
        let second = credential.get_token(&[VAULT_SCOPE]).await.unwrap();
        assert_eq!(
            second.secret(),
            first.secret(),
            "{}: the cached token is returned at once",
            case.name
        );
        if case.refreshed {
            assert!(
                run_until(|| authority.request_count(Endpoint::ManagedIdentity) == 2).await,
                "{}: refreshed in the background",
                case.name
            );
            // The refreshed token replaces the cached one.
            let replaced = run_until(|| {
                futures_util::FutureExt::now_or_never(credential.get_token(&[VAULT_SCOPE]))
                    .and_then(Result::ok)
                    .is_some_and(|t| t.secret() != first.secret())
            })
            .await;
            assert!(replaced, "{}", case.name);
        } else {
            tokio::task::yield_now().await;
            assert_eq!(
                authority.request_count(Endpoint::ManagedIdentity),
                1,
                "{}",
                case.name
            );
        }
        authority.shutdown().await;
    }
}

#[tokio::test]
async fn the_federated_token_file_is_read_for_every_token_request() {
    let clock = ManualClock::now();
    let registered = generate_certificate("CN=workload").unwrap();
    let stranger = generate_certificate("CN=stranger").unwrap();
    let authority = DevAuthority::builder()
        .clock(Arc::new(clock.clone()))
        // Strict replay checks: the test tells a re-read file from a cached assertion.
        .assertion_reuse(AssertionReuse::Refuse)
        .api(
            DevApi::new(API)
                .app_id_uri("api://weather")
                .app_roles(["service-api"]),
        )
        .application(
            DevApplication::new(CLIENT)
                .certificate_pem(&registered.cert_pem)
                .unwrap()
                .grant("api://weather", ["service-api"]),
        )
        .start()
        .await
        .unwrap();
    // The "projected token": an assertion the authority accepts, written by someone else.
    let write = |path: &std::path::Path,
                 certificate: &entra_dev_authority::GeneratedCertificate| {
        let certificate =
            ClientCertificate::from_pem(certificate.combined_pem().as_bytes()).unwrap();
        let assertion = certificate
            .client_assertion(&AssertionRequest {
                client_id: CLIENT,
                audience: &authority.token_endpoint(),
                algorithm: AssertionAlgorithm::Rs256,
                send_x5c: false,
                now: clock.unix_seconds(),
            })
            .unwrap();
        std::fs::write(path, format!("{assertion}\n")).unwrap();
        assertion
    };
    let dir = std::env::temp_dir().join(format!("taa-wi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("azure-identity-token");
    write(&file, &registered);

    let env = Environment::from_pairs([
        ("AZURE_CLIENT_ID", CLIENT.to_owned()),
        ("AZURE_TENANT_ID", authority.tenant_id().to_owned()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        (
            "AZURE_AUTHORITY_HOST",
            authority.instance().trim_end_matches('/').to_owned(),
        ),
    ]);
    let identity = WorkloadIdentity::from_environment(&env).unwrap();
    let client = identity
        .client_builder()
        .unwrap()
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let scope = ["api://weather/.default"];
    let token = client.acquire_token_for_client(&scope).await.unwrap();
    assert_eq!(claims(token.secret())["appid"], CLIENT);

    // The same assertion again would be a replay (AADSTS50027): only a re-read file passes.
    let replay = client.force_refresh(&scope).await.unwrap_err();
    assert_eq!(replay.aadsts_code(), Some(50027), "{replay}");
    write(&file, &registered);
    client.force_refresh(&scope).await.unwrap();

    // A file signed by an unknown key is sent as is, and refused.
    write(&file, &stranger);
    let refused = client.force_refresh(&scope).await.unwrap_err();
    assert_eq!(refused.aadsts_code(), Some(700027), "{refused}");

    // SourceType SignedAssertionFilePath, with the path from AZURE_FEDERATED_TOKEN_FILE.
    write(&file, &registered);
    let description = CredentialDescription::new(SourceType::SignedAssertionFilePath);
    let from_config = ConfidentialClient::builder(CLIENT)
        .authority(Authority::entra(&authority.instance(), authority.tenant_id()).unwrap())
        .credential_source(Arc::new(
            CredentialDescriptions::new(vec![description], "CallApi:ClientCredentials")
                .environment(env),
        ))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    from_config.acquire_token_for_client(&scope).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_managed_identity_token_is_the_client_assertion() {
    let clock = ManualClock::now();
    let authority = authority(&clock, Duration::from_secs(3600)).await;
    // A token endpoint that accepts the managed identity's token-exchange token.
    let seen: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
    let log = Arc::clone(&seen);
    let app = Router::new().route(
        "/tenant-1/oauth2/v2.0/token",
        post(move |Form(form): Form<HashMap<String, String>>| {
            log.lock().unwrap().push(form.clone());
            async move {
                let assertion = form.get("client_assertion").cloned().unwrap_or_default();
                let ok = form.get("client_assertion_type").map(String::as_str)
                    == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    && assertion.split('.').count() == 3
                    && claims(&assertion)["aud"] == "api://AzureADTokenExchange"
                    && claims(&assertion)["appid"] == IDENTITY;
                if ok {
                    Json(json!({"token_type": "Bearer", "access_token": "app.token.x", "expires_in": 3599})).into_response()
                } else {
                    (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client", "error_codes": [70021]}))).into_response()
                }
            }
        }),
    );
    let addr = serve(app).await;
    let options = ConfigSource::from_json_str(&format!(
        r#"{{"CallApi": {{"ClientId": "{CLIENT}", "Instance": "http://{addr}/", "TenantId": "tenant-1",
            "ClientCredentials": [{{"SourceType": "SignedAssertionFromManagedIdentity", "ManagedIdentityClientId": "{IDENTITY}"}}]}}}}"#
    ))
    .unwrap()
    .section("CallApi")
    .unwrap();
    let clock_shared: SharedClock = Arc::new(clock.clone());
    let client = ConfidentialClient::builder_from_options(&options)
        .unwrap()
        .credential_source(Arc::new(
            CredentialDescriptions::from_call_api(&options).environment(Environment::from_pairs([
                ("MSAL_MANAGED_IDENTITY_ENDPOINT", authority.imds_endpoint()),
            ])),
        ))
        .clock(clock_shared)
        .build()
        .unwrap();
    let token = client
        .acquire_token_for_client(&["api://weather/.default"])
        .await
        .unwrap();
    assert_eq!(token.secret(), "app.token.x");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].get("client_id").map(String::as_str), Some(CLIENT));
    assert!(!seen[0].contains_key("client_secret"));
    // Loading fetched the exchange token once; the request reused it from the cache.
    assert_eq!(authority.request_count(Endpoint::ManagedIdentity), 1);
    // It also works as a TokenSource for the layers.
    let source: Arc<dyn TokenSource> = Arc::new(client);
    let again = source
        .token(&["api://weather/.default".to_owned()], false)
        .await
        .unwrap();
    assert_eq!(again.secret(), "app.token.x");
}

#[tokio::test]
async fn forced_managed_identity_refreshes_were_unlimited_now_one_per_interval() {
    let clock = ManualClock::now();
    let authority = authority(&clock, Duration::from_secs(3600)).await;
    let identity = ManagedIdentityCredential::builder()
        .imds_endpoint(authority.imds_endpoint())
        .client_id(Some(IDENTITY))
        .clock(Arc::new(clock.clone()))
        .forced_refresh_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let scopes = [VAULT_SCOPE.to_owned()];
    identity.get_token(&scopes).await.unwrap();
    // A vault or an API refusing every token: one forced request, then the cached token.
    for _ in 0..10 {
        identity.token(&scopes, true).await.unwrap();
    }
    assert_eq!(authority.request_count(Endpoint::ManagedIdentity), 2);
    clock.advance(Duration::from_secs(59));
    identity.token(&scopes, true).await.unwrap();
    assert_eq!(authority.request_count(Endpoint::ManagedIdentity), 2);
    clock.advance(Duration::from_secs(1));
    identity.token(&scopes, true).await.unwrap();
    identity.token(&scopes, true).await.unwrap();
    assert_eq!(authority.request_count(Endpoint::ManagedIdentity), 3);
}
