//! [`RedisTokenStore`]: a [`TokenCacheStore`] in Redis (redis-rs, feature `redis`), with a
//! reconnecting connection and a bound on every call.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;

use crate::error::ConfigError;

use super::credential::BoxFuture;
use super::store::{StoreError, TokenCacheStore};

/// Releases a lease only if the caller still holds it (Redis's documented safe release).
const RELEASE: &str = r#"if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
else
    return 0
end"#;

const SETTING: &str = "CallApi:TokenCache:Redis:ConnectionString";

/// A [`TokenCacheStore`] in Redis: `GET`, `SET … PX`, leases with `SET … NX PX` and a
/// compare-and-delete script. For [`SharedTokenCache`](super::SharedTokenCache).
///
/// The connection (redis-rs's `ConnectionManager`) is opened on first use and re-opened by
/// itself after Redis restarts or fails over; every call, (re)connecting included, gives up
/// after [`timeout`](Self::timeout) (default 1 s) and then counts as a miss. A standalone
/// Redis (or a primary with replicas); `rediss://` for TLS. `Debug` shows the host and port,
/// never the password.
///
/// ```no_run
/// use tower_azure_auth::credentials::{
///     ConfidentialClient, EncryptionKeys, RedisTokenStore, SharedTokenCache,
/// };
/// # fn run(builder: tower_azure_auth::credentials::ConfidentialClientBuilder) -> Result<(), tower_azure_auth::ConfigError> {
/// let store = RedisTokenStore::new("rediss://:password@cache.example.net:6380/0")?;
/// let keys = EncryptionKeys::from_base64([std::env::var("TOKEN_CACHE_KEY").unwrap_or_default()])?;
/// let client = builder
///     .shared_token_cache(SharedTokenCache::new(store, keys).key_prefix("weather-client:"))
///     .build()?;
/// # Ok(()) }
/// ```
pub struct RedisTokenStore {
    client: redis::Client,
    connection: tokio::sync::OnceCell<ConnectionManager>,
    timeout: Duration,
    /// `host:port/db`, for `Debug`.
    shown: String,
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("server", &self.shown)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisTokenStore {
    /// A store at a `redis://` or `rediss://` URL (no connection is made yet).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the URL is not a Redis URL (the error never repeats
    /// the URL, which may hold a password).
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let parsed = url::Url::parse(url.trim()).map_err(|e| ConfigError::Invalid {
            key: SETTING.into(),
            reason: format!("not a URL ({e})"),
        })?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(ConfigError::Invalid {
                key: SETTING.into(),
                reason: format!(
                    "the scheme must be redis:// or rediss://, not {}://",
                    parsed.scheme()
                ),
            });
        }
        let client = redis::Client::open(url.trim()).map_err(|e| ConfigError::Invalid {
            key: SETTING.into(),
            reason: format!("not a usable Redis URL ({:?})", e.kind()),
        })?;
        let shown = format!(
            "{}://{}:{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default(),
            parsed.port().unwrap_or(6379),
            parsed.path()
        );
        Ok(Self {
            client,
            connection: tokio::sync::OnceCell::new(),
            timeout: Duration::from_secs(1),
            shown,
        })
    }

    /// The longest one call may take, (re)connecting included (default 1 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        self.connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    // One quick retry per reconnection; the next call starts another.
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(self.timeout);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                    .map_err(|e| StoreError::Unavailable(Box::new(e)))
            })
            .await
            .cloned()
    }

    async fn run(&self, command: redis::Cmd) -> Result<Value, StoreError> {
        let call = async {
            let mut connection = self.connection().await?;
            command
                .query_async::<Value>(&mut connection)
                .await
                .map_err(|e| StoreError::Unavailable(Box::new(e)))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl TokenCacheStore for RedisTokenStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            let mut command = redis::cmd("GET");
            command.arg(key);
            match self.run(command).await {
                Ok(Value::BulkString(bytes)) => Ok(Some(bytes)),
                // Nil, or garbage (a key of another type answers WRONGTYPE): a miss.
                Ok(_) => Ok(None),
                Err(StoreError::Unavailable(e))
                    if e.downcast_ref::<redis::RedisError>()
                        .is_some_and(|e| e.code() == Some("WRONGTYPE")) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut command = redis::cmd("SET");
            command.arg(key).arg(value).arg("PX").arg(millis(ttl));
            self.run(command).await.map(|_| ())
        })
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut command = redis::cmd("SET");
            command
                .arg(key)
                .arg(holder)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl));
            Ok(matches!(self.run(command).await?, Value::Okay))
        })
    }

    fn release_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut command = redis::cmd("EVAL");
            command.arg(RELEASE).arg(1).arg(key).arg(holder);
            self.run(command).await.map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_never_repeated() {
        struct Case {
            name: &'static str,
            url: &'static str,
            error: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "plain",
                url: "redis://127.0.0.1:6379/",
                error: None,
            },
            Case {
                name: "tls with a password and a database",
                url: "rediss://:hunter2@cache.example.net:6380/2",
                error: None,
            },
            Case {
                name: "another scheme",
                url: "http://:hunter2@cache.example.net/",
                error: Some("redis:// or rediss://"),
            },
            Case {
                name: "not a URL",
                url: "hunter2",
                error: Some("not a URL"),
            },
        ];
        for case in cases {
            match (RedisTokenStore::new(case.url), case.error) {
                (Ok(store), None) => {
                    let debug = format!("{store:?}");
                    assert!(!debug.contains("hunter2"), "{}: {debug}", case.name);
                    assert!(debug.contains("redis"), "{}: {debug}", case.name);
                }
                (Err(error), Some(expected)) => {
                    let text = error.to_string();
                    assert!(text.contains(expected), "{}: {text}", case.name);
                    assert!(text.contains(SETTING), "{}: {text}", case.name);
                    assert!(!text.contains("hunter2"), "{}: {text}", case.name);
                }
                (result, _) => panic!("{}: {result:?}", case.name),
            }
        }
    }
}
