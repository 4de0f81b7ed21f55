//! `CallApi:TokenCache`: the shared (L2) token cache of a fleet of replicas.

use std::fmt;

use serde::Deserialize;

use super::{de_opt_u64, de_string_list, redacted};

/// The `CallApi:TokenCache` section: a token cache shared by every replica of the client
/// (Redis, with the `redis` feature), under each replica's in-memory cache. Absent (the
/// default): each replica caches in memory only.
///
/// ```json
/// {"CallApi": {"TokenCache": {
///     "Redis": {"ConnectionString": "rediss://:password@cache.example.net:6380/0", "KeyPrefix": "weather-client:"},
///     "EncryptionKeys": ["<base64 of 32 random bytes>", "<the previous key, while rotating>"]}}}
/// ```
///
/// Environment: `CallApi__TokenCache__Redis__ConnectionString`,
/// `CallApi__TokenCache__EncryptionKeys__0`, … See
/// [`SharedTokenCache`](crate::credentials::SharedTokenCache) for what the settings do.
#[derive(Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct TokenCacheOptions {
    /// `Redis`: where the shared cache lives.
    #[serde(rename = "redis", default)]
    pub redis: Option<RedisCacheOptions>,
    /// `EncryptionKeys`: base64-encoded 32-byte AES-256-GCM keys; the first seals entries,
    /// every one opens them (rotation). Required with `Redis`: entries are always sealed.
    #[serde(
        rename = "encryptionkeys",
        default,
        deserialize_with = "de_string_list"
    )]
    pub encryption_keys: Vec<String>,
}

/// The `CallApi:TokenCache:Redis` section.
#[derive(Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct RedisCacheOptions {
    /// `ConnectionString`: a `redis://` or `rediss://` (TLS) URL, with the password and the
    /// database number in it if needed (`rediss://:password@host:6380/0`). Never logged.
    #[serde(rename = "connectionstring")]
    pub connection_string: Option<String>,
    /// `KeyPrefix`: put in front of every key the cache writes (default
    /// `tower-azure-auth:`); give each environment its own.
    #[serde(rename = "keyprefix")]
    pub key_prefix: Option<String>,
    /// `TimeoutMilliseconds`: the longest one Redis call may take, (re)connecting
    /// included (default 1000); past it the call counts as a miss.
    #[serde(
        rename = "timeoutmilliseconds",
        default,
        deserialize_with = "de_opt_u64"
    )]
    pub timeout_milliseconds: Option<u64>,
    /// `LeaseMilliseconds`: how long the replica that requests a token from the authority
    /// holds the fleet-wide lease at most (default 10000).
    #[serde(rename = "leasemilliseconds", default, deserialize_with = "de_opt_u64")]
    pub lease_milliseconds: Option<u64>,
    /// `LeaseWaitMilliseconds`: how long the other replicas wait for the lease holder's
    /// token before they request one themselves (default 5000).
    #[serde(
        rename = "leasewaitmilliseconds",
        default,
        deserialize_with = "de_opt_u64"
    )]
    pub lease_wait_milliseconds: Option<u64>,
}

impl fmt::Debug for TokenCacheOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCacheOptions")
            .field("redis", &self.redis)
            .field("encryption_keys", &self.encryption_keys.len())
            .finish()
    }
}

impl fmt::Debug for RedisCacheOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCacheOptions")
            .field(
                "connection_string",
                &redacted(self.connection_string.as_ref()),
            )
            .field("key_prefix", &self.key_prefix)
            .field("timeout_milliseconds", &self.timeout_milliseconds)
            .field("lease_milliseconds", &self.lease_milliseconds)
            .field("lease_wait_milliseconds", &self.lease_wait_milliseconds)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{CallApiOptions, ConfigSource};

    #[test]
    fn the_token_cache_section_from_json_and_environment() {
        let json = r#"{"CallApi": {"TokenCache": {
            "Redis": {"ConnectionString": "redis://:hunter2@127.0.0.1:6379/", "KeyPrefix": "w:"},
            "EncryptionKeys": ["a2V5LW9uZQ=="]}}}"#;
        let env = [
            ("CallApi__TokenCache__EncryptionKeys__0", "a2V5LW5ldw=="),
            ("CallApi__TokenCache__EncryptionKeys__1", "a2V5LW9sZA=="),
            ("CallApi__TokenCache__Redis__LeaseWaitMilliseconds", "250"),
        ];
        let options: CallApiOptions = ConfigSource::from_json_str(json)
            .unwrap()
            .with_env(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
            .section("CallApi")
            .unwrap();
        let cache = &options.token_cache;
        assert_eq!(cache.encryption_keys, ["a2V5LW5ldw==", "a2V5LW9sZA=="]);
        let redis = cache.redis.as_ref().unwrap();
        assert_eq!(redis.key_prefix.as_deref(), Some("w:"));
        assert_eq!(redis.lease_wait_milliseconds, Some(250));
        assert_eq!(
            redis.connection_string.as_deref(),
            Some("redis://:hunter2@127.0.0.1:6379/")
        );
        let debug = format!("{options:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("a2V5"), "{debug}");
    }
}
