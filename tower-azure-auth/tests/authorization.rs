//! The authorization layers on a real axum server, over real HTTP.
//!
//! Token validation is not under test here: a small layer turns the `x-test-claims` header
//! (JSON) into the `Claims` that `ValidateAccessTokenLayer` would insert.

use std::borrow::Cow;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::util::MapRequestLayer;
use tower_azure_auth::authorization::{
    AuthorizationContext, AuthorizationHandler, HandlerOutcome, Policies, Policy, Requirement,
};
use tower_azure_auth::claims::{Claims, ClientAuthentication};
use tower_azure_auth::error::ConfigError;
use tower_azure_auth::layers::{RequireClaim, RequirePolicy, RequireRole};

const CLIENT_ID: &str = "5f0e1bd2-7b1c-4c8f-9d39-0d8f0b6c7a11";

/// The seed's custom requirement.
#[derive(Debug)]
struct HasServiceApiRoleRequirement;

impl Requirement for HasServiceApiRoleRequirement {
    fn description(&self) -> Cow<'_, str> {
        "the caller must have the `service-api` role".into()
    }
}

/// The seed's handler; awaits, as a handler doing I/O would.
#[derive(Debug)]
struct HasServiceApiRoleHandler;

impl AuthorizationHandler for HasServiceApiRoleHandler {
    type Requirement = HasServiceApiRoleRequirement;

    async fn handle(
        &self,
        ctx: &AuthorizationContext<'_>,
        _requirement: &HasServiceApiRoleRequirement,
    ) -> HandlerOutcome {
        tokio::task::yield_now().await;
        HandlerOutcome::from(ctx.claims().has_role("service-api"))
    }
}

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
    let policies = Policies::builder()
        .add_handler(HasServiceApiRoleHandler)
        .add_policy(
            "ValidateAccessTokenPolicy",
            Policy::builder()
                .requirement(HasServiceApiRoleRequirement)
                .require_claim("azp", [CLIENT_ID])
                .require_claim("azpacr", ["2"])
                .build(),
        )
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
            get(|| async { "[]" }).layer(RequirePolicy::named(
                &policies,
                "ValidateAccessTokenPolicy",
            )?),
        )
        .route(
            "/any-version",
            get(|| async { "[]" }).layer(RequirePolicy::named(&policies, "AnyTokenVersion")?),
        )
        .route(
            "/role",
            get(|| async { "role" }).layer(RequireRole("service-api")),
        )
        .route(
            "/certificate",
            get(|| async { "certificate" }).layer(RequireClaim("azpacr", "2")),
        )
        .route("/healthz", get(|| async { "ok" }))
        .layer(MapRequestLayer::new(claims_from_header)))
}

#[test]
fn a_misspelt_policy_fails_at_startup() {
    let policies = Policies::builder()
        .add_policy("ValidateAccessTokenPolicy", Policy::authenticated())
        .build();
    let error = RequirePolicy::named(&policies, "ValidateAccesTokenPolicy").unwrap_err();
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
            name: "the seed's literal azp/azpacr claims refuse a v1 token",
            path: "/weatherforecast",
            claims: Some(v1.clone()),
            status: StatusCode::FORBIDDEN,
            failed: &[
                "claim `azp` must be one of [5f0e1bd2-7b1c-4c8f-9d39-0d8f0b6c7a11]; the token has a different value or none",
                AZPACR_FAILED,
            ],
        },
        Case { name: "client id requirements accept v2", path: "/any-version", claims: Some(v2.clone()), status: StatusCode::OK, failed: &[] },
        Case { name: "client id requirements accept v1 (appid/appidacr)", path: "/any-version", claims: Some(v1.clone()), status: StatusCode::OK, failed: &[] },
        Case {
            name: "v1 with a secret (appidacr 1)",
            path: "/any-version",
            claims: Some(with(&v1, "appidacr", json!("1"))),
            status: StatusCode::FORBIDDEN,
            failed: &["the client must authenticate with a certificate (`azpacr` or `appidacr` = 2); the token has a different value or none"],
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
                if case.path != "/role" && case.path != "/certificate" {
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
