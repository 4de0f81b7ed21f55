//! Redis for the inbound side of a fleet (feature `redis`): [`RedisKeyStore`], a
//! [`LastKnownGoodStore`] every replica shares, and [`RedisRevocations`], a
//! [`RevocationChannel`] over pub/sub and a persisted sorted set.
//!
//! Both connect lazily (the first use, inside a Tokio runtime) through redis-rs's
//! reconnecting [`ConnectionManager`], with bounded timeouts (2 s to connect, 1 s per
//! command): a Redis that is down or slow costs a failed store operation or a failed publish,
//! never a stuck request, and the connection comes back by itself when Redis does.
//!
//! Revocations: [`RevocationChannel::publish`] adds the revocation to the sorted set
//! `{prefix}revocations` (member: the selector, score: its end in Unix seconds; ended ones are
//! removed on every publish) and publishes it on the channel of the same name. Every replica
//! subscribes (a dedicated connection), reads the set once subscribed (so a replica that starts
//! after a revocation honours it), reads it again after every reconnection and every 10
//! seconds (pub/sub delivers at most once: a message sent while a replica was disconnected is
//! lost, the set is not), and pings its subscription every 10 seconds to notice a dead
//! connection. Pub/sub ignores Redis database numbers: give each environment its own prefix.
//!
//! Redis is trusted: whoever can write to it can revoke tokens (refuse service), and, through
//! the key store, make a replica that starts during an outage trust keys of their choosing.
//! Nothing written to Redis can make a replica accept a token its keys do not verify while
//! the authority answers. Protect it with authentication and TLS (`rediss://`).
//!
//! ```no_run
//! # async fn example() -> Result<(), tower_azure_auth::ConfigError> {
//! use tower_azure_auth::validation::fleet::{RedisKeyStore, RedisRevocations};
//! use tower_azure_auth::{Authority, TokenValidator};
//!
//! let url = "rediss://:password@redis.internal:6380/";
//! let validator = TokenValidator::builder(Authority::entra(
//!     "https://login.microsoftonline.com/",
//!     "7ff95b15-dc21-4ba6-bc92-824856578fc1",
//! )?)
//! .client_id("b178f3a5-7588-492a-924f-72d7887b7e48")
//! .last_known_good(RedisKeyStore::new(url)?.key_prefix("weather-prod:"))
//! .revocation_channel(RedisRevocations::new(url)?.key_prefix("weather-prod:"))
//! .build()?;
//! # drop(validator);
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::last_known_good::{LastKnownGoodStore, StoreError, MAX_DOCUMENT_BYTES};
use super::revocation::{Revocation, RevocationChannel, RevocationSink, WireRevocation};
use crate::error::ConfigError;

const TARGET: &str = "tower_azure_auth::validation";

/// The default key prefix.
const DEFAULT_PREFIX: &str = "tower-azure-auth:";
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a subscriber reads the whole set and pings its subscription.
const RESYNC_INTERVAL: Duration = Duration::from_secs(10);

/// A Redis connection made on first use and kept (it reconnects by itself).
#[derive(Clone)]
struct Connection {
    client: redis::Client,
    manager: Arc<OnceCell<ConnectionManager>>,
    /// `scheme://host:port`, for `Debug` (never the password).
    target: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.target)
    }
}

impl Connection {
    fn new(url: &str, key: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(url)
            .map_err(|_| invalid("not a URL (expected redis://host:port/ or rediss://…)"))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(invalid("the scheme must be redis:// or rediss://"));
        }
        // redis-rs's own message may quote the URL (and its password): not passed on.
        let client = redis::Client::open(url)
            .map_err(|_| invalid("not a Redis connection string redis-rs accepts"))?;
        let target = format!(
            "{}://{}:{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or("?"),
            parsed.port().unwrap_or(6379)
        );
        Ok(Self {
            client,
            manager: Arc::new(OnceCell::new()),
            target,
        })
    }

    /// The connection manager, connecting first if no connection was ever made.
    async fn manager(&self) -> Result<ConnectionManager, StoreError> {
        self.manager
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                tokio::time::timeout(
                    CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                .map_err(|_| backend("connecting timed out"))?
                .map_err(|e| redis_error(&e))
            })
            .await
            .cloned()
    }

    /// Runs `command` with the response timeout on top of redis-rs's own.
    async fn query<T: redis::FromRedisValue>(
        &self,
        command: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut manager = self.manager().await?;
        tokio::time::timeout(
            RESPONSE_TIMEOUT + Duration::from_millis(500),
            command.query_async(&mut manager),
        )
        .await
        .map_err(|_| backend("the command timed out"))?
        .map_err(|e| redis_error(&e))
    }
}

fn backend(reason: &str) -> StoreError {
    StoreError::Backend {
        reason: reason.to_owned(),
    }
}

/// A redis-rs error's kind and message (they name commands and addresses, not credentials).
fn redis_error(error: &redis::RedisError) -> StoreError {
    StoreError::Backend {
        reason: format!("redis: {error}"),
    }
}

/// Last-known-good keys in Redis, shared by every replica: one string per authority,
/// `{prefix}last-known-good:{metadata URL}`. Any replica that fetched keys refreshes it, so a
/// replica that starts during an outage starts with the keys the fleet saw last.
#[derive(Debug, Clone)]
pub struct RedisKeyStore {
    connection: Connection,
    prefix: String,
}

impl RedisKeyStore {
    /// A store on the Redis at `url` (`redis://…` or `rediss://…` for TLS); nothing is
    /// connected until first use.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `url` is not a Redis URL.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            connection: Connection::new(url, "AzureAd:LastKnownGoodKeys:Redis:ConnectionString")?,
            prefix: DEFAULT_PREFIX.to_owned(),
        })
    }

    /// The prefix of the store's key (default `tower-azure-auth:`).
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, authority: &str) -> String {
        format!("{}last-known-good:{authority}", self.prefix)
    }
}

impl LastKnownGoodStore for RedisKeyStore {
    fn load<'a>(
        &'a self,
        authority: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            let mut command = redis::pipe();
            command.cmd("GET").arg(self.key(authority));
            let (value,): (Option<Vec<u8>>,) = self.connection.query(&command).await?;
            match value {
                Some(bytes) if bytes.len() as u64 > MAX_DOCUMENT_BYTES => {
                    Err(StoreError::TooLarge {
                        limit: MAX_DOCUMENT_BYTES,
                    })
                }
                value => Ok(value),
            }
        })
    }

    fn save<'a>(
        &'a self,
        authority: &'a str,
        document: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut command = redis::pipe();
            command
                .cmd("SET")
                .arg(self.key(authority))
                .arg(document)
                .ignore();
            self.connection.query::<()>(&command).await
        })
    }
}

/// Revocations shared by every replica through Redis (see the [module](self) for how).
#[derive(Debug, Clone)]
pub struct RedisRevocations {
    connection: Connection,
    prefix: String,
    resync_interval: Duration,
}

impl RedisRevocations {
    /// A channel on the Redis at `url` (`redis://…` or `rediss://…`); nothing is connected
    /// until first use.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `url` is not a Redis URL.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            connection: Connection::new(url, "AzureAd:Revocation:Redis:ConnectionString")?,
            prefix: DEFAULT_PREFIX.to_owned(),
            resync_interval: RESYNC_INTERVAL,
        })
    }

    /// The prefix of the sorted set and the channel, both `{prefix}revocations` (default
    /// `tower-azure-auth:`).
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How often a subscriber reads the whole set again and pings its subscription (default
    /// 10 seconds): the longest a revocation whose message was lost (published while this
    /// replica was disconnected from a Redis that stayed up) takes to arrive, and how soon a
    /// dead subscription is noticed. At least 1 second.
    #[must_use]
    pub fn resync_interval(mut self, interval: Duration) -> Self {
        self.resync_interval = interval.max(Duration::from_secs(1));
        self
    }

    fn key(&self) -> String {
        format!("{}revocations", self.prefix)
    }

    /// Reads the revocations in force from the set into `sink`.
    async fn resync(&self, sink: &RevocationSink) -> Result<usize, StoreError> {
        let now = super::revocation::unix_seconds(std::time::SystemTime::now());
        let mut command = redis::pipe();
        command
            .cmd("ZRANGEBYSCORE")
            .arg(self.key())
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("WITHSCORES");
        let (members,): (Vec<(Vec<u8>, f64)>,) = self.connection.query(&command).await?;
        let mut applied = 0;
        for (member, score) in members {
            let mut wire = serde_json::from_slice::<serde_json::Value>(&member).ok();
            if let Some(serde_json::Value::Object(map)) = &mut wire {
                // Scores are whole seconds; f64 holds them exactly.
                map.insert("until".into(), serde_json::Value::from(score as u64));
            }
            let parsed = wire
                .and_then(|value| serde_json::to_vec(&value).ok())
                .and_then(|bytes| WireRevocation::parse(&bytes));
            match parsed {
                Some(wire) => {
                    let _alive = sink.apply(&wire.into_revocation());
                    applied += 1;
                }
                None => {
                    tracing::warn!(target: TARGET, "ignoring a malformed entry in the Redis revocation set");
                }
            }
        }
        Ok(applied)
    }

    /// Subscribes, reads the set, then applies messages until the connection is lost;
    /// returns to be called again (after a pause) when it is.
    async fn listen_once(&self, sink: &RevocationSink) -> Result<(), StoreError> {
        let pubsub =
            tokio::time::timeout(CONNECT_TIMEOUT, self.connection.client.get_async_pubsub())
                .await
                .map_err(|_| backend("connecting timed out"))?
                .map_err(|e| redis_error(&e))?;
        let (mut control, mut messages) = pubsub.split();
        tokio::time::timeout(RESPONSE_TIMEOUT, control.subscribe(self.key()))
            .await
            .map_err(|_| backend("subscribing timed out"))?
            .map_err(|e| redis_error(&e))?;
        // Subscribed first: a revocation published meanwhile is in the set or in a message.
        let read = self.resync(sink).await?;
        tracing::debug!(target: TARGET, revocations = read, "subscribed to the Redis revocation channel");
        let mut tick = tokio::time::interval(self.resync_interval);
        tick.reset();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else {
                        return Err(backend("the subscription's connection closed"));
                    };
                    if let Some(wire) = WireRevocation::parse(message.get_payload_bytes()) {
                        if !sink.apply(&wire.into_revocation()) {
                            return Ok(());
                        }
                    } else {
                        tracing::warn!(target: TARGET, "ignoring a malformed message on the Redis revocation channel");
                    }
                }
                _ = tick.tick() => {
                    if !sink.is_alive() {
                        return Ok(());
                    }
                    tokio::time::timeout(RESPONSE_TIMEOUT, control.ping::<redis::Value>())
                        .await
                        .map_err(|_| backend("the subscription's ping timed out"))?
                        .map_err(|e| redis_error(&e))?;
                    if let Err(error) = self.resync(sink).await {
                        tracing::warn!(target: TARGET, error = %error, "cannot read the Redis revocation set");
                    }
                }
            }
        }
    }
}

impl RevocationChannel for RedisRevocations {
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let now = super::revocation::unix_seconds(std::time::SystemTime::now());
            let until = revocation.until_unix(now);
            let selector = revocation.selector().normalized();
            let member = serde_json::to_string(&selector).map_err(|_| backend("cannot encode"))?;
            let message = serde_json::to_string(&WireRevocation { selector, until })
                .map_err(|_| backend("cannot encode"))?;
            let mut command = redis::pipe();
            command
                .atomic()
                .cmd("ZREMRANGEBYSCORE")
                .arg(self.key())
                .arg("-inf")
                .arg(now)
                .ignore()
                .cmd("ZADD")
                .arg(self.key())
                .arg("GT")
                .arg(until)
                .arg(member)
                .ignore()
                .cmd("PUBLISH")
                .arg(self.key())
                .arg(message)
                .ignore();
            self.connection.query::<()>(&command).await
        })
    }

    fn subscribe(&self, sink: RevocationSink) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(target: TARGET, "the validator was built outside a Tokio runtime: revocations published by other replicas are not received");
            return;
        };
        let channel = self.clone();
        runtime.spawn(async move {
            let mut pause = Duration::from_millis(100);
            while sink.is_alive() {
                let started = std::time::Instant::now();
                let result = channel.listen_once(&sink).await;
                if started.elapsed() > channel.resync_interval {
                    pause = Duration::from_millis(100);
                }
                match result {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(target: TARGET, redis = %channel.connection.target, error = %error, "the Redis revocation subscription is down; retrying");
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        });
    }
}
