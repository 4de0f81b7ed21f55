//! Continuous access evaluation against the dev authority over real HTTP: the `cp1`
//! capability, claims requests, and the claims challenge of a resource followed once by the
//! reqwest middleware and the Tower layer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use entra_dev_authority::{
    generate_certificate, insufficient_claims_challenge, DevApi, DevApplication, DevAuthority,
    Endpoint, CAE_LIFETIME,
};
use serde_json::{json, Value};
use tower::{Service, ServiceExt};
use tower_azure_auth::credentials::{
    AccessToken, AcquireTokenOptions, ClientCertificate, ConfidentialClient, TokenError,
};
use tower_azure_auth::layers::AddAccessTokenLayer;
use tower_azure_auth::Authority;

use crate::support::{b64_decode, serve};

pub(crate) const CLIENT: &str = "0b7c5d2e-0000-4000-8000-0000000000c1";
pub(crate) const API: &str = "6f8a1c52-0000-4000-8000-0000000000a1";
pub(crate) const SCOPE: &str = "api://weather/.default";
const STEP_UP: &str = r#"{"access_token":{"acrs":{"essential":true,"value":"c25"}}}"#;

pub(crate) async fn dev_authority() -> (DevAuthority, ClientCertificate) {
    let certificate = generate_certificate("CN=cae-client").unwrap();
    let authority = DevAuthority::builder()
        .api(
            DevApi::new(API)
                .app_id_uri("api://weather")
                .app_roles(["service-api"]),
        )
        .application(
            DevApplication::new(CLIENT)
                .certificate_pem(&certificate.cert_pem)
                .unwrap()
                .grant("api://weather", ["service-api"]),
        )
        .start()
        .await
        .unwrap();
    let pem = format!("{}{}", certificate.cert_pem, certificate.key_pem);
    (
        authority,
        ClientCertificate::from_pem(pem.as_bytes()).unwrap(),
    )
}

pub(crate) fn client(
    authority: &DevAuthority,
    certificate: ClientCertificate,
    cae: bool,
) -> ConfidentialClient {
    let mut builder = ConfidentialClient::builder(CLIENT)
        .authority(Authority::entra(&authority.instance(), authority.tenant_id()).unwrap())
        .certificate(certificate)
        .retry_delay(Duration::ZERO);
    if cae {
        builder = builder.client_capabilities(["cp1"]);
    }
    builder.build().unwrap()
}

fn payload(token: &str) -> Value {
    let middle = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&b64_decode(middle)).unwrap()
}

fn lifetime(token: &AccessToken) -> Duration {
    token
        .expires_on()
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

/// An API that accepts a token carrying `acrs: ["c25"]` and otherwise answers 401 with a
/// claims challenge for it (`always`: challenges every token).
struct Api {
    url: String,
    calls: Arc<AtomicUsize>,
}

async fn api(always: bool) -> Api {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = Router::new().fallback(any(move |headers: HeaderMap| {
        let calls = Arc::clone(&counted);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let token = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            let stepped_up = !token.is_empty()
                && payload(token)["acrs"]
                    .as_array()
                    .is_some_and(|acrs| acrs.iter().any(|a| a == "c25"));
            if stepped_up && !always {
                return (StatusCode::OK, "forecast").into_response();
            }
            let challenge = insufficient_claims_challenge(&serde_json::from_str(STEP_UP).unwrap());
            (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", challenge)],
                "claims required",
            )
                .into_response()
        }
    }));
    Api {
        url: serve(app).await,
        calls,
    }
}

#[tokio::test]
async fn capabilities_give_a_long_lived_cae_token_and_keep_the_cache() {
    let (authority, certificate) = dev_authority().await;
    let client = client(&authority, certificate, true);
    let first = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    let second = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(
        first.secret(),
        second.secret(),
        "capabilities alone keep the cache"
    );
    assert_eq!(authority.request_count(Endpoint::Token), 1);
    assert_eq!(payload(first.secret())["xms_cc"], json!(["cp1"]));
    assert!(
        lifetime(&first) > CAE_LIFETIME - Duration::from_secs(120),
        "{:?}",
        lifetime(&first)
    );

    let (authority, certificate) = dev_authority().await;
    let plain = self::client(&authority, certificate, false)
        .acquire_token_for_client(&[SCOPE])
        .await
        .unwrap();
    assert!(payload(plain.secret()).get("xms_cc").is_none());
    assert!(
        lifetime(&plain) < Duration::from_secs(2 * 3600),
        "{:?}",
        lifetime(&plain)
    );
}

#[tokio::test]
async fn claims_skip_the_cache_and_their_token_replaces_the_cached_one() {
    let (authority, certificate) = dev_authority().await;
    let client = client(&authority, certificate, true);
    let cached = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    let options = AcquireTokenOptions::new().claims(STEP_UP);
    let stepped = client
        .acquire_token_for_client_with(&[SCOPE], &options)
        .await
        .unwrap();
    assert_ne!(cached.secret(), stepped.secret());
    assert_eq!(authority.request_count(Endpoint::Token), 2);
    let claims = payload(stepped.secret());
    assert_eq!(
        claims["acrs"],
        json!(["c25"]),
        "the claims request round-trips"
    );
    assert_eq!(
        claims["xms_cc"],
        json!(["cp1"]),
        "merged with the capabilities"
    );
    let after = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(
        after.secret(),
        stepped.secret(),
        "the token with claims is now cached"
    );
    assert_eq!(authority.request_count(Endpoint::Token), 2);
}

#[tokio::test]
async fn claims_that_are_not_a_json_object_are_refused_before_any_request() {
    let (authority, certificate) = dev_authority().await;
    let client = client(&authority, certificate, true);
    for claims in ["[\"cp1\"]", "eyJhY2Nlc3NfdG9rZW4iOnt9fQ==", "42"] {
        let options = AcquireTokenOptions::new().claims(claims);
        let error = client
            .acquire_token_for_client_with(&[SCOPE], &options)
            .await
            .unwrap_err();
        assert!(
            matches!(error, TokenError::InvalidClaims { .. }),
            "{claims}: {error}"
        );
    }
    assert_eq!(authority.request_count(Endpoint::Token), 0);
}

#[cfg(feature = "reqwest")]
#[tokio::test]
async fn the_middleware_answers_a_claims_challenge_once() {
    use tower_azure_auth::middleware::AccessTokenMiddleware;
    for (always, status, api_calls) in [(false, 200, 2), (true, 401, 2)] {
        let (authority, certificate) = dev_authority().await;
        let client = client(&authority, certificate, true);
        let api = api(always).await;
        let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(AccessTokenMiddleware::new(client.clone(), [SCOPE], &api.url).unwrap())
            .build();
        let response = http
            .post(format!("{}/weatherforecast", api.url))
            .body("replayable")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "always challenging: {always}"
        );
        assert_eq!(
            api.calls.load(Ordering::SeqCst),
            api_calls,
            "a second challenge is not followed"
        );
        assert_eq!(authority.request_count(Endpoint::Token), 2);
        if !always {
            // The stepped-up token is cached: the next call needs no challenge.
            let again = http
                .get(format!("{}/weatherforecast", api.url))
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), StatusCode::OK);
            assert_eq!(api.calls.load(Ordering::SeqCst), 3);
            assert_eq!(authority.request_count(Endpoint::Token), 2);
        }
    }
}

#[tokio::test]
async fn the_tower_layer_answers_a_claims_challenge_once() {
    for (always, status, api_calls) in [(false, 200, 2), (true, 401, 2)] {
        let (authority, certificate) = dev_authority().await;
        let client = client(&authority, certificate, true);
        let api = api(always).await;
        let mut service = tower::ServiceBuilder::new()
            .layer(AddAccessTokenLayer::new(client, [SCOPE], &api.url).unwrap())
            .service(crate::outbound::http_client(Arc::default()));
        let request = http::Request::get(format!("{}/weatherforecast", api.url))
            .body(String::new())
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "always challenging: {always}"
        );
        assert_eq!(api.calls.load(Ordering::SeqCst), api_calls);
        assert_eq!(authority.request_count(Endpoint::Token), 2);
    }
}

#[tokio::test]
async fn the_client_capabilities_config_key_declares_cae() {
    let (authority, certificate) = dev_authority().await;
    let json = format!(
        r#"{{"CallApi": {{"ClientId": "{CLIENT}", "Instance": "{}", "TenantId": "{}",
            "ClientCapabilities": ["cp1"]}}}}"#,
        authority.instance(),
        authority.tenant_id()
    );
    let options: tower_azure_auth::config::CallApiOptions =
        tower_azure_auth::config::ConfigSource::from_json_str(&json)
            .unwrap()
            .section("CallApi")
            .unwrap();
    assert_eq!(options.client_capabilities, ["cp1"]);
    let client = ConfidentialClient::builder_from_options(&options)
        .unwrap()
        .certificate(certificate)
        .build()
        .unwrap();
    let token = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(payload(token.secret())["xms_cc"], json!(["cp1"]));
}
