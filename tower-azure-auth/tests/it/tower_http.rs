//! tower-http's `AsyncRequireAuthorizationLayer` with [`AuthorizeAccessToken`], over real HTTP:
//! the same accepted and refused cases as `ValidateAccessTokenLayer` (+ `RequirePolicyLayer`),
//! with the same statuses, `WWW-Authenticate` and bodies.
#![cfg(feature = "tower-http")]

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use support::fixtures::{claims, API, NOW, TENANT};
use support::{serve, TestIdp, TestKey};
use tower_azure_auth::authorization::{Policies, Policy};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::layers::{RequirePolicyLayer, ValidateAccessTokenLayer};
use tower_azure_auth::tower_http::AuthorizeAccessToken;
use tower_azure_auth::{Authority, Claims, TokenValidator};
use tower_http::auth::AsyncRequireAuthorizationLayer;

const POLICY: &str = "ServiceApi";

/// Claims of a valid v2 token (the fixture shared with the actix tests).
fn claims_v2(idp: &TestIdp) -> Value {
    claims(idp)
}

fn policies() -> Policies {
    Policies::builder()
        .add_policy(
            POLICY,
            Policy::builder().require_role("service-api").build(),
        )
        .build()
}

fn validator(idp: &TestIdp) -> TokenValidator {
    TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .unavailable_retry_interval(Duration::from_secs(3600))
        .build()
        .unwrap()
}

fn routes() -> Router {
    Router::new().route(
        "/whoami",
        get(|claims: Claims| async move { claims.client_id().unwrap_or_default().to_owned() }),
    )
}

/// The two stacks, each with a validator of its own (so that each refreshes its own keys):
/// this crate's layers, and tower-http's with the adapter.
async fn apps(idp: &TestIdp, policy: bool) -> [(&'static str, String); 2] {
    let policies = policies();
    let mut ours = routes();
    let mut adapter = AuthorizeAccessToken::new(validator(idp));
    if policy {
        ours = ours.layer(RequirePolicyLayer::named(&policies, POLICY).unwrap());
        adapter = adapter.require_policy(&policies, POLICY).unwrap();
    }
    let ours = ours.layer(ValidateAccessTokenLayer::new(validator(idp)));
    let theirs = routes().layer(AsyncRequireAuthorizationLayer::new(adapter));
    [
        ("ValidateAccessTokenLayer", serve(ours).await),
        ("AsyncRequireAuthorizationLayer", serve(theirs).await),
    ]
}

/// Status, `WWW-Authenticate`, `Retry-After` and body.
async fn call(url: &str, headers: &[String]) -> (u16, Option<String>, Option<String>, String) {
    let mut request = reqwest::Client::new().get(format!("{url}/whoami"));
    for value in headers {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (challenge, retry) = (header("www-authenticate"), header("retry-after"));
    let status = response.status().as_u16();
    (status, challenge, retry, response.text().await.unwrap())
}

struct Case {
    name: &'static str,
    headers: Vec<String>,
    status: u16,
    challenge: Option<&'static str>,
}

async fn check(idp: &TestIdp, policy: bool, cases: &[Case]) {
    let apps = apps(idp, policy).await;
    for case in cases {
        let mut seen = Vec::new();
        for (stack, url) in &apps {
            let (status, challenge, retry, body) = call(url, &case.headers).await;
            let name = format!("{} / {stack}", case.name);
            assert_eq!(status, case.status, "{name}: {challenge:?} {body}");
            match case.challenge {
                Some(expected) => assert!(
                    challenge
                        .as_deref()
                        .is_some_and(|c| c.starts_with(expected)),
                    "{name}: {challenge:?}"
                ),
                None => assert!(challenge.is_none(), "{name}: {challenge:?}"),
            }
            seen.push((status, challenge, retry, body));
        }
        assert_eq!(
            seen[0], seen[1],
            "{}: both stacks answer the same",
            case.name
        );
    }
}

#[tokio::test]
async fn accepted_and_refused_as_validate_access_token_layer() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let good = claims_v2(&idp);
    let with = |patch: Value| {
        let mut claims = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        format!("Bearer {}", key.token(&claims))
    };
    let bearer = format!("Bearer {}", key.token(&good));
    let cases = [
        Case {
            name: "accepted",
            headers: vec![bearer.clone()],
            status: 200,
            challenge: None,
        },
        Case {
            name: "no header",
            headers: vec![],
            status: 401,
            challenge: Some("Bearer"),
        },
        Case {
            name: "basic scheme",
            headers: vec!["Basic dXNlcjpwYXNz".into()],
            status: 401,
            challenge: Some("Bearer"),
        },
        Case {
            name: "empty bearer",
            headers: vec!["Bearer".into()],
            status: 401,
            challenge: Some("Bearer error=\"invalid_request\""),
        },
        Case {
            name: "repeated header",
            headers: vec![bearer.clone(), bearer.clone()],
            status: 401,
            challenge: Some("Bearer error=\"invalid_request\""),
        },
        Case {
            name: "garbage token",
            headers: vec!["Bearer x.y.z".into()],
            status: 401,
            challenge: Some("Bearer error=\"invalid_token\""),
        },
        Case {
            name: "expired",
            headers: vec![with(json!({ "exp": NOW - 3600 }))],
            status: 401,
            challenge: Some("Bearer error=\"invalid_token\""),
        },
        Case {
            name: "wrong audience",
            headers: vec![with(json!({ "aud": "someone-else" }))],
            status: 401,
            challenge: Some("Bearer error=\"invalid_token\""),
        },
        Case {
            name: "signed by another key with the same kid",
            headers: vec![format!(
                "Bearer {}",
                TestKey::generate("key-1").token(&good)
            )],
            status: 401,
            challenge: Some("Bearer error=\"invalid_token\""),
        },
    ];
    check(&idp, false, &cases).await;

    // A policy: the caller without the role gets the same 403.
    let cases = [
        Case {
            name: "policy satisfied",
            headers: vec![bearer.clone()],
            status: 200,
            challenge: None,
        },
        Case {
            name: "policy not satisfied",
            headers: vec![with(json!({ "roles": ["reader"] }))],
            status: 403,
            challenge: None,
        },
        Case {
            name: "policy, no token",
            headers: vec![],
            status: 401,
            challenge: Some("Bearer"),
        },
    ];
    check(&idp, true, &cases).await;

    // A new key, unknown to the validators until they refresh.
    let new_key = TestKey::generate("key-2");
    idp.set_keys(&[&key, &new_key]);
    let cases = [Case {
        name: "unknown kid, picked up by a refresh",
        headers: vec![format!("Bearer {}", new_key.token(&good))],
        status: 200,
        challenge: None,
    }];
    check(&idp, false, &cases).await;
}

#[tokio::test]
async fn keys_unavailable_is_503_as_validate_access_token_layer() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    idp.set_down(true);
    let cases = [Case {
        name: "authority down",
        headers: vec![format!("Bearer {}", key.token(&claims_v2(&idp)))],
        status: 503,
        challenge: None,
    }];
    check(&idp, false, &cases).await;
}
