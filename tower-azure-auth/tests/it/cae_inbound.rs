//! Continuous access evaluation on the resource side, over real HTTP against the dev
//! authority: an API whose validator answers a revoked `cp1` token with a claims challenge
//! (`claims_challenge_on_revocation`), and a `cp1` client behind `AddAccessTokenLayer` that
//! follows it once, gets a token issued since the revocation, and succeeds; a client without
//! `cp1` keeps the `invalid_token` answer; HTTP and gRPC.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use entra_dev_authority::{DevAuthority, Endpoint};
use serde_json::{json, Value};
use tower::{Service, ServiceExt};
use tower_azure_auth::layers::{AddAccessTokenLayer, ValidateAccessTokenLayer};
use tower_azure_auth::validation::revocation::Revocation;
use tower_azure_auth::{Authority, TokenValidator};

use crate::cae::{client, dev_authority, API, CLIENT, SCOPE};
use crate::support::{b64_decode, serve};

const GRPC_METHOD: &str = "/weather.Weather/Forecast";

fn validator(authority: &DevAuthority, challenge: bool) -> TokenValidator {
    TokenValidator::builder(Authority::entra(&authority.instance(), authority.tenant_id()).unwrap())
        .client_id(API)
        .add_audience("api://weather")
        .claims_challenge_on_revocation(challenge)
        .build()
        .unwrap()
}

/// The same validator from the `AzureAd` section, `Revocation:ClaimsChallenge` on.
fn validator_from_config(authority: &DevAuthority) -> TokenValidator {
    let json = format!(
        r#"{{"AzureAd": {{"Instance": "{}", "TenantId": "{}", "ClientId": "{API}",
            "Audiences": ["{API}", "api://weather"], "Revocation": {{"ClaimsChallenge": true}}}}}}"#,
        authority.instance(),
        authority.tenant_id()
    );
    let options: tower_azure_auth::config::AzureAdOptions =
        tower_azure_auth::config::ConfigSource::from_json_str(&json)
            .unwrap()
            .section("AzureAd")
            .unwrap();
    assert_eq!(
        options.revocation.as_ref().and_then(|r| r.claims_challenge),
        Some(true)
    );
    TokenValidator::new(&options).unwrap()
}

fn payload(token: &str) -> Value {
    let middle = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&b64_decode(middle)).unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The API: `GET /weatherforecast` and a gRPC method behind `ValidateAccessTokenLayer`,
/// counting the requests that reach the layer.
struct Api {
    url: String,
    calls: Arc<AtomicUsize>,
}

async fn api(validator: TokenValidator) -> Api {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = Router::new()
        .route("/weatherforecast", get(|| async { "forecast" }))
        .route(
            GRPC_METHOD,
            post(|| async {
                (
                    [("content-type", "application/grpc"), ("grpc-status", "0")],
                    "",
                )
            }),
        )
        .layer(ValidateAccessTokenLayer::new(validator))
        .layer(tower::util::MapRequestLayer::new(
            move |request: http::Request<axum::body::Body>| {
                counted.fetch_add(1, Ordering::SeqCst);
                request
            },
        ));
    Api {
        url: serve(app).await,
        calls,
    }
}

/// The `claims` JSON of a `WWW-Authenticate` claims challenge, checking the rest of it is
/// Microsoft's format for this authority.
fn challenge_claims(header: &str, authority: &DevAuthority) -> Value {
    let prefix = format!(
        "Bearer realm=\"\", authorization_uri=\"{}{}/oauth2/authorize\", error=\"insufficient_claims\", claims=\"",
        authority.instance(),
        authority.tenant_id()
    );
    let encoded = header
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not the CAE challenge: {header}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("standard base64");
    serde_json::from_slice(&decoded).expect("JSON claims")
}

#[tokio::test]
async fn a_revoked_cp1_token_is_challenged_and_the_layer_gets_a_token_issued_since() {
    let (authority, certificate) = dev_authority().await;
    let client = client(&authority, certificate, true);
    let validator = validator(&authority, true);
    let api = api(validator.clone()).await;
    let mut service = tower::ServiceBuilder::new()
        .layer(AddAccessTokenLayer::new(client.clone(), [SCOPE], &api.url).unwrap())
        .service(crate::outbound::http_client(Arc::default()));
    let get = || {
        http::Request::get(format!("{}/weatherforecast", api.url))
            .body(String::new())
            .unwrap()
    };
    let response = service.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(authority.request_count(Endpoint::Token), 1);

    let old = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    let old_claims = payload(old.secret());
    assert_eq!(old_claims["xms_cc"], json!(["cp1"]));
    let revoked_at = unix_now();
    validator
        .revoke(Revocation::token_id(old_claims["uti"].as_str().unwrap()))
        .await
        .unwrap();

    // What the API answers the revoked token, read directly.
    let refused = reqwest::Client::new()
        .get(format!("{}/weatherforecast", api.url))
        .bearer_auth(old.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let header = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let asked = challenge_claims(&header, &authority);
    let not_before: u64 = asked["access_token"]["nbf"]["value"]
        .as_str()
        .expect("the time as a string, as Microsoft sends it")
        .parse()
        .unwrap();
    assert_eq!(asked["access_token"]["nbf"]["essential"], json!(true));
    assert!(
        not_before >= revoked_at && not_before <= unix_now(),
        "{asked}"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_claims");
    assert!(
        !header.contains(old.secret()) && !body.to_string().contains(old.secret()),
        "the token is never echoed"
    );

    // The layer follows the challenge once: a new token, issued since, then success.
    let before = api.calls.load(Ordering::SeqCst);
    let response = service.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.body());
    assert_eq!(
        api.calls.load(Ordering::SeqCst),
        before + 2,
        "refused, then retried"
    );
    assert_eq!(authority.request_count(Endpoint::Token), 2);
    let new = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_ne!(
        new.secret(),
        old.secret(),
        "the token with the claims replaced the cached one"
    );
    let new_claims = payload(new.secret());
    assert_eq!(new_claims["xms_cc"], json!(["cp1"]));
    for name in ["iat", "nbf"] {
        assert!(
            new_claims[name].as_u64().unwrap() >= not_before,
            "the dev authority honours the nbf request: {name} {new_claims}"
        );
    }
    assert!(validator.validate(new.secret()).await.is_ok());
}

#[tokio::test]
async fn a_token_without_cp1_keeps_invalid_token_and_the_option_off_changes_nothing() {
    for (cae, challenge, name) in [
        (false, true, "a client without cp1"),
        (true, false, "the option off"),
    ] {
        let (authority, certificate) = dev_authority().await;
        let client = client(&authority, certificate, cae);
        let validator = validator(&authority, challenge);
        let api = api(validator.clone()).await;
        let token = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
        validator
            .revoke(Revocation::token_id(
                payload(token.secret())["uti"].as_str().unwrap(),
            ))
            .await
            .unwrap();
        let refused = reqwest::Client::new()
            .get(format!("{}/weatherforecast", api.url))
            .bearer_auth(token.secret())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{name}");
        let header = refused.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            header.starts_with("Bearer error=\"invalid_token\"") && !header.contains("claims="),
            "{name}: {header}"
        );
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{name}");
        assert_eq!(
            body["error_description"], "the token was revoked (by its token id)",
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_client_wide_revocation_is_challenged_once_and_the_second_refusal_returned() {
    // The validator comes from the AzureAd section (`Revocation:ClaimsChallenge`).
    let (authority, certificate) = dev_authority().await;
    let client = client(&authority, certificate, true);
    let validator = validator_from_config(&authority);
    let api = api(validator.clone()).await;
    let mut service = tower::ServiceBuilder::new()
        .layer(AddAccessTokenLayer::new(client, [SCOPE], &api.url).unwrap())
        .service(crate::outbound::http_client(Arc::default()));
    validator.revoke(Revocation::client(CLIENT)).await.unwrap();
    let request = http::Request::get(format!("{}/weatherforecast", api.url))
        .body(String::new())
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(
        response.status(),
        401,
        "every token of the client is refused"
    );
    let header = response.headers()["www-authenticate"].to_str().unwrap();
    challenge_claims(header, &authority);
    assert_eq!(
        api.calls.load(Ordering::SeqCst),
        2,
        "one challenge followed, no more"
    );
    assert_eq!(authority.request_count(Endpoint::Token), 2);
}

/// A gRPC call (tonic's body, so `AddAccessTokenLayer` keeps it for a replay) over real HTTP:
/// the API answers `UNAUTHENTICATED` with the challenge as `www-authenticate` metadata, the
/// layer follows it once and the call succeeds.
#[cfg(feature = "tonic")]
#[tokio::test]
async fn a_grpc_call_with_a_revoked_cp1_token_follows_the_challenge() {
    use http_body_util::BodyExt as _;

    let (authority, certificate) = dev_authority().await;
    let client = client(&authority, certificate, true);
    let validator = validator(&authority, true);
    let api = api(validator.clone()).await;
    let http = reqwest::Client::new();
    let transport = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let http = http.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(bytes)
                .send()
                .await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.text().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(answer.body(body)?)
        }
    });
    let mut service = tower::ServiceBuilder::new()
        .layer(AddAccessTokenLayer::new(client.clone(), [SCOPE], &api.url).unwrap())
        .service(transport);
    let call = || {
        http::Request::post(format!("{}{GRPC_METHOD}", api.url))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(tonic::body::Body::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"\0\0\0\0\x02hi"),
            )))
            .unwrap()
    };
    let response = service.ready().await.unwrap().call(call()).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "0");
    let old = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    validator
        .revoke(Revocation::token_id(
            payload(old.secret())["uti"].as_str().unwrap(),
        ))
        .await
        .unwrap();

    let refused = reqwest::Client::new()
        .post(format!("{}{GRPC_METHOD}", api.url))
        .header("content-type", "application/grpc")
        .bearer_auth(old.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 200, "trailers-only");
    assert_eq!(refused.headers()["grpc-status"], "16");
    challenge_claims(
        refused.headers()["www-authenticate"].to_str().unwrap(),
        &authority,
    );

    let before = api.calls.load(Ordering::SeqCst);
    let response = service.ready().await.unwrap().call(call()).await.unwrap();
    assert_eq!(
        response.headers()["grpc-status"],
        "0",
        "{:?}",
        response.headers()
    );
    assert_eq!(
        api.calls.load(Ordering::SeqCst),
        before + 2,
        "refused, then replayed"
    );
    assert_eq!(authority.request_count(Endpoint::Token), 2);
}
