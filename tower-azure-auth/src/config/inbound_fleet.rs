//! The `AzureAd` keys of a fleet's inbound side: `LastKnownGoodKeys` (signing keys kept for
//! a start-up while the authority is unreachable) and `Revocation` (revocations shared by
//! every replica).
//!
//! ```json
//! "AzureAd": {
//!   "LastKnownGoodKeys": { "Path": "/var/lib/weather-api/signing-keys.json", "MaxAgeSeconds": 86400 },
//!   "Revocation": { "Redis": { "ConnectionString": "rediss://:secret@redis:6380/", "KeyPrefix": "weather-prod:" },
//!                   "ClaimsChallenge": true }
//! }
//! ```

use std::fmt;

use serde::Deserialize;

use super::{de_opt_bool, de_opt_u64};

/// `AzureAd:LastKnownGoodKeys`: where the validator keeps the metadata and keys it fetched, to
/// start with them when the authority cannot be reached (see
/// [`TokenValidatorBuilder::last_known_good`](crate::validation::TokenValidatorBuilder::last_known_good)).
/// Set `Path` or `Redis`, not both.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct LastKnownGoodOptions {
    /// `Path`: a file, written atomically (its directory must exist).
    #[serde(rename = "path")]
    pub path: Option<String>,
    /// `MaxAgeSeconds`: the oldest stored keys used, counted from their fetch (default 86400,
    /// 24 hours).
    #[serde(rename = "maxageseconds", default, deserialize_with = "de_opt_u64")]
    pub max_age_seconds: Option<u64>,
    /// `Redis`: a Redis every replica shares (feature `redis`).
    #[serde(rename = "redis")]
    pub redis: Option<RedisSection>,
}

/// `AzureAd:Revocation`: how revocations reach every replica.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct RevocationOptions {
    /// `ClaimsChallenge`: answer a revoked token of a client that declared continuous access
    /// evaluation (`cp1`) with a claims challenge instead of `invalid_token` (default false;
    /// see [`TokenValidatorBuilder::claims_challenge_on_revocation`](crate::validation::TokenValidatorBuilder::claims_challenge_on_revocation)).
    #[serde(rename = "claimschallenge", default, deserialize_with = "de_opt_bool")]
    pub claims_challenge: Option<bool>,
    /// `Redis`: pub/sub and a persisted sorted set on this Redis (feature `redis`).
    #[serde(rename = "redis")]
    pub redis: Option<RedisSection>,
}

/// A `Redis` sub-section: `ConnectionString` and `KeyPrefix`.
#[derive(Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct RedisSection {
    /// `ConnectionString`: a `redis://` or `rediss://` (TLS) URL, with the password if any.
    /// Never printed by `Debug`.
    #[serde(rename = "connectionstring")]
    pub connection_string: Option<String>,
    /// `KeyPrefix`: put before every key and channel name (default `tower-azure-auth:`); give
    /// each environment its own (pub/sub ignores Redis database numbers).
    #[serde(rename = "keyprefix")]
    pub key_prefix: Option<String>,
}

impl fmt::Debug for RedisSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSection")
            .field(
                "connection_string",
                &self.connection_string.as_ref().map(|_| "<redacted>"),
            )
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{AzureAdOptions, ConfigSource};

    #[test]
    fn the_fleet_keys_load_from_json_and_environment_and_debug_hides_the_connection_string() {
        let options: AzureAdOptions = ConfigSource::from_json_str(
            r#"{"AzureAd": {"LastKnownGoodKeys": {"Path": "/tmp/keys.json", "MaxAgeSeconds": "3600"}}}"#,
        )
        .unwrap()
        .with_env([(
            "AzureAd__Revocation__Redis__ConnectionString".to_owned(),
            "redis://:hunter2@127.0.0.1:6379/".to_owned(),
        )])
        .section("AzureAd")
        .unwrap();
        let lkg = options.last_known_good_keys.as_ref().expect("section");
        assert_eq!(lkg.path.as_deref(), Some("/tmp/keys.json"));
        assert_eq!(lkg.max_age_seconds, Some(3600));
        let redis = options
            .revocation
            .as_ref()
            .and_then(|r| r.redis.as_ref())
            .expect("redis");
        assert_eq!(
            redis.connection_string.as_deref(),
            Some("redis://:hunter2@127.0.0.1:6379/")
        );
        let debug = format!("{options:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
