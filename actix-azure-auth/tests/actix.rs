//! The actix-web adapter over real HTTP on 127.0.0.1: an OIDC metadata + JWKS server with keys
//! generated here (the support module of the core's tests), tokens signed in the test, an
//! actix-web server with the adapter's middlewares, and, for the parity test, the same app on
//! axum with the Tower layers.

#[path = "../../tower-azure-auth/tests/it/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_azure_auth::{
    rejection_response, Authenticated, AuthorizeLayer, RequireClaim, RequireClientAuthentication,
    RequirePolicyLayer, RequireRole, ValidateAccessTokenLayer,
};
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use support::fixtures::{
    claims, claims_v1, seed_policies, seed_policies_builder, with, API, CALLER, NOW, SEED_POLICY,
    TENANT,
};
use support::{TestIdp, TestKey};
use tower_azure_auth::authorization::{Policies, Policy};
use tower_azure_auth::claims::ClientAuthentication;
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::rejection::Rejection;
use tower_azure_auth::{layers, AuthError, Authority, Claims, TokenValidator};

const POLICY: &str = SEED_POLICY;

fn policies() -> Policies {
    seed_policies()
}

/// A policy over the request facts: what a handler sees of an actix-web request.
fn facts_policy() -> Policy {
    Policy::builder()
        .require_assertion(|ctx| {
            ctx.method() == Some(&http::Method::GET)
                && ctx.path() == Some("/api/facts")
                && ctx.uri().and_then(|uri| uri.query()) == Some("q=1")
                && ctx
                    .headers()
                    .and_then(|headers| headers.get("x-tier"))
                    .is_some_and(|tier| tier == "gold")
                && ctx.extensions().is_some()
        })
        .build()
}

fn validator(idp: &TestIdp, clock: &ManualClock) -> TokenValidator {
    TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(clock.clone()))
        .unavailable_retry_interval(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn whoami(caller: Authenticated) -> String {
    let roles = caller.roles().join(",");
    format!("{} {roles}", caller.client_id().unwrap_or("?"))
}

async fn maybe(caller: Option<Authenticated>) -> &'static str {
    if caller.is_some() {
        "authenticated"
    } else {
        "anonymous"
    }
}

async fn ok() -> &'static str {
    "ok"
}

/// The actix-web app: validation on a scope, the authorization middlewares on resources and
/// on a nested scope, and two routes outside the validation.
fn actix_app(cfg: &mut web::ServiceConfig, validator: TokenValidator, policies: &Policies) {
    let require = RequirePolicyLayer::named(policies, POLICY).unwrap();
    cfg.route("/maybe", web::get().to(maybe))
        .service(
            web::resource("/unvalidated")
                .route(web::get().to(ok))
                .wrap(RequireRole("service-api")),
        )
        .service(
            web::scope("/api")
                .wrap(ValidateAccessTokenLayer::new(validator))
                .route("/whoami", web::get().to(whoami))
                .service(
                    web::resource("/role")
                        .route(web::get().to(ok))
                        .wrap(RequireRole("service-api")),
                )
                .service(
                    web::resource("/certificate")
                        .route(web::get().to(ok))
                        .wrap(RequireClaim("azpacr", "2")),
                )
                .service(
                    web::resource("/client-certificate")
                        .route(web::get().to(ok))
                        .wrap(RequireClientAuthentication(
                            ClientAuthentication::Certificate,
                        )),
                )
                .service(
                    web::resource("/facts")
                        .route(web::get().to(ok))
                        .wrap(RequirePolicyLayer::new(facts_policy())),
                )
                .service(
                    web::scope("/policy")
                        .wrap(require)
                        .route("", web::get().to(ok)),
                ),
        );
}

/// The same app on axum with the Tower layers (full paths, no `nest`, so that layers see the
/// same URI as actix-web's middlewares).
fn axum_app(validator: TokenValidator, policies: &Policies) -> axum::Router {
    use axum::routing::get;
    async fn whoami(claims: Claims) -> String {
        let roles = claims.roles().join(",");
        format!("{} {roles}", claims.client_id().unwrap_or("?"))
    }
    async fn maybe(claims: Option<Claims>) -> &'static str {
        if claims.is_some() {
            "authenticated"
        } else {
            "anonymous"
        }
    }
    let protected = axum::Router::new()
        .route("/api/whoami", get(whoami))
        .route(
            "/api/role",
            get(ok).layer(layers::RequireRole("service-api")),
        )
        .route(
            "/api/certificate",
            get(ok).layer(layers::RequireClaim("azpacr", "2")),
        )
        .route(
            "/api/client-certificate",
            get(ok).layer(layers::RequireClientAuthentication(
                ClientAuthentication::Certificate,
            )),
        )
        .route(
            "/api/facts",
            get(ok).layer(layers::RequirePolicyLayer::new(facts_policy())),
        )
        .route(
            "/api/policy",
            get(ok).layer(layers::RequirePolicyLayer::named(policies, POLICY).unwrap()),
        )
        .layer(layers::ValidateAccessTokenLayer::new(validator));
    axum::Router::new()
        .route("/maybe", get(maybe))
        .route(
            "/unvalidated",
            get(ok).layer(layers::RequireRole("service-api")),
        )
        .merge(protected)
}

/// Serves the actix-web app on 127.0.0.1:0 (one worker thread, control future on this test's
/// runtime).
fn serve_actix(validator: TokenValidator, policies: Policies) -> (ServerHandle, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        let validator = validator.clone();
        let policies = policies.clone();
        App::new().configure(move |cfg| actix_app(cfg, validator, &policies))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (handle, format!("http://{addr}"))
}

struct Fixture {
    idp: TestIdp,
    key: TestKey,
    clock: ManualClock,
    validator: TokenValidator,
    actix: String,
    handle: ServerHandle,
}

async fn fixture() -> Fixture {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let clock = ManualClock::at_unix(NOW);
    let validator = validator(&idp, &clock);
    validator.refresh().await.unwrap();
    let (handle, actix) = serve_actix(validator.clone(), policies());
    Fixture {
        idp,
        key,
        clock,
        validator,
        actix,
        handle,
    }
}

/// What a client sees of a response, for comparisons.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn get(base: &str, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Answer {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: response.status().as_u16(),
        www_authenticate: header("www-authenticate"),
        retry_after: header("retry-after"),
        content_type: header("content-type"),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

#[tokio::test]
async fn accepted_token_reaches_the_handler_with_claims() {
    let f = fixture().await;
    let token = f.key.token(&claims(&f.idp));
    let answer = get(&f.actix, "/api/whoami", Some(&token), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), format!("{CALLER} service-api"));
    f.handle.stop(false).await;
}

/// One request and what the actix-web app must answer.
struct Case {
    name: &'static str,
    path: &'static str,
    token: Option<String>,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    /// `None`: no `WWW-Authenticate`; `Some(prefix)`: the challenge starts with it.
    challenge: Option<&'static str>,
    /// Text the body must contain.
    body: &'static str,
}

/// The requests of the table test and of the parity test.
fn cases(f: &Fixture) -> Vec<Case> {
    let good = claims(&f.idp);
    let attacker = TestKey::generate("key-1");
    let token = |claims: &Value| Some(f.key.token(claims));
    let invalid = Some("Bearer error=\"invalid_token\", error_description=\"");
    vec![
        Case {
            name: "valid token",
            path: "/api/policy",
            token: token(&good),
            headers: &[],
            status: 200,
            challenge: None,
            body: "ok",
        },
        Case {
            name: "valid token, role",
            path: "/api/role",
            token: token(&good),
            headers: &[],
            status: 200,
            challenge: None,
            body: "ok",
        },
        Case {
            name: "valid token, certificate",
            path: "/api/certificate",
            token: token(&good),
            headers: &[],
            status: 200,
            challenge: None,
            body: "ok",
        },
        Case {
            name: "no token",
            path: "/api/policy",
            token: None,
            headers: &[],
            status: 401,
            challenge: Some("Bearer"),
            body: "\"error\":\"unauthorized\"",
        },
        Case {
            name: "basic credentials are not a bearer token",
            path: "/api/whoami",
            token: None,
            headers: &[("authorization", "Basic dXNlcjpwYXNz")],
            status: 401,
            challenge: Some("Bearer"),
            body: "Bearer scheme",
        },
        Case {
            name: "bad signature",
            path: "/api/whoami",
            token: Some(attacker.token(&good)),
            headers: &[],
            status: 401,
            challenge: invalid,
            body: "invalid_token",
        },
        Case {
            name: "expired",
            path: "/api/whoami",
            token: token(&with(
                &good,
                json!({"iat": NOW - 7200, "nbf": NOW - 7200, "exp": NOW - 3600}),
            )),
            headers: &[],
            status: 401,
            challenge: invalid,
            body: "expired",
        },
        Case {
            name: "wrong audience",
            path: "/api/whoami",
            token: token(&with(&good, json!({"aud": "api://someone-else"}))),
            headers: &[],
            status: 401,
            challenge: invalid,
            // The check's name; the values only with detailed errors on.
            body: "the audience is not accepted",
        },
        Case {
            name: "missing role, RequireRole",
            path: "/api/role",
            token: token(&with(&good, json!({"roles": ["reader"]}))),
            headers: &[],
            status: 403,
            challenge: None,
            body: "service-api",
        },
        Case {
            name: "missing role, policy with an async handler",
            path: "/api/policy",
            token: token(&with(&good, json!({"roles": ["reader"]}))),
            headers: &[],
            status: 403,
            challenge: None,
            body: "the caller must have the `service-api` role",
        },
        Case {
            name: "azpacr 1, RequireClaim",
            path: "/api/certificate",
            token: token(&with(&good, json!({"azpacr": "1"}))),
            headers: &[],
            status: 403,
            challenge: None,
            body: "azpacr",
        },
        Case {
            name: "azpacr 1, policy",
            path: "/api/policy",
            token: token(&with(&good, json!({"azpacr": "1"}))),
            headers: &[],
            status: 403,
            challenge: None,
            body: "azpacr",
        },
        Case {
            name: "wrong azp, policy",
            path: "/api/policy",
            token: token(&with(
                &good,
                json!({"azp": "99999999-9999-9999-9999-999999999999"}),
            )),
            headers: &[],
            status: 403,
            challenge: None,
            body: "claim `azp`",
        },
        Case {
            name: "RequireClientAuthentication accepts a v2 certificate token",
            path: "/api/client-certificate",
            token: token(&good),
            headers: &[],
            status: 200,
            challenge: None,
            body: "ok",
        },
        Case {
            name: "RequireClientAuthentication accepts a v1 certificate token",
            path: "/api/client-certificate",
            token: token(&claims_v1(&f.idp)),
            headers: &[],
            status: 200,
            challenge: None,
            body: "ok",
        },
        Case {
            name: "RequireClientAuthentication refuses a v2 secret token",
            path: "/api/client-certificate",
            token: token(&with(&good, json!({"azpacr": "1"}))),
            headers: &[],
            status: 403,
            challenge: None,
            body: "the client must authenticate with a certificate",
        },
        Case {
            name: "RequireClientAuthentication refuses a v1 secret token",
            path: "/api/client-certificate",
            token: token(&with(&claims_v1(&f.idp), json!({"appidacr": "1"}))),
            headers: &[],
            status: 403,
            challenge: None,
            body: "the client must authenticate with a certificate",
        },
        Case {
            name: "RequireClaim(azpacr) on a v1 token says v1 carries appidacr",
            path: "/api/certificate",
            token: token(&claims_v1(&f.idp)),
            headers: &[],
            status: 403,
            challenge: None,
            body: "the token has no `azpacr` claim (v1 tokens carry `appidacr` instead",
        },
        Case {
            name: "handlers see method, path, query and headers",
            path: "/api/facts?q=1",
            token: token(&good),
            headers: &[("x-tier", "gold")],
            status: 200,
            challenge: None,
            body: "ok",
        },
        Case {
            name: "handlers see the header's absence",
            path: "/api/facts?q=1",
            token: token(&good),
            headers: &[("x-tier", "silver")],
            status: 403,
            challenge: None,
            body: "assertion",
        },
        Case {
            name: "authorization without validation: no claims",
            path: "/unvalidated",
            token: token(&good),
            headers: &[],
            status: 401,
            challenge: Some("Bearer"),
            body: "unauthorized",
        },
        Case {
            name: "Option<Authenticated> outside the validation",
            path: "/maybe",
            token: None,
            headers: &[],
            status: 200,
            challenge: None,
            body: "anonymous",
        },
    ]
}

#[tokio::test]
async fn refusals_and_acceptances_over_http() {
    let f = fixture().await;
    for case in cases(&f) {
        let answer = get(&f.actix, case.path, case.token.as_deref(), case.headers).await;
        assert_eq!(
            answer.status,
            case.status,
            "{}: {}",
            case.name,
            answer.text()
        );
        match (case.challenge, &answer.www_authenticate) {
            (None, None) => {}
            (Some("Bearer"), Some(challenge)) => assert_eq!(challenge, "Bearer", "{}", case.name),
            (Some(prefix), Some(challenge)) => {
                assert!(challenge.starts_with(prefix), "{}: {challenge}", case.name)
            }
            (expected, actual) => {
                panic!("{}: challenge {actual:?}, expected {expected:?}", case.name)
            }
        }
        assert!(
            answer.text().contains(case.body),
            "{}: body {:?} lacks {:?}",
            case.name,
            answer.text(),
            case.body
        );
        if answer.status == 401 || answer.status == 403 {
            assert_eq!(
                answer.content_type.as_deref(),
                Some("application/json"),
                "{}",
                case.name
            );
        }
        if answer.status == 403 {
            let body = answer.json();
            assert_eq!(body["error"], "forbidden", "{}", case.name);
            let failed = body["failed_requirements"].as_array();
            assert!(
                failed.is_some_and(|f| !f.is_empty()),
                "{}: {body}",
                case.name
            );
        }
    }
    f.handle.stop(false).await;
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_keys_and_is_accepted_after_rotation() {
    let f = fixture().await;
    let fetches = f.idp.jwks_hits();
    let new_key = TestKey::generate("key-2");
    let token = new_key.token(&claims(&f.idp));
    // Not published yet: refused, after one refresh.
    let answer = get(&f.actix, "/api/whoami", Some(&token), &[]).await;
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert_eq!(f.idp.jwks_hits(), fetches + 1);

    // The authority rotates; the next forced refresh is allowed 5 minutes later.
    f.idp.set_keys(&[&new_key]);
    f.clock.advance(Duration::from_secs(301));
    let answer = get(&f.actix, "/api/whoami", Some(&token), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), format!("{CALLER} service-api"));
    assert_eq!(f.idp.jwks_hits(), fetches + 2);
    // The key now known, the same token goes through the synchronous path: no more fetches.
    let answer = get(&f.actix, "/api/policy", Some(&token), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(f.idp.jwks_hits(), fetches + 2);
    // The old key is gone.
    let old = f.key.token(&claims(&f.idp));
    let answer = get(&f.actix, "/api/whoami", Some(&old), &[]).await;
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert_eq!(answer.json()["error"], "invalid_token");
    f.handle.stop(false).await;
}

#[tokio::test]
async fn authority_down_at_start_gives_503_with_retry_after_then_recovers() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    idp.set_down(true);
    let clock = ManualClock::at_unix(NOW);
    let (handle, actix) = serve_actix(validator(&idp, &clock), policies());
    let token = key.token(&claims(&idp));

    let answer = get(&actix, "/api/policy", Some(&token), &[]).await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.retry_after.as_deref(), Some("5"));
    assert_eq!(answer.www_authenticate, None);
    assert_eq!(answer.json()["error"], "temporarily_unavailable");

    idp.set_down(false);
    clock.advance(Duration::from_secs(11));
    let answer = get(&actix, "/api/policy", Some(&token), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    handle.stop(false).await;
}

/// The same requests against the Tower layers (on axum) and the actix-web middlewares give
/// the same status, challenge, `Retry-After`, content type and body bytes.
#[tokio::test]
async fn actix_and_tower_answer_byte_for_byte_the_same() {
    let f = fixture().await;
    let axum = support::serve(axum_app(f.validator.clone(), &policies())).await;
    let cases = cases(&f);
    let mut statuses = Vec::new();
    for case in &cases {
        let on_axum = get(&axum, case.path, case.token.as_deref(), case.headers).await;
        let on_actix = get(&f.actix, case.path, case.token.as_deref(), case.headers).await;
        assert_eq!(on_actix, on_axum, "{}", case.name);
        assert_eq!(on_actix.status, case.status, "{}", case.name);
        statuses.push(on_actix.status);
    }

    // 503 while the authority is down, with a validator shared by both apps.
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    idp.set_down(true);
    let down = validator(&idp, &ManualClock::at_unix(NOW));
    let axum_down = support::serve(axum_app(down.clone(), &policies())).await;
    let (handle_down, actix_down) = serve_actix(down, policies());
    let token = key.token(&claims(&idp));
    let on_axum = get(&axum_down, "/api/policy", Some(&token), &[]).await;
    let on_actix = get(&actix_down, "/api/policy", Some(&token), &[]).await;
    assert_eq!(on_actix, on_axum, "authority down");
    statuses.push(on_actix.status);

    for status in [200, 401, 403, 503] {
        assert!(statuses.contains(&status), "no {status} compared");
    }
    f.handle.stop(false).await;
    handle_down.stop(false).await;
}

#[tokio::test]
async fn detailed_errors_reach_actix_and_tower_responses_alike() {
    let f = fixture().await;
    let token = f
        .key
        .token(&with(&claims(&f.idp), json!({"aud": "api://someone-else"})));
    let detailed = TokenValidator::builder(Authority::entra(&f.idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(f.clock.clone()))
        .detailed_errors(true)
        .build()
        .unwrap();
    detailed.refresh().await.unwrap();
    let (handle_detailed, actix_detailed) = serve_actix(detailed.clone(), policies());
    let axum_detailed = support::serve(axum_app(detailed, &policies())).await;
    let axum_default = support::serve(axum_app(f.validator.clone(), &policies())).await;
    struct Case {
        name: &'static str,
        base: String,
        detailed: bool,
    }
    let cases = [
        Case {
            name: "actix, default",
            base: f.actix.clone(),
            detailed: false,
        },
        Case {
            name: "tower, default",
            base: axum_default,
            detailed: false,
        },
        Case {
            name: "actix, detailed errors",
            base: actix_detailed,
            detailed: true,
        },
        Case {
            name: "tower, detailed errors",
            base: axum_detailed,
            detailed: true,
        },
    ];
    let mut answers = Vec::new();
    for case in &cases {
        let answer = get(&case.base, "/api/whoami", Some(&token), &[]).await;
        assert_eq!(answer.status, 401, "{}", case.name);
        let challenge = answer.www_authenticate.clone().unwrap_or_default();
        let description = answer.json()["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for text in [&challenge, &description] {
            assert!(
                text.contains("the audience is not accepted"),
                "{}: {text}",
                case.name
            );
            for value in ["api://someone-else", API] {
                assert_eq!(
                    text.contains(value),
                    case.detailed,
                    "{}: {value} in {text}",
                    case.name
                );
            }
        }
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1], "default: actix and tower alike");
    assert_eq!(answers[2], answers[3], "detailed: actix and tower alike");
    f.handle.stop(false).await;
    handle_detailed.stop(false).await;
}

/// `wrap()` on the `App` itself, in memory, and a custom rejection response.
#[actix_web::test]
async fn app_level_middlewares_and_a_custom_rejection() {
    use actix_web::test;
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let clock = ManualClock::at_unix(NOW);
    let validator = validator(&idp, &clock);
    validator.refresh().await.unwrap();

    let app = test::init_service(
        App::new()
            .route("/whoami", web::get().to(whoami))
            .wrap(RequirePolicyLayer::named(&policies(), POLICY).unwrap())
            .wrap(
                ValidateAccessTokenLayer::new(validator).with_rejection(|error: &AuthError| {
                    let mut response = rejection_response(&Rejection::unauthenticated(error));
                    response.headers_mut().insert(
                        actix_web::http::header::HeaderName::from_static("x-auth-failure"),
                        actix_web::http::header::HeaderValue::from_static(error.kind().as_str()),
                    );
                    response
                }),
            ),
    )
    .await;
    struct Case {
        name: &'static str,
        claims: Option<Value>,
        status: u16,
        failure: Option<&'static str>,
    }
    let good = claims(&idp);
    let cases = [
        Case {
            name: "accepted",
            claims: Some(good.clone()),
            status: 200,
            failure: None,
        },
        Case {
            name: "no token",
            claims: None,
            status: 401,
            failure: Some("missing_token"),
        },
        Case {
            name: "expired",
            claims: Some(with(
                &good,
                json!({"iat": NOW - 7200, "nbf": NOW - 7200, "exp": NOW - 3600}),
            )),
            status: 401,
            failure: Some("expired"),
        },
        Case {
            name: "forbidden: the custom rejection is for authentication only",
            claims: Some(with(&good, json!({"azpacr": "1"}))),
            status: 403,
            failure: None,
        },
    ];
    for case in cases {
        let mut request = test::TestRequest::get().uri("/whoami");
        if let Some(claims) = &case.claims {
            request =
                request.insert_header(("authorization", format!("Bearer {}", key.token(claims))));
        }
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        let failure = response
            .headers()
            .get("x-auth-failure")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(failure.as_deref(), case.failure, "{}", case.name);
    }
}

/// `HttpResponse` conversion keeps every header of a rejection, repeated ones included.
#[tokio::test]
async fn rejection_response_keeps_every_header() {
    let rejection = Rejection::json(http::StatusCode::TOO_MANY_REQUESTS, &json!({"a": 1}))
        .with_header(
            http::header::HeaderName::from_static("x-one"),
            http::HeaderValue::from_static("1"),
        )
        .with_header(
            http::header::HeaderName::from_static("x-one"),
            http::HeaderValue::from_static("2"),
        );
    let response: HttpResponse = rejection_response(&rejection);
    assert_eq!(response.status().as_u16(), 429);
    let values: Vec<_> = response.headers().get_all("x-one").collect();
    assert_eq!(values, ["1", "2"]);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap();
    assert_eq!(body, r#"{"a":1}"#);
}

/// Requests decided synchronously run the inner service's future directly (no box); only an
/// unknown key or an asynchronous handler boxes.
#[tokio::test]
async fn only_refreshes_and_async_handlers_box() {
    use actix_web::dev::{fn_service, Service, ServiceRequest, Transform};
    use actix_web::HttpMessage as _;

    let f = fixture().await;
    let inner = || {
        fn_service(|request: ServiceRequest| async move {
            Ok::<_, actix_web::Error>(request.into_response(HttpResponse::Ok().finish()))
        })
    };
    let validate = ValidateAccessTokenLayer::new(f.validator.clone())
        .new_transform(inner())
        .await
        .unwrap();
    let policy = RequirePolicyLayer::named(&policies(), POLICY)
        .unwrap()
        .new_transform(inner())
        .await
        .unwrap();
    let role = RequireRole("service-api")
        .new_transform(inner())
        .await
        .unwrap();

    struct Case {
        name: &'static str,
        middleware: &'static str,
        token: Option<String>,
        /// Claims put into the extensions (for the authorization middlewares).
        claims: Option<Value>,
        state: &'static str,
    }
    let good = claims(&f.idp);
    let unknown_kid = TestKey::generate("key-unknown").token(&good);
    let cases = [
        Case {
            name: "valid token",
            middleware: "validate",
            token: Some(f.key.token(&good)),
            claims: None,
            state: "inner",
        },
        Case {
            name: "no token",
            middleware: "validate",
            token: None,
            claims: None,
            state: "refused",
        },
        Case {
            name: "expired token",
            middleware: "validate",
            token: Some(f.key.token(&with(
                &good,
                json!({"iat": NOW - 7200, "nbf": NOW - 7200, "exp": NOW - 3600}),
            ))),
            claims: None,
            state: "refused",
        },
        Case {
            name: "unknown kid",
            middleware: "validate",
            token: Some(unknown_kid),
            claims: None,
            state: "boxed",
        },
        Case {
            name: "role present",
            middleware: "role",
            token: None,
            claims: Some(good.clone()),
            state: "inner",
        },
        Case {
            name: "role missing",
            middleware: "role",
            token: None,
            claims: Some(with(&good, json!({"roles": ["reader"]}))),
            state: "refused",
        },
        Case {
            name: "no claims",
            middleware: "policy",
            token: None,
            claims: None,
            state: "refused",
        },
        Case {
            name: "policy with an async handler",
            middleware: "policy",
            token: None,
            claims: Some(good.clone()),
            state: "boxed",
        },
    ];
    for case in cases {
        let mut request = actix_web::test::TestRequest::get().uri("/x");
        if let Some(token) = &case.token {
            request = request.insert_header(("authorization", format!("Bearer {token}")));
        }
        let request = request.to_srv_request();
        if let Some(claims) = case.claims {
            request
                .extensions_mut()
                .insert(Claims::from_json(claims).unwrap());
        }
        let debug = match case.middleware {
            "validate" => format!("{:?}", validate.call(request)),
            "policy" => format!("{:?}", policy.call(request)),
            _ => format!("{:?}", role.call(request)),
        };
        assert!(debug.contains(case.state), "{}: {debug}", case.name);
    }
    f.handle.stop(false).await;
}

/// The policies of the router-wide tests: the seed's policy for one route, a fallback for
/// every route that declares none.
fn policies_with_fallback() -> Policies {
    seed_policies_builder(CALLER)
        .fallback_policy(Policy::builder().require_role("reader").build())
        .build()
}

/// `PoliciesBuilder::fallback_policy` was stored and applied by no middleware: an `App`-wide
/// `AuthorizeLayer` applies it to the routes that declare no policy, the route's own policy where it
/// declares one, nothing on anonymous routes; the Tower `AuthorizeLayer` on axum answers the
/// same requests byte for byte the same.
#[tokio::test]
async fn app_wide_authorize_applies_the_fallback_policy_and_matches_tower() {
    let f = fixture().await;
    let policies = policies_with_fallback();
    let authorize = AuthorizeLayer::new(&policies)
        .route("/weatherforecast", POLICY)
        .unwrap()
        .anonymous("/healthz")
        .anonymous("/public/{name}");
    let tower_authorize = layers::AuthorizeLayer::new(&policies)
        .route("/weatherforecast", POLICY)
        .unwrap()
        .anonymous("/healthz")
        .anonymous("/public/{name}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let actix = format!("http://{}", listener.local_addr().unwrap());
    let validator = f.validator.clone();
    let server = HttpServer::new(move || {
        App::new()
            .route("/weatherforecast", web::get().to(ok))
            .route("/report", web::get().to(ok))
            .service(web::scope("/api").route("/items/{id}", web::get().to(ok)))
            .route("/healthz", web::get().to(ok))
            .route("/public/{name}", web::get().to(ok))
            .wrap(authorize.clone())
            .wrap(ValidateAccessTokenLayer::new(validator.clone()).defer_refusals())
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);

    let axum = {
        use axum::routing::get;
        support::serve(
            axum::Router::new()
                .route("/weatherforecast", get(ok))
                .route("/report", get(ok))
                .route("/api/items/{id}", get(ok))
                .route("/healthz", get(ok))
                .route("/public/{name}", get(ok))
                .layer(tower_authorize)
                .layer(layers::ValidateAccessTokenLayer::new(f.validator.clone()).defer_refusals()),
        )
        .await
    };

    let good = claims(&f.idp);
    let service = f.key.token(&good); // role service-api: the route's policy, not the fallback
    let reader = f.key.token(&with(&good, json!({"roles": ["reader"]})));
    let expired = f.key.token(&with(
        &good,
        json!({"roles": ["reader"], "iat": NOW - 7200, "nbf": NOW - 7200, "exp": NOW - 3600}),
    ));
    let forged = TestKey::generate("key-1").token(&good);
    let cases: [(&str, &str, Option<&str>, u16); 15] = [
        ("fallback: satisfied", "/report", Some(&reader), 200),
        (
            "fallback: a caller who fails it",
            "/report",
            Some(&service),
            403,
        ),
        ("fallback: no token", "/report", None, 401),
        ("fallback: an expired token", "/report", Some(&expired), 401),
        (
            "fallback in a scope, by pattern",
            "/api/items/7",
            Some(&service),
            403,
        ),
        (
            "fallback in a scope: satisfied",
            "/api/items/7",
            Some(&reader),
            200,
        ),
        (
            "fallback on a path no route matches",
            "/no-such-route",
            None,
            401,
        ),
        (
            "own policy: fails the fallback, passes its own",
            "/weatherforecast",
            Some(&service),
            200,
        ),
        (
            "own policy: passes the fallback, fails its own",
            "/weatherforecast",
            Some(&reader),
            403,
        ),
        ("own policy: no token", "/weatherforecast", None, 401),
        ("anonymous: no token", "/healthz", None, 200),
        (
            "anonymous: an expired token",
            "/healthz",
            Some(&expired),
            200,
        ),
        ("anonymous: a forged token", "/healthz", Some(&forged), 200),
        ("anonymous by pattern", "/public/x", None, 200),
        (
            "anonymous by pattern, forged token",
            "/public/y",
            Some(&forged),
            200,
        ),
    ];
    for (name, path, token, status) in cases {
        let on_actix = get(&actix, path, token, &[]).await;
        assert_eq!(on_actix.status, status, "{name}: {}", on_actix.text());
        let on_axum = get(&axum, path, token, &[]).await;
        assert_eq!(on_actix, on_axum, "{name}");
        match status {
            401 if token.is_none() => {
                assert_eq!(
                    on_actix.www_authenticate.as_deref(),
                    Some("Bearer"),
                    "{name}"
                )
            }
            401 => assert!(
                on_actix
                    .www_authenticate
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Bearer error=\"invalid_token\"")),
                "{name}: {:?}",
                on_actix.www_authenticate
            ),
            403 => assert_eq!(on_actix.json()["error"], "forbidden", "{name}"),
            _ => assert_eq!(on_actix.text(), "ok", "{name}"),
        }
    }
    handle.stop(false).await;
    f.handle.stop(false).await;
}

/// A deferred refusal reaches the client from the `Authenticated` extractor and a
/// resource's own middleware as the validation would have sent it (`invalid_token`).
#[tokio::test]
async fn deferred_refusals_are_answered_by_the_extractor_and_resource_middleware() {
    let f = fixture().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let validator = f.validator.clone();
    let server = HttpServer::new(move || {
        App::new()
            .route("/whoami", web::get().to(whoami))
            .route("/maybe", web::get().to(maybe))
            .service(
                web::resource("/role")
                    .route(web::get().to(ok))
                    .wrap(RequireRole("service-api")),
            )
            .wrap(ValidateAccessTokenLayer::new(validator.clone()).defer_refusals())
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    let expired = f.key.token(&with(
        &claims(&f.idp),
        json!({"iat": NOW - 7200, "nbf": NOW - 7200, "exp": NOW - 3600}),
    ));
    for path in ["/whoami", "/role"] {
        let answer = get(&base, path, Some(&expired), &[]).await;
        assert_eq!(answer.status, 401, "{path}: {}", answer.text());
        assert!(
            answer
                .www_authenticate
                .as_deref()
                .is_some_and(|c| c.starts_with("Bearer error=\"invalid_token\"")),
            "{path}: {:?}",
            answer.www_authenticate
        );
        assert_eq!(answer.json()["error"], "invalid_token", "{path}");
    }
    let answer = get(&base, "/maybe", Some(&expired), &[]).await;
    assert_eq!((answer.status, answer.text().as_str()), (200, "anonymous"));
    let good = f.key.token(&claims(&f.idp));
    let answer = get(&base, "/whoami", Some(&good), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    handle.stop(false).await;
    f.handle.stop(false).await;
}

/// The inbound `Authorization` header reached the handler as an ordinary header value, so
/// `Debug` of the request (and loggers that honour the flag) printed the token.
#[tokio::test]
async fn the_handler_sees_the_authorization_header_marked_sensitive() {
    async fn sensitive(request: HttpRequest) -> String {
        let values: Vec<bool> = request
            .headers()
            .get_all(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.is_sensitive())
            .collect();
        format!("{values:?}")
    }
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    // No keys fetched yet: the first request waits for a refresh, the second is synchronous.
    let validator = validator(&idp, &ManualClock::at_unix(NOW));
    let policies = Policies::builder().build();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .service(
                web::resource("/api")
                    .route(web::get().to(sensitive))
                    .wrap(ValidateAccessTokenLayer::new(validator.clone())),
            )
            .service(
                web::scope("/deferred")
                    .route("/open", web::get().to(sensitive))
                    .wrap(AuthorizeLayer::new(&policies).anonymous("/deferred/open"))
                    .wrap(ValidateAccessTokenLayer::new(validator.clone()).defer_refusals()),
            )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    let token = key.token(&claims(&idp));
    let forged = TestKey::generate("key-1").token(&claims(&idp));
    for (name, path, token) in [
        ("refresh path", "/api", &token),
        ("synchronous path", "/api", &token),
        ("anonymous route, refused token", "/deferred/open", &forged),
    ] {
        let answer = get(&base, path, Some(token), &[]).await;
        assert_eq!(
            (answer.status, answer.text().as_str()),
            (200, "[true]"),
            "{name}"
        );
    }
    handle.stop(false).await;
}

/// A client that disconnects while its request waits for a forced key refresh: actix-web
/// (told not to keep serving half-closed connections) drops the request mid-refresh. The
/// refresh goes on without it, so after a rotation and the minimum interval a token signed
/// by the new key is accepted. The dev authority's JWKS endpoint is made slow for this.
#[tokio::test]
async fn a_request_dropped_mid_refresh_does_not_switch_off_refresh_on_unknown_kid() {
    use entra_dev_authority::{
        DevApi, DevApplication, DevAuthority, Endpoint, Fault, IssueToken, KeepOld,
    };
    use tower_azure_auth::claims::TokenVersion;
    const GUARD: Duration = Duration::from_secs(30);

    let clock = ManualClock::now();
    let authority = DevAuthority::builder()
        .tenant_id(TENANT)
        .clock(Arc::new(clock.clone()))
        .api(
            DevApi::new(API)
                .app_roles(["service-api"])
                .token_version(TokenVersion::V2),
        )
        .application(DevApplication::new(CALLER).grant(API, ["service-api"]))
        .start()
        .await
        .unwrap();
    let token = || {
        authority
            .issue_token(&IssueToken::new(CALLER, API))
            .unwrap()
    };
    let validator =
        TokenValidator::builder(Authority::entra(&authority.instance(), TENANT).unwrap())
            .client_id(API)
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
    validator.refresh().await.unwrap();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new().service(
            web::scope("/api")
                .wrap(ValidateAccessTokenLayer::new(validator.clone()))
                .route("/whoami", web::get().to(whoami)),
        )
    })
    .workers(1)
    .h1_allow_half_closed(false)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    let answer = get(&base, "/api/whoami", Some(&token()), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());

    // A forged kid forces a refresh; the JWKS answers slowly; the client leaves meanwhile.
    let fetched = authority.request_count(Endpoint::Jwks);
    authority.inject_fault(Endpoint::Jwks, Fault::delay(Duration::from_secs(2)));
    let forged = {
        let real = token();
        let payload = real.split('.').nth(1).unwrap().to_owned();
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "forged-kid"});
        format!(
            "{}.{payload}.{}",
            support::b64(header.to_string().as_bytes()),
            support::b64(b"sig")
        )
    };
    let client = tokio::spawn({
        let base = base.clone();
        async move { get(&base, "/api/whoami", Some(&forged), &[]).await }
    });
    tokio::time::timeout(GUARD, async {
        while authority.request_count(Endpoint::Jwks) <= fetched {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the JWKS was never requested");
    client.abort();
    // Cancelled (a client finished already would have waited for the whole delay).
    let _ = client.await;

    // The authority rotates; past the minimum interval the new key's token is accepted.
    authority.rotate_signing_key(KeepOld::Yes).unwrap();
    clock.advance(Duration::from_secs(301));
    let answer = tokio::time::timeout(GUARD, get(&base, "/api/whoami", Some(&token()), &[]))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), format!("{CALLER} service-api"));
    handle.stop(false).await;
}

/// `/readyz` on actix-web over real HTTP: 503 until the signing keys are loaded from the
/// authority on 127.0.0.1, 200 once they are, and still 200 when a later refresh fails (the
/// keys held are served).
#[tokio::test]
async fn readyz_is_503_until_keys_are_loaded_and_200_while_they_are_served() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    idp.set_down(true);
    let validator = validator(&idp, &ManualClock::at_unix(NOW));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let probe_validator = validator.clone();
    let server = HttpServer::new(move || {
        App::new().route(
            "/readyz",
            actix_azure_auth::readiness(probe_validator.clone()),
        )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    let probe = || async {
        let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
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
    idp.set_down(false);
    validator.refresh().await.unwrap();
    let (status, body) = probe().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keys"], "loaded");
    idp.set_down(true);
    assert!(validator.refresh().await.is_err());
    let (status, body) = probe().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["last_refresh_failed"], true);
    handle.stop(true).await;
}
