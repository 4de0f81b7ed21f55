//! Load safety of the axum weather API (real HTTP on 127.0.0.1, tokens from the dev
//! authority): floods of forged `kid`s, of invalid tokens and of huge `Authorization` headers
//! run concurrently with valid callers. Valid callers keep getting 200, nothing answers 5xx,
//! the JWKS is fetched a bounded number of times, and the caches stay within their bounds.
//! Every loop is bounded in count, and every wait in time.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use entra_dev_authority::{DevApi, DevApplication, DevAuthority, Endpoint, IssueToken};
use tokio::task::JoinSet;
use tower_azure_auth::claims::TokenVersion;
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::credentials::ConfidentialClient;
use tower_azure_auth::{Authority, AzureAdOptions, TokenValidator};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const SERVICE: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
/// Memory for the verified-token cache in this test: far fewer bytes than the valid tokens
/// sent, so that the bound is what limits it.
const CACHE_BYTES: usize = 128 * 1024;
/// Distinct valid tokens sent (each is cached once verified).
const VALID_TOKENS: usize = 200;
/// Every request in a flood, per worker, and workers per flood.
const PER_WORKER: usize = 100;
const WORKERS: usize = 4;
/// Upper bound for the whole exercise; only guards against a hang.
const GUARD: Duration = Duration::from_secs(120);

/// Other APIs the client may call, for the outbound cache bound.
const OTHER_APIS: [&str; 3] = [
    "c3a1f7e2-9d4b-4e8a-b6c5-2f1e0d9c8b71",
    "c3a1f7e2-9d4b-4e8a-b6c5-2f1e0d9c8b72",
    "c3a1f7e2-9d4b-4e8a-b6c5-2f1e0d9c8b73",
];

async fn authority() -> DevAuthority {
    let mut builder = DevAuthority::builder().tenant_id(TENANT).api(
        DevApi::new(SERVICE)
            .app_id_uri(format!("api://{SERVICE}"))
            .app_roles(["service-api"])
            .token_version(TokenVersion::V2),
    );
    let mut app = DevApplication::new(SERVICE)
        .secret("load-safety-secret")
        .grant(format!("api://{SERVICE}"), ["service-api"]);
    for (i, api) in OTHER_APIS.iter().enumerate() {
        builder = builder.api(
            DevApi::new(*api)
                .app_id_uri(format!("api://other-{i}"))
                .app_roles(["read"]),
        );
        app = app.grant(format!("api://other-{i}"), ["read"]);
    }
    builder.application(app).start().await.unwrap()
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

/// The weather API's router (`weather_api_axum::router`, what `app(&options)` builds) with a
/// validator we keep a handle on, served on 127.0.0.1:0.
async fn start_api(options: &AzureAdOptions) -> (String, TokenValidator) {
    let validator = TokenValidator::from_options(options)
        .unwrap()
        .verified_token_cache(CACHE_BYTES)
        .build()
        .unwrap();
    let policies = weather_api_axum::configure_policies(options).unwrap();
    let app = weather_api_axum::router(validator.clone(), &policies).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, validator)
}

/// Sends `GET /weatherforecast` with this `Authorization` value; the status, or `None` when
/// the server closed the connection without an answer.
async fn get(http: &reqwest::Client, url: &str, authorization: Option<&str>) -> Option<u16> {
    let mut request = http.get(format!("{url}/weatherforecast"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.ok().map(|r| r.status().as_u16())
}

/// A token naming a key the authority never published (a forged `kid`), well formed otherwise.
fn forged_kid_token(valid: &str, i: usize) -> String {
    let (_, rest) = valid.split_once('.').unwrap();
    let header = URL_SAFE_NO_PAD
        .encode(format!(r#"{{"typ":"JWT","alg":"RS256","kid":"forged-{i}"}}"#).as_bytes());
    format!("{header}.{rest}")
}

/// Invalid tokens of several shapes: tampered signature, garbage, truncated, `alg: none`.
fn invalid_token(valid: &str, i: usize) -> String {
    match i % 4 {
        0 => {
            let (rest, signature) = valid.rsplit_once('.').unwrap();
            let flipped = if signature.starts_with('A') { "B" } else { "A" };
            format!("{rest}.{flipped}{}", &signature[1..])
        }
        1 => format!("garbage-{i}"),
        2 => valid[..valid.len() / 2].to_owned(),
        _ => {
            let (_, rest) = valid.split_once('.').unwrap();
            let (payload, _) = rest.split_once('.').unwrap();
            format!(
                "{}.{payload}.",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#)
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn floods_do_not_starve_valid_callers_or_grow_caches_or_fetches() {
    tokio::time::timeout(GUARD, floods())
        .await
        .expect("bounded");
}

async fn floods() {
    let authority = authority().await;
    let options = options(&authority);
    let (url, validator) = start_api(&options).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let seed = IssueToken::new(SERVICE, format!("api://{SERVICE}")).roles(["service-api"]);
    let valid: Vec<String> = (0..VALID_TOKENS)
        .map(|_| authority.issue_token(&seed).unwrap())
        .collect();
    assert!(
        valid.windows(2).all(|w| w[0] != w[1]),
        "the dev authority issues distinct tokens"
    );
    // Warm up: keys fetched, the API answering.
    assert_eq!(
        get(&http, &url, Some(&format!("Bearer {}", valid[0]))).await,
        Some(200)
    );
    let jwks_before = authority.request_count(Endpoint::Jwks);

    let valid = Arc::new(valid);
    let ctx = || (http.clone(), url.clone(), valid.clone());
    let mut floods: JoinSet<(&'static str, Vec<Option<u16>>)> = JoinSet::new();
    for worker in 0..WORKERS {
        let (http, url, valid) = ctx();
        floods.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..PER_WORKER {
                let token = forged_kid_token(&valid[0], worker * PER_WORKER + i);
                statuses.push(get(&http, &url, Some(&format!("Bearer {token}"))).await);
            }
            ("forged kid", statuses)
        });
        let (http, url, valid) = ctx();
        floods.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..PER_WORKER {
                let token = invalid_token(&valid[0], worker * PER_WORKER + i);
                statuses.push(get(&http, &url, Some(&format!("Bearer {token}"))).await);
            }
            ("invalid token", statuses)
        });
        let (http, url, _) = ctx();
        floods.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..PER_WORKER / 4 {
                // 64 KiB of token characters: past MaxTokenSize (16 KiB), within hyper's limits.
                let big = format!("Bearer {}", "A".repeat(64 * 1024 + i));
                statuses.push(get(&http, &url, Some(&big)).await);
            }
            ("64 KiB Authorization header", statuses)
        });
        let (http, url, _) = ctx();
        floods.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..4 {
                // 1 MiB: past hyper's header buffer.
                let huge = format!("Bearer {}", "A".repeat(1024 * 1024));
                statuses.push(get(&http, &url, Some(&huge)).await);
            }
            ("1 MiB Authorization header", statuses)
        });
    }
    // Valid callers, concurrently with the floods: every one of them gets 200.
    let mut callers: JoinSet<Vec<Option<u16>>> = JoinSet::new();
    for worker in 0..WORKERS {
        let (http, url, valid) = ctx();
        callers.spawn(async move {
            let mut statuses = Vec::new();
            for token in valid.iter().skip(worker).step_by(WORKERS) {
                statuses.push(get(&http, &url, Some(&format!("Bearer {token}"))).await);
                // Presented again: a cache hit when it is still cached, a full check otherwise.
                statuses.push(get(&http, &url, Some(&format!("Bearer {token}"))).await);
            }
            statuses
        });
    }

    let mut valid_answers = 0;
    while let Some(statuses) = callers.join_next().await {
        for status in statuses.unwrap() {
            assert_eq!(
                status,
                Some(200),
                "a valid caller was refused during the floods"
            );
            valid_answers += 1;
        }
    }
    assert_eq!(valid_answers, VALID_TOKENS * 2);

    while let Some(result) = floods.join_next().await {
        let (name, statuses) = result.unwrap();
        assert!(!statuses.is_empty(), "{name}");
        for status in statuses {
            match (name, status) {
                ("1 MiB Authorization header", Some(431) | None) => {}
                ("1 MiB Authorization header", other) => {
                    panic!("{name}: answered {other:?}, expected 431")
                }
                (_, Some(401)) => {}
                (_, other) => panic!("{name}: answered {other:?}, expected 401"),
            }
        }
    }

    // The server still serves, and the floods cost at most one forced key refresh.
    assert_eq!(
        get(&http, &url, Some(&format!("Bearer {}", valid[0]))).await,
        Some(200)
    );
    let jwks_fetches = authority.request_count(Endpoint::Jwks) - jwks_before;
    assert!(
        jwks_fetches <= 1,
        "{jwks_fetches} JWKS fetches during {} forged kids",
        WORKERS * PER_WORKER
    );

    // The verified-token cache is bounded in bytes: an entry holds at least the token itself
    // (its key) and its decoded claims, so it weighs more than the token plus 256 bytes, and
    // no more than CACHE_BYTES / that many can be held. (`tests/cache_memory.rs` checks the
    // weights against the heap actually used.)
    let min_weight = valid.iter().map(|t| t.len() + 256).min().unwrap();
    let cached = validator.cached_tokens();
    assert!(cached > 0, "valid tokens are cached");
    assert!(
        cached <= CACHE_BYTES / min_weight,
        "{cached} tokens cached in {CACHE_BYTES} bytes"
    );
    assert!(
        cached < VALID_TOKENS,
        "the bound, not the traffic, limits the cache"
    );
}

#[tokio::test]
async fn the_outbound_token_cache_evicts_past_max_cache_entries() {
    let authority = authority().await;
    let client = ConfidentialClient::builder(SERVICE)
        .authority(Authority::entra(&authority.instance(), TENANT).unwrap())
        .client_secret("load-safety-secret")
        .max_cache_entries(2)
        .build()
        .unwrap();
    let scopes: Vec<String> = (0..OTHER_APIS.len())
        .map(|i| format!("api://other-{i}/.default"))
        .collect();
    let requests = || authority.request_count(Endpoint::Token);

    // Two scope sets fit: asking again is served from the cache.
    for scope in &scopes[..2] {
        client.acquire_token_for_client(&[scope]).await.unwrap();
    }
    let before = requests();
    for scope in &scopes[..2] {
        client.acquire_token_for_client(&[scope]).await.unwrap();
    }
    assert_eq!(requests(), before, "both cached");

    // A third evicts one of them: cycling through three scope sets with room for two keeps
    // causing requests, instead of the cache growing.
    for round in 0..3 {
        let before = requests();
        for scope in &scopes {
            client.acquire_token_for_client(&[scope]).await.unwrap();
        }
        assert!(requests() > before, "round {round}: something was evicted");
    }
}
