//! Token validation over real HTTP: a metadata + JWKS server on 127.0.0.1 with keys generated
//! here, an axum app behind `ValidateAccessTokenLayer`, and tokens signed in the test.
// The app's handler takes the `Claims` extractor.
#![cfg(feature = "axum")]

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use support::{b64, serve, CountingServer, TestIdp, TestKey};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::layers::ValidateAccessTokenLayer;
use tower_azure_auth::{AuthErrorKind, Authority, Claims, TokenValidator};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const CALLER: &str = "11111111-2222-3333-4444-555555555555";
const NOW: u64 = 1_800_000_000;

struct Fixture {
    idp: TestIdp,
    key: TestKey,
    validator: TokenValidator,
    clock: ManualClock,
    url: String,
}

fn claims_v2(idp: &TestIdp) -> Value {
    json!({
        "aud": API,
        "iss": idp.issuer_v2(),
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "aio": "aio",
        "azp": CALLER,
        "azpacr": "2",
        "oid": "o1",
        "rh": "rh",
        "roles": ["service-api"],
        "sub": "o1",
        "tid": TENANT,
        "uti": "uti",
        "ver": "2.0",
    })
}

async fn fixture() -> Fixture {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let clock = ManualClock::at_unix(NOW);
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    validator.refresh().await.unwrap();
    let url = serve(app(validator.clone())).await;
    Fixture {
        idp,
        key,
        validator,
        clock,
        url,
    }
}

fn app(validator: TokenValidator) -> Router {
    Router::new()
        .route(
            "/whoami",
            get(|claims: Claims| async move { claims.client_id().unwrap_or_default().to_owned() }),
        )
        .layer(ValidateAccessTokenLayer::new(validator))
}

async fn call(url: &str, token: Option<&str>) -> (u16, Option<String>, String) {
    let values: Vec<String> = token.map(|t| format!("Bearer {t}")).into_iter().collect();
    call_with(url, &values).await
}

/// `GET /whoami` with these `Authorization` values (each its own header).
async fn call_with(url: &str, authorization: &[String]) -> (u16, Option<String>, String) {
    let client = reqwest::Client::new();
    let mut request = client.get(format!("{url}/whoami"));
    for value in authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, response.text().await.unwrap())
}

#[tokio::test]
async fn accepted_token_reaches_the_handler_with_claims() {
    let f = fixture().await;
    let token = f.key.token(&claims_v2(&f.idp));
    let (status, challenge, body) = call(&f.url, Some(&token)).await;
    assert_eq!(status, 200, "{challenge:?}");
    assert_eq!(body, CALLER);
}

/// A cached token skips the header's byte checks (`bearer_candidate`): every way of
/// sending it that the full parse accepts or refuses gets the same answer once it is cached,
/// and an expiry after caching is still refused.
#[tokio::test]
async fn a_cached_token_gets_the_answers_of_the_full_header_parse() {
    let f = fixture().await;
    let token = f.key.token(&claims_v2(&f.idp));
    let (status, challenge, _) = call(&f.url, Some(&token)).await;
    assert_eq!(status, 200, "first, uncached: {challenge:?}");
    assert_eq!(f.validator.cached_tokens(), 1);
    let cases: Vec<(&str, Vec<String>, u16)> = vec![
        ("as sent", vec![format!("Bearer {token}")], 200),
        ("lower-case scheme", vec![format!("bearer {token}")], 200),
        ("upper-case scheme", vec![format!("BEARER {token}")], 200),
        ("two spaces", vec![format!("Bearer  {token}")], 200),
        ("padding", vec![format!("Bearer {token}==")], 401),
        (
            "a character after it",
            vec![format!("Bearer {token}!")],
            401,
        ),
        ("another scheme", vec![format!("Basic {token}")], 401),
        (
            "two Authorization headers",
            vec![format!("Bearer {token}"), format!("Bearer {token}")],
            401,
        ),
    ];
    for (name, values, expected) in cases {
        let (status, challenge, _) = call_with(&f.url, &values).await;
        assert_eq!(status, expected, "{name}: {challenge:?}");
    }
    let (_, challenge, _) = call_with(
        &f.url,
        &[format!("Bearer {token}"), format!("Bearer {token}")],
    )
    .await;
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.contains("invalid_request") || c.contains("invalid_token")),
        "{challenge:?}"
    );
    // Expired while cached: refused on the fast path too, and dropped from the cache.
    f.clock.advance(std::time::Duration::from_secs(3600 + 301));
    let (status, challenge, _) = call(&f.url, Some(&token)).await;
    assert_eq!(status, 401, "{challenge:?}");
    assert!(
        challenge.as_deref().is_some_and(|c| c.contains("expired")),
        "{challenge:?}"
    );
    assert_eq!(f.validator.cached_tokens(), 0);
}

#[tokio::test]
async fn v1_token_with_api_uri_audience_is_accepted() {
    let f = fixture().await;
    let mut claims = claims_v2(&f.idp);
    claims["ver"] = json!("1.0");
    claims["iss"] = json!(f.idp.issuer_v1());
    claims["aud"] = json!(format!("api://{API}"));
    let claims = claims.as_object_mut().unwrap();
    claims.remove("azp");
    claims.insert("appid".into(), json!(CALLER));
    let token = f.key.token(&Value::Object(claims.clone()));
    let (status, challenge, body) = call(&f.url, Some(&token)).await;
    assert_eq!(status, 200, "{challenge:?}");
    assert_eq!(body, CALLER);
}

#[tokio::test]
async fn hostile_tokens_get_401_never_5xx() {
    let f = fixture().await;
    let jku = CountingServer::start().await;
    let attacker = TestKey::generate("key-1");
    let good = claims_v2(&f.idp);
    let with = |patch: Value| {
        let mut claims = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let header_b64 = |header: Value| b64(header.to_string().as_bytes());
    let hs256 = {
        let header = header_b64(json!({"alg": "HS256", "typ": "JWT", "kid": "key-1"}));
        let payload = b64(good.to_string().as_bytes());
        let message = format!("{header}.{payload}");
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &f.key.public_der());
        let tag = aws_lc_rs::hmac::sign(&key, message.as_bytes());
        format!("{message}.{}", b64(tag.as_ref()))
    };
    let none = format!(
        "{}.{}.",
        header_b64(json!({"alg": "none", "typ": "JWT"})),
        b64(good.to_string().as_bytes())
    );

    struct Case {
        name: &'static str,
        token: String,
        kind: AuthErrorKind,
    }
    let cases = [
        Case { name: "alg none", token: none, kind: AuthErrorKind::DisallowedAlgorithm },
        Case { name: "HS256 with the RSA public key as secret", token: hs256, kind: AuthErrorKind::DisallowedAlgorithm },
        Case {
            name: "unknown kid",
            token: f.key.sign(&json!({"alg": "RS256", "kid": "nobody"}), &good),
            kind: AuthErrorKind::UnknownSigningKey,
        },
        Case { name: "expired", token: f.key.token(&with(json!({"exp": NOW - 301, "nbf": NOW - 4000}))), kind: AuthErrorKind::Expired },
        Case { name: "nbf in the future", token: f.key.token(&with(json!({"nbf": NOW + 301}))), kind: AuthErrorKind::NotYetValid },
        Case { name: "no exp", token: f.key.token(&with(json!({"exp": null}))), kind: AuthErrorKind::InvalidClaim },
        Case { name: "exp not a number", token: f.key.token(&with(json!({"exp": "soon"}))), kind: AuthErrorKind::InvalidClaim },
        Case {
            name: "wrong iss",
            token: f.key.token(&with(json!({"iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0")}))),
            kind: AuthErrorKind::InvalidIssuer,
        },
        Case {
            name: "wrong tid",
            token: f.key.token(&with(json!({"tid": "99999999-9999-9999-9999-999999999999"}))),
            kind: AuthErrorKind::InvalidTenant,
        },
        Case { name: "no tid", token: f.key.token(&with(json!({"tid": null}))), kind: AuthErrorKind::InvalidTenant },
        Case { name: "wrong aud", token: f.key.token(&with(json!({"aud": "api://someone-else"}))), kind: AuthErrorKind::InvalidAudience },
        Case {
            name: "v1 audience on a v2 token",
            token: f.key.token(&with(json!({"aud": format!("api://{API}")}))),
            kind: AuthErrorKind::InvalidAudience,
        },
        Case { name: "neither roles nor scp", token: f.key.token(&with(json!({"roles": null}))), kind: AuthErrorKind::InvalidClaim },
        Case { name: "roles of the wrong type", token: f.key.token(&with(json!({"roles": [1, 2]}))), kind: AuthErrorKind::InvalidClaim },
        Case {
            name: "a 100 KiB token",
            token: f.key.token(&with(json!({"padding": "x".repeat(100 * 1024)}))),
            kind: AuthErrorKind::TokenTooLarge,
        },
        Case { name: "bad base64", token: "ab+c.de/f.gh+i".into(), kind: AuthErrorKind::MalformedToken },
        Case {
            name: "header not JSON",
            token: format!("{}.{}.{}", b64(b"not json"), b64(b"{}"), b64(b"sig")),
            kind: AuthErrorKind::MalformedToken,
        },
        Case {
            name: "payload not JSON",
            token: {
                let header = header_b64(json!({"alg": "RS256", "kid": "key-1"}));
                let t = f.key.sign(&json!({"alg": "RS256", "kid": "key-1"}), &json!({}));
                let sig = t.rsplit('.').next().unwrap().to_owned();
                format!("{header}.{}.{sig}", b64(b"[1,2"))
            },
            kind: AuthErrorKind::InvalidSignature,
        },
        Case { name: "two parts", token: "abc.def".into(), kind: AuthErrorKind::MalformedToken },
        Case {
            name: "signature from another key under the same kid",
            token: attacker.token(&good),
            kind: AuthErrorKind::InvalidSignature,
        },
        Case {
            name: "embedded jwk header with the attacker's own key",
            token: attacker.sign(&json!({"alg": "RS256", "kid": "attacker", "jwk": attacker.jwk()}), &good),
            kind: AuthErrorKind::UnknownSigningKey,
        },
        Case {
            name: "jku header pointing at a server the attacker runs",
            token: attacker.sign(
                &json!({"alg": "RS256", "kid": "attacker", "jku": format!("http://{}/keys", jku.addr)}),
                &good,
            ),
            kind: AuthErrorKind::UnknownSigningKey,
        },
        Case {
            name: "x5c header with the attacker's certificate",
            token: attacker.sign(&json!({"alg": "RS256", "x5c": ["MIIB"], "kid": "key-1"}), &good),
            kind: AuthErrorKind::InvalidSignature,
        },
        Case {
            name: "crit header",
            token: f.key.sign(&json!({"alg": "RS256", "kid": "key-1", "crit": ["exp"]}), &good),
            kind: AuthErrorKind::MalformedToken,
        },
    ];
    for case in cases {
        let error = f.validator.validate(&case.token).await.unwrap_err();
        assert_eq!(error.kind(), case.kind, "{}: {error}", case.name);
        let (status, challenge, _) = call(&f.url, Some(&case.token)).await;
        let expected_status = if case.kind == AuthErrorKind::TokenTooLarge {
            [401, 431]
        } else {
            [401, 401]
        };
        assert!(
            expected_status.contains(&status),
            "{}: status {status}",
            case.name
        );
        if status == 401 {
            let challenge = challenge.unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
                "{}: {challenge}",
                case.name
            );
            assert!(
                !challenge.contains(&case.token[..case.token.len().min(40)]),
                "{}: token echoed",
                case.name
            );
        }
    }
    assert_eq!(jku.hits(), 0, "the jku server must never be contacted");
}

/// A validator builder for the fixture's authority, with its clock.
fn entra_builder(idp: &TestIdp) -> tower_azure_auth::validation::TokenValidatorBuilder {
    TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
}

/// `claims` with the members of `patch` replaced (a `null` in `patch` removes the claim).
fn patched(claims: &Value, patch: Value) -> Value {
    let mut claims = claims.clone();
    let Value::Object(patch) = patch else {
        panic!("a patch is a JSON object: {patch}")
    };
    for (name, value) in patch {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(&name);
        } else {
            claims[name] = value;
        }
    }
    claims
}

#[tokio::test]
async fn a_crit_header_is_refused_even_when_null_or_empty() {
    let f = fixture().await;
    let good = claims_v2(&f.idp);
    struct Case {
        name: &'static str,
        crit: Value,
    }
    let cases = [
        Case {
            name: "crit null",
            crit: Value::Null,
        },
        Case {
            name: "crit empty",
            crit: json!([]),
        },
        Case {
            name: "crit naming a registered parameter",
            crit: json!(["exp"]),
        },
        Case {
            name: "crit naming an extension",
            crit: json!(["b64"]),
        },
        Case {
            name: "crit not a list",
            crit: json!("b64"),
        },
    ];
    for case in cases {
        let token = f.key.sign(
            &json!({"alg": "RS256", "typ": "JWT", "kid": "key-1", "crit": case.crit}),
            &good,
        );
        let (status, challenge, _) = call(&f.url, Some(&token)).await;
        assert_eq!(status, 401, "{}: {challenge:?}", case.name);
        let error = f.validator.validate(&token).await.unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::MalformedToken, "{}", case.name);
        assert!(error.reason().contains("crit"), "{}: {error}", case.name);
    }
    // The same token without `crit` is accepted.
    let (status, challenge, _) = call(&f.url, Some(&f.key.token(&good))).await;
    assert_eq!(status, 200, "{challenge:?}");
}

#[tokio::test]
async fn a_null_or_empty_scp_is_no_permission() {
    let f = fixture().await;
    let good = claims_v2(&f.idp);
    struct Case {
        name: &'static str,
        patch: Value,
        status: u16,
    }
    let cases = [
        Case {
            name: "scp null, no roles",
            patch: json!({"roles": null, "scp": Value::Null}),
            status: 401,
        },
        Case {
            name: "scp empty, no roles",
            patch: json!({"roles": null, "scp": ""}),
            status: 401,
        },
        Case {
            name: "scp blank, no roles",
            patch: json!({"roles": null, "scp": "  "}),
            status: 401,
        },
        Case {
            name: "scp not a string, no roles",
            patch: json!({"roles": null, "scp": ["read"]}),
            status: 401,
        },
        Case {
            name: "roles empty, no scp",
            patch: json!({"roles": []}),
            status: 401,
        },
        Case {
            name: "a scope, no roles",
            patch: json!({"roles": null, "scp": "access_as_user"}),
            status: 200,
        },
        Case {
            name: "scp null, with a role",
            patch: json!({"scp": Value::Null}),
            status: 200,
        },
    ];
    for case in cases {
        // `patched` removes a claim given as null; `scp: null` must be sent as null.
        let mut claims = patched(&good, case.patch.clone());
        if case.patch.get("scp") == Some(&Value::Null) {
            claims["scp"] = Value::Null;
        }
        let token = f.key.token(&claims);
        let (status, challenge, _) = call(&f.url, Some(&token)).await;
        assert_eq!(status, case.status, "{}: {challenge:?}", case.name);
        if status == 401 {
            let challenge = challenge.unwrap_or_default();
            assert!(challenge.contains("IDW10201"), "{}: {challenge}", case.name);
        }
    }
}

#[tokio::test]
async fn iat_in_the_future_and_lifetimes_over_two_days_are_refused() {
    let f = fixture().await;
    let good = claims_v2(&f.idp);
    const DAY: u64 = 24 * 3600;
    struct Case {
        name: &'static str,
        patch: Value,
        result: Result<(), AuthErrorKind>,
    }
    let cases = [
        Case {
            name: "iat within the leeway",
            patch: json!({"iat": NOW + 299, "nbf": NOW - 60}),
            result: Ok(()),
        },
        Case {
            name: "iat after now + leeway",
            patch: json!({"iat": NOW + 301, "nbf": NOW - 60}),
            result: Err(AuthErrorKind::NotYetValid),
        },
        Case {
            name: "iat far in the future, no nbf",
            patch: json!({"iat": NOW + 30 * DAY, "nbf": null, "exp": NOW + 30 * DAY + 3600}),
            result: Err(AuthErrorKind::NotYetValid),
        },
        Case {
            name: "iat not a NumericDate",
            patch: json!({"iat": "yesterday"}),
            result: Err(AuthErrorKind::InvalidClaim),
        },
        Case {
            name: "28 hours (Entra's longest, with continuous access evaluation)",
            patch: json!({"exp": NOW - 60 + 28 * 3600}),
            result: Ok(()),
        },
        Case {
            name: "exactly 2 days",
            patch: json!({"exp": NOW - 60 + 2 * DAY}),
            result: Ok(()),
        },
        Case {
            name: "2 days and a second after iat and nbf",
            patch: json!({"exp": NOW - 60 + 2 * DAY + 1}),
            result: Err(AuthErrorKind::InvalidClaim),
        },
        Case {
            name: "ten years",
            patch: json!({"exp": NOW + 3650 * DAY}),
            result: Err(AuthErrorKind::InvalidClaim),
        },
        Case {
            name: "issued 3 days ago, valid one more hour",
            patch: json!({"iat": NOW - 3 * DAY, "nbf": null, "exp": NOW + 3600}),
            result: Err(AuthErrorKind::InvalidClaim),
        },
        Case {
            name: "neither iat nor nbf: counted from now",
            patch: json!({"iat": null, "nbf": null, "exp": NOW + 3 * DAY}),
            result: Err(AuthErrorKind::InvalidClaim),
        },
        Case {
            name: "neither iat nor nbf, one hour left",
            patch: json!({"iat": null, "nbf": null, "exp": NOW + 3600}),
            result: Ok(()),
        },
    ];
    for case in cases {
        let token = f.key.token(&patched(&good, case.patch));
        let (status, challenge, _) = call(&f.url, Some(&token)).await;
        let expected = if case.result.is_ok() { 200 } else { 401 };
        assert_eq!(status, expected, "{}: {challenge:?}", case.name);
        let result = f.validator.validate(&token).await.map(|_| ());
        assert_eq!(result.map_err(|e| e.kind()), case.result, "{}", case.name);
    }

    // The cap is configurable.
    let strict = entra_builder(&f.idp)
        .max_token_lifetime(Duration::from_secs(3600))
        .build()
        .unwrap();
    strict.refresh().await.unwrap();
    let ok = f
        .key
        .token(&patched(&good, json!({"exp": NOW - 60 + 3600})));
    assert!(strict.validate(&ok).await.is_ok());
    let long = f
        .key
        .token(&patched(&good, json!({"exp": NOW - 60 + 3601})));
    let error = strict.validate(&long).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::InvalidClaim, "{error}");
    assert!(error.reason().contains("lifetime"), "{error}");
}

#[tokio::test]
async fn allowed_tenants_are_trimmed_and_compared_ignoring_case() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let tenant = "0f0f0f0f-abcd-4000-8000-00000000000a";
    struct Case {
        name: &'static str,
        allowed: &'static [&'static str],
        ok: bool,
    }
    let cases = [
        Case {
            name: "as sent",
            allowed: &["0f0f0f0f-abcd-4000-8000-00000000000a"],
            ok: true,
        },
        Case {
            name: "upper case",
            allowed: &["0F0F0F0F-ABCD-4000-8000-00000000000A"],
            ok: true,
        },
        Case {
            name: "padded, among blanks",
            allowed: &["", "  0f0f0f0f-abcd-4000-8000-00000000000a\n", " "],
            ok: true,
        },
        Case {
            name: "another tenant",
            allowed: &["0f0f0f0f-abcd-4000-8000-00000000000b"],
            ok: false,
        },
    ];
    let mut claims = claims_v2(&idp);
    claims["tid"] = json!(tenant);
    claims["iss"] = json!(format!("http://{}/{tenant}/v2.0", idp.addr));
    let token = key.token(&claims);
    for case in cases {
        // From configuration, as a user writes it.
        let settings = json!({"AzureAd": {
            "Instance": idp.instance(),
            "TenantId": "organizations",
            "ClientId": API,
            "AllowedTenants": case.allowed,
        }});
        let options: tower_azure_auth::AzureAdOptions =
            tower_azure_auth::config::ConfigSource::from_json_str(&settings.to_string())
                .and_then(|source| source.section("AzureAd"))
                .unwrap();
        let validator = TokenValidator::from_options(&options)
            .unwrap()
            .clock(Arc::new(ManualClock::at_unix(NOW)))
            .build()
            .unwrap();
        validator.refresh().await.unwrap();
        let url = serve(app(validator)).await;
        let (status, challenge, _) = call(&url, Some(&token)).await;
        assert_eq!(
            status,
            if case.ok { 200 } else { 401 },
            "{}: {challenge:?}",
            case.name
        );
    }
}

/// A non-Entra OpenID Connect authority: the test IdP's `/{tenant}/v2.0` path as its URL.
fn oidc_authority(idp: &TestIdp, host: &str) -> Authority {
    Authority::oidc(&format!("http://{host}:{}/{TENANT}/v2.0", idp.addr.port())).unwrap()
}

#[tokio::test]
async fn a_non_entra_authority_must_publish_its_own_url_as_issuer() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let token = key.token(&claims_v2(&idp));
    let validator = |authority: Authority| {
        TokenValidator::builder(authority)
            .client_id(API)
            .clock(Arc::new(ManualClock::at_unix(NOW)))
    };

    // The metadata's issuer is the authority (a trailing slash aside): keys are used.
    for url in [
        format!("http://{}/{TENANT}/v2.0", idp.addr),
        format!("http://{}/{TENANT}/v2.0/", idp.addr),
    ] {
        let v = validator(Authority::oidc(&url).unwrap()).build().unwrap();
        v.refresh().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(v.validate(&token).await.is_ok(), "{url}");
    }

    // Fetched from `localhost`, the metadata says its issuer is `127.0.0.1`: refused, and no
    // key is ever used (503 over HTTP).
    let lying = validator(oidc_authority(&idp, "localhost"))
        .build()
        .unwrap();
    let error = lying.refresh().await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is not the configured authority"),
        "{error}"
    );
    assert!(!lying.has_keys());
    let url = serve(app(lying)).await;
    let (status, _, _) = call(&url, Some(&token)).await;
    assert_eq!(status, 503);

    // Opted out: the metadata's issuer is what tokens must carry.
    let trusting = validator(oidc_authority(&idp, "localhost"))
        .validate_metadata_issuer(false)
        .build()
        .unwrap();
    trusting.refresh().await.unwrap();
    assert!(trusting.validate(&token).await.is_ok());
}

#[tokio::test]
async fn the_api_uri_audience_default_is_for_entra_authorities_only() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let v1_style = |iss: String| {
        let mut claims = claims_v2(&idp);
        claims["aud"] = json!(format!("api://{API}"));
        claims["ver"] = json!("1.0");
        claims["iss"] = json!(iss);
        claims
    };
    // Entra: a v1 token for api://ClientId is accepted (Microsoft.Identity.Web's default).
    let entra = entra_builder(&idp).build().unwrap();
    entra.refresh().await.unwrap();
    assert!(entra
        .validate(&key.token(&v1_style(idp.issuer_v1())))
        .await
        .is_ok());

    // Another OpenID Connect authority: only ClientId itself, whatever the `ver`.
    let oidc = TokenValidator::builder(oidc_authority(&idp, "127.0.0.1"))
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .build()
        .unwrap();
    oidc.refresh().await.unwrap();
    let url = serve(app(oidc.clone())).await;
    for (name, claims) in [
        ("ver 1.0", v1_style(idp.issuer_v2())),
        (
            "no ver",
            patched(&v1_style(idp.issuer_v2()), json!({"ver": null})),
        ),
    ] {
        let token = key.token(&claims);
        let error = oidc.validate(&token).await.unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::InvalidAudience, "{name}");
        let (status, _, _) = call(&url, Some(&token)).await;
        assert_eq!(status, 401, "{name}");
    }
    let (status, challenge, _) = call(&url, Some(&key.token(&claims_v2(&idp)))).await;
    assert_eq!(status, 200, "aud ClientId: {challenge:?}");
}

/// Values that identify the caller or the API, which a default 401 must not carry.
fn identifying_values(idp: &TestIdp) -> Vec<String> {
    vec![
        TENANT.to_owned(),
        API.to_owned(),
        idp.addr.to_string(),
        "someone-else".to_owned(),
        "99999999-9999-9999-9999-999999999999".to_owned(),
        "forged-kid".to_owned(),
    ]
}

/// Tokens refused by a check whose message used to carry such values.
fn identifying_refusals(f: &Fixture) -> Vec<(&'static str, String)> {
    let good = claims_v2(&f.idp);
    vec![
        (
            "audience",
            f.key
                .token(&patched(&good, json!({"aud": "api://someone-else"}))),
        ),
        (
            "issuer",
            f.key.token(&patched(
                &good,
                json!({"iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0")}),
            )),
        ),
        (
            "tenant",
            f.key.token(&patched(
                &good,
                json!({"tid": "99999999-9999-9999-9999-999999999999"}),
            )),
        ),
        (
            "signing key",
            f.key
                .sign(&json!({"alg": "RS256", "kid": "forged-kid"}), &good),
        ),
    ]
}

#[tokio::test]
async fn a_401_names_the_failed_check_without_the_values_by_default() {
    let f = fixture().await;
    let secret = identifying_values(&f.idp);
    for (check, token) in identifying_refusals(&f) {
        let (status, challenge, body) = call(&f.url, Some(&token)).await;
        assert_eq!(status, 401, "{check}");
        let challenge = challenge.unwrap_or_default();
        assert!(challenge.contains(check), "{check}: {challenge}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(check), "{check}: {description}");
        for value in &secret {
            assert!(
                !challenge.contains(value.as_str()),
                "{check}: {value} in {challenge}"
            );
            assert!(
                !description.contains(value.as_str()),
                "{check}: {value} in {description}"
            );
        }
        let error = f.validator.validate(&token).await.unwrap_err();
        assert_eq!(
            error.detail(),
            None,
            "{check}: no detail without PII logging"
        );
    }
    let (_, challenge, _) = call(&f.url, Some(&identifying_refusals(&f)[0].1)).await;
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer error=\"invalid_token\", error_description=\"the audience is not accepted\"")
    );
}

#[tokio::test]
async fn detailed_errors_put_expected_and_actual_values_in_the_401() {
    let f = fixture().await;
    let detailed = entra_builder(&f.idp).detailed_errors(true).build().unwrap();
    detailed.refresh().await.unwrap();
    let url = serve(app(detailed.clone())).await;
    let token = identifying_refusals(&f)[0].1.clone();
    let (status, challenge, body) = call(&url, Some(&token)).await;
    assert_eq!(status, 401);
    let challenge = challenge.unwrap_or_default();
    assert!(
        challenge.starts_with(
            "Bearer error=\"invalid_token\", error_description=\"the audience is not accepted: the audience 'api://someone-else' is not accepted; expected '"
        ),
        "{challenge}"
    );
    assert!(challenge.contains(API), "{challenge}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("api://someone-else") && d.contains(API)),
        "{body}"
    );

    // PII logging alone keeps the values in the error (and the log), not in the response.
    let pii = entra_builder(&f.idp)
        .enable_pii_logging(true)
        .build()
        .unwrap();
    pii.refresh().await.unwrap();
    let url = serve(app(pii.clone())).await;
    let (_, challenge, body) = call(&url, Some(&token)).await;
    let challenge = challenge.unwrap_or_default();
    assert!(!challenge.contains("someone-else"), "{challenge}");
    assert!(!body.contains("someone-else"), "{body}");
    let error = pii.validate(&token).await.unwrap_err();
    assert!(
        error
            .detail()
            .is_some_and(|d| d.contains("api://someone-else")),
        "{error:?}"
    );
}

/// Everything logged while it is the thread's subscriber, as text.
#[derive(Clone, Default)]
struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends each refused token to an app on `validator` (served on this current-thread runtime,
/// so the server's logs go to this thread's subscriber) and returns what was logged.
async fn logged_refusals(validator: TokenValidator, tokens: &[String]) -> String {
    let log = CapturedLog::default();
    let writer = log.clone();
    // Everything this library logs (the HTTP stack's own logs name addresses, not claims).
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("tower_azure_auth=trace"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let url = serve(app(validator)).await;
    for token in tokens {
        let (status, _, _) = call(&url, Some(token)).await;
        assert_eq!(status, 401);
    }
    log.text()
}

#[tokio::test(flavor = "current_thread")]
async fn refusals_log_no_claim_values_with_pii_logging_off() {
    let f = fixture().await;
    let tokens: Vec<String> = identifying_refusals(&f)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let secret = identifying_values(&f.idp);

    let log = logged_refusals(f.validator.clone(), &tokens).await;
    // The refusals' lines (a key refresh, which the forged kid causes, logs the authority's
    // own issuer: configuration, not the caller's claims).
    let refusals: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("token rejected") || line.contains("refused"))
        .collect();
    assert!(refusals.len() >= tokens.len(), "{log}");
    for value in &secret {
        for line in &refusals {
            assert!(
                !line.contains(value.as_str()),
                "{value} logged with PII off: {line}"
            );
        }
    }

    // With PII logging on, the same refusals log the values (so the capture does see them).
    let pii = entra_builder(&f.idp)
        .enable_pii_logging(true)
        .build()
        .unwrap();
    pii.refresh().await.unwrap();
    let log = logged_refusals(pii, &tokens).await;
    for value in [
        "someone-else",
        "99999999-9999-9999-9999-999999999999",
        "forged-kid",
    ] {
        assert!(
            log.contains(value),
            "{value} not logged with PII on:\n{log}"
        );
    }
}

/// `AllowedClientIds` in an ordinary service (not the weather example): a router of its own,
/// configured from JSON, tokens from the dev authority's token endpoint for two applications.
#[cfg(feature = "axum")]
#[tokio::test]
async fn allowed_client_ids_from_configuration_refuse_other_callers_with_401() {
    use entra_dev_authority::{DevApi, DevApplication, DevAuthority, IssueToken};
    use tower_azure_auth::claims::TokenVersion;
    use tower_azure_auth::config::ConfigSource;
    use tower_azure_auth::credentials::ConfidentialClient;
    use tower_azure_auth::layers::RequireRole;

    const INVENTORY: &str = "3c1d2e4f-0000-4000-8000-000000000c01";
    const ALLOWED: &str = "5e6f7a8b-0000-4000-8000-0000000000a1";
    const OTHER: &str = "5e6f7a8b-0000-4000-8000-0000000000b2";
    const SECRET: &str = "dev-secret-value";
    let resource = format!("api://{INVENTORY}");
    let authority = DevAuthority::builder()
        .tenant_id(TENANT)
        .api(
            DevApi::new(INVENTORY)
                .app_id_uri(&resource)
                .app_roles(["inventory.read"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(ALLOWED)
                .secret(SECRET)
                .grant(&resource, ["inventory.read"]),
        )
        .application(
            DevApplication::new(OTHER)
                .secret(SECRET)
                .grant(&resource, ["inventory.read"]),
        )
        .start()
        .await
        .unwrap();
    // As a user writes it: upper case and padded.
    let settings = json!({"AzureAd": {
        "Instance": authority.instance(),
        "TenantId": TENANT,
        "ClientId": INVENTORY,
        "AllowedClientIds": [format!(" {} ", ALLOWED.to_uppercase())],
    }});
    let options: tower_azure_auth::AzureAdOptions =
        ConfigSource::from_json_str(&settings.to_string())
            .and_then(|source| source.section("AzureAd"))
            .unwrap();
    let validator = TokenValidator::new(&options).unwrap();
    let app = Router::new()
        .route(
            "/stock",
            get(|claims: Claims| async move { claims.client_id().unwrap_or_default().to_owned() }),
        )
        .layer(RequireRole("inventory.read"))
        .layer(ValidateAccessTokenLayer::new(validator));
    let url = serve(app).await;
    let entra = Authority::entra(&authority.instance(), TENANT).unwrap();
    let scope = format!("{resource}/.default");
    let token_of = |client_id: &'static str| {
        let client = ConfidentialClient::builder(client_id)
            .authority(entra.clone())
            .client_secret(SECRET)
            .build()
            .unwrap();
        let scope = scope.clone();
        async move {
            client
                .acquire_token_for_client(&[&scope])
                .await
                .unwrap()
                .secret()
                .to_owned()
        }
    };
    let stock = |token: String| {
        let url = url.clone();
        async move {
            let response = reqwest::Client::new()
                .get(format!("{url}/stock"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, challenge, response.text().await.unwrap())
        }
    };

    let (status, challenge, body) = stock(token_of(ALLOWED).await).await;
    assert_eq!(status, 200, "{challenge:?}");
    assert_eq!(body, ALLOWED);

    let (status, challenge, body) = stock(token_of(OTHER).await).await;
    assert_eq!(status, 401, "another application: {body}");
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer error=\"invalid_token\", error_description=\"the client application is not one of the allowed client ids (AllowedClientIds)\"")
    );
    assert!(!body.contains(OTHER), "{body}");

    // v1 tokens carry the caller in `appid`.
    let v1 = |client: &str| {
        authority
            .issue_token(
                &IssueToken::new(client, &resource)
                    .roles(["inventory.read"])
                    .version(TokenVersion::V1),
            )
            .unwrap()
    };
    let (status, challenge, _) = stock(v1(ALLOWED)).await;
    assert_eq!(status, 200, "v1, allowed: {challenge:?}");
    let (status, _, _) = stock(v1(OTHER)).await;
    assert_eq!(status, 401, "v1, another application");
    // A token that names no calling application at all.
    let anonymous = authority
        .issue_token(
            &IssueToken::new(ALLOWED, &resource)
                .roles(["inventory.read"])
                .without_claim("azp"),
        )
        .unwrap();
    let (status, challenge, _) = stock(anonymous).await;
    assert_eq!(status, 401, "no azp: {challenge:?}");

    // Without AllowedClientIds any caller that passes the other checks is let through.
    let open = TokenValidator::builder(entra.clone())
        .client_id(INVENTORY)
        .build()
        .unwrap();
    assert!(open.validate(&token_of(OTHER).await).await.is_ok());
}

#[tokio::test]
async fn missing_and_malformed_headers() {
    let f = fixture().await;
    let client = reqwest::Client::new();
    struct Case {
        name: &'static str,
        headers: &'static [&'static str],
        status: u16,
        challenge: &'static str,
    }
    let cases = [
        Case {
            name: "no header",
            headers: &[],
            status: 401,
            challenge: "Bearer",
        },
        Case {
            name: "basic scheme",
            headers: &["Basic dXNlcjpwYXNz"],
            status: 401,
            challenge: "Bearer",
        },
        Case {
            name: "empty bearer",
            headers: &["Bearer"],
            status: 401,
            challenge: "Bearer error=\"invalid_request\"",
        },
        Case {
            name: "repeated header",
            headers: &["Bearer a.b.c", "Bearer d.e.f"],
            status: 401,
            challenge: "Bearer error=\"invalid_request\"",
        },
        Case {
            name: "garbage token",
            headers: &["Bearer x.y.z"],
            status: 401,
            challenge: "Bearer error=\"invalid_token\"",
        },
    ];
    for case in cases {
        let mut request = client.get(format!("{}/whoami", f.url));
        for value in case.headers {
            request = request.header("authorization", *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with(case.challenge),
            "{}: {challenge}",
            case.name
        );
    }
}

#[tokio::test]
async fn key_rotation_is_picked_up_on_an_unknown_kid() {
    let f = fixture().await;
    let new_key = TestKey::generate("key-2");
    f.idp.set_keys(&[&new_key]);
    let token = new_key.token(&claims_v2(&f.idp));
    let (status, challenge, _) = call(&f.url, Some(&token)).await;
    assert_eq!(status, 200, "{challenge:?}");
    // The old key was dropped by the authority: its tokens are refused now.
    let old = f.key.token(&claims_v2(&f.idp));
    let error = f.validator.validate(&old).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::UnknownSigningKey);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_more_fetch() {
    let f = fixture().await;
    let before = f.idp.jwks_hits();
    assert_eq!(before, 1);
    let claims = claims_v2(&f.idp);
    let tokens: Vec<String> = (0..1000)
        .map(|i| {
            f.key.sign(
                &json!({"alg": "RS256", "kid": format!("forged-{i}")}),
                &claims,
            )
        })
        .collect();
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for chunk in tokens.chunks(50) {
        let requests = chunk.iter().map(|token| {
            client
                .get(format!("{}/whoami", f.url))
                .bearer_auth(token)
                .send()
        });
        for response in futures_util::future::join_all(requests).await {
            statuses.push(response.unwrap().status().as_u16());
        }
    }
    assert!(
        statuses.iter().all(|s| *s == 401),
        "all forged kids are refused"
    );
    let fetches = f.idp.jwks_hits();
    assert!(
        fetches <= 2,
        "1000 unknown kids caused {fetches} JWKS fetches"
    );
    // Five minutes later, one more refresh is allowed.
    f.clock.advance(Duration::from_secs(301));
    let _ = f.validator.validate(&tokens[0]).await;
    assert_eq!(f.idp.jwks_hits(), fetches + 1);
}

#[tokio::test]
async fn authority_down_at_start_gives_503_then_recovers() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    idp.set_down(true);
    let clock = ManualClock::at_unix(NOW);
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(clock.clone()))
        .unavailable_retry_interval(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = serve(app(validator.clone())).await;
    let token = key.token(&claims_v2(&idp));

    let client = reqwest::Client::new();
    let response = client
        .get(format!("{url}/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(response.headers().get("www-authenticate").is_none());

    idp.set_down(false);
    // The next request-triggered fetch is allowed 10 s (on the injected clock) after the last.
    clock.advance(Duration::from_secs(11));
    let response = client
        .get(format!("{url}/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_lying_jwks_endpoint_keeps_the_last_known_good_keys() {
    let f = fixture().await;
    let token = f.key.token(&claims_v2(&f.idp));
    struct Case {
        name: &'static str,
        status: axum::http::StatusCode,
        body: String,
    }
    let cases = [
        Case {
            name: "500",
            status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            body: "oops".into(),
        },
        Case {
            name: "garbage",
            status: axum::http::StatusCode::OK,
            body: "<html>".into(),
        },
        Case {
            name: "empty key set",
            status: axum::http::StatusCode::OK,
            body: r#"{"keys":[]}"#.into(),
        },
        Case {
            name: "2 MiB body",
            status: axum::http::StatusCode::OK,
            body: format!(r#"{{"keys":[],"x":"{}"}}"#, "a".repeat(2 << 20)),
        },
    ];
    for case in cases {
        f.idp.lie(Some((case.status, case.body)));
        assert!(f.validator.refresh().await.is_err(), "{}", case.name);
        let (status, challenge, _) = call(&f.url, Some(&token)).await;
        assert_eq!(status, 200, "{}: {challenge:?}", case.name);
    }
}

#[tokio::test]
async fn multi_tenant_authority_uses_the_tenant_template() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let other = "0f0f0f0f-0000-0000-0000-000000000000";
    for (allowed, expect_ok) in [(vec![], true), (vec![TENANT.to_owned()], false)] {
        let validator =
            TokenValidator::builder(Authority::entra(&idp.instance(), "organizations").unwrap())
                .client_id(API)
                .allowed_tenants(allowed.clone())
                .clock(Arc::new(ManualClock::at_unix(NOW)))
                .build()
                .unwrap();
        validator.refresh().await.unwrap();
        let mut claims = claims_v2(&idp);
        claims["tid"] = json!(other);
        claims["iss"] = json!(format!("http://{}/{other}/v2.0", idp.addr));
        let result = validator.validate(&key.token(&claims)).await;
        assert_eq!(result.is_ok(), expect_ok, "allowed {allowed:?}: {result:?}");
        if let Err(error) = result {
            assert_eq!(error.kind(), AuthErrorKind::InvalidTenant);
        }
    }
}

#[tokio::test]
async fn verified_token_cache_never_outlives_the_token_or_its_key() {
    let f = fixture().await;
    let token = f.key.token(&claims_v2(&f.idp));
    assert!(f.validator.validate(&token).await.is_ok());
    assert_eq!(f.validator.cached_tokens(), 1);
    assert!(
        f.validator.validate(&token).await.is_ok(),
        "a cache hit is accepted"
    );
    assert_eq!(f.validator.cached_tokens(), 1);

    // Past exp + leeway the cached token is refused, as an uncached one would be.
    f.clock.advance(Duration::from_secs(3600 + 301));
    let error = f.validator.validate(&token).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::Expired);
    assert_eq!(f.validator.cached_tokens(), 0);

    // A refresh that keeps the same key keeps cached tokens; one that drops it drops them.
    f.clock.set_unix(NOW);
    assert!(f.validator.validate(&token).await.is_ok());
    f.validator.refresh().await.unwrap();
    assert!(
        f.validator.validate(&token).await.is_ok(),
        "same key after refresh"
    );
    let other = TestKey::generate("key-2");
    f.idp.set_keys(&[&other]);
    f.validator.refresh().await.unwrap();
    let error = f.validator.validate(&token).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::UnknownSigningKey);
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .verified_token_cache(0)
        .build()
        .unwrap();
    validator.refresh().await.unwrap();
    let token = key.token(&claims_v2(&idp));
    assert!(validator.validate(&token).await.is_ok());
    assert_eq!(validator.cached_tokens(), 0);
}

/// A forced key refresh whose requester goes away (client disconnect, `timeout`, a runtime
/// dropped) still completes, or releases its claim: refresh-on-unknown-kid keeps working.
/// The dev authority's JWKS endpoint is made slow so that the requester is gone mid-fetch.
mod cancelled_refresh {
    use std::sync::Arc;
    use std::time::Duration;

    use entra_dev_authority::{
        DevApi, DevApplication, DevAuthority, Endpoint, Fault, IssueToken, KeepOld,
    };
    use serde_json::json;
    use tower_azure_auth::claims::TokenVersion;
    use tower_azure_auth::clock::ManualClock;
    use tower_azure_auth::{Authority, TokenValidator};

    use super::support::{b64, serve};
    use super::{app, call, API, CALLER, TENANT};

    /// Longer than anything the test does while the fetch is held; only the test's length
    /// depends on it, never its outcome.
    const SLOW: Duration = Duration::from_secs(2);
    /// Guards every wait against a hang.
    const GUARD: Duration = Duration::from_secs(30);

    async fn authority(clock: &ManualClock) -> DevAuthority {
        DevAuthority::builder()
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
            .unwrap()
    }

    fn validator(authority: &DevAuthority, clock: &ManualClock) -> TokenValidator {
        TokenValidator::builder(Authority::entra(&authority.instance(), TENANT).unwrap())
            .client_id(API)
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap()
    }

    fn token(authority: &DevAuthority) -> String {
        authority
            .issue_token(&IssueToken::new(CALLER, API))
            .unwrap()
    }

    /// A token that names a key the authority never published (the signature is never
    /// looked at: the key is unknown first).
    fn forged_kid_token(authority: &DevAuthority) -> String {
        let real = token(authority);
        let payload = real.split('.').nth(1).unwrap();
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "forged-kid"});
        format!(
            "{}.{payload}.{}",
            b64(header.to_string().as_bytes()),
            b64(b"sig")
        )
    }

    async fn jwks_requested(authority: &DevAuthority, count: u64) {
        tokio::time::timeout(GUARD, async {
            while authority.request_count(Endpoint::Jwks) < count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the JWKS was never requested");
    }

    #[tokio::test]
    async fn a_client_that_disconnects_mid_refresh_does_not_switch_off_refresh_on_unknown_kid() {
        let clock = ManualClock::now();
        let authority = authority(&clock).await;
        let validator = validator(&authority, &clock);
        validator.refresh().await.unwrap();
        let url = serve(app(validator.clone())).await;
        let (status, challenge, _) = call(&url, Some(&token(&authority))).await;
        assert_eq!(status, 200, "{challenge:?}");

        // A forged kid forces a refresh; the JWKS answers slowly; the client leaves meanwhile.
        let fetched = authority.request_count(Endpoint::Jwks);
        authority.inject_fault(Endpoint::Jwks, Fault::delay(SLOW));
        let forged = forged_kid_token(&authority);
        let client = tokio::spawn({
            let url = url.clone();
            async move { call(&url, Some(&forged)).await }
        });
        jwks_requested(&authority, fetched + 1).await;
        client.abort();
        // Cancelled (a client finished already would have waited for all of SLOW).
        let _ = client.await;

        // The authority rotates; once the minimum interval has passed, a token signed by the
        // new key forces a refresh (or finds the one under way) and is accepted.
        authority.rotate_signing_key(KeepOld::Yes).unwrap();
        clock.advance(Duration::from_secs(301));
        let rotated = token(&authority);
        let (status, challenge, body) = tokio::time::timeout(GUARD, call(&url, Some(&rotated)))
            .await
            .unwrap();
        assert_eq!(status, 200, "{challenge:?} {body}");
        assert_eq!(body, CALLER);
    }

    #[tokio::test]
    async fn a_validation_cancelled_by_a_timeout_mid_refresh_leaves_the_refresh_working() {
        let clock = ManualClock::now();
        let authority = authority(&clock).await;
        let validator = validator(&authority, &clock);
        validator.refresh().await.unwrap();
        let fetches = validator.key_fetches();

        authority.rotate_signing_key(KeepOld::Yes).unwrap();
        let rotated = token(&authority);
        authority.inject_fault(Endpoint::Jwks, Fault::delay(SLOW));
        let cancelled =
            tokio::time::timeout(Duration::from_millis(100), validator.validate(&rotated)).await;
        assert!(cancelled.is_err(), "the timeout fires during the refresh");

        // The refresh went on without its requester: the same token is accepted, by that
        // one fetch.
        let claims = tokio::time::timeout(GUARD, validator.validate(&rotated))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claims.client_id(), Some(CALLER));
        assert_eq!(validator.key_fetches(), fetches + 1, "single flight");
    }

    /// Built outside any runtime (no background refresh can start then), first validation
    /// cancelled: later calls recover instead of answering 503 for ever, also when the
    /// runtime of the cancelled one is gone.
    #[test]
    fn a_validator_built_outside_a_runtime_recovers_after_its_first_validation_is_cancelled() {
        let server = tokio::runtime::Runtime::new().unwrap();
        let clock = ManualClock::now();
        let authority = server.block_on(authority(&clock));
        let token = token(&authority);
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        for runtime_dropped in [false, true] {
            // Built here, outside any runtime, with no keys yet.
            let validator = validator(&authority, &clock);
            authority.inject_fault(Endpoint::Jwks, Fault::delay(SLOW));
            let first = runtime();
            let cancelled = first.block_on(async {
                tokio::time::timeout(Duration::from_millis(100), validator.validate(&token)).await
            });
            assert!(
                cancelled.is_err(),
                "runtime dropped {runtime_dropped}: the timeout fires during the refresh"
            );
            let later = if runtime_dropped {
                // What was spawned on it is dropped with it; past the retry interval for
                // "no keys yet", the next call may fetch again.
                drop(first);
                clock.advance(Duration::from_secs(11));
                runtime()
            } else {
                first
            };
            let result = later
                .block_on(async { tokio::time::timeout(GUARD, validator.validate(&token)).await });
            let claims = result
                .unwrap()
                .unwrap_or_else(|e| panic!("runtime dropped {runtime_dropped}: {e}"));
            assert_eq!(claims.client_id(), Some(CALLER));
        }
    }
}

/// The configuration table's settings do what their names say, read from JSON as a user writes
/// them: `ValidAlgorithms`, `ClockSkewSeconds`, `MaxTokenSize` and
/// `AllowWebApiToBeAuthorizedByACL`, each against the same token shapes over real HTTP.
#[tokio::test]
async fn configuration_settings_do_what_their_names_say() {
    use tower_azure_auth::config::ConfigSource;
    use tower_azure_auth::{AzureAdOptions, ConfigError};

    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let options = |extra: Value| -> AzureAdOptions {
        let mut section = json!({"Instance": idp.instance(), "TenantId": TENANT, "ClientId": API});
        section
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        ConfigSource::from_json_str(&json!({ "AzureAd": section }).to_string())
            .unwrap()
            .section("AzureAd")
            .unwrap()
    };
    let serve_with = |extra: Value| {
        let options = options(extra);
        async move {
            let validator = TokenValidator::from_options(&options)
                .unwrap()
                .clock(Arc::new(ManualClock::at_unix(NOW)))
                .build()
                .unwrap();
            validator.refresh().await.unwrap();
            serve(app(validator)).await
        }
    };
    let rs256 = |claims: &Value| key.token(claims);
    let ps256 = |claims: &Value| {
        key.sign(
            &json!({"alg": "PS256", "typ": "JWT", "kid": "key-1"}),
            claims,
        )
    };
    let good = claims_v2(&idp);
    let mut no_permission = good.clone();
    no_permission.as_object_mut().unwrap().remove("roles");
    let mut expired_a_minute_ago = good.clone();
    expired_a_minute_ago["exp"] = json!(NOW - 60);
    let mut padded = good.clone();
    padded["padding"] = json!("x".repeat(3000));

    struct Case {
        name: &'static str,
        settings: Value,
        token: String,
        status: u16,
        /// A word of the `WWW-Authenticate` challenge of a refusal.
        says: &'static str,
    }
    let cases = [
        Case {
            name: "default algorithms: RS256 accepted",
            settings: json!({}),
            token: rs256(&good),
            status: 200,
            says: "",
        },
        Case {
            name: "default algorithms: PS256 refused",
            settings: json!({}),
            token: ps256(&good),
            status: 401,
            says: "PS256",
        },
        Case {
            name: "ValidAlgorithms PS256: PS256 accepted",
            settings: json!({"ValidAlgorithms": ["PS256"]}),
            token: ps256(&good),
            status: 200,
            says: "",
        },
        Case {
            name: "ValidAlgorithms PS256: RS256 refused",
            settings: json!({"ValidAlgorithms": ["PS256"]}),
            token: rs256(&good),
            status: 401,
            says: "RS256",
        },
        Case {
            name: "default leeway (300 s): expired a minute ago accepted",
            settings: json!({}),
            token: rs256(&expired_a_minute_ago),
            status: 200,
            says: "",
        },
        Case {
            name: "ClockSkewSeconds 10: expired a minute ago refused",
            settings: json!({"ClockSkewSeconds": 10}),
            token: rs256(&expired_a_minute_ago),
            status: 401,
            says: "expired",
        },
        Case {
            name: "default MaxTokenSize: a 4 KB token accepted",
            settings: json!({}),
            token: rs256(&padded),
            status: 200,
            says: "",
        },
        Case {
            name: "MaxTokenSize 2048: a 4 KB token refused",
            settings: json!({"MaxTokenSize": 2048}),
            token: rs256(&padded),
            status: 401,
            says: "2048",
        },
        Case {
            name: "default: neither scp nor roles refused (IDW10201)",
            settings: json!({}),
            token: rs256(&no_permission),
            status: 401,
            says: "IDW10201",
        },
        Case {
            name: "AllowWebApiToBeAuthorizedByACL: neither scp nor roles accepted",
            settings: json!({"AllowWebApiToBeAuthorizedByACL": true}),
            token: rs256(&no_permission),
            status: 200,
            says: "",
        },
    ];
    for case in cases {
        let url = serve_with(case.settings).await;
        let (status, challenge, body) = call(&url, Some(&case.token)).await;
        assert_eq!(status, case.status, "{}: {challenge:?} {body}", case.name);
        if case.status == 200 {
            assert_eq!(body, CALLER, "{}", case.name);
        } else {
            let challenge = challenge.unwrap_or_default();
            assert!(
                challenge.contains("invalid_token") && challenge.contains(case.says),
                "{}: {challenge}",
                case.name
            );
        }
    }

    // `none` and HMAC can never be configured: a startup error naming the setting.
    for algorithms in [json!(["none"]), json!(["HS256"]), json!(["RS256", "HS512"])] {
        let error = TokenValidator::from_options(&options(json!({"ValidAlgorithms": algorithms})))
            .and_then(|builder| builder.build())
            .expect_err("an algorithm outside the RSA allow-list");
        assert!(
            matches!(error, ConfigError::Invalid { .. }),
            "{algorithms}: {error:?}"
        );
        assert!(
            error.to_string().contains("ValidAlgorithms"),
            "{algorithms}: {error}"
        );
    }
}

/// An encrypted token (JWE, five parts) is refused as malformed, never decrypted or verified.
#[tokio::test]
async fn an_encrypted_token_is_refused_unparsed() {
    let f = fixture().await;
    let jwe = format!(
        "{}.{}.{}.{}.{}",
        b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#),
        b64(b"k"),
        b64(b"iv"),
        b64(b"ct"),
        b64(b"tag")
    );
    let (status, challenge, _) = call(&f.url, Some(&jwe)).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap_or_default().contains("JWE"));
    assert_eq!(
        f.validator.validate(&jwe).await.unwrap_err().kind(),
        AuthErrorKind::MalformedToken
    );
}

/// Keys are refreshed in the background on the configured interval (12 h by default), with no
/// request needing them: a rotation is picked up although no token names the new key yet.
#[tokio::test]
async fn keys_are_refreshed_in_the_background_on_the_interval() {
    let old = TestKey::generate("key-1");
    let new = TestKey::generate("key-2");
    let idp = TestIdp::start(TENANT, &[&old]).await;
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .refresh_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    validator.refresh().await.unwrap();
    idp.set_keys(&[&new]);
    let token = new.token(&claims_v2(&idp));
    // Bounded wait: the background task fetches every 200 ms; 10 s is the failure bound.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while validator.validate_with_current_keys(&token).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated key was never fetched in the background"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        idp.jwks_hits() >= 2,
        "fetched by the background task, not by a request"
    );
}
