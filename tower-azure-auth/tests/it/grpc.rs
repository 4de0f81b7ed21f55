//! gRPC refusals chosen by the request's `content-type`, over real HTTP on 127.0.0.1: an axum
//! router that serves REST and gRPC side by side answers a gRPC call (`application/grpc*`) with
//! a trailers-only gRPC status and an HTTP request with the RFC 6750 `401`/`403`, from the same
//! default layers.

use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use tower_azure_auth::layers::{RequireRole, ValidateAccessTokenLayer};
use tower_azure_auth::{Authority, TokenValidator};

use crate::support::{serve, TestIdp, TestKey};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";

#[tokio::test]
async fn the_default_layers_answer_grpc_calls_with_grpc_statuses_and_http_with_http() {
    let key = TestKey::generate("k1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |roles: &[&str]| {
        key.token(
            &json!({"aud": API, "iss": idp.issuer_v2(), "tid": TENANT, "ver": "2.0",
            "iat": now, "nbf": now, "exp": now + 600, "azp": "c", "azpacr": "2", "roles": roles}),
        )
    };
    let app = Router::new()
        .route("/weatherforecast", get(|| async { "forecast" }))
        .route(
            "/weather.v1.WeatherForecasts/GetForecast",
            post(|| async { "message" }),
        )
        .layer(RequireRole("service-api"))
        .layer(ValidateAccessTokenLayer::new(validator));
    let base = serve(app).await;
    let http = reqwest::Client::new();

    struct Case {
        name: &'static str,
        grpc: bool,
        token: Option<String>,
        status: u16,
        grpc_status: Option<&'static str>,
        challenge: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "grpc, no token",
            grpc: true,
            token: None,
            status: 200,
            grpc_status: Some("16"),
            challenge: Some("Bearer"),
        },
        Case {
            name: "grpc, forged token",
            grpc: true,
            token: Some(format!("{}x", token(&["service-api"]))),
            status: 200,
            grpc_status: Some("16"),
            challenge: Some("Bearer error=\"invalid_token\""),
        },
        Case {
            name: "grpc, no role",
            grpc: true,
            token: Some(token(&["reader"])),
            status: 200,
            grpc_status: Some("7"),
            challenge: None,
        },
        Case {
            name: "grpc, accepted",
            grpc: true,
            token: Some(token(&["service-api"])),
            status: 200,
            grpc_status: None,
            challenge: None,
        },
        Case {
            name: "http, no token",
            grpc: false,
            token: None,
            status: 401,
            grpc_status: None,
            challenge: Some("Bearer"),
        },
        Case {
            name: "http, no role",
            grpc: false,
            token: Some(token(&["reader"])),
            status: 403,
            grpc_status: None,
            challenge: None,
        },
    ];
    for case in cases {
        let mut request = if case.grpc {
            http.post(format!("{base}/weather.v1.WeatherForecasts/GetForecast"))
                .header("content-type", "application/grpc+proto")
                .header("te", "trailers")
        } else {
            http.get(format!("{base}/weatherforecast"))
        };
        if let Some(token) = &case.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), case.status, "{}", case.name);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            header("grpc-status").as_deref(),
            case.grpc_status,
            "{}",
            case.name
        );
        match case.challenge {
            Some(start) => assert!(
                header("www-authenticate").is_some_and(|v| v.starts_with(start)),
                "{}: {:?}",
                case.name,
                header("www-authenticate")
            ),
            None => assert!(header("www-authenticate").is_none(), "{}", case.name),
        }
        let refused_grpc = case.grpc && case.grpc_status.is_some();
        if refused_grpc {
            assert_eq!(
                header("content-type").as_deref(),
                Some("application/grpc"),
                "{}",
                case.name
            );
            assert!(header("grpc-message").is_some(), "{}", case.name);
        }
        let body = response.text().await.unwrap();
        if refused_grpc {
            assert!(
                body.is_empty(),
                "{}: trailers-only, no body: {body}",
                case.name
            );
        } else if case.status != 200 {
            assert!(body.starts_with('{'), "{}: the JSON body", case.name);
        }
    }
}
