//! The shared token cache of a fleet (`CallApi:TokenCache`), against a real `redis-server`
//! (the e2e harness), the dev authority and the axum weather API on 127.0.0.1: replicas are
//! `weather-client` processes (`weather-client-replica`, the same program) or in-process
//! clients built from the same configuration. The dev authority's token-endpoint counter
//! says who went to "Entra".

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use e2e_tests::redis::RedisServer;
use entra_dev_authority::{
    generate_certificate, DevApi, DevApplication, DevAuthority, Endpoint, Fault,
};
use futures_util::FutureExt as _;
use tower_azure_auth::claims::TokenVersion;
use tower_azure_auth::clock::{Clock, ManualClock, SharedClock};
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::credentials::{
    ConfidentialClient, EncryptionKeys, RedisTokenStore, SharedTokenCache,
};
use tower_azure_auth::{AzureAdOptions, CallApiOptions};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const SERVICE: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const PREFIX: &str = "fleet-test:";

fn scope() -> String {
    format!("api://{SERVICE}/.default")
}

/// A fresh base64 AES-256 key.
fn new_key() -> String {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

struct Fleet {
    authority: DevAuthority,
    api: String,
    dir: PathBuf,
    pem: PathBuf,
    redis: RedisServer,
    key: String,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

async fn fleet() -> Fleet {
    fleet_at(tower_azure_auth::clock::system()).await
}

/// A fleet whose authority tells time by `clock`.
async fn fleet_at(clock: SharedClock) -> Fleet {
    let certificate = generate_certificate("CN=weather-service").unwrap();
    let uri = format!("api://{SERVICE}");
    let authority = DevAuthority::builder()
        .clock(clock)
        .tenant_id(TENANT)
        .api(
            DevApi::new(SERVICE)
                .app_id_uri(&uri)
                .app_roles(["service-api"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(SERVICE)
                .certificate_pem(&certificate.cert_pem)
                .unwrap()
                .grant(&uri, ["service-api"]),
        )
        .start()
        .await
        .unwrap();
    let options: AzureAdOptions = ConfigSource::new()
        .with_env([
            ("AzureAd__Instance".to_owned(), authority.instance()),
            ("AzureAd__TenantId".to_owned(), TENANT.to_owned()),
            ("AzureAd__ClientId".to_owned(), SERVICE.to_owned()),
        ])
        .section("AzureAd")
        .unwrap();
    let app = weather_api_axum::app(&options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = std::env::temp_dir().join(format!("fleet-cache-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("client.pem");
    std::fs::write(&pem, certificate.combined_pem()).unwrap();
    Fleet {
        authority,
        api,
        dir,
        pem,
        redis: RedisServer::start(),
        key: new_key(),
    }
}

impl Fleet {
    /// The `CallApi__…` variables of a replica, the shared cache included, then `extra`.
    fn env(&self, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut env = vec![
            ("CallApi__ScopeForAccessToken", scope()),
            ("CallApi__ApiBaseAddress", self.api.clone()),
            ("CallApi__Instance", self.authority.instance()),
            ("CallApi__TenantId", TENANT.to_owned()),
            ("CallApi__ClientId", SERVICE.to_owned()),
            (
                "CallApi__ClientCertificates__0__SourceType",
                "Path".to_owned(),
            ),
            (
                "CallApi__ClientCertificates__0__CertificateDiskPath",
                self.pem.display().to_string(),
            ),
            (
                "CallApi__TokenCache__Redis__ConnectionString",
                self.redis.url(),
            ),
            ("CallApi__TokenCache__Redis__KeyPrefix", PREFIX.to_owned()),
            ("CallApi__TokenCache__EncryptionKeys__0", self.key.clone()),
        ];
        for (key, value) in extra {
            env.retain(|(k, _)| k != key);
            env.push((key, value.clone()));
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// A `weather-client` replica process.
    fn replica(&self, extra: &[(&str, String)]) -> tokio::process::Command {
        let mut command =
            tokio::process::Command::new(env!("CARGO_BIN_EXE_weather-client-replica"));
        command
            .env_clear()
            .env("RUST_LOG", "tower_azure_auth=debug")
            .envs(self.env(extra))
            .kill_on_drop(true)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    }

    async fn run_replica(&self, extra: &[(&str, String)]) -> Output {
        self.replica(extra).output().await.unwrap()
    }

    /// An in-process client (its own memory cache) from the same configuration.
    fn client(&self, extra: &[(&str, String)]) -> ConfidentialClient {
        let options: CallApiOptions = ConfigSource::new()
            .with_env(self.env(extra))
            .section("CallApi")
            .unwrap();
        ConfidentialClient::builder_from_options(&options)
            .unwrap()
            .build()
            .unwrap()
    }

    fn token_requests(&self) -> u64 {
        self.authority.request_count(Endpoint::Token)
    }

    /// The one key in Redis (the test's database holds one entry when this is called).
    fn only_key(&self) -> String {
        assert_eq!(
            self.redis.command(&["DBSIZE"]),
            b":1\r\n",
            "one key in Redis"
        );
        String::from_utf8(self.redis.command(&["RANDOMKEY"])).unwrap()
    }
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let forecast: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(forecast.as_array().map(Vec::len), Some(5), "{what}");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_second_replica_process_takes_the_first_ones_token_from_redis() {
    let fleet = fleet().await;
    let first = fleet.run_replica(&[]).await;
    assert_success(&first, "first replica");
    assert_eq!(fleet.token_requests(), 1);
    let key = fleet.only_key();
    assert!(key.starts_with(&format!("{PREFIX}token:")), "{key}");
    assert!(!key.contains(SERVICE), "the key names no client: {key}");
    let value = fleet.redis.command(&["GET", &key]);
    assert_eq!(value.first(), Some(&1), "a sealed entry (version 1)");
    assert!(!contains(&value, b"eyJ"), "no JWT in the clear");

    let second = fleet.run_replica(&[]).await;
    assert_success(&second, "second replica");
    assert_eq!(
        fleet.token_requests(),
        1,
        "the second replica did not ask the authority"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("token taken from the shared cache"),
        "{stderr}"
    );
    for output in [&first, &second] {
        let logs = String::from_utf8_lossy(&output.stderr);
        assert!(
            !logs.contains(&fleet.key),
            "the encryption key is never logged"
        );
        assert!(!logs.contains("eyJ"), "no token in the logs: {logs}");
    }
}

#[tokio::test]
async fn a_replica_process_with_another_key_takes_a_miss_and_says_so_once() {
    let fleet = fleet().await;
    assert_success(&fleet.run_replica(&[]).await, "first replica");
    let other_key = new_key();
    let other = fleet
        .run_replica(&[("CallApi__TokenCache__EncryptionKeys__0", other_key.clone())])
        .await;
    assert_success(&other, "a replica with another key");
    assert_eq!(fleet.token_requests(), 2, "a miss, not an error");
    let logs = String::from_utf8_lossy(&other.stderr);
    let lines = |level: &str| {
        logs.lines()
            .filter(|l| l.contains(level) && l.contains("does not open"))
            .count()
    };
    assert_eq!(lines(" WARN "), 1, "reported once: {logs}");
    assert!(lines(" DEBUG ") >= 1, "then at debug: {logs}");
    assert!(
        !logs.contains(&other_key) && !logs.contains(&fleet.key),
        "{logs}"
    );
}

#[tokio::test]
async fn eight_replica_processes_starting_at_once_make_one_token_request() {
    let fleet = fleet().await;
    // Generous: the holder's request must finish inside the wait even on a loaded machine.
    let extra = [(
        "CallApi__TokenCache__Redis__LeaseWaitMilliseconds",
        "60000".to_owned(),
    )];
    let children: Vec<_> = (0..8)
        .map(|_| fleet.replica(&extra).spawn().unwrap())
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().await.unwrap();
        assert_success(&output, &format!("replica {i}"));
    }
    assert_eq!(fleet.token_requests(), 1, "one token request for the fleet");
    assert!(
        fleet.only_key().starts_with(&format!("{PREFIX}token:")),
        "the lease is released"
    );
}

#[tokio::test]
async fn a_lease_holder_killed_mid_request_holds_the_others_up_for_the_bounded_wait_only() {
    let fleet = fleet().await;
    let extra = [
        (
            "CallApi__TokenCache__Redis__LeaseMilliseconds",
            "600000".to_owned(),
        ),
        (
            "CallApi__TokenCache__Redis__LeaseWaitMilliseconds",
            "1000".to_owned(),
        ),
    ];
    // The holder's request hangs at the authority; the holder dies while it waits.
    fleet
        .authority
        .inject_fault(Endpoint::Token, Fault::delay(Duration::from_secs(600)));
    let mut holder = fleet.replica(&extra).spawn().unwrap();
    while fleet.token_requests() == 0 {
        assert!(
            holder.try_wait().unwrap().is_none(),
            "the holder is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        fleet.redis.command(&["DBSIZE"]),
        b":1\r\n",
        "the holder's lease"
    );
    let lease = String::from_utf8(fleet.redis.command(&["RANDOMKEY"])).unwrap();
    assert!(lease.starts_with(&format!("{PREFIX}lease:")), "{lease}");
    holder.kill().await.unwrap();

    let next = fleet.run_replica(&extra).await;
    assert_success(&next, "the replica after the dead holder");
    assert_eq!(fleet.token_requests(), 2, "it asked the authority itself");
    let ttl = String::from_utf8(fleet.redis.command(&["PTTL", &lease])).unwrap();
    let ttl: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
    assert!(
        ttl > 60_000,
        "the dead holder's lease still runs ({ttl} ms left): the replica waited the bounded \
         wait, not for the lease to end"
    );
    let last = fleet.run_replica(&extra).await;
    assert_success(&last, "a later replica");
    assert_eq!(fleet.token_requests(), 2, "the token it obtained is shared");
}

#[tokio::test]
async fn the_raw_redis_value_holds_no_byte_sequence_of_the_token() {
    let fleet = fleet().await;
    let token = fleet
        .client(&[])
        .acquire_token_for_client(&[scope()])
        .await
        .unwrap();
    let value = fleet.redis.command(&["GET", &fleet.only_key()]);
    let secret = token.secret().as_bytes();
    assert!(
        value.len() > secret.len(),
        "the entry holds the token, sealed"
    );
    for window in secret.chunks(8) {
        assert!(
            !contains(&value, window),
            "{:?} is in the clear",
            String::from_utf8_lossy(window)
        );
    }
}

#[tokio::test]
async fn an_entry_sealed_with_another_key_is_a_miss_and_an_old_key_still_opens() {
    let fleet = fleet().await;
    let first = fleet.client(&[]);
    first.acquire_token_for_client(&[scope()]).await.unwrap();
    assert_eq!(fleet.token_requests(), 1);

    // Another key: the entry does not open; a new request, no error, and the entry replaced.
    let other_key = new_key();
    let other = fleet.client(&[("CallApi__TokenCache__EncryptionKeys__0", other_key.clone())]);
    let token = other.acquire_token_for_client(&[scope()]).await.unwrap();
    assert_eq!(fleet.token_requests(), 2, "a miss");

    // Rotation: a new key first, the key in use second: the entry opens.
    let rotated = fleet.client(&[
        ("CallApi__TokenCache__EncryptionKeys__0", new_key()),
        ("CallApi__TokenCache__EncryptionKeys__1", other_key),
    ]);
    let shared = rotated.acquire_token_for_client(&[scope()]).await.unwrap();
    assert_eq!(fleet.token_requests(), 2, "opened with the second key");
    assert!(shared.secret() == token.secret(), "the same token");
}

#[tokio::test]
async fn garbage_in_redis_is_a_miss_and_is_replaced() {
    let fleet = fleet().await;
    fleet
        .client(&[])
        .acquire_token_for_client(&[scope()])
        .await
        .unwrap();
    let key = fleet.only_key();
    assert_eq!(
        fleet.redis.command(&["SET", &key, "not-an-entry-at-all"]),
        b"+OK\r\n"
    );
    fleet
        .client(&[])
        .acquire_token_for_client(&[scope()])
        .await
        .unwrap();
    assert_eq!(fleet.token_requests(), 2, "garbage is a miss");
    let value = fleet.redis.command(&["GET", &key]);
    assert_eq!(value.first(), Some(&1), "replaced by a sealed entry");

    // A key of another type (GET answers WRONGTYPE) is a miss too.
    assert_eq!(fleet.redis.command(&["DEL", &key]), b":1\r\n");
    assert_eq!(fleet.redis.command(&["LPUSH", &key, "x"]), b":1\r\n");
    fleet
        .client(&[])
        .acquire_token_for_client(&[scope()])
        .await
        .unwrap();
    assert_eq!(fleet.token_requests(), 3);
}

#[tokio::test]
async fn redis_stopped_mid_run_fails_no_caller_and_the_client_reconnects_by_itself() {
    let mut fleet = fleet().await;
    let extra = [(
        "CallApi__TokenCache__Redis__TimeoutMilliseconds",
        "300".to_owned(),
    )];
    let warm = fleet.client(&extra);
    warm.acquire_token_for_client(&[scope()]).await.unwrap();
    assert_eq!(fleet.token_requests(), 1);

    fleet.redis.stop();
    // A warm replica keeps serving from memory, without touching Redis (a hit completes on
    // its first poll: no I/O); a new one gets its own token.
    for _ in 0..20 {
        warm.acquire_token_for_client(&[scope()])
            .now_or_never()
            .expect("a memory hit does no I/O")
            .unwrap();
    }
    let cold = fleet.client(&extra);
    cold.acquire_token_for_client(&[scope()]).await.unwrap();
    assert_eq!(
        fleet.token_requests(),
        2,
        "the new replica asked the authority itself"
    );
    // Forced refreshes keep working while Redis is down.
    cold.force_refresh(&[scope()]).await.unwrap();

    fleet.redis.restart();
    assert_eq!(
        fleet.redis.command(&["DBSIZE"]),
        b":0\r\n",
        "an empty Redis"
    );
    // The same client, without a restart, shares its tokens again once its connection is
    // re-established: every call succeeds meanwhile.
    let mut attempts = 0;
    while fleet.redis.command(&["DBSIZE"]) != b":1\r\n" {
        attempts += 1;
        assert!(
            attempts < 100,
            "the client never wrote to the restarted Redis"
        );
        cold.force_refresh(&[scope()]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = fleet.token_requests();
    fleet
        .client(&extra)
        .acquire_token_for_client(&[scope()])
        .await
        .unwrap();
    assert_eq!(
        fleet.token_requests(),
        before,
        "a new replica takes the shared token again"
    );
}

#[tokio::test]
async fn a_redis_that_never_answers_is_a_miss_after_the_timeout() {
    let fleet = fleet().await;
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", silent.local_addr().unwrap());
    let client = fleet.client(&[
        ("CallApi__TokenCache__Redis__ConnectionString", url),
        (
            "CallApi__TokenCache__Redis__TimeoutMilliseconds",
            "200".to_owned(),
        ),
    ]);
    // Bounded here only so that a regression fails instead of hanging the suite.
    let token = tokio::time::timeout(
        Duration::from_secs(60),
        client.acquire_token_for_client(&[scope()]),
    )
    .await
    .expect("the Redis timeout bounds the call")
    .unwrap();
    assert!(!token.secret().is_empty());
    assert_eq!(fleet.token_requests(), 1);
    drop(silent);
}

#[tokio::test]
async fn one_replica_refreshes_ahead_of_expiry_and_the_others_take_its_token() {
    let clock = Arc::new(ManualClock::now());
    // The authority shares the replicas' clock (assertions and tokens are checked against it).
    let fleet = fleet_at(clock.clone()).await;
    let replica = || {
        let options: CallApiOptions = ConfigSource::new()
            .with_env(fleet.env(&[]))
            .section("CallApi")
            .unwrap();
        let shared = SharedTokenCache::new(
            RedisTokenStore::new(&fleet.redis.url()).unwrap(),
            EncryptionKeys::from_base64([&fleet.key]).unwrap(),
        )
        .key_prefix(PREFIX)
        // No random delay: the test decides who refreshes first.
        .refresh_jitter(Duration::ZERO);
        ConfidentialClient::builder_from_options(&options)
            .unwrap()
            .shared_token_cache(shared)
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (replica(), replica());
    let first = a.acquire_token_for_client(&[scope()]).await.unwrap();
    let same = b.acquire_token_for_client(&[scope()]).await.unwrap();
    assert!(same.secret() == first.secret(), "B took A's token");
    assert_eq!(fleet.token_requests(), 1);

    // Past the refresh point, before the token leaves the cache: A refreshes in the background.
    let due = first.refresh_on().duration_since(clock.now()).unwrap();
    clock.advance(due + Duration::from_secs(1));
    assert!(first.expires_on() > clock.now() + Duration::from_secs(300));
    let served = a.acquire_token_for_client(&[scope()]).await.unwrap();
    assert_eq!(
        served.secret(),
        first.secret(),
        "the current token meanwhile"
    );
    let mut refreshed = served;
    for _ in 0..200 {
        if refreshed.secret() != first.secret() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        refreshed = a.acquire_token_for_client(&[scope()]).await.unwrap();
    }
    assert!(refreshed.secret() != first.secret(), "A refreshed");
    assert_eq!(fleet.token_requests(), 2);

    // B is due too: it finds A's newer token in Redis instead of asking.
    let mut taken = b.acquire_token_for_client(&[scope()]).await.unwrap();
    for _ in 0..200 {
        if taken.secret() != first.secret() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        taken = b.acquire_token_for_client(&[scope()]).await.unwrap();
    }
    assert_eq!(
        taken.secret(),
        refreshed.secret(),
        "B took A's refreshed token"
    );
    assert_eq!(fleet.token_requests(), 2, "one refresh for the fleet");
}
