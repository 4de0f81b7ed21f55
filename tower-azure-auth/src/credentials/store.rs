//! [`TokenCacheStore`]: the second level (L2) of the token cache, shared by every replica of
//! a service (Redis with the `redis` feature: `RedisTokenStore`), and its error.
//!
//! A store keeps opaque bytes under string keys, with a time to live, and short leases for
//! fleet-wide single flight. It never sees a token in the clear: the client seals every
//! entry (see [`SharedTokenCache`](super::SharedTokenCache)) before it reaches the store.

use std::fmt;
use std::time::Duration;

use super::credential::BoxFuture;

/// A store shared by the replicas of a service, under the in-memory token cache.
///
/// Every call should give up after a bounded time and report [`StoreError`]; the client then
/// carries on without the store (its own cache and its own request to the authority). Keys
/// are full keys (the client adds the configured prefix).
pub trait TokenCacheStore: fmt::Debug + Send + Sync + 'static {
    /// The value stored under `key`, `None` if there is none.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;

    /// Stores `value` under `key` for `ttl` (replacing any value and time to live).
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Takes the lease `key` for `holder` if nobody holds it (Redis: `SET key holder NX PX
    /// ttl`); true when taken. The lease ends by itself after `ttl`.
    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Ends the lease `key` if `holder` still holds it (never another holder's lease: Redis
    /// compares and deletes in one script).
    fn release_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// A [`TokenCacheStore`] call failed. The client treats every failure as a cache miss.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer in time.
    #[error("the token cache store did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The store could not be reached or refused the command.
    #[error("the token cache store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}
