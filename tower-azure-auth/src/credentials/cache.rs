//! The token cache: one slot per (authority, client id, sorted scope set), read without a
//! lock on a hit (arc-swap), one request to the authority per slot at a time (single flight),
//! throttling memory for `Retry-After`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, ArcSwapOption};

use super::token::AccessToken;

/// A cached token must have more than this left to be returned (MSAL's
/// `AccessTokenExpirationBuffer`).
pub(crate) const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

/// `Retry-After` values are capped at one hour (MSAL's `RetryAfterProvider`).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The default least time between two forced refreshes of one cache entry after the called
/// API refused its token.
pub(crate) const FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// After a failed background refresh, the next one waits this long.
const REFRESH_BACKOFF: Duration = Duration::from_secs(30);

/// The cache key: authority, client id, sorted and de-duplicated scopes (lower-cased, as
/// MSAL keys them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub(crate) authority: String,
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
}

impl CacheKey {
    pub(crate) fn new(authority: &str, client_id: &str, scopes: &[String]) -> Self {
        let mut scopes: Vec<String> = scopes
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        scopes.sort();
        scopes.dedup();
        Self {
            authority: authority.to_ascii_lowercase(),
            client_id: client_id.to_ascii_lowercase(),
            scopes,
        }
    }
}

/// One slot.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) token: ArcSwapOption<AccessToken>,
    /// Serialises requests to the authority for this slot.
    pub(crate) flight: tokio::sync::Mutex<()>,
    /// Bumped every time a new token is stored; lets waiters see that someone else fetched.
    pub(crate) generation: AtomicU64,
    /// A background refresh is running.
    pub(crate) refreshing: AtomicBool,
    /// Unix milliseconds before which no background refresh starts (after a failure).
    pub(crate) refresh_not_before: AtomicU64,
    /// Unix milliseconds until which requests are refused (`Retry-After`).
    pub(crate) throttled_until: AtomicU64,
    /// Unix milliseconds of the last forced refresh after a refusal (0: never).
    pub(crate) last_forced: AtomicU64,
    /// Failed requests since the authority last answered, while the cached token is served
    /// from its extended lifetime (0: no outage; see `resilience`).
    pub(crate) outage_failures: AtomicU32,
}

pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Slot {
    pub(crate) fn store(&self, token: AccessToken) {
        self.token.store(Some(Arc::new(token)));
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The remaining throttling time, if any.
    pub(crate) fn throttled(&self, now: SystemTime) -> Option<Duration> {
        let until = self.throttled_until.load(Ordering::SeqCst);
        let now = unix_millis(now);
        (until > now).then(|| Duration::from_millis(until - now))
    }

    pub(crate) fn throttle(&self, now: SystemTime, retry_after: Duration) {
        let until = unix_millis(now).saturating_add(
            u64::try_from(retry_after.min(MAX_RETRY_AFTER).as_millis()).unwrap_or(u64::MAX),
        );
        self.throttled_until.store(until, Ordering::SeqCst);
    }

    /// Claims the right to a forced refresh after the called API refused the token: at most
    /// one per `interval` for this slot (the first one always).
    pub(crate) fn claim_forced(&self, now: SystemTime, interval: Duration) -> bool {
        let now = unix_millis(now).max(1);
        let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        let mut last = self.last_forced.load(Ordering::SeqCst);
        loop {
            if last != 0 && now < last.saturating_add(interval) {
                return false;
            }
            match self
                .last_forced
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(current) => last = current,
            }
        }
    }

    /// Claims the right to start a background refresh; false if one runs or one failed
    /// recently.
    pub(crate) fn claim_refresh(&self, now: SystemTime) -> bool {
        if unix_millis(now) < self.refresh_not_before.load(Ordering::SeqCst) {
            return false;
        }
        !self.refreshing.swap(true, Ordering::SeqCst)
    }

    pub(crate) fn end_refresh(&self, now: SystemTime, failed: bool) {
        if failed {
            let not_before = unix_millis(now)
                .saturating_add(u64::try_from(REFRESH_BACKOFF.as_millis()).unwrap_or(0));
            self.refresh_not_before.store(not_before, Ordering::SeqCst);
        }
        self.refreshing.store(false, Ordering::SeqCst);
    }
}

/// A bounded map of slots; lookups are lock-free (the map itself is behind an `ArcSwap` and
/// replaced on insert, which happens once per new scope set).
#[derive(Debug)]
pub(crate) struct TokenCache {
    slots: ArcSwap<HashMap<CacheKey, Arc<Slot>>>,
    insert: Mutex<()>,
    max_entries: usize,
}

impl TokenCache {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            slots: ArcSwap::from_pointee(HashMap::new()),
            insert: Mutex::new(()),
            max_entries: max_entries.max(1),
        }
    }

    /// The slot for `key`, created if needed. When the cache is full, slots whose token has
    /// expired go first, then the one expiring soonest.
    pub(crate) fn slot(&self, key: &CacheKey, now: SystemTime) -> Arc<Slot> {
        if let Some(slot) = self.slots.load().get(key) {
            return Arc::clone(slot);
        }
        let _guard = self
            .insert
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.slots.load_full();
        if let Some(slot) = current.get(key) {
            return Arc::clone(slot);
        }
        let mut next: HashMap<CacheKey, Arc<Slot>> = (*current).clone();
        if next.len() >= self.max_entries {
            next.retain(|_, slot| {
                slot.token
                    .load()
                    .as_ref()
                    .is_some_and(|t| t.usable_at(now, EXPIRY_MARGIN))
            });
        }
        while next.len() >= self.max_entries {
            let victim = next
                .iter()
                .min_by_key(|(_, slot)| {
                    slot.token
                        .load()
                        .as_ref()
                        .map_or(0, |t| unix_millis(t.expires_on()))
                })
                .map(|(k, _)| k.clone());
            match victim {
                Some(victim) => {
                    next.remove(&victim);
                }
                None => break,
            }
        }
        let slot = Arc::new(Slot::default());
        next.insert(key.clone(), Arc::clone(&slot));
        self.slots.store(Arc::new(next));
        slot
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.load().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_order_case_and_duplicates() {
        struct Case {
            name: &'static str,
            a: &'static [&'static str],
            b: &'static [&'static str],
            equal: bool,
        }
        let cases = [
            Case {
                name: "order",
                a: &["x/.default", "y/.default"],
                b: &["y/.default", "x/.default"],
                equal: true,
            },
            Case {
                name: "case",
                a: &["API://X/.default"],
                b: &["api://x/.default"],
                equal: true,
            },
            Case {
                name: "duplicates",
                a: &["x", "x"],
                b: &["x"],
                equal: true,
            },
            Case {
                name: "different",
                a: &["x"],
                b: &["y"],
                equal: false,
            },
        ];
        for case in cases {
            let a: Vec<String> = case.a.iter().map(|s| s.to_string()).collect();
            let b: Vec<String> = case.b.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                CacheKey::new("https://a/t", "c", &a) == CacheKey::new("https://a/t", "c", &b),
                case.equal,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = TokenCache::new(3);
        let now = SystemTime::now();
        for i in 0..10 {
            let key = CacheKey::new("a", "c", &[format!("s{i}")]);
            let slot = cache.slot(&key, now);
            assert!(
                Arc::ptr_eq(&slot, &cache.slot(&key, now)),
                "slot {i} is reused"
            );
            assert!(cache.len() <= 3, "after {i}: {}", cache.len());
        }
    }

    #[test]
    fn forced_refreshes_are_claimed_at_most_once_per_interval() {
        let slot = Slot::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let interval = Duration::from_secs(30);
        assert!(slot.claim_forced(now, interval), "the first one");
        assert!(!slot.claim_forced(now, interval), "again at once");
        assert!(
            !slot.claim_forced(now + Duration::from_secs(29), interval),
            "inside the interval"
        );
        assert!(
            slot.claim_forced(now + interval, interval),
            "once the interval passed"
        );
        assert!(
            !slot.claim_forced(now + interval, interval),
            "then not again"
        );
    }

    #[test]
    fn throttling_is_capped_at_one_hour() {
        let slot = Slot::default();
        let now = SystemTime::now();
        slot.throttle(now, Duration::from_secs(10 * 3600));
        assert_eq!(slot.throttled(now), Some(MAX_RETRY_AFTER));
        assert_eq!(slot.throttled(now + MAX_RETRY_AFTER), None);
    }
}
