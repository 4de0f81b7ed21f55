//! The inbound side of a fleet, over real HTTP on 127.0.0.1 (the axum weather API, tokens
//! from the dev authority) with a real `redis-server`: last-known-good signing keys (a file
//! and Redis) that let a replica start while the authority is down, and revocations that
//! reach every replica, including one started afterwards, and that survive Redis going down.
//!
//! Waits are bounded polls (a guard against a hang), never sleeps standing in for an event.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use e2e_tests::redis::RedisServer;
use entra_dev_authority::{
    DevApi, DevApplication, DevAuthority, Endpoint, Fault, IssueToken, KeepOld,
};
use tower_azure_auth::claims::TokenVersion;
use tower_azure_auth::clock::{ManualClock, SharedClock};
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::validation::fleet::{RedisKeyStore, RedisRevocations};
use tower_azure_auth::validation::last_known_good::FileStore;
use tower_azure_auth::validation::revocation::Revocation;
use tower_azure_auth::validation::TokenValidatorBuilder;
use tower_azure_auth::{AuthErrorKind, AzureAdOptions, TokenValidator};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const SERVICE: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const OTHER_CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000002";
/// A guard against a hang, far above what any wait here takes.
const GUARD: Duration = Duration::from_secs(60);
/// What "reaches every replica" is held to here: half the channel's resync interval would
/// already be too slow for a resync to explain it, and the subscription's resync is set to
/// an hour below, so only the pub/sub message can.
const PROPAGATION_GUARD: Duration = Duration::from_secs(5);

async fn authority() -> DevAuthority {
    DevAuthority::builder()
        .tenant_id(TENANT)
        .api(
            DevApi::new(SERVICE)
                .app_id_uri(format!("api://{SERVICE}"))
                .app_roles(["service-api"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(SERVICE)
                .secret("fleet-secret")
                .grant(format!("api://{SERVICE}"), ["service-api"]),
        )
        .application(
            DevApplication::new(OTHER_CLIENT)
                .secret("other-secret")
                .grant(format!("api://{SERVICE}"), ["service-api"]),
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

fn builder(authority: &DevAuthority) -> TokenValidatorBuilder {
    TokenValidator::from_options(&options(authority)).unwrap()
}

/// A token for the weather API, of `client` (the API's policy accepts only `SERVICE`).
fn token(authority: &DevAuthority, client: &str) -> String {
    authority
        .issue_token(&IssueToken::new(client, format!("api://{SERVICE}")).roles(["service-api"]))
        .unwrap()
}

/// The weather API's router around `validator`, on 127.0.0.1:0; its base URL.
async fn serve(authority: &DevAuthority, validator: &TokenValidator) -> String {
    let policies = weather_api_axum::configure_policies(&options(authority)).unwrap();
    let app = weather_api_axum::router(validator.clone(), &policies).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// `GET /weatherforecast` with `token`: the status and the `WWW-Authenticate` value.
async fn get(url: &str, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{url}/weatherforecast"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), challenge)
}

/// Polls `done` until it holds; panics with `what` after `guard`. Returns the time it took.
async fn wait_for<F, Fut>(guard: Duration, what: &str, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < guard, "not within {guard:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fleet-inbound-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Fetches keys once with a validator that stores them in `file`, and waits for the file.
async fn store_keys_in(authority: &DevAuthority, file: &PathBuf, clock: SharedClock) {
    let seeding = builder(authority)
        .clock(clock)
        .last_known_good(FileStore::new(file))
        .build()
        .unwrap();
    seeding.refresh().await.unwrap();
    wait_for(GUARD, "the keys are saved", || async { file.exists() }).await;
}

/// Every metadata request fails with 503 until the faults are cleared.
fn take_down(authority: &DevAuthority) {
    authority.inject_fault(
        Endpoint::Metadata,
        Fault::fail(reqwest::StatusCode::SERVICE_UNAVAILABLE).times(1_000_000),
    );
}

#[tokio::test]
async fn stored_keys_serve_while_the_authority_is_down_at_start_and_fresh_keys_replace_them() {
    let authority = authority().await;
    let file = temp_file("keys.json");
    store_keys_in(&authority, &file, tower_azure_auth::clock::system()).await;
    let before_outage = token(&authority, SERVICE);

    take_down(&authority);
    let validator = builder(&authority)
        .last_known_good(FileStore::new(&file))
        .build()
        .unwrap();
    let url = serve(&authority, &validator).await;
    assert_eq!(
        get(&url, &before_outage).await.0,
        200,
        "served with the stored keys"
    );
    assert!(validator.serving_last_known_good_keys());

    // The authority rotates its key (withdrawing the old one) and comes back.
    authority.rotate_signing_key(KeepOld::No).unwrap();
    let after_rotation = token(&authority, SERVICE);
    authority.clear_faults();
    wait_for(
        GUARD,
        "the background refresh replaces the stored keys",
        || async { !validator.serving_last_known_good_keys() },
    )
    .await;
    assert_eq!(
        get(&url, &after_rotation).await.0,
        200,
        "fresh keys: the new key"
    );
    let (status, challenge) = get(&url, &before_outage).await;
    assert_eq!(status, 401, "fresh keys: the withdrawn key is gone");
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

#[tokio::test]
async fn stored_keys_older_than_the_max_age_are_not_used() {
    let authority = authority().await;
    let file = temp_file("keys.json");
    // Saved by a replica whose clock said 25 hours ago.
    let past = Arc::new(ManualClock::now());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    past.set_unix(now - 25 * 3600);
    store_keys_in(&authority, &file, past).await;
    let token = token(&authority, SERVICE);

    take_down(&authority);
    let validator = builder(&authority)
        .last_known_good(FileStore::new(&file))
        .build()
        .unwrap();
    let url = serve(&authority, &validator).await;
    assert_eq!(
        get(&url, &token).await.0,
        503,
        "too old (default 24 h): 503 as without a store"
    );
    assert!(!validator.serving_last_known_good_keys());

    // A longer maximum age accepts them.
    let tolerant = builder(&authority)
        .last_known_good(FileStore::new(&file))
        .last_known_good_max_age(Duration::from_secs(26 * 3600))
        .build()
        .unwrap();
    let url = serve(&authority, &tolerant).await;
    assert_eq!(get(&url, &token).await.0, 200, "within a 26 h maximum age");
}

#[tokio::test]
async fn stored_keys_that_pass_their_age_during_the_outage_are_dropped() {
    let authority = authority().await;
    let file = temp_file("keys.json");
    store_keys_in(&authority, &file, tower_azure_auth::clock::system()).await;
    let long_lived = authority
        .issue_token(
            &IssueToken::new(SERVICE, format!("api://{SERVICE}"))
                .roles(["service-api"])
                .lifetime(Duration::from_secs(6 * 3600)),
        )
        .unwrap();
    take_down(&authority);
    let clock = Arc::new(ManualClock::now());
    let validator = builder(&authority)
        .clock(clock.clone())
        .last_known_good(FileStore::new(&file))
        .last_known_good_max_age(Duration::from_secs(3600))
        .build()
        .unwrap();
    let url = serve(&authority, &validator).await;
    assert_eq!(get(&url, &long_lived).await.0, 200, "stored keys, 0 s old");
    clock.advance(Duration::from_secs(3601));
    // The next failed attempt drops them.
    assert!(validator.refresh().await.is_err(), "still down");
    assert!(!validator.serving_last_known_good_keys());
    assert_eq!(
        get(&url, &long_lived).await.0,
        503,
        "past the maximum age: no keys"
    );
}

#[tokio::test]
async fn an_unusable_stored_document_is_ignored() {
    let authority = authority().await;
    let good = temp_file("keys.json");
    store_keys_in(&authority, &good, tower_azure_auth::clock::system()).await;
    let mut other_authority: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&good).unwrap()).unwrap();
    other_authority["authority"] =
        "https://login.microsoftonline.com/contoso/v2.0/.well-known/openid-configuration".into();
    let token = token(&authority, SERVICE);
    take_down(&authority);
    struct Case {
        name: &'static str,
        content: Vec<u8>,
    }
    let cases = [
        Case {
            name: "garbage",
            content: b"\x00\x01{{{ not a document".to_vec(),
        },
        Case {
            name: "truncated",
            content: std::fs::read(&good).unwrap()[..100].to_vec(),
        },
        Case {
            name: "another authority's keys",
            content: serde_json::to_vec(&other_authority).unwrap(),
        },
    ];
    for case in cases {
        let file = temp_file("keys.json");
        std::fs::write(&file, &case.content).unwrap();
        let validator = builder(&authority)
            .last_known_good(FileStore::new(&file))
            .build()
            .unwrap();
        let url = serve(&authority, &validator).await;
        assert_eq!(get(&url, &token).await.0, 503, "{}: ignored", case.name);
        assert!(!validator.serving_last_known_good_keys(), "{}", case.name);
    }
    // The good document next to them still serves.
    let validator = builder(&authority)
        .last_known_good(FileStore::new(&good))
        .build()
        .unwrap();
    let url = serve(&authority, &validator).await;
    assert_eq!(get(&url, &token).await.0, 200, "the sound document");
}

#[tokio::test]
async fn keys_stored_in_redis_by_one_replica_start_another_during_an_outage() {
    let redis = RedisServer::start();
    let authority = authority().await;
    let store = || {
        RedisKeyStore::new(&redis.url())
            .unwrap()
            .key_prefix("lkg-test:")
    };
    let first = builder(&authority)
        .last_known_good(store())
        .build()
        .unwrap();
    first.refresh().await.unwrap();
    wait_for(GUARD, "the keys are in Redis", || async {
        redis
            .command(&[
                "EXISTS",
                &format!("lkg-test:last-known-good:{}", authority.metadata_url()),
            ])
            .trim_ascii()
            == b":1"
    })
    .await;
    let token = token(&authority, SERVICE);
    take_down(&authority);
    let second = builder(&authority)
        .last_known_good(store())
        .build()
        .unwrap();
    let url = serve(&authority, &second).await;
    assert_eq!(get(&url, &token).await.0, 200, "the fleet's stored keys");

    // Garbage under another prefix is ignored: 503, as without a store.
    let garbage_key = format!("lkg-garbage:last-known-good:{}", authority.metadata_url());
    assert_eq!(
        redis
            .command(&["SET", &garbage_key, "{\"format\":1,\"jwks\":"])
            .trim_ascii(),
        b"+OK"
    );
    let third = builder(&authority)
        .last_known_good(
            RedisKeyStore::new(&redis.url())
                .unwrap()
                .key_prefix("lkg-garbage:"),
        )
        .build()
        .unwrap();
    let url = serve(&authority, &third).await;
    assert_eq!(
        get(&url, &token).await.0,
        503,
        "garbage in Redis is ignored"
    );
    assert!(!third.serving_last_known_good_keys());
    assert!(second.serving_last_known_good_keys());
}

/// A replica subscribed to revocations through `redis` (resync set to an hour, so that only
/// the pub/sub message can deliver a revocation quickly).
fn replica(authority: &DevAuthority, redis: &RedisServer, prefix: &str) -> TokenValidatorBuilder {
    builder(authority).revocation_channel(
        RedisRevocations::new(&redis.url())
            .unwrap()
            .key_prefix(prefix)
            .resync_interval(Duration::from_secs(3600)),
    )
}

#[tokio::test]
async fn a_revocation_on_replica_a_refuses_the_token_on_replica_b_and_on_a_replica_started_later() {
    let redis = RedisServer::start();
    let authority = authority().await;
    let a = replica(&authority, &redis, "fleet-a:").build().unwrap();
    let b = replica(&authority, &redis, "fleet-a:").build().unwrap();
    let (url_a, url_b) = (serve(&authority, &a).await, serve(&authority, &b).await);
    let token = token(&authority, SERVICE);
    assert_eq!(get(&url_a, &token).await.0, 200);
    assert_eq!(get(&url_b, &token).await.0, 200, "cached on B");
    assert_eq!(b.cached_tokens(), 1);
    // B subscribed before the revocation is published (the subscription starts at build).
    wait_for(GUARD, "B is subscribed", || async {
        subscribers(&redis, "fleet-a:revocations") >= 2
    })
    .await;

    a.revoke(Revocation::client(SERVICE)).await.unwrap();
    let (status, challenge) = get(&url_a, &token).await;
    assert_eq!(status, 401, "refused on A at once");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("the token was revoked"), "{challenge}");
    let took = wait_for(PROPAGATION_GUARD, "B evicts the revoked token", || async {
        b.cached_tokens() == 0
    })
    .await;
    eprintln!("revocation reached replica B in {took:?}");
    let (status, challenge) = get(&url_b, &token).await;
    assert_eq!(status, 401, "refused on B");
    assert!(challenge.contains("the token was revoked"), "{challenge}");
    // Verified once more and cached, refused on every hit without another signature check.
    assert_eq!(b.cached_tokens(), 1);
    assert_eq!(get(&url_b, &token).await.0, 401, "refused from the cache");

    // A replica that starts after the revocation reads it from the persisted set.
    let c = replica(&authority, &redis, "fleet-a:").build().unwrap();
    wait_for(GUARD, "C read the set", || async { c.revocations() == 1 }).await;
    let url_c = serve(&authority, &c).await;
    let (status, challenge) = get(&url_c, &token).await;
    assert_eq!(status, 401, "{challenge}");
    assert!(challenge.contains("the token was revoked"), "{challenge}");
    // Another prefix (another environment) is not affected.
    let elsewhere = replica(&authority, &redis, "fleet-other:").build().unwrap();
    let url = serve(&authority, &elsewhere).await;
    assert_eq!(get(&url, &token).await.0, 200);
}

/// How many connections subscribe to `channel` (`PUBSUB NUMSUB` answers an array, and the
/// harness returns an answer's first line: the count comes back as an integer via `EVAL`).
fn subscribers(redis: &RedisServer, channel: &str) -> usize {
    let answer = redis.command(&[
        "EVAL",
        "return redis.call('PUBSUB','NUMSUB',ARGV[1])[2]",
        "0",
        channel,
    ]);
    String::from_utf8_lossy(&answer)
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or(0)
}

#[tokio::test]
async fn each_selector_refuses_its_tokens_on_every_replica() {
    let redis = RedisServer::start();
    let authority = authority().await;
    let probe = builder(&authority).build().unwrap();
    struct Case {
        name: &'static str,
        revoked: String,
        revocation: Box<dyn Fn(&tower_azure_auth::Claims) -> Revocation>,
        /// A token of the same caller that stays accepted, when the selector is that narrow.
        untouched: Option<String>,
    }
    let with_jti = |jti: &str| {
        authority
            .issue_token(
                &IssueToken::new(SERVICE, format!("api://{SERVICE}"))
                    .roles(["service-api"])
                    .claim("jti", jti),
            )
            .unwrap()
    };
    let cases = [
        Case {
            name: "client (azp)",
            revoked: token(&authority, SERVICE),
            revocation: Box::new(|c| Revocation::client(c.client_id().unwrap().to_uppercase())),
            untouched: Some(token(&authority, OTHER_CLIENT)),
        },
        Case {
            name: "object id (oid)",
            revoked: token(&authority, SERVICE),
            revocation: Box::new(|c| Revocation::object(c.object_id().unwrap())),
            untouched: Some(token(&authority, OTHER_CLIENT)),
        },
        Case {
            name: "tenant (tid)",
            revoked: token(&authority, SERVICE),
            revocation: Box::new(|c| Revocation::tenant(c.tenant_id().unwrap())),
            untouched: None,
        },
        Case {
            name: "token id (uti)",
            revoked: token(&authority, SERVICE),
            revocation: Box::new(|c| Revocation::token_id(c.get_str("uti").unwrap())),
            untouched: Some(token(&authority, SERVICE)),
        },
        Case {
            name: "token id (jti)",
            revoked: with_jti("jti-0001"),
            revocation: Box::new(|_| Revocation::token_id("jti-0001")),
            untouched: Some(with_jti("jti-0002")),
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let prefix = format!("selectors-{i}:");
        let a = replica(&authority, &redis, &prefix).build().unwrap();
        let b = replica(&authority, &redis, &prefix).build().unwrap();
        let url_b = serve(&authority, &b).await;
        assert_eq!(
            get(&url_b, &case.revoked).await.0,
            200,
            "{}: before",
            case.name
        );
        wait_for(GUARD, "B is subscribed", || async {
            subscribers(&redis, &format!("{prefix}revocations")) >= 2
        })
        .await;
        let claims = probe.validate(&case.revoked).await.unwrap();
        a.revoke((case.revocation)(&claims)).await.unwrap();
        let error = a.validate(&case.revoked).await.unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::Revoked, "{}: on A", case.name);
        wait_for(PROPAGATION_GUARD, case.name, || async {
            get(&url_b, &case.revoked).await.0 == 401
        })
        .await;
        if let Some(untouched) = &case.untouched {
            assert!(
                a.validate(untouched).await.is_ok(),
                "{}: another token on A",
                case.name
            );
            assert!(
                b.validate(untouched).await.is_ok(),
                "{}: another token on B",
                case.name
            );
        }
    }
}

#[tokio::test]
async fn a_revocation_ends_at_its_time() {
    let redis = RedisServer::start();
    let authority = authority().await;
    let clock = Arc::new(ManualClock::now());
    let a = replica(&authority, &redis, "expiry:").build().unwrap();
    let b = replica(&authority, &redis, "expiry:")
        .clock(clock.clone())
        .build()
        .unwrap();
    let url_b = serve(&authority, &b).await;
    let token = token(&authority, SERVICE);
    wait_for(GUARD, "B is subscribed", || async {
        subscribers(&redis, "expiry:revocations") >= 2
    })
    .await;
    a.revoke(Revocation::client(SERVICE).until(SystemTime::now() + Duration::from_secs(60)))
        .await
        .unwrap();
    wait_for(PROPAGATION_GUARD, "B refuses", || async {
        get(&url_b, &token).await.0 == 401
    })
    .await;
    clock.advance(Duration::from_secs(61));
    assert_eq!(get(&url_b, &token).await.0, 200, "over: accepted again");
    // A revocation whose time has passed revokes nothing.
    a.revoke(Revocation::client(SERVICE).until(SystemTime::now() - Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(
        a.validate(&token).await.is_err(),
        "A still holds the 60 s one"
    );
    assert_eq!(get(&url_b, &token).await.0, 200);
}

#[tokio::test]
async fn with_redis_down_a_revocation_holds_locally_and_the_fleet_catches_up_when_it_is_back() {
    let mut redis = RedisServer::start();
    let authority = authority().await;
    let a = replica(&authority, &redis, "outage:").build().unwrap();
    let b = replica(&authority, &redis, "outage:").build().unwrap();
    let (url_a, url_b) = (serve(&authority, &a).await, serve(&authority, &b).await);
    let revoked = token(&authority, SERVICE);
    let other = authority
        .issue_token(
            &IssueToken::new(SERVICE, format!("api://{SERVICE}"))
                .roles(["service-api"])
                .claim("jti", "kept"),
        )
        .unwrap();
    wait_for(GUARD, "B is subscribed", || async {
        subscribers(&redis, "outage:revocations") >= 2
    })
    .await;

    redis.stop();
    let claims = a.validate(&revoked).await.unwrap();
    let uti = claims.get_str("uti").unwrap().to_owned();
    let published = a.revoke(Revocation::token_id(&uti)).await;
    assert!(published.is_err(), "Redis is down: not shared");
    assert_eq!(
        get(&url_a, &revoked).await.0,
        401,
        "in force on A all the same"
    );
    assert_eq!(get(&url_a, &other).await.0, 200, "A keeps serving");
    assert_eq!(get(&url_b, &other).await.0, 200, "B keeps serving");

    // Redis comes back (empty); publishing again reaches B once both reconnect by themselves.
    redis.restart();
    wait_for(
        GUARD,
        "A's connection is back and the revocation is published",
        || async { a.revoke(Revocation::token_id(&uti)).await.is_ok() },
    )
    .await;
    wait_for(GUARD, "B resubscribed and read the set", || async {
        get(&url_b, &revoked).await.0 == 401
    })
    .await;
    assert_eq!(get(&url_b, &other).await.0, 200);
}

#[tokio::test]
async fn the_actix_adapter_refuses_a_revoked_token_with_401_invalid_token() {
    let authority = authority().await;
    let validator = builder(&authority).build().unwrap();
    let policies = weather_api_actix::configure_policies(&options(&authority)).unwrap();
    let api = weather_api_actix::WeatherApi::from_parts(validator.clone(), &policies).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = actix_web::HttpServer::new(move || {
        let api = api.clone();
        actix_web::App::new().configure(move |cfg| api.configure(cfg))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    let token = token(&authority, SERVICE);
    assert_eq!(get(&url, &token).await.0, 200);
    validator.revoke(Revocation::client(SERVICE)).await.unwrap();
    let (status, challenge) = get(&url, &token).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("the token was revoked"), "{challenge}");
    handle.stop(false).await;
}

#[tokio::test]
async fn the_weather_api_admin_endpoint_revokes_for_callers_with_the_admin_role_only() {
    let redis = RedisServer::start();
    let authority = authority().await;
    let a = replica(&authority, &redis, "admin:").build().unwrap();
    let b = replica(&authority, &redis, "admin:").build().unwrap();
    let (url_a, url_b) = (serve(&authority, &a).await, serve(&authority, &b).await);
    wait_for(GUARD, "B is subscribed", || async {
        subscribers(&redis, "admin:revocations") >= 2
    })
    .await;
    let service = token(&authority, SERVICE);
    let admin = authority
        .issue_token(
            &IssueToken::new(OTHER_CLIENT, format!("api://{SERVICE}"))
                .roles([weather_api_axum::admin::ADMIN_ROLE]),
        )
        .unwrap();
    let admin_by_secret = authority
        .issue_token(
            &IssueToken::new(OTHER_CLIENT, format!("api://{SERVICE}"))
                .roles([weather_api_axum::admin::ADMIN_ROLE])
                .client_authentication(tower_azure_auth::ClientAuthentication::Secret),
        )
        .unwrap();
    let post = |token: Option<&str>, body: serde_json::Value| {
        let mut request = reqwest::Client::new()
            .post(format!("{url_a}/admin/revocations"))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let body = serde_json::json!({"by": "client", "value": SERVICE});
    struct Case {
        name: &'static str,
        token: Option<String>,
        body: serde_json::Value,
        status: u16,
    }
    let cases = [
        Case {
            name: "no token",
            token: None,
            body: body.clone(),
            status: 401,
        },
        Case {
            name: "the service role only",
            token: Some(service.clone()),
            body: body.clone(),
            status: 403,
        },
        Case {
            name: "the admin role with a secret",
            token: Some(admin_by_secret),
            body: body.clone(),
            status: 403,
        },
        Case {
            name: "an unknown selector",
            token: Some(admin.clone()),
            body: serde_json::json!({"by": "everyone", "value": "x"}),
            status: 400,
        },
        Case {
            name: "a blank value",
            token: Some(admin.clone()),
            body: serde_json::json!({"by": "client", "value": " "}),
            status: 400,
        },
    ];
    for case in cases {
        assert_eq!(
            post(case.token.as_deref(), case.body).await,
            case.status,
            "{}",
            case.name
        );
        assert_eq!(
            get(&url_b, &service).await.0,
            200,
            "{}: nothing revoked",
            case.name
        );
    }
    assert_eq!(post(Some(&admin), body).await, 200, "the admin");
    wait_for(
        PROPAGATION_GUARD,
        "B refuses the revoked client",
        || async { get(&url_b, &service).await.0 == 401 },
    )
    .await;
    assert_eq!(get(&url_a, &service).await.0, 401);
}
