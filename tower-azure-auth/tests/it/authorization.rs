//! The authorization layers on a real axum server, over real HTTP.
//!
//! In the table test, token validation is not under test: a small layer turns the
//! `x-test-claims` header (JSON) into the `Claims` that `ValidateAccessTokenLayer` would
//! insert. The router-wide `AuthorizeLayer` and the sensitive `Authorization` header are tested
//! behind the real validation, with tokens signed here and keys served by a test authority.

use crate::support;

use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, StatusCode};
use serde_json::{json, Value};
use support::fixtures::{claims, seed_policies_builder, with, API, NOW, TENANT};
use support::{TestIdp, TestKey};
use tower::util::MapRequestLayer;
use tower_azure_auth::authorization::{Policies, Policy};
use tower_azure_auth::claims::{Claims, ClientAuthentication};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::error::ConfigError;
use tower_azure_auth::layers::{
    AuthorizeLayer, RequireClaim, RequireClientAuthentication, RequirePolicyLayer, RequireRole,
    ValidateAccessTokenLayer,
};
use tower_azure_auth::{Authority, TokenValidator};

const CLIENT_ID: &str = "5f0e1bd2-7b1c-4c8f-9d39-0d8f0b6c7a11";

/// Stands in for `ValidateAccessTokenLayer`: claims from the `x-test-claims` header.
fn claims_from_header(mut request: Request<Body>) -> Request<Body> {
    let claims = request
        .headers()
        .get("x-test-claims")
        .and_then(|v| serde_json::from_slice::<Value>(v.as_bytes()).ok())
        .and_then(|v| Claims::from_json(v).ok());
    if let Some(claims) = claims {
        request.extensions_mut().insert(claims);
    }
    request
}

fn app() -> Result<Router, ConfigError> {
    // Startup.ConfigureServices, almost line for line.
    let policies = seed_policies_builder(CLIENT_ID)
        .add_policy(
            "AnyTokenVersion",
            Policy::builder()
                .require_role("service-api")
                .require_client_id(CLIENT_ID)
                .require_client_authentication(ClientAuthentication::Certificate)
                .build(),
        )
        .build();

    Ok(Router::new()
        .route(
            "/weatherforecast",
            get(|| async { "[]" }).layer(RequirePolicyLayer::named(
                &policies,
                "ValidateAccessTokenPolicy",
            )?),
        )
        .route(
            "/any-version",
            get(|| async { "[]" }).layer(RequirePolicyLayer::named(&policies, "AnyTokenVersion")?),
        )
        .route(
            "/role",
            get(|| async { "role" }).layer(RequireRole("service-api")),
        )
        .route(
            "/certificate",
            get(|| async { "certificate" }).layer(RequireClaim("azpacr", "2")),
        )
        .route(
            "/client-certificate",
            get(|| async { "certificate" }).layer(RequireClientAuthentication(
                ClientAuthentication::Certificate,
            )),
        )
        .route("/healthz", get(|| async { "ok" }))
        .layer(MapRequestLayer::new(claims_from_header)))
}

#[test]
fn a_misspelt_policy_fails_at_startup() {
    let policies = Policies::builder()
        .add_policy("ValidateAccessTokenPolicy", Policy::authenticated())
        .build();
    let error = RequirePolicyLayer::named(&policies, "ValidateAccesTokenPolicy").unwrap_err();
    assert!(
        matches!(&error, ConfigError::UnknownPolicy { name, known }
            if name == "ValidateAccesTokenPolicy" && known == "ValidateAccessTokenPolicy"),
        "{error:?}"
    );
}

#[tokio::test]
async fn authorization_over_http() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app().unwrap()).await });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let v2 = json!({"ver": "2.0", "roles": ["service-api"], "azp": CLIENT_ID, "azpacr": "2"});
    let with = |base: &Value, key: &str, value: Value| {
        let mut claims = base.clone();
        claims[key] = value;
        claims
    };
    let without = |base: &Value, key: &str| {
        let mut claims = base.clone();
        claims.as_object_mut().unwrap().remove(key);
        claims
    };
    let v1 = json!({"ver": "1.0", "roles": ["service-api"], "appid": CLIENT_ID, "appidacr": "2"});

    struct Case {
        name: &'static str,
        path: &'static str,
        claims: Option<Value>,
        status: StatusCode,
        /// For 403: the exact list of failed requirements in the body.
        failed: &'static [&'static str],
    }
    const AZPACR_FAILED: &str =
        "claim `azpacr` must be one of [2]; the token has a different value or none";
    const CERTIFICATE_FAILED: &str = "the client must authenticate with a certificate (`azpacr` or `appidacr` = 2); the token has a different value or none";
    let cases = [
        Case { name: "the seed's caller is allowed", path: "/weatherforecast", claims: Some(v2.clone()), status: StatusCode::OK, failed: &[] },
        Case {
            name: "missing role",
            path: "/weatherforecast",
            claims: Some(with(&v2, "roles", json!(["reader"]))),
            status: StatusCode::FORBIDDEN,
            failed: &["the caller must have the `service-api` role; no handler succeeded"],
        },
        Case {
            name: "secret instead of certificate (azpacr 1)",
            path: "/weatherforecast",
            claims: Some(with(&v2, "azpacr", json!("1"))),
            status: StatusCode::FORBIDDEN,
            failed: &[AZPACR_FAILED],
        },
        Case {
            name: "wrong azp",
            path: "/weatherforecast",
            claims: Some(with(&v2, "azp", json!("00000000-0000-0000-0000-000000000000"))),
            status: StatusCode::FORBIDDEN,
            failed: &["claim `azp` must be one of [5f0e1bd2-7b1c-4c8f-9d39-0d8f0b6c7a11]; the token has a different value or none"],
        },
        Case {
            name: "everything wrong is listed",
            path: "/weatherforecast",
            claims: Some(json!({"roles": [], "azp": "other", "azpacr": "0"})),
            status: StatusCode::FORBIDDEN,
            failed: &[
                "the caller must have the `service-api` role; no handler succeeded",
                "claim `azp` must be one of [5f0e1bd2-7b1c-4c8f-9d39-0d8f0b6c7a11]; the token has a different value or none",
                AZPACR_FAILED,
            ],
        },
        Case {
            name: "the seed's literal azp/azpacr claims refuse a v1 token, and say what v1 carries",
            path: "/weatherforecast",
            claims: Some(v1.clone()),
            status: StatusCode::FORBIDDEN,
            failed: &[
                "claim `azp` must be one of [5f0e1bd2-7b1c-4c8f-9d39-0d8f0b6c7a11]; the token has no `azp` claim (v1 tokens carry `appid` instead; `require_client_id` reads either)",
                "claim `azpacr` must be one of [2]; the token has no `azpacr` claim (v1 tokens carry `appidacr` instead; `require_client_authentication` and `RequireClientAuthentication` read either)",
            ],
        },
        Case {
            name: "RequireClaim(azpacr) on a v1 token says v1 carries appidacr",
            path: "/certificate",
            claims: Some(v1.clone()),
            status: StatusCode::FORBIDDEN,
            failed: &["claim `azpacr` must be one of [2]; the token has no `azpacr` claim (v1 tokens carry `appidacr` instead; `require_client_authentication` and `RequireClientAuthentication` read either)"],
        },
        Case { name: "RequireClientAuthentication accepts a v2 certificate token", path: "/client-certificate", claims: Some(v2.clone()), status: StatusCode::OK, failed: &[] },
        Case { name: "RequireClientAuthentication accepts a v1 certificate token", path: "/client-certificate", claims: Some(v1.clone()), status: StatusCode::OK, failed: &[] },
        Case {
            name: "RequireClientAuthentication refuses a v2 secret token",
            path: "/client-certificate",
            claims: Some(with(&v2, "azpacr", json!("1"))),
            status: StatusCode::FORBIDDEN,
            failed: &[CERTIFICATE_FAILED],
        },
        Case {
            name: "RequireClientAuthentication refuses a v1 secret token",
            path: "/client-certificate",
            claims: Some(with(&v1, "appidacr", json!("1"))),
            status: StatusCode::FORBIDDEN,
            failed: &[CERTIFICATE_FAILED],
        },
        Case { name: "no claims: client authentication", path: "/client-certificate", claims: None, status: StatusCode::UNAUTHORIZED, failed: &[] },
        Case { name: "client id requirements accept v2", path: "/any-version", claims: Some(v2.clone()), status: StatusCode::OK, failed: &[] },
        Case { name: "client id requirements accept v1 (appid/appidacr)", path: "/any-version", claims: Some(v1.clone()), status: StatusCode::OK, failed: &[] },
        Case {
            name: "v1 with a secret (appidacr 1)",
            path: "/any-version",
            claims: Some(with(&v1, "appidacr", json!("1"))),
            status: StatusCode::FORBIDDEN,
            failed: &[CERTIFICATE_FAILED],
        },
        Case {
            name: "v1 from another client",
            path: "/any-version",
            claims: Some(with(&v1, "appid", json!("other"))),
            status: StatusCode::FORBIDDEN,
            failed: &["the client id (`azp` or `appid`) must be one of [5f0e1bd2-7b1c-4c8f-9d39-0d8f0b6c7a11]; the token has a different value or none"],
        },
        Case { name: "RequireRole allows", path: "/role", claims: Some(v2.clone()), status: StatusCode::OK, failed: &[] },
        Case {
            name: "RequireRole refuses",
            path: "/role",
            claims: Some(without(&v2, "roles")),
            status: StatusCode::FORBIDDEN,
            failed: &["claim `roles` must contain one of [service-api]; the token has none of them"],
        },
        Case { name: "RequireClaim allows", path: "/certificate", claims: Some(v2.clone()), status: StatusCode::OK, failed: &[] },
        Case {
            name: "RequireClaim refuses",
            path: "/certificate",
            claims: Some(with(&v2, "azpacr", json!("1"))),
            status: StatusCode::FORBIDDEN,
            failed: &[AZPACR_FAILED],
        },
        Case { name: "no claims: policy", path: "/weatherforecast", claims: None, status: StatusCode::UNAUTHORIZED, failed: &[] },
        Case { name: "no claims: role", path: "/role", claims: None, status: StatusCode::UNAUTHORIZED, failed: &[] },
        Case { name: "no claims: claim", path: "/certificate", claims: None, status: StatusCode::UNAUTHORIZED, failed: &[] },
        Case { name: "open route", path: "/healthz", claims: None, status: StatusCode::OK, failed: &[] },
    ];

    for case in cases {
        let mut request = client.get(format!("{base}{}", case.path));
        if let Some(claims) = &case.claims {
            request = request.header("x-test-claims", claims.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            case.status.as_u16(),
            "{}",
            case.name
        );
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        match case.status {
            StatusCode::UNAUTHORIZED => {
                assert_eq!(challenge.as_deref(), Some("Bearer"), "{}", case.name);
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "unauthorized", "{}", case.name);
            }
            StatusCode::FORBIDDEN => {
                assert_eq!(challenge, None, "{}: 403 has no challenge", case.name);
                assert_eq!(
                    response.headers()["content-type"],
                    "application/json",
                    "{}",
                    case.name
                );
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "forbidden", "{}", case.name);
                assert_eq!(
                    body["failed_requirements"],
                    json!(case.failed),
                    "{}",
                    case.name
                );
                if !["/role", "/certificate", "/client-certificate"].contains(&case.path) {
                    let description = body["error_description"].as_str().unwrap();
                    assert!(
                        description
                            .starts_with("the caller does not satisfy the authorization policy `"),
                        "{}: {description}",
                        case.name
                    );
                }
            }
            _ => assert_eq!(challenge, None, "{}", case.name),
        }
    }
    server.abort();
}

/// Claims of a valid v2 token for `API` from `CLIENT_ID` with these roles.
fn token_claims(idp: &TestIdp, roles: &[&str]) -> Value {
    with(&claims(idp), json!({"azp": CLIENT_ID, "roles": roles}))
}

fn test_validator(idp: &TestIdp) -> TokenValidator {
    TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .build()
        .unwrap()
}

/// Status, challenge and body of a GET with an optional bearer token.
async fn call(base: &str, path: &str, token: Option<&str>) -> (u16, Option<String>, String) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client.get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        response.status().as_u16(),
        challenge,
        response.text().await.unwrap(),
    )
}

/// `PoliciesBuilder::fallback_policy` was stored and applied by nothing: a route without a
/// policy of its own was open to any caller with a valid token, or none.
#[cfg(feature = "axum")] // routes by pattern: axum's `MatchedPath`
#[tokio::test]
async fn the_fallback_policy_applies_to_routes_without_their_own_policy() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let validator = test_validator(&idp);
    validator.refresh().await.unwrap();

    let policies = Policies::builder()
        .add_policy(
            "ValidateAccessTokenPolicy",
            Policy::builder().require_role("service-api").build(),
        )
        .default_policy(Policy::builder().require_claim("oid", ["o1"]).build())
        .fallback_policy(Policy::builder().require_role("reader").build())
        .build();
    let authorize = AuthorizeLayer::new(&policies)
        .route("/weatherforecast", "ValidateAccessTokenPolicy")
        .unwrap()
        .default_for("/mine")
        .anonymous("/healthz")
        .anonymous("/public/{name}");
    let app = Router::new()
        .route("/weatherforecast", get(|| async { "forecast" }))
        .route("/report", get(|| async { "report" }))
        .route("/items/{id}", get(|| async { "item" }))
        .route("/mine", get(|| async { "mine" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/public/{name}", get(|| async { "public" }))
        .layer(authorize)
        .layer(ValidateAccessTokenLayer::new(validator.clone()).defer_refusals());
    let base = support::serve(app).await;

    let reader = key.token(&token_claims(&idp, &["reader"]));
    let service = key.token(&token_claims(&idp, &["service-api"]));
    let other_object = {
        let mut claims = token_claims(&idp, &["reader"]);
        claims["oid"] = json!("o2");
        key.token(&claims)
    };
    let expired = {
        let mut claims = token_claims(&idp, &["reader", "service-api"]);
        claims["exp"] = json!(NOW - 3600);
        key.token(&claims)
    };
    let forged = TestKey::generate("key-1").token(&token_claims(&idp, &["reader"]));

    struct Case {
        name: &'static str,
        path: &'static str,
        token: Option<String>,
        status: u16,
        /// Text the body must contain.
        body: &'static str,
    }
    let cases = [
        // a route without its own policy: the fallback
        Case {
            name: "fallback: the caller satisfies it",
            path: "/report",
            token: Some(reader.clone()),
            status: 200,
            body: "report",
        },
        Case {
            name: "fallback: a caller who fails it is refused",
            path: "/report",
            token: Some(service.clone()),
            status: 403,
            body: "claim `roles` must contain one of [reader]",
        },
        Case {
            name: "fallback: no token",
            path: "/report",
            token: None,
            status: 401,
            body: "\"error\":\"unauthorized\"",
        },
        Case {
            name: "fallback: an expired token",
            path: "/report",
            token: Some(expired.clone()),
            status: 401,
            body: "invalid_token",
        },
        Case {
            name: "fallback on a route with a parameter",
            path: "/items/7",
            token: Some(service.clone()),
            status: 403,
            body: "forbidden",
        },
        Case {
            name: "fallback on a path no route matches",
            path: "/no-such-route",
            token: None,
            status: 401,
            body: "unauthorized",
        },
        // a route with its own policy: that one only
        Case {
            name: "own policy: fails the fallback, passes its own",
            path: "/weatherforecast",
            token: Some(service.clone()),
            status: 200,
            body: "forecast",
        },
        Case {
            name: "own policy: passes the fallback, fails its own",
            path: "/weatherforecast",
            token: Some(reader.clone()),
            status: 403,
            body: "ValidateAccessTokenPolicy",
        },
        Case {
            name: "own policy: no token",
            path: "/weatherforecast",
            token: None,
            status: 401,
            body: "unauthorized",
        },
        // a route asking for the default policy
        Case {
            name: "default policy: satisfied without the fallback's role",
            path: "/mine",
            token: Some(service.clone()),
            status: 200,
            body: "mine",
        },
        Case {
            name: "default policy: refused",
            path: "/mine",
            token: Some(other_object),
            status: 403,
            body: "claim `oid`",
        },
        // anonymous routes: open, and authentication failures are ignored
        Case {
            name: "anonymous: no token",
            path: "/healthz",
            token: None,
            status: 200,
            body: "ok",
        },
        Case {
            name: "anonymous: an expired token",
            path: "/healthz",
            token: Some(expired),
            status: 200,
            body: "ok",
        },
        Case {
            name: "anonymous: a forged token",
            path: "/healthz",
            token: Some(forged),
            status: 200,
            body: "ok",
        },
        Case {
            name: "anonymous by pattern (MatchedPath)",
            path: "/public/x",
            token: None,
            status: 200,
            body: "public",
        },
    ];
    for case in cases {
        let (status, challenge, body) = call(&base, case.path, case.token.as_deref()).await;
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert!(body.contains(case.body), "{}: {body}", case.name);
        match status {
            401 if case.token.is_none() => {
                assert_eq!(challenge.as_deref(), Some("Bearer"), "{}", case.name)
            }
            401 => assert!(
                challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Bearer error=\"invalid_token\"")),
                "{}: {challenge:?}",
                case.name
            ),
            _ => assert_eq!(challenge, None, "{}", case.name),
        }
    }
}

/// With no fallback policy, an unlisted route stays as it is (ASP.NET Core's default); the
/// refusal that `defer_refusals` passes on still reaches the client from a per-route layer or
/// the `Claims` extractor, as the validation would have sent it.
#[cfg(feature = "axum")] // the `Claims` extractor
#[tokio::test]
async fn without_a_fallback_unlisted_routes_stay_as_they_are() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let validator = test_validator(&idp);
    validator.refresh().await.unwrap();
    let policies = Policies::builder()
        .add_policy("Reader", Policy::builder().require_role("reader").build())
        .build();
    let app = Router::new()
        .route("/listed", get(|| async { "listed" }))
        .route("/open", get(|| async { "open" }))
        .route(
            "/whoami",
            get(|claims: Claims| async move { claims.client_id().unwrap_or("?").to_owned() }),
        )
        .route(
            "/role",
            get(|| async { "role" }).layer(RequireRole("service-api")),
        )
        .layer(
            AuthorizeLayer::new(&policies)
                .route("/listed", "Reader")
                .unwrap(),
        )
        .layer(ValidateAccessTokenLayer::new(validator).defer_refusals());
    let base = support::serve(app).await;
    let expired = {
        let mut claims = token_claims(&idp, &["service-api"]);
        claims["exp"] = json!(NOW - 3600);
        key.token(&claims)
    };
    let good = key.token(&token_claims(&idp, &["service-api"]));

    let (status, _, body) = call(&base, "/open", None).await;
    assert_eq!((status, body.as_str()), (200, "open"));
    let (status, _, _) = call(&base, "/listed", None).await;
    assert_eq!(status, 401);
    let (status, _, _) = call(&base, "/listed", Some(&good)).await;
    assert_eq!(status, 403);
    let (status, _, body) = call(&base, "/whoami", Some(&good)).await;
    assert_eq!((status, body.as_str()), (200, CLIENT_ID));
    for path in ["/whoami", "/role", "/listed"] {
        let (status, challenge, body) = call(&base, path, Some(&expired)).await;
        assert_eq!(status, 401, "{path}: {body}");
        let challenge = challenge.unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
            "{path}: {challenge}"
        );
        assert!(body.contains("invalid_token"), "{path}: {body}");
    }
}

/// The inbound `Authorization` header reached the inner service as an ordinary header value;
/// `Debug` of the request (and loggers that honour the flag) printed the token.
#[tokio::test]
async fn the_inner_service_sees_the_authorization_header_marked_sensitive() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    // No keys fetched yet: the first request takes the path that waits for a refresh, the
    // second the synchronous one.
    let validator = test_validator(&idp);
    let sensitive = |headers: HeaderMap| async move {
        let values: Vec<bool> = headers
            .get_all(AUTHORIZATION)
            .iter()
            .map(|v| v.is_sensitive())
            .collect();
        format!("{values:?}")
    };
    let policies = Policies::builder().build();
    let app = Router::new()
        .route("/api", get(sensitive))
        .route("/healthz", get(sensitive))
        .layer(AuthorizeLayer::new(&policies).anonymous("/healthz"))
        .layer(ValidateAccessTokenLayer::new(validator.clone()).defer_refusals());
    let strict = Router::new()
        .route("/api", get(sensitive))
        .layer(ValidateAccessTokenLayer::new(validator));
    let deferred = support::serve(app).await;
    let strict = support::serve(strict).await;
    let token = key.token(&token_claims(&idp, &["service-api"]));
    let forged = TestKey::generate("key-1").token(&token_claims(&idp, &["service-api"]));

    for (name, base, path, token) in [
        ("refresh path", &strict, "/api", &token),
        ("synchronous path", &strict, "/api", &token),
        ("deferring validation", &deferred, "/api", &token),
        (
            "anonymous route, refused token",
            &deferred,
            "/healthz",
            &forged,
        ),
    ] {
        let (status, _, body) = call(base, path, Some(token)).await;
        assert_eq!((status, body.as_str()), (200, "[true]"), "{name}");
    }
}
