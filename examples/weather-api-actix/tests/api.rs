//! The weather API on actix-web, started in-process with [`weather_api_actix::start`] against
//! an OIDC metadata + JWKS server on 127.0.0.1, called over real HTTP.

#[path = "../../../tower-azure-auth/tests/it/support/mod.rs"]
mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::{TestIdp, TestKey};
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::AzureAdOptions;

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

fn options(idp: &TestIdp, client_id: &str) -> AzureAdOptions {
    let settings = json!({
        "AzureAd": {
            "Instance": idp.instance(),
            "TenantId": TENANT,
            "ClientId": client_id,
            "AllowedClientIds": [CLIENT],
        }
    });
    ConfigSource::from_json_str(&settings.to_string())
        .and_then(|source| source.section("AzureAd"))
        .unwrap()
}

fn claims(idp: &TestIdp, patch: Value) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({
        "aud": API,
        "iss": idp.issuer_v2(),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "azp": CLIENT,
        "azpacr": "2",
        "roles": ["service-api"],
        "sub": "o1",
        "oid": "o1",
        "tid": TENANT,
        "ver": "2.0",
    });
    if let (Some(claims), Value::Object(patch)) = (claims.as_object_mut(), patch) {
        claims.extend(patch);
    }
    claims
}

#[tokio::test]
async fn the_api_answers_like_the_seed() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (handle, addr) = weather_api_actix::start(&options(&idp, API), listener)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(health.text().await.unwrap(), "ok");

    struct Case {
        name: &'static str,
        token: Option<String>,
        status: u16,
    }
    let cases = [
        Case {
            name: "the seed's client",
            token: Some(key.token(&claims(&idp, json!({})))),
            status: 200,
        },
        Case {
            name: "no token",
            token: None,
            status: 401,
        },
        Case {
            name: "client secret instead of a certificate",
            token: Some(key.token(&claims(&idp, json!({"azpacr": "1"})))),
            status: 403,
        },
        Case {
            name: "no service-api role",
            token: Some(key.token(&claims(&idp, json!({"roles": ["reader"]})))),
            status: 403,
        },
        Case {
            // AllowedClientIds is set: the validator refuses other callers (401), before the
            // policy runs.
            name: "another client",
            token: Some(key.token(&claims(&idp, json!({"azp": API})))),
            status: 401,
        },
    ];
    for case in cases {
        let mut request = client.get(format!("{base}/weatherforecast"));
        if let Some(token) = &case.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "application/json", "{}", case.name);
        let body: Value = response.json().await.unwrap();
        if case.status == 200 {
            let forecasts = body.as_array().unwrap();
            assert_eq!(forecasts.len(), 5, "{}", case.name);
            for forecast in forecasts {
                for field in ["date", "temperatureC", "temperatureF", "summary"] {
                    assert!(forecast.get(field).is_some(), "{}: {forecast}", case.name);
                }
            }
        } else {
            assert!(
                body["error_description"].is_string(),
                "{}: {body}",
                case.name
            );
        }
    }

    let missing = client.get(format!("{base}/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    handle.stop(true).await;
}

#[tokio::test]
async fn incomplete_configuration_is_a_startup_error() {
    let options: AzureAdOptions = ConfigSource::from_json_str(
        r#"{"AzureAd": {"Instance": "http://127.0.0.1:9/", "TenantId": "t"}}"#,
    )
    .and_then(|source| source.section("AzureAd"))
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = weather_api_actix::start(&options, listener)
        .await
        .unwrap_err();
    assert!(
        matches!(error, weather_api_actix::StartError::Config(_)),
        "{error:?}"
    );
}
