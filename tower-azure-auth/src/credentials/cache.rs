//! The token cache: one slot per (authority, client id, sorted scope set), one request to the
//! authority per slot at a time (single flight), throttling memory for `Retry-After`.
//!
//! The slots live in a sharded, bounded `quick_cache` map (CLOCK-PRO eviction: a slot that is
//! not asked for goes before one that is, whatever its token's expiry), so an insert costs
//! O(1) at any size. A key is one contiguous run of normalised bytes. A hit looks the slot up
//! by a borrowed [`KeyRef`]: the caller's scopes are trimmed, compared without regard to
//! case, sorted and de-duplicated, and the key's bytes written on the stack, so a hit
//! allocates nothing and hashes and compares one run of bytes.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;

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

/// The most scopes a [`KeyRef`] normalises on the stack; a call with more takes the owned
/// key's path (one allocation).
pub(crate) const INLINE_SCOPES: usize = 8;

/// The most bytes a [`KeyRef`] holds on the stack (authority, client id and scopes, each
/// with its separator); a longer key takes the owned key's path. A real key (a 70-byte
/// authority, a 36-byte client id, one `api://{guid}/.default`) takes about 160.
const INLINE_KEY_BYTES: usize = 512;

/// Ends each part of a key. Never a byte of UTF-8 text, so no two different keys (however
/// their parts are split) have the same bytes.
const SEPARATOR: u8 = 0xff;

/// The cache key: authority, client id, sorted and de-duplicated scopes (trimmed and
/// lower-cased, as MSAL keys them), as one contiguous run of bytes, each part followed by
/// [`SEPARATOR`]. One allocation, one comparison and, in a large cache, one memory miss per
/// probe: a key of separate strings cost a dependent load per part.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CacheKey {
    bytes: Box<[u8]>,
}

impl CacheKey {
    pub(crate) fn new<S: AsRef<str>>(authority: &str, client_id: &str, scopes: &[S]) -> Self {
        let mut scopes: Vec<String> = scopes
            .iter()
            .map(|s| s.as_ref().trim().to_ascii_lowercase())
            .collect();
        scopes.sort();
        scopes.dedup();
        let len = authority.len() + client_id.len() + scopes.iter().map(String::len).sum::<usize>();
        let mut bytes = Vec::with_capacity(len + 2 + scopes.len());
        for part in [authority, client_id]
            .into_iter()
            .chain(scopes.iter().map(String::as_str))
        {
            bytes.extend(part.bytes().map(|b| b.to_ascii_lowercase()));
            bytes.push(SEPARATOR);
        }
        Self {
            bytes: bytes.into_boxed_slice(),
        }
    }

    /// The parts, in order: authority, client id, then each scope (normalised).
    pub(crate) fn parts(&self) -> impl Iterator<Item = &[u8]> {
        let body = self.bytes.strip_suffix(&[SEPARATOR]).unwrap_or(&self.bytes);
        body.split(|&b| b == SEPARATOR)
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for part in self.parts() {
            list.entry(&String::from_utf8_lossy(part));
        }
        list.finish()
    }
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // One write of the whole key; `KeyRef` writes the same bytes.
        state.write(&self.bytes);
    }
}

/// The stack buffer a [`KeyRef`] is written into (the caller's, so that the key is never
/// moved: a 512-byte return value cost a `memmove` per hit).
pub(crate) struct KeyBuf([u8; INLINE_KEY_BYTES]);

impl KeyBuf {
    pub(crate) fn new() -> Self {
        Self([0; INLINE_KEY_BYTES])
    }
}

/// A key borrowed from a caller's arguments, equal (and hashing equal) to the [`CacheKey`]
/// built from the same arguments: the same bytes, normalised into a [`KeyBuf`] on the
/// caller's stack, so a hit allocates nothing.
pub(crate) struct KeyRef<'b> {
    bytes: &'b [u8],
}

impl std::fmt::Debug for KeyRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyRef")
            .field(&String::from_utf8_lossy(self.bytes))
            .finish()
    }
}

impl<'b> KeyRef<'b> {
    /// `None` when there are more than [`INLINE_SCOPES`] scopes or the key is longer than
    /// the buffer.
    pub(crate) fn new<S: AsRef<str>>(
        buf: &'b mut KeyBuf,
        authority: &str,
        client_id: &str,
        scopes: &[S],
    ) -> Option<Self> {
        if scopes.len() > INLINE_SCOPES {
            return None;
        }
        // Trimmed, sorted by their lower-cased bytes, de-duplicated without regard to case
        // (the order and set of the owned key's lower-cased strings).
        let mut sorted = [""; INLINE_SCOPES];
        let mut count = 0;
        for scope in scopes {
            let scope = scope.as_ref().trim();
            // Insertion sort (a handful of scopes), skipping duplicates.
            let mut at = count;
            let mut duplicate = false;
            while at > 0 {
                match cmp_lower(sorted[at - 1], scope) {
                    std::cmp::Ordering::Greater => at -= 1,
                    std::cmp::Ordering::Equal => {
                        duplicate = true;
                        break;
                    }
                    std::cmp::Ordering::Less => break,
                }
            }
            if duplicate {
                continue;
            }
            sorted.copy_within(at..count, at + 1);
            sorted[at] = scope;
            count += 1;
        }
        let buf = &mut buf.0;
        let mut len = 0;
        for part in [authority, client_id]
            .into_iter()
            .chain(sorted[..count].iter().copied())
        {
            let end = len + part.len();
            buf.get_mut(len..end)?.copy_from_slice(part.as_bytes());
            *buf.get_mut(end)? = SEPARATOR;
            len = end + 1;
        }
        let bytes = &mut buf[..len];
        // One branch-free pass over the whole key, so that it vectorises (the separator,
        // 0xff, stays as it is).
        for byte in bytes.iter_mut() {
            *byte |= u8::from(byte.wrapping_sub(b'A') < 26) << 5;
        }
        Some(Self { bytes })
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.bytes);
    }
}

impl quick_cache::Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        *self.bytes == *key.bytes
    }
}

/// Compares two strings by their ASCII-lower-cased bytes (the order of the lower-cased
/// `String`s the owned key sorts).
fn cmp_lower(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
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

/// Keeps a slot that has a token request in flight: evicting it would let the next caller
/// start a second request for the same key.
#[derive(Debug, Clone, Copy, Default)]
struct KeepInFlight;

impl quick_cache::Lifecycle<CacheKey, Arc<Slot>> for KeepInFlight {
    type RequestState = ();

    fn is_pinned(&self, _key: &CacheKey, slot: &Arc<Slot>) -> bool {
        slot.flight.try_lock().is_err()
    }
}

type Slots = quick_cache::sync::Cache<
    CacheKey,
    Arc<Slot>,
    quick_cache::UnitWeighter,
    quick_cache::DefaultHashBuilder,
    KeepInFlight,
>;

/// A bounded map of slots: sharded (`quick_cache`), a hit takes one shard's read lock and
/// allocates nothing; an insert (once per new scope set) is O(1); past `max_entries` the
/// slot least asked for lately goes (CLOCK-PRO), never one with a request in flight.
#[derive(Debug)]
pub(crate) struct TokenCache {
    slots: Slots,
}

impl TokenCache {
    pub(crate) fn new(max_entries: usize) -> Self {
        let max_entries = max_entries.max(1);
        Self {
            slots: Slots::with(
                max_entries,
                u64::try_from(max_entries).unwrap_or(u64::MAX),
                quick_cache::UnitWeighter,
                quick_cache::DefaultHashBuilder::default(),
                KeepInFlight,
            ),
        }
    }

    /// The slot for `key`, if there is one (the hit path: no allocation).
    pub(crate) fn get(&self, key: &KeyRef<'_>) -> Option<Arc<Slot>> {
        self.slots.get(key)
    }

    /// The slot for `key`, created if needed; callers asking at once get the same slot.
    pub(crate) fn slot(&self, key: &CacheKey, _now: SystemTime) -> Arc<Slot> {
        match self
            .slots
            .get_or_insert_with(key, || Ok::<_, std::convert::Infallible>(Arc::default()))
        {
            Ok(slot) => slot,
            Err(never) => match never {},
        }
    }

    /// How many slots are held.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
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
    fn a_borrowed_key_finds_the_slot_of_the_equal_owned_key() {
        struct Case {
            name: &'static str,
            stored: &'static [&'static str],
            asked: &'static [&'static str],
            found: bool,
        }
        let cases = [
            Case {
                name: "as stored",
                stored: &["api://x/.default"],
                asked: &["api://x/.default"],
                found: true,
            },
            Case {
                name: "order",
                stored: &["a/.default", "b/.default", "c/.default"],
                asked: &["c/.default", "a/.default", "b/.default"],
                found: true,
            },
            Case {
                name: "case",
                stored: &["api://x/.default"],
                asked: &["API://X/.default"],
                found: true,
            },
            Case {
                name: "duplicates, in other case",
                stored: &["a/.default", "b/.default"],
                asked: &["b/.default", "A/.default", "a/.default", "B/.default"],
                found: true,
            },
            Case {
                name: "surrounding spaces",
                stored: &["a/.default"],
                asked: &[" a/.default\t"],
                found: true,
            },
            Case {
                name: "a long scope, in other case",
                stored: &[
                    "api://a-very-long-application-id-uri.contoso.example.com/weather/.default",
                ],
                asked: &[
                    "API://A-Very-Long-Application-Id-Uri.Contoso.Example.com/Weather/.default",
                ],
                found: true,
            },
            Case {
                name: "non-ASCII text is kept as it is",
                stored: &["api://wetter-é/.default"],
                asked: &["API://Wetter-é/.default"],
                found: true,
            },
            Case {
                name: "non-ASCII letters are not folded (ASCII case only, as before)",
                stored: &["api://wetter-é/.default"],
                asked: &["api://wetter-É/.default"],
                found: false,
            },
            Case {
                name: "scope boundaries are not ambiguous",
                stored: &["a/.default", "b/.default"],
                asked: &["a/.defaultb/.default"],
                found: false,
            },
            Case {
                name: "another scope",
                stored: &["a/.default"],
                asked: &["b/.default"],
                found: false,
            },
            Case {
                name: "a subset",
                stored: &["a/.default", "b/.default"],
                asked: &["a/.default"],
                found: false,
            },
            Case {
                name: "a superset",
                stored: &["a/.default"],
                asked: &["a/.default", "b/.default"],
                found: false,
            },
            Case {
                name: "no scope against one",
                stored: &["a/.default"],
                asked: &[],
                found: false,
            },
        ];
        let now = SystemTime::now();
        for case in cases {
            let cache = TokenCache::new(16);
            let slot = cache.slot(&CacheKey::new("https://A/t/", "Client", case.stored), now);
            let owned = CacheKey::new("https://a/T/", "client", case.asked);
            let mut buf = KeyBuf::new();
            let borrowed = KeyRef::new(&mut buf, "https://a/T/", "client", case.asked).unwrap();
            let hasher = quick_cache::DefaultHashBuilder::default();
            assert_eq!(
                std::hash::BuildHasher::hash_one(&hasher, &owned),
                std::hash::BuildHasher::hash_one(&hasher, &borrowed),
                "{}: the two forms hash alike",
                case.name
            );
            let found = cache.get(&borrowed);
            assert_eq!(found.is_some(), case.found, "{}", case.name);
            if let Some(found) = found {
                assert!(Arc::ptr_eq(&found, &slot), "{}: the same slot", case.name);
            }
        }
    }

    #[test]
    fn more_scopes_than_fit_on_the_stack_take_the_owned_path() {
        let many: Vec<String> = (0..=INLINE_SCOPES)
            .map(|i| format!("s{i}/.default"))
            .collect();
        assert!(KeyRef::new(&mut KeyBuf::new(), "a", "c", &many).is_none());
        assert!(KeyRef::new(&mut KeyBuf::new(), "a", "c", &many[..INLINE_SCOPES]).is_some());
    }

    #[test]
    fn a_key_longer_than_the_stack_buffer_takes_the_owned_path() {
        let now = SystemTime::now();
        let cache = TokenCache::new(16);
        let long = format!("api://{}/.default", "x".repeat(INLINE_KEY_BYTES));
        cache.slot(&CacheKey::new("https://a/t", "c", &[&long]), now);
        assert!(KeyRef::new(&mut KeyBuf::new(), "https://a/t", "c", &[&long]).is_none());
        // One that just fits: authority, client id and scope, each with its separator.
        let fits = "s".repeat(INLINE_KEY_BYTES - "https://a/t".len() - "c".len() - 3);
        let slot = cache.slot(&CacheKey::new("https://a/t", "c", &[&fits]), now);
        let found = cache
            .get(&KeyRef::new(&mut KeyBuf::new(), "https://a/t", "c", &[&fits]).expect("it fits"))
            .expect("found");
        assert!(Arc::ptr_eq(&found, &slot));
        assert!(KeyRef::new(
            &mut KeyBuf::new(),
            "https://a/t",
            "c",
            &[format!("{fits}s")]
        )
        .is_none());
    }

    #[test]
    fn a_key_shows_its_parts_in_debug() {
        let key = CacheKey::new("https://A/t", "Client", &["Y/.default", "x/.default"]);
        assert_eq!(
            format!("{key:?}"),
            r#"["https://a/t", "client", "x/.default", "y/.default"]"#
        );
    }

    #[test]
    fn callers_asking_at_once_share_one_slot() {
        let cache = TokenCache::new(64);
        let key = CacheKey::new("a", "c", &["s/.default"]);
        let now = SystemTime::now();
        let slots: Vec<Arc<Slot>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| cache.slot(&key, now)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(slots.iter().all(|s| Arc::ptr_eq(s, &slots[0])));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_slot_with_a_request_in_flight_is_not_evicted() {
        let cache = TokenCache::new(4);
        let now = SystemTime::now();
        let key = CacheKey::new("a", "c", &["busy/.default"]);
        let busy = cache.slot(&key, now);
        let flight = busy.flight.try_lock().unwrap();
        for i in 0..100 {
            cache.slot(&CacheKey::new("a", "c", &[format!("s{i}/.default")]), now);
            assert!(cache.len() <= 4, "after {i}: {}", cache.len());
        }
        let mut buf = KeyBuf::new();
        let borrowed = KeyRef::new(&mut buf, "a", "c", &["busy/.default"]).unwrap();
        assert!(
            cache.get(&borrowed).is_some_and(|s| Arc::ptr_eq(&s, &busy)),
            "kept while its request runs"
        );
        drop(flight);
    }

    /// The one scope of a test key, as text.
    fn key_scope(key: &CacheKey) -> String {
        String::from_utf8(key.parts().nth(2).expect("a scope").to_vec()).unwrap()
    }

    #[test]
    fn slots_asked_for_stay_while_new_keys_stream_through() {
        // A scan of one-off keys does not push out the keys in use (CLOCK-PRO).
        let cache = TokenCache::new(64);
        let now = SystemTime::now();
        let hot: Vec<CacheKey> = (0..8)
            .map(|i| CacheKey::new("a", "c", &[format!("hot{i}/.default")]))
            .collect();
        for key in &hot {
            cache.slot(key, now);
        }
        for i in 0..10_000 {
            for key in &hot {
                let scopes = [key_scope(key)];
                assert!(
                    cache
                        .get(&KeyRef::new(&mut KeyBuf::new(), "a", "c", &scopes).unwrap())
                        .is_some(),
                    "hot key {key:?} at {i}"
                );
            }
            cache.slot(
                &CacheKey::new("a", "c", &[format!("cold{i}/.default")]),
                now,
            );
            assert!(cache.len() <= 64);
        }
    }

    #[test]
    fn a_cache_of_two_holds_two_and_a_third_evicts() {
        // What tests/tests/it/load_safety.rs relies on through `max_cache_entries(2)`.
        let cache = TokenCache::new(2);
        let now = SystemTime::now();
        let keys: Vec<CacheKey> = (0..3)
            .map(|i| CacheKey::new("a", "c", &[format!("s{i}/.default")]))
            .collect();
        let first: Vec<Arc<Slot>> = keys[..2].iter().map(|k| cache.slot(k, now)).collect();
        for (key, slot) in keys[..2].iter().zip(&first) {
            assert!(Arc::ptr_eq(slot, &cache.slot(key, now)), "both fit");
        }
        cache.slot(&keys[2], now);
        assert!(cache.len() <= 2);
        let kept = keys[..2]
            .iter()
            .zip(&first)
            .filter(|(key, slot)| {
                let scopes = [key_scope(key)];
                cache
                    .get(&KeyRef::new(&mut KeyBuf::new(), "a", "c", &scopes).unwrap())
                    .is_some_and(|s| Arc::ptr_eq(&s, slot))
            })
            .count();
        assert!(kept < 2, "the third evicted one of the two");
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
