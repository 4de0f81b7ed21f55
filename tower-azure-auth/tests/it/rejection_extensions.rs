//! A refusal is visible to outer layers: a user's metrics layer outside
//! `ValidateAccessTokenLayer` and `RequirePolicyLayer` labels responses by reason from the
//! response's extensions (`AuthError` for 401/503, `AuthorizationFailure` for 403), without
//! parsing bodies — over real HTTP, with tokens signed here.
#![cfg(feature = "axum")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tower_azure_auth::authorization::{AuthorizationFailure, Policies, Policy};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::layers::{RequirePolicyLayer, ValidateAccessTokenLayer};
use tower_azure_auth::{AuthError, Authority, TokenValidator};

use crate::support::{serve, TestIdp, TestKey};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const NOW: u64 = 1_800_000_000;

#[tokio::test]
async fn an_outer_metrics_layer_labels_refusals_from_the_response_extensions() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .build()
        .unwrap();
    validator.refresh().await.unwrap();
    let policies = Policies::builder()
        .add_policy(
            "Reader",
            Policy::builder().require_role("service-api").build(),
        )
        .build();
    // The user's metrics layer: counts responses by the label it reads from the extensions.
    let seen: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let counter = Arc::clone(&seen);
    let label = move |response: Response| {
        let label = if let Some(error) = response.extensions().get::<AuthError>() {
            format!("{} {}", response.status().as_u16(), error.kind())
        } else if let Some(failure) = response.extensions().get::<AuthorizationFailure>() {
            format!(
                "{} policy {}",
                response.status().as_u16(),
                failure.policy().unwrap_or("inline")
            )
        } else {
            format!("{} -", response.status().as_u16())
        };
        *counter.lock().unwrap().entry(label).or_default() += 1;
        response
    };
    let app = Router::new()
        .route("/weatherforecast", get(|| async { "ok" }))
        .layer(RequirePolicyLayer::named(&policies, "Reader").unwrap())
        .layer(ValidateAccessTokenLayer::new(validator))
        .layer(axum::middleware::map_response(move |r: Response| {
            let label = label.clone();
            async move { label(r) }
        }));
    let url = serve(app).await;
    let claims = |changes: serde_json::Value| {
        let mut claims = json!({"aud": API, "iss": idp.issuer_v2(), "iat": NOW - 60,
            "exp": NOW + 3600, "azp": "caller", "roles": ["service-api"], "tid": TENANT,
            "ver": "2.0"});
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        key.token(&claims)
    };
    let http = reqwest::Client::new();
    for token in [
        Some(claims(json!({}))),
        Some(claims(json!({"exp": NOW - 600}))),
        Some(claims(json!({"aud": "someone-else"}))),
        Some(claims(json!({"roles": ["reader"]}))),
        None,
    ] {
        let mut request = http.get(format!("{url}/weatherforecast"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let expected: BTreeMap<String, u32> = [
        ("200 -", 1),
        ("401 expired", 1),
        ("401 invalid_audience", 1),
        ("401 missing_token", 1),
        ("403 policy Reader", 1),
    ]
    .into_iter()
    .map(|(label, n)| (label.to_owned(), n))
    .collect();
    assert_eq!(seen, expected);
}
