//! The weather API examples over real HTTP on 127.0.0.1, with tokens from the dev authority:
//! the seed's policy case by case. The same cases run against every framework, and the answers
//! must be identical between frameworks.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use entra_dev_authority::{DevApi, DevApplication, DevAuthority, IssueToken};
use tower_azure_auth::claims::{ClientAuthentication, TokenVersion};
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::AzureAdOptions;

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const SERVICE: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const STRANGER: &str = "0a0a0a0a-1111-2222-3333-444444444444";
const OTHER_API: &str = "c3a1f7e2-9d4b-4e8a-b6c5-2f1e0d9c8b7a";

type Starter = fn(AzureAdOptions) -> Pin<Box<dyn Future<Output = String> + Send>>;

fn start_axum(options: AzureAdOptions) -> Pin<Box<dyn Future<Output = String> + Send>> {
    Box::pin(async move {
        let app = weather_api_axum::app(&options).expect("configured");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    })
}

fn start_actix(options: AzureAdOptions) -> Pin<Box<dyn Future<Output = String> + Send>> {
    Box::pin(async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (_handle, addr) = weather_api_actix::start(&options, listener)
            .await
            .expect("configured");
        format!("http://{addr}")
    })
}

/// Every framework the weather API is written for.
const FRAMEWORKS: &[(&str, Starter)] = &[("axum", start_axum), ("actix", start_actix)];

async fn authority() -> DevAuthority {
    DevAuthority::builder()
        .tenant_id(TENANT)
        .api(
            DevApi::new(SERVICE)
                .app_id_uri(format!("api://{SERVICE}"))
                .app_roles(["service-api", "weather.read"])
                .token_version(TokenVersion::V2),
        )
        .api(
            DevApi::new(OTHER_API)
                .app_id_uri("api://inventory")
                .app_roles(["inventory.read"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(SERVICE).grant(format!("api://{SERVICE}"), ["service-api"]),
        )
        .application(
            DevApplication::new(STRANGER).grant(format!("api://{SERVICE}"), ["service-api"]),
        )
        .start()
        .await
        .unwrap()
}

fn options(authority: &DevAuthority) -> AzureAdOptions {
    ConfigSource::new()
        .with_env([
            ("AzureAd__Instance".to_owned(), authority.instance()),
            ("AzureAd__TenantId".to_owned(), TENANT.to_owned()),
            ("AzureAd__ClientId".to_owned(), SERVICE.to_owned()),
        ])
        .section("AzureAd")
        .unwrap()
}

/// One answer, with what must match across frameworks.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    content_type: Option<String>,
    body: Option<String>,
}

struct Case {
    name: &'static str,
    path: &'static str,
    token: Option<String>,
    status: u16,
    /// Compare bodies across frameworks (not for the forecast, which is random).
    same_body: bool,
}

fn cases(authority: &DevAuthority) -> Vec<Case> {
    let token = |request: IssueToken| Some(authority.issue_token(&request).unwrap());
    let seed = || IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["service-api"]);
    let tampered = {
        let good = authority.issue_token(&seed()).unwrap();
        let (rest, signature) = good.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        Some(format!("{rest}.{flipped}{}", &signature[1..]))
    };
    vec![
        Case {
            name: "valid token",
            path: "/weatherforecast",
            token: token(seed()),
            status: 200,
            same_body: false,
        },
        Case {
            name: "v1 token (appid, appidacr)",
            path: "/weatherforecast",
            token: token(seed().version(TokenVersion::V1)),
            status: 200,
            same_body: false,
        },
        Case {
            name: "healthz without a token",
            path: "/healthz",
            token: None,
            status: 200,
            same_body: true,
        },
        Case {
            name: "no token",
            path: "/weatherforecast",
            token: None,
            status: 401,
            same_body: true,
        },
        Case {
            name: "bad signature",
            path: "/weatherforecast",
            token: tampered,
            status: 401,
            same_body: true,
        },
        Case {
            name: "expired",
            path: "/weatherforecast",
            token: token(
                seed()
                    .claim("exp", 1_000_000_000u64)
                    .claim("nbf", 999_000_000u64)
                    .claim("iat", 999_000_000u64),
            ),
            status: 401,
            same_body: false,
        },
        Case {
            name: "wrong audience",
            path: "/weatherforecast",
            token: token(IssueToken::new(SERVICE, "api://inventory").roles(["inventory.read"])),
            status: 401,
            same_body: true,
        },
        Case {
            name: "missing role",
            path: "/weatherforecast",
            token: token(
                IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["weather.read"]),
            ),
            status: 403,
            same_body: true,
        },
        Case {
            name: "azpacr 1 (a secret)",
            path: "/weatherforecast",
            token: token(seed().client_authentication(ClientAuthentication::Secret)),
            status: 403,
            same_body: true,
        },
        Case {
            name: "wrong azp",
            path: "/weatherforecast",
            token: token(
                IssueToken::new(STRANGER, format!("api://{SERVICE}")).roles(["service-api"]),
            ),
            status: 403,
            same_body: true,
        },
    ]
}

async fn ask(http: &reqwest::Client, base: &str, case: &Case) -> (Answer, String) {
    let mut request = http.get(format!("{base}{}", case.path));
    if let Some(token) = &case.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let status = response.status().as_u16();
    let www_authenticate = header("www-authenticate").map(|v| without_elapsed_seconds(&v));
    let content_type = header("content-type");
    let body = response.text().await.unwrap();
    (
        Answer {
            status,
            www_authenticate,
            content_type,
            body: case.same_body.then(|| without_elapsed_seconds(&body)),
        },
        body,
    )
}

/// An expired token's reason says how long ago it expired ("…, 796161985 s ago; …"), read from
/// the wall clock when each framework answers: the two answers may be a second apart. That one
/// number is replaced by `N` before answers are compared; every other byte must match.
pub(crate) fn without_elapsed_seconds(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" s ago") {
        let (before, after) = rest.split_at(at);
        let digits = before.len() - before.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push_str(&before[..before.len() - digits]);
            out.push('N');
        } else {
            out.push_str(before);
        }
        out.push_str(" s ago");
        rest = &after[" s ago".len()..];
    }
    out.push_str(rest);
    out
}

#[test]
fn elapsed_seconds_alone_are_masked() {
    assert_eq!(
        without_elapsed_seconds(
            "expired at 1000000000 (unix time), 796161985 s ago; 300 s of clock skew"
        ),
        "expired at 1000000000 (unix time), N s ago; 300 s of clock skew"
    );
    assert_eq!(without_elapsed_seconds("no time here"), "no time here");
    assert_eq!(without_elapsed_seconds(" s ago"), " s ago");
}

#[tokio::test]
async fn the_seed_policy_case_by_case_identical_in_every_framework() {
    let authority = authority().await;
    let cases = cases(&authority);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut answers: Vec<Vec<Answer>> = Vec::new();
    for (framework, start) in FRAMEWORKS {
        let base = start(options(&authority)).await;
        let mut mine = Vec::new();
        for case in &cases {
            let (answer, body) = ask(&http, &base, case).await;
            assert_eq!(
                answer.status, case.status,
                "{framework}: {}: {body}",
                case.name
            );
            match case.status {
                200 if case.path == "/weatherforecast" => {
                    let forecast: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let days = forecast.as_array().unwrap();
                    assert_eq!(days.len(), 5, "{framework}: {}", case.name);
                    for day in days {
                        for field in ["date", "temperatureC", "temperatureF", "summary"] {
                            assert!(
                                day.get(field).is_some(),
                                "{framework}: {}: {field}",
                                case.name
                            );
                        }
                    }
                }
                401 => {
                    let challenge = answer.www_authenticate.clone().unwrap_or_default();
                    if case.token.is_none() {
                        assert_eq!(challenge, "Bearer", "{framework}: {}", case.name);
                    } else {
                        assert!(
                            challenge.starts_with(
                                "Bearer error=\"invalid_token\", error_description=\""
                            ),
                            "{framework}: {}: {challenge}",
                            case.name
                        );
                    }
                }
                403 => {
                    assert_eq!(answer.www_authenticate, None, "{framework}: {}", case.name);
                    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(body["error"], "forbidden", "{framework}: {}", case.name);
                    assert!(
                        body["failed_requirements"]
                            .as_array()
                            .is_some_and(|f| f.len() == 1),
                        "{framework}: {}: {body}",
                        case.name
                    );
                }
                _ => {}
            }
            mine.push(answer);
        }
        answers.push(mine);
    }
    for (i, other) in answers.iter().enumerate().skip(1) {
        for (case, (a, b)) in cases.iter().zip(answers[0].iter().zip(other)) {
            assert_eq!(
                a, b,
                "{} vs {}: {}",
                FRAMEWORKS[0].0, FRAMEWORKS[i].0, case.name
            );
        }
    }
}
