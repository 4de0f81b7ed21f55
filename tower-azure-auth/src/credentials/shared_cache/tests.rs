use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use super::*;
use crate::clock;
use crate::credentials::BoxFuture;

/// A store in memory, shared by the "replicas" of a test; `fail` makes every call fail.
#[derive(Debug, Default)]
struct MemoryStore {
    entries: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    fail: AtomicBool,
    calls: AtomicUsize,
}

impl MemoryStore {
    fn check(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        Ok(())
    }

    fn value(&self, key: &str) -> Option<Vec<u8>> {
        let entries = self.entries.lock().unwrap();
        entries
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        self.entries
            .lock()
            .unwrap()
            .insert(key.to_owned(), (value.to_vec(), Instant::now() + ttl));
    }
}

impl TokenCacheStore for Arc<MemoryStore> {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.value(key))
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.put(key, value, ttl);
            Ok(())
        })
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.check()?;
            if self.value(key).is_some() {
                return Ok(false);
            }
            self.put(key, holder.as_bytes(), ttl);
            Ok(true)
        })
    }

    fn release_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.check()?;
            let mut entries = self.entries.lock().unwrap();
            if entries
                .get(key)
                .is_some_and(|(v, _)| v == holder.as_bytes())
            {
                entries.remove(key);
            }
            Ok(())
        })
    }
}

fn key_bytes(byte: u8) -> EncryptionKeys {
    EncryptionKeys::new([[byte; 32]]).unwrap()
}

fn cache_key() -> CacheKey {
    CacheKey::new(
        "https://login.example/tenant-a/v2.0",
        "client-a",
        &["api://weather/.default".to_owned()],
    )
}

fn token(name: &str, lifetime: Duration) -> AccessToken {
    AccessToken::new(
        name,
        SystemTime::now() + lifetime,
        vec!["api://weather/.default".into()],
    )
}

/// A fetch that counts requests to "the authority" and takes a little while.
async fn fetch(requests: &AtomicUsize, name: &str) -> Result<AccessToken, TokenError> {
    requests.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    Ok(token(name, Duration::from_secs(3600)))
}

#[test]
fn store_keys_are_prefixed_hashed_and_name_no_client() {
    struct Case {
        name: &'static str,
        other: CacheKey,
        same: bool,
    }
    let scopes = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let base = CacheKey::new(
        "https://a/t1",
        "client-a",
        &scopes(&["x/.default", "y/.default"]),
    );
    let cases = [
        Case {
            name: "scopes in another order",
            other: CacheKey::new(
                "https://a/t1",
                "client-a",
                &scopes(&["y/.default", "x/.default"]),
            ),
            same: true,
        },
        Case {
            name: "another tenant",
            other: CacheKey::new(
                "https://a/t2",
                "client-a",
                &scopes(&["x/.default", "y/.default"]),
            ),
            same: false,
        },
        Case {
            name: "another client",
            other: CacheKey::new(
                "https://a/t1",
                "client-b",
                &scopes(&["x/.default", "y/.default"]),
            ),
            same: false,
        },
        Case {
            name: "fewer scopes",
            other: CacheKey::new("https://a/t1", "client-a", &scopes(&["x/.default"])),
            same: false,
        },
        Case {
            name: "scope boundaries are not ambiguous",
            other: CacheKey::new(
                "https://a/t1",
                "client-a",
                &scopes(&["x/.default\ny/.default"]),
            ),
            same: false,
        },
    ];
    let cache =
        SharedTokenCache::new(Arc::new(MemoryStore::default()), key_bytes(1)).key_prefix("env-a:");
    let keys = cache.store_keys(&base);
    assert!(keys.entry.starts_with("env-a:token:"), "{}", keys.entry);
    assert!(keys.lease.starts_with("env-a:lease:"), "{}", keys.lease);
    assert!(!keys.entry.contains("client-a"), "{}", keys.entry);
    for case in cases {
        let other = cache.store_keys(&case.other);
        assert_eq!(other.entry == keys.entry, case.same, "{}", case.name);
    }
    // Replicas of different versions share one store: the key's material may not change.
    // SHA-256 of `12:https://a/t1;8:client-a;10:x/.default;10:y/.default;`.
    assert_eq!(
        keys.entry,
        "env-a:token:e94deffc3081242c1fa35269915baf22b2ef446a073c010b8a210328a4095fdb"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_store_ask_the_authority_once() {
    let store = Arc::new(MemoryStore::default());
    let requests = Arc::new(AtomicUsize::new(0));
    let clock = clock::system();
    let mut tasks = Vec::new();
    for replica in 0..8 {
        let cache = SharedTokenCache::new(Arc::clone(&store), key_bytes(1))
            .poll_interval(Duration::from_millis(5));
        let requests = Arc::clone(&requests);
        let clock = clock.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("token-of-replica-{replica}");
            cache
                .acquire(&cache_key(), Need::Token, &clock, || {
                    fetch(&requests, &name)
                })
                .await
                .unwrap()
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().secret().to_owned());
    }
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "one request for the fleet"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
}

#[tokio::test]
async fn a_failing_store_is_a_miss_then_skipped_then_used_again() {
    let store = Arc::new(MemoryStore::default());
    let requests = AtomicUsize::new(0);
    let clock = clock::system();
    let cache = SharedTokenCache::new(Arc::clone(&store), key_bytes(1))
        .retry_after_failure(Duration::from_secs(3600));
    store.fail.store(true, Ordering::SeqCst);
    let first = cache
        .acquire(&cache_key(), Need::Token, &clock, || fetch(&requests, "a"))
        .await;
    assert_eq!(first.unwrap().secret(), "a", "served by its own request");
    let calls = store.calls.load(Ordering::SeqCst);
    assert_eq!(calls, 1, "one failed call, then the store is skipped");
    let second = cache
        .acquire(&cache_key(), Need::Token, &clock, || fetch(&requests, "b"))
        .await;
    assert_eq!(second.unwrap().secret(), "b");
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        calls,
        "skipped while paused"
    );

    // The pause over, the store answers again and is used.
    store.fail.store(false, Ordering::SeqCst);
    cache.state.skip_until.store(1, Ordering::SeqCst);
    let third = cache
        .acquire(&cache_key(), Need::Token, &clock, || fetch(&requests, "c"))
        .await;
    assert_eq!(third.unwrap().secret(), "c");
    let other = SharedTokenCache::new(Arc::clone(&store), key_bytes(1));
    let shared = other
        .acquire(&cache_key(), Need::Token, &clock, || fetch(&requests, "d"))
        .await;
    assert_eq!(
        shared.unwrap().secret(),
        "c",
        "shared once the store is back"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_entry_under_another_key_is_a_miss_and_is_replaced() {
    let store = Arc::new(MemoryStore::default());
    let requests = AtomicUsize::new(0);
    let clock = clock::system();
    let old = SharedTokenCache::new(Arc::clone(&store), key_bytes(1));
    old.acquire(&cache_key(), Need::Token, &clock, || {
        fetch(&requests, "old")
    })
    .await
    .unwrap();
    let new = SharedTokenCache::new(Arc::clone(&store), key_bytes(2));
    let token = new
        .acquire(&cache_key(), Need::Token, &clock, || {
            fetch(&requests, "new")
        })
        .await
        .unwrap();
    assert_eq!(token.secret(), "new", "not opened: a miss, no error");
    // Rotation: the new key first, the old one still listed, opens what the new one sealed.
    let rotated = SharedTokenCache::new(
        Arc::clone(&store),
        EncryptionKeys::new([[3; 32], [2; 32]]).unwrap(),
    );
    let token = rotated
        .acquire(&cache_key(), Need::Token, &clock, || fetch(&requests, "x"))
        .await
        .unwrap();
    assert_eq!(token.secret(), "new");
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_dead_lease_holder_blocks_no_one_past_the_lease_wait() {
    let store = Arc::new(MemoryStore::default());
    let requests = AtomicUsize::new(0);
    let clock = clock::system();
    let cache = SharedTokenCache::new(Arc::clone(&store), key_bytes(1))
        .lease_wait(Duration::from_millis(100))
        .poll_interval(Duration::from_millis(10));
    let keys = cache.store_keys(&cache_key());
    store.put(
        &keys.lease,
        b"a replica that died",
        Duration::from_secs(3600),
    );
    let token = cache
        .acquire(&cache_key(), Need::Token, &clock, || {
            fetch(&requests, "own")
        })
        .await
        .unwrap();
    assert_eq!(token.secret(), "own");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        store.value(&keys.lease).as_deref(),
        Some(&b"a replica that died"[..]),
        "another holder's lease is never released"
    );
}

#[tokio::test]
async fn a_refresh_takes_only_a_newer_token_from_the_store() {
    let store = Arc::new(MemoryStore::default());
    let requests = AtomicUsize::new(0);
    let clock = clock::system();
    let a = SharedTokenCache::new(Arc::clone(&store), key_bytes(1));
    let b = SharedTokenCache::new(Arc::clone(&store), key_bytes(1));
    let current = a
        .acquire(&cache_key(), Need::Token, &clock, || {
            fetch(&requests, "first")
        })
        .await
        .unwrap();
    // Replica A refreshes: the store holds only its own token, so it asks the authority.
    let refreshed = a
        .acquire(
            &cache_key(),
            Need::NewerThan(current.expires_on()),
            &clock,
            || async {
                requests.fetch_add(1, Ordering::SeqCst);
                Ok(token("second", Duration::from_secs(7200)))
            },
        )
        .await
        .unwrap();
    assert_eq!(refreshed.secret(), "second");
    // Replica B, due too, finds A's newer token.
    let shared = b
        .acquire(
            &cache_key(),
            Need::NewerThan(current.expires_on()),
            &clock,
            || fetch(&requests, "third"),
        )
        .await
        .unwrap();
    assert_eq!(shared.secret(), "second");
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[test]
fn the_refresh_delay_stays_inside_the_jitter_and_half_the_headroom() {
    let cache = SharedTokenCache::new(Arc::new(MemoryStore::default()), key_bytes(1))
        .refresh_jitter(Duration::from_secs(30));
    let now = SystemTime::now();
    for _ in 0..100 {
        let long = cache.refresh_delay(&token("t", Duration::from_secs(3600)), now);
        assert!(long <= Duration::from_secs(30), "{long:?}");
        // 310 s to expiry: 10 s before it leaves the cache, so at most 5 s.
        let short = cache.refresh_delay(&token("t", Duration::from_secs(310)), now);
        assert!(short <= Duration::from_secs(5), "{short:?}");
    }
}

#[test]
fn debug_shows_no_key_material() {
    let cache = SharedTokenCache::new(Arc::new(MemoryStore::default()), key_bytes(0x41));
    let debug = format!("{cache:?}");
    assert!(debug.contains("keys: 1"), "{debug}");
    assert!(!debug.contains("65, 65"), "{debug}");
    assert!(!debug.contains("AAAA"), "{debug}");
}

#[test]
fn configuration_without_a_store_is_no_shared_cache_and_a_store_needs_keys() {
    use crate::config::{CallApiOptions, ConfigSource};
    let options = |pairs: &[(&str, &str)]| -> CallApiOptions {
        ConfigSource::new()
            .with_env(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            )
            .section("CallApi")
            .unwrap()
    };
    let none = options(&[(
        "CallApi__TokenCache__EncryptionKeys__0",
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
    )]);
    assert!(SharedTokenCache::from_options(&none.token_cache)
        .unwrap()
        .is_none());

    let keyless = options(&[(
        "CallApi__TokenCache__Redis__ConnectionString",
        "redis://:hunter2@127.0.0.1:6379/",
    )]);
    let error = SharedTokenCache::from_options(&keyless.token_cache).unwrap_err();
    let text = error.to_string();
    if cfg!(feature = "redis") {
        assert!(text.contains("EncryptionKeys"), "{text}");
    } else {
        assert!(text.contains("`redis` feature"), "{text}");
    }
    assert!(!text.contains("hunter2"), "{text}");

    let full = options(&[
        (
            "CallApi__TokenCache__Redis__ConnectionString",
            "redis://:hunter2@127.0.0.1:6379/",
        ),
        ("CallApi__TokenCache__Redis__KeyPrefix", "env-b:"),
        ("CallApi__TokenCache__Redis__LeaseWaitMilliseconds", "1500"),
        (
            "CallApi__TokenCache__EncryptionKeys__0",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        ),
    ]);
    let result = SharedTokenCache::from_options(&full.token_cache);
    if cfg!(feature = "redis") {
        let cache = result.unwrap().unwrap();
        assert_eq!(cache.prefix, "env-b:");
        assert_eq!(cache.lease_wait, Duration::from_millis(1500));
        let debug = format!("{cache:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    } else {
        let text = result.unwrap_err().to_string();
        assert!(text.contains("`redis` feature"), "{text}");
    }
}

#[tokio::test]
async fn a_caller_that_gives_up_midway_releases_its_lease() {
    let store = Arc::new(MemoryStore::default());
    let clock = clock::system();
    let cache = SharedTokenCache::new(Arc::clone(&store), key_bytes(1));
    let key = cache_key();
    let keys = cache.store_keys(&key);
    let stuck = cache.acquire(&key, Need::Token, &clock, || {
        std::future::pending::<Result<AccessToken, TokenError>>()
    });
    // The caller's deadline passes while the authority is asked.
    assert!(tokio::time::timeout(Duration::from_millis(50), stuck)
        .await
        .is_err());
    for _ in 0..100 {
        if store.value(&keys.lease).is_none() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(store.value(&keys.lease).is_none(), "the lease is released");
}
