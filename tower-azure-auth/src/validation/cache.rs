//! The verified-token cache: tokens by their full text, weighed as the heap they hold, so
//! that the same token presented again skips the signature check and the JSON parse (never
//! the lifetime check, and only while the key that verified it is still published: the
//! validator checks both on a hit).

use std::hash::{Hash, Hasher};

use crate::claims::Claims;
use crate::telemetry::Telemetry;

/// Verified tokens by their full text: a hit skips the signature check and the JSON parse,
/// never the lifetime check, and only while the key that verified it is still published.
type Cache = quick_cache::sync::Cache<
    TokenKey,
    CachedToken,
    TokenWeight,
    quick_cache::DefaultHashBuilder,
    CountEvictions,
>;

/// Counts evictions (for the instruments) and, as quick_cache's default lifecycle does,
/// keeps up to two evicted entries to drop them outside the cache's locks.
#[derive(Clone)]
struct CountEvictions(Telemetry);

impl quick_cache::Lifecycle<TokenKey, CachedToken> for CountEvictions {
    type RequestState = [Option<(TokenKey, CachedToken)>; 2];

    fn on_evict(&self, state: &mut Self::RequestState, key: TokenKey, val: CachedToken) {
        self.0.token_cache_eviction();
        if let Some(slot) = state.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some((key, val));
        }
    }
}

/// How many bytes of a token's end are hashed: the end of its signature, which a verified
/// token cannot share with another (its signature covers all the rest), so hashing the whole
/// 1 KB text spreads the entries no better. Equality still compares every byte.
const HASHED_TAIL: usize = 32;

/// Hashes a token's length and last [`HASHED_TAIL`] bytes. Only verified tokens are
/// inserted, so tokens made to share a tail (to collide) are never stored: a lookup with one
/// compares against the one genuine token of that tail at most. The hasher is seeded per
/// process, as the cache's default.
fn hash_token<H: Hasher>(token: &str, state: &mut H) {
    let bytes = token.as_bytes();
    state.write_usize(bytes.len());
    state.write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
}

/// A cached token's full text, hashed by [`hash_token`].
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TokenKey(Box<str>);

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_token(&self.0, state);
    }
}

/// A token to look up: hashed as its [`TokenKey`], equal to it when every byte is.
struct TokenRef<'a>(&'a str);

impl Hash for TokenRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_token(self.0, state);
    }
}

impl quick_cache::Equivalent<TokenKey> for TokenRef<'_> {
    fn equivalent(&self, key: &TokenKey) -> bool {
        *key.0 == *self.0
    }
}

/// A verified token's claims and the key that verified it.
#[derive(Clone)]
pub(crate) struct CachedToken {
    pub(crate) claims: Claims,
    /// The [`SigningKey::id`](super::keys::SigningKey::id) of the key that verified it.
    pub(crate) key_id: u64,
    weight: u64,
    /// Whether `weight` counts the claims map (built on a caller's first
    /// [`Claims::get`](crate::claims::Claims::get)); when it is built later, the next hit
    /// weighs the entry again.
    map_weighed: bool,
}

impl CachedToken {
    /// Whether the claims have grown since the entry was weighed (their map was built).
    pub(crate) fn weight_is_stale(&self) -> bool {
        !self.map_weighed && self.claims.map_built()
    }
}

/// What a cached token costs besides its text and its claims: its slot in the cache's slab
/// (the entry and its links, with room for the slab's growth and for the ghost entries of
/// evicted tokens) and in its hash table.
const CACHE_ENTRY_OVERHEAD: usize = 2 * (size_of::<(TokenKey, CachedToken)>() + 16) + 16;

/// Weighs a cached token as the heap it holds: the token's text, its claims (computed once,
/// at insert, by [`Claims::heap_bytes`]) and the cache's own per-entry overhead, so that the
/// budget of [`TokenValidatorBuilder::verified_token_cache`] bounds real memory.
#[derive(Clone)]
struct TokenWeight;

impl quick_cache::Weighter<TokenKey, CachedToken> for TokenWeight {
    fn weight(&self, _token: &TokenKey, value: &CachedToken) -> u64 {
        value.weight
    }
}

/// The verified tokens, within a memory budget.
pub(crate) struct VerifiedTokens {
    cache: Cache,
    /// This cache's id in the per-thread fronts ([`front`](super::front)).
    owner: u64,
}

impl VerifiedTokens {
    /// A cache of at most `bytes` (by [`TokenWeight`]); `None` for 0 (no cache). Evictions
    /// are counted by `telemetry`.
    pub(crate) fn new(bytes: usize, telemetry: &Telemetry) -> Option<Self> {
        (bytes > 0).then(|| Self {
            // About 6 KiB per app-only Entra token with its claims, held.
            cache: Cache::with(
                (bytes / 6144).max(16),
                bytes as u64,
                TokenWeight,
                quick_cache::DefaultHashBuilder::default(),
                CountEvictions(telemetry.clone()),
            ),
            owner: super::front::new_owner(),
        })
    }

    /// This cache's id in the per-thread fronts.
    pub(crate) fn owner(&self) -> u64 {
        self.owner
    }

    /// The cached entries' weight: the heap they hold, in bytes.
    pub(crate) fn weight(&self) -> u64 {
        self.cache.weight()
    }

    /// The entry of `token`, if cached.
    pub(crate) fn get(&self, token: &str) -> Option<CachedToken> {
        self.cache.get(&TokenRef(token))
    }

    /// Caches `token`, verified by the key `key_id`.
    pub(crate) fn insert(&self, token: &str, claims: &Claims, key_id: u64) {
        let map_weighed = claims.map_built();
        let weight = (token.len() + claims.heap_bytes() + CACHE_ENTRY_OVERHEAD) as u64;
        self.cache.insert(
            TokenKey(token.into()),
            CachedToken {
                claims: claims.clone(),
                key_id,
                weight,
                map_weighed,
            },
        );
    }

    /// Forgets `token`.
    pub(crate) fn remove(&self, token: &str) {
        self.cache.remove(&TokenRef(token));
    }

    /// Keeps only the tokens whose claims `keep` accepts (revocation evicts with it).
    pub(crate) fn retain(&self, keep: impl Fn(&Claims) -> bool) {
        self.cache.retain(|_, token| keep(&token.claims));
    }

    /// How many tokens are cached.
    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> Claims {
        let serde_json::Value::Object(map) = json else {
            panic!("an object")
        };
        Claims::from_map(map).expect("claims")
    }

    #[test]
    fn cached_tokens_are_found_by_their_text_and_weighed() {
        assert!(
            VerifiedTokens::new(0, &Telemetry::default()).is_none(),
            "0 bytes: no cache"
        );
        let cache = VerifiedTokens::new(64 * 1024, &Telemetry::default()).expect("cache");
        let claims = claims(serde_json::json!({"aud": "api", "roles": ["service-api"]}));
        cache.insert("a.b.c", &claims, 7);
        let hit = cache.get("a.b.c").expect("hit");
        assert_eq!(hit.key_id, 7);
        assert_eq!(hit.claims.audiences().collect::<Vec<_>>(), ["api"]);
        assert!(hit.weight >= ("a.b.c".len() + CACHE_ENTRY_OVERHEAD) as u64);
        assert!(cache.get("a.b.d").is_none(), "another token");
        assert_eq!(cache.len(), 1);
        cache.remove("a.b.c");
        assert!(cache.get("a.b.c").is_none());
        assert_eq!(cache.len(), 0);
        cache.insert("a.b.c", &claims, 7);
        cache.insert(
            "d.e.f",
            &self::claims(serde_json::json!({"aud": "other"})),
            7,
        );
        cache.retain(|claims| claims.audiences().all(|a| a != "api"));
        assert!(cache.get("a.b.c").is_none(), "evicted");
        assert!(cache.get("d.e.f").is_some(), "kept");
    }

    #[test]
    fn tokens_that_share_their_hashed_tail_are_told_apart() {
        let cache = VerifiedTokens::new(64 * 1024, &Telemetry::default()).expect("cache");
        let tail = "s".repeat(HASHED_TAIL);
        let claims = claims(serde_json::json!({"aud": "api"}));
        cache.insert(&format!("h1.p1.{tail}"), &claims, 1);
        assert!(cache.get(&format!("h1.p1.{tail}")).is_some());
        assert!(
            cache.get(&format!("h2.p1.{tail}")).is_none(),
            "same length and tail"
        );
        assert!(cache.get(&format!("h1.p.{tail}")).is_none(), "same tail");
        cache.remove(&format!("h2.p1.{tail}"));
        assert_eq!(cache.len(), 1, "removing another token removes nothing");
    }

    #[test]
    fn an_entry_is_weighed_again_once_its_claims_map_is_built() {
        let cache = VerifiedTokens::new(1 << 20, &Telemetry::default()).expect("cache");
        let claims =
            Claims::from_payload(r#"{"aud":"api","roles":["r"],"groups":["g1","g2"]}"#.to_owned())
                .expect("claims");
        cache.insert("a.b.c", &claims, 1);
        let before = cache.weight();
        let hit = cache.get("a.b.c").expect("hit");
        assert!(!hit.weight_is_stale());
        assert!(hit.claims.get("groups").is_some());
        assert!(hit.weight_is_stale());
        cache.insert("a.b.c", &hit.claims, 1);
        assert!(cache.weight() > before, "{} > {before}", cache.weight());
        assert!(!cache.get("a.b.c").expect("hit").weight_is_stale());
    }

    #[test]
    fn the_budget_bounds_what_is_kept() {
        let cache = VerifiedTokens::new(16 * 1024, &Telemetry::default()).expect("cache");
        let claims = claims(serde_json::json!({"aud": "api"}));
        for i in 0..1000 {
            cache.insert(&format!("token-{i:04}-{}", "x".repeat(512)), &claims, 1);
        }
        assert!(cache.len() < 1000, "evicted: {}", cache.len());
        assert!(cache.len() > 0);
    }
}
