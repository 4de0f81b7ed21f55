//! The outbound token cache on its own, for `benches/outbound_scale.rs` (10^6 entries across
//! 10^4 authorities, which one [`ConfidentialClient`](super::ConfidentialClient) never
//! holds). Not a stable API.

use std::time::SystemTime;

use super::cache::{CacheKey, KeyBuf, KeyRef, TokenCache, EXPIRY_MARGIN};
use super::token::AccessToken;

/// [`ConfidentialClient`](super::ConfidentialClient)'s token cache: the same map, key and
/// hit path.
#[derive(Debug)]
pub struct OutboundTokenCache {
    cache: TokenCache,
}

impl OutboundTokenCache {
    /// A cache of at most `max_entries` slots.
    #[must_use]
    pub fn new(max_entries: usize) -> Self {
        Self {
            cache: TokenCache::new(max_entries),
        }
    }

    /// Stores `token` in the slot of (authority, client id, scopes), creating it.
    pub fn insert<S: AsRef<str>>(
        &self,
        authority: &str,
        client_id: &str,
        scopes: &[S],
        token: AccessToken,
        now: SystemTime,
    ) {
        self.cache
            .slot(&CacheKey::new(authority, client_id, scopes), now)
            .store(token);
    }

    /// The usable token of (authority, client id, scopes), the way a cache hit finds it.
    #[must_use]
    pub fn get<S: AsRef<str>>(
        &self,
        authority: &str,
        client_id: &str,
        scopes: &[S],
        now: SystemTime,
    ) -> Option<AccessToken> {
        let slot = self.cache.get(&KeyRef::new(
            &mut KeyBuf::new(),
            authority,
            client_id,
            scopes,
        )?)?;
        let current = slot.token.load();
        current
            .as_deref()
            .filter(|token| token.usable_at(now, EXPIRY_MARGIN))
            .cloned()
    }

    /// How many slots are held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether no slot is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
