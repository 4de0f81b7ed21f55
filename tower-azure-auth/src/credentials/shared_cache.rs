//! [`SharedTokenCache`]: the token cache shared by a fleet of replicas (L2, in a
//! [`TokenCacheStore`]), with fleet-wide single flight and fail-open behaviour.
//!
//! On a miss of the in-memory cache (L1) a replica reads the sealed entry from the store; on
//! a miss there it takes a short lease (`SET NX PX`) and asks the authority, while the other
//! replicas poll the store for the holder's token (bounded: after
//! [`lease_wait`](SharedTokenCache::lease_wait) they ask the authority themselves, so a dead
//! holder never blocks the fleet). Any store failure is a miss: the replica carries on with
//! its own cache and its own request, skips the store for a moment, and uses it again by
//! itself once it answers.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

use crate::clock::SharedClock;
use crate::config::TokenCacheOptions;
use crate::error::ConfigError;

use super::cache::{CacheKey, EXPIRY_MARGIN};
use super::sealing::{self, EncryptionKeys};
use super::store::{StoreError, TokenCacheStore};
use super::token::{AccessToken, TokenError};

const TARGET: &str = "tower_azure_auth::credentials::shared_cache";

/// The default key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "tower-azure-auth:";

/// A token cache shared by the replicas of a client, for
/// [`ConfidentialClientBuilder::shared_token_cache`](super::ConfidentialClientBuilder::shared_token_cache):
/// a [`TokenCacheStore`] (Redis: `RedisTokenStore`, feature `redis`) and the
/// [`EncryptionKeys`] that seal its entries.
///
/// - Entries are keyed by (authority with its tenant, client id, sorted scopes), hashed
///   (SHA-256) under the [`key_prefix`](Self::key_prefix), and live until the token's expiry
///   minus the 5-minute margin. Each is sealed with AES-256-GCM, the store key as associated
///   data; an entry that does not open (another key, not ours, altered) is a miss, logged once.
/// - Single flight across the fleet, for first acquisitions and for the refresh ahead of
///   expiry (which each replica starts after a random delay of up to
///   [`refresh_jitter`](Self::refresh_jitter), so the first one refreshes and the others
///   find its token).
/// - Fail open: a store error or timeout is a miss; the store is then skipped for
///   [`retry_after_failure`](Self::retry_after_failure) (no waiting on a dead store on every
///   miss) and used again after that. The in-memory cache hit never touches the store.
///
/// `Debug` shows the prefix and the settings, never the keys or the store's password.
#[must_use]
pub struct SharedTokenCache {
    store: Arc<dyn TokenCacheStore>,
    keys: EncryptionKeys,
    prefix: String,
    lease: Duration,
    lease_wait: Duration,
    poll_interval: Duration,
    refresh_jitter: Duration,
    retry_after_failure: Duration,
    state: State,
}

/// What the cache remembers about the store.
struct State {
    started: Instant,
    /// Milliseconds after `started` until which the store is skipped (0: not skipped).
    skip_until: AtomicU64,
    /// The last call failed (for one warning per outage and one notice on recovery).
    failing: AtomicBool,
    /// An entry that did not open was already reported at warn level.
    warned_unopenable: AtomicBool,
}

impl fmt::Debug for SharedTokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTokenCache")
            .field("store", &self.store)
            .field("keys", &self.keys)
            .field("prefix", &self.prefix)
            .field("lease", &self.lease)
            .field("lease_wait", &self.lease_wait)
            .field("refresh_jitter", &self.refresh_jitter)
            .finish_non_exhaustive()
    }
}

/// The store keys of one cache entry.
pub(crate) struct StoreKeys {
    entry: String,
    lease: String,
}

/// What the caller of [`SharedTokenCache::acquire`] needs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Need {
    /// The in-memory cache has no usable token.
    Token,
    /// The in-memory token (expiring at the given time) is due for refresh: only a token
    /// that expires later is taken from the store.
    NewerThan(SystemTime),
    /// The cached token must not be used (forced refresh): ask the authority, then share.
    Fresh,
}

impl SharedTokenCache {
    /// A shared cache in `store`, sealed with `keys`.
    pub fn new(store: impl TokenCacheStore, keys: EncryptionKeys) -> Self {
        Self::from_arc(Arc::new(store), keys)
    }

    /// A shared cache in a store shared with other users.
    pub fn from_arc(store: Arc<dyn TokenCacheStore>, keys: EncryptionKeys) -> Self {
        Self {
            store,
            keys,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            lease: Duration::from_secs(10),
            lease_wait: Duration::from_secs(5),
            poll_interval: Duration::from_millis(50),
            refresh_jitter: Duration::from_secs(30),
            retry_after_failure: Duration::from_secs(2),
            state: State {
                started: Instant::now(),
                skip_until: AtomicU64::new(0),
                failing: AtomicBool::new(false),
                warned_unopenable: AtomicBool::new(false),
            },
        }
    }

    /// From the `CallApi:TokenCache` section: `None` when it names no store.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when a store is named without `EncryptionKeys`, a key is not a
    /// base64 32-byte key, the connection string is unusable, or the crate was built without
    /// the `redis` feature.
    pub fn from_options(options: &TokenCacheOptions) -> Result<Option<Self>, ConfigError> {
        let Some(redis) = options.redis.as_ref().filter(|r| {
            r.connection_string
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty())
        }) else {
            return Ok(None);
        };
        #[cfg(feature = "redis")]
        {
            let keys = EncryptionKeys::from_base64(&options.encryption_keys)?;
            let millis =
                |value: Option<u64>, default: u64| Duration::from_millis(value.unwrap_or(default));
            let url = redis.connection_string.as_deref().unwrap_or_default();
            let store = super::redis_store::RedisTokenStore::new(url)?
                .timeout(millis(redis.timeout_milliseconds, 1000));
            let mut cache = Self::new(store, keys)
                .lease_duration(millis(redis.lease_milliseconds, 10_000))
                .lease_wait(millis(redis.lease_wait_milliseconds, 5000));
            if let Some(prefix) = &redis.key_prefix {
                cache = cache.key_prefix(prefix.clone());
            }
            Ok(Some(cache))
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = redis;
            Err(ConfigError::Invalid {
                key: "CallApi:TokenCache:Redis:ConnectionString".into(),
                reason: "this build has no Redis support: enable the `redis` feature of tower-azure-auth".into(),
            })
        }
    }

    /// Put in front of every key (default `tower-azure-auth:`). Give each environment (and
    /// each application sharing a Redis) its own.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a replica holds the lease while it asks the authority (default 10 s); it
    /// releases it as soon as its token is stored. A holder that dies loses it after this.
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// How long a replica that finds the lease taken waits for the holder's token before it
    /// asks the authority itself (default 5 s).
    pub fn lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = wait;
        self
    }

    /// How often a waiting replica looks for the holder's token (default 50 ms, ±50 %
    /// jitter).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The most a replica delays its refresh ahead of expiry, at random, so that one
    /// replica refreshes and the others take its token (default 30 s; never more than half
    /// the time left before the token leaves the cache).
    pub fn refresh_jitter(mut self, jitter: Duration) -> Self {
        self.refresh_jitter = jitter;
        self
    }

    /// After a store failure, how long the store is skipped (every miss goes straight to
    /// the authority) before it is tried again (default 2 s).
    pub fn retry_after_failure(mut self, pause: Duration) -> Self {
        self.retry_after_failure = pause;
        self
    }

    /// The store keys of a cache entry: `{prefix}token:{sha256}` and `{prefix}lease:{sha256}`.
    pub(crate) fn store_keys(&self, key: &CacheKey) -> StoreKeys {
        let mut material = Vec::new();
        for part in key.parts() {
            // Length-prefixed: no two different keys share the material.
            material.extend_from_slice(part.len().to_string().as_bytes());
            material.push(b':');
            material.extend_from_slice(part);
            material.push(b';');
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &material);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        StoreKeys {
            entry: format!("{}token:{hex}", self.prefix),
            lease: format!("{}lease:{hex}", self.prefix),
        }
    }

    /// A random delay before a refresh ahead of expiry.
    pub(crate) fn refresh_delay(&self, token: &AccessToken, now: SystemTime) -> Duration {
        let headroom = token
            .expires_on()
            .checked_sub(EXPIRY_MARGIN)
            .and_then(|leaves| leaves.duration_since(now).ok())
            .unwrap_or_default();
        let most = self.refresh_jitter.min(headroom / 2);
        most.mul_f64(random_fraction())
    }

    /// Gets a token through the shared cache: from the store, from the lease holder, or from
    /// `fetch` (which asks the authority); a fetched token is stored for the others.
    pub(crate) async fn acquire<F, Fut>(
        &self,
        key: &CacheKey,
        need: Need,
        clock: &SharedClock,
        fetch: F,
    ) -> Result<AccessToken, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, TokenError>>,
    {
        let keys = self.store_keys(key);
        let newer_than = match need {
            Need::Fresh => return self.fetch_and_share(&keys, clock, fetch).await,
            Need::Token => None,
            Need::NewerThan(expiry) => Some(expiry),
        };
        if let Some(token) = self.load(&keys, clock.now(), newer_than).await {
            debug!(target: TARGET, "token taken from the shared cache");
            return Ok(token);
        }
        let holder = lease_holder();
        let mut leased = self.try_lease(&keys, &holder).await;
        if leased == Some(false) {
            debug!(target: TARGET, "another replica holds the lease; waiting for its token");
            let deadline = Instant::now() + self.lease_wait;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    debug!(target: TARGET, wait = ?self.lease_wait,
                        "no token from the lease holder in time; asking the authority");
                    break;
                }
                tokio::time::sleep(
                    self.poll_interval
                        .mul_f64(0.5 + random_fraction())
                        .min(left),
                )
                .await;
                if let Some(token) = self.load(&keys, clock.now(), newer_than).await {
                    debug!(target: TARGET, "token from the lease holder taken from the shared cache");
                    return Ok(token);
                }
                leased = self.try_lease(&keys, &holder).await;
                if leased != Some(false) {
                    break;
                }
            }
        }
        // Released once the token is stored, and also when this future is dropped midway.
        let lease = (leased == Some(true)).then(|| Lease {
            store: Arc::clone(&self.store),
            key: keys.lease.clone(),
            holder: Some(holder),
        });
        if let Some(lease) = lease {
            // The previous holder stores its token before it releases the lease.
            if let Some(token) = self.load(&keys, clock.now(), newer_than).await {
                lease.release(self).await;
                return Ok(token);
            }
            let result = self.fetch_and_share(&keys, clock, fetch).await;
            lease.release(self).await;
            return result;
        }
        self.fetch_and_share(&keys, clock, fetch).await
    }

    async fn fetch_and_share<F, Fut>(
        &self,
        keys: &StoreKeys,
        clock: &SharedClock,
        fetch: F,
    ) -> Result<AccessToken, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, TokenError>>,
    {
        let result = fetch().await;
        if let Ok(token) = &result {
            self.save(keys, token, clock.now()).await;
        }
        result
    }

    fn skipping(&self) -> bool {
        let until = self.state.skip_until.load(Ordering::SeqCst);
        until != 0 && self.elapsed_millis() < until
    }

    fn elapsed_millis(&self) -> u64 {
        u64::try_from(self.state.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs one store call unless the store is being skipped; failures start a pause.
    async fn call<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Option<T> {
        if self.skipping() {
            return None;
        }
        match call.await {
            Ok(value) => {
                if self.state.failing.swap(false, Ordering::SeqCst) {
                    info!(target: TARGET, "the shared token cache answers again");
                }
                self.state.skip_until.store(0, Ordering::SeqCst);
                Some(value)
            }
            Err(error) => {
                let pause = u64::try_from(self.retry_after_failure.as_millis()).unwrap_or(0);
                self.state.skip_until.store(
                    self.elapsed_millis().saturating_add(pause).max(1),
                    Ordering::SeqCst,
                );
                if self.state.failing.swap(true, Ordering::SeqCst) {
                    debug!(target: TARGET, %error, what, "the shared token cache is still unavailable");
                } else {
                    warn!(target: TARGET, error = %crate::error::error_chain(&error), what,
                        "the shared token cache is unavailable; this replica uses its own cache and asks the authority itself until it answers again");
                }
                None
            }
        }
    }

    async fn load(
        &self,
        keys: &StoreKeys,
        now: SystemTime,
        newer_than: Option<SystemTime>,
    ) -> Option<AccessToken> {
        let sealed = self.call("get", self.store.get(&keys.entry)).await??;
        let token = self
            .keys
            .open(keys.entry.as_bytes(), &sealed)
            .and_then(|plaintext| sealing::decode(&plaintext));
        let Some(token) = token else {
            if self.state.warned_unopenable.swap(true, Ordering::SeqCst) {
                debug!(target: TARGET, "an entry of the shared token cache does not open; treated as a miss");
            } else {
                warn!(target: TARGET,
                    "an entry of the shared token cache does not open (sealed with a key not in EncryptionKeys, or not written by this library); treated as a miss and replaced (reported once)");
            }
            return None;
        };
        let newer = newer_than.is_none_or(|expiry| token.expires_on() > expiry);
        (token.usable_at(now, EXPIRY_MARGIN) && newer).then_some(token)
    }

    async fn save(&self, keys: &StoreKeys, token: &AccessToken, now: SystemTime) {
        let Some(ttl) = token
            .expires_on()
            .checked_sub(EXPIRY_MARGIN)
            .and_then(|leaves| leaves.duration_since(now).ok())
            .filter(|ttl| !ttl.is_zero())
        else {
            return;
        };
        let Some(sealed) = self
            .keys
            .seal(keys.entry.as_bytes(), &sealing::encode(token))
        else {
            warn!(target: TARGET, "a token could not be sealed; it is not shared");
            return;
        };
        self.call("set", self.store.set(&keys.entry, &sealed, ttl))
            .await;
    }

    /// `Some(true)`: taken; `Some(false)`: another replica holds it; `None`: no store.
    async fn try_lease(&self, keys: &StoreKeys, holder: &str) -> Option<bool> {
        self.call(
            "lease",
            self.store.try_lease(&keys.lease, holder, self.lease),
        )
        .await
    }
}

/// A lease taken by this replica; when dropped before it was released (the caller gave up
/// while the authority was asked), it is released in the background.
struct Lease {
    store: Arc<dyn TokenCacheStore>,
    key: String,
    holder: Option<String>,
}

impl Lease {
    async fn release(mut self, cache: &SharedTokenCache) {
        if let Some(holder) = self.holder.take() {
            cache
                .call("release", cache.store.release_lease(&self.key, &holder))
                .await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(holder) = self.holder.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&self.store);
            let key = std::mem::take(&mut self.key);
            runtime.spawn(async move {
                let _ = store.release_lease(&key, &holder).await;
            });
        }
    }
}

/// A lease holder's value: 20 random bytes, hex ("unique across all clients and all lock
/// requests").
fn lease_holder() -> String {
    let mut bytes = [0u8; 20];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random number in [0, 1).
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests;
