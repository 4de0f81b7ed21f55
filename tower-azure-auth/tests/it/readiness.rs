//! Readiness over real HTTP: `/readyz` (the axum handler) answers 503 until the signing keys
//! are loaded from the authority on 127.0.0.1, 200 once they are, and stays 200 when a later
//! refresh fails (the last known good keys are served).
#![cfg(feature = "axum")]

use axum::Router;
use serde_json::Value;
use tower_azure_auth::validation::KeysState;
use tower_azure_auth::{Authority, TokenValidator};

use crate::support::{serve, TestIdp, TestKey};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";

#[tokio::test]
async fn readyz_is_503_until_keys_are_loaded_and_200_while_they_are_served() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    idp.set_down(true);
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id("api")
        .build()
        .unwrap();
    let app: Router = Router::new().route(
        "/readyz",
        tower_azure_auth::axum::readiness(validator.clone()),
    );
    let url = serve(app).await;
    let probe = || async {
        let response = reqwest::get(format!("{url}/readyz")).await.unwrap();
        let status = response.status().as_u16();
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        (status, body)
    };
    assert!(validator.refresh().await.is_err());
    let (status, body) = probe().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["keys"], "missing");
    assert_eq!(body["last_refresh_failed"], true);
    let readiness = validator.readiness();
    assert_eq!(readiness.keys, KeysState::Missing);
    assert!(readiness.last_refresh_age.is_none());
    let error = readiness.last_error.expect("the refresh's error");
    assert!(error.contains("503"), "{error}");

    idp.set_down(false);
    validator.refresh().await.unwrap();
    let (status, body) = probe().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["keys"], "loaded");
    assert_eq!(body["key_count"], 1);
    assert_eq!(body["last_refresh_failed"], false);

    // The authority goes down again: the keys held are still served, so still ready.
    idp.set_down(true);
    assert!(validator.refresh().await.is_err());
    let (status, body) = probe().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["last_refresh_failed"], true);
    assert!(validator.readiness().last_refresh_age.is_some());
}
