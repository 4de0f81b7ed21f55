//! The `AzureAd:LastKnownGoodKeys` and `AzureAd:Revocation` keys applied to a
//! [`TokenValidatorBuilder`].

use std::time::Duration;

use super::last_known_good::FileStore;
use super::TokenValidatorBuilder;
use crate::config::{AzureAdOptions, RedisSection};
use crate::error::ConfigError;

/// A `Redis` section's connection string, if one is set (blank counts as unset).
fn connection_string(section: Option<&RedisSection>) -> Option<&str> {
    section
        .and_then(|redis| redis.connection_string.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Applies the fleet keys of `options`.
pub(super) fn apply(
    mut builder: TokenValidatorBuilder,
    options: &AzureAdOptions,
) -> Result<TokenValidatorBuilder, ConfigError> {
    if let Some(lkg) = &options.last_known_good_keys {
        if let Some(seconds) = lkg.max_age_seconds {
            builder = builder.last_known_good_max_age(Duration::from_secs(seconds));
        }
        let path = lkg.path.as_deref().map(str::trim).filter(|p| !p.is_empty());
        let redis = connection_string(lkg.redis.as_ref());
        match (path, redis) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "AzureAd:LastKnownGoodKeys".into(),
                    reason: "set Path or Redis:ConnectionString, not both".into(),
                })
            }
            (Some(path), None) => builder = builder.last_known_good(FileStore::new(path)),
            (None, Some(url)) => builder = redis_key_store(builder, url, lkg.redis.as_ref())?,
            (None, None) => {}
        }
    }
    if let Some(revocation) = &options.revocation {
        if let Some(challenge) = revocation.claims_challenge {
            builder = builder.claims_challenge_on_revocation(challenge);
        }
        if let Some(url) = connection_string(revocation.redis.as_ref()) {
            builder = redis_revocations(builder, url, revocation.redis.as_ref())?;
        }
    }
    Ok(builder)
}

fn prefix(section: Option<&RedisSection>) -> Option<&str> {
    section.and_then(|redis| redis.key_prefix.as_deref())
}

#[cfg(feature = "redis")]
fn redis_key_store(
    builder: TokenValidatorBuilder,
    url: &str,
    section: Option<&RedisSection>,
) -> Result<TokenValidatorBuilder, ConfigError> {
    let mut store = super::fleet::RedisKeyStore::new(url)?;
    if let Some(prefix) = prefix(section) {
        store = store.key_prefix(prefix);
    }
    Ok(builder.last_known_good(store))
}

#[cfg(feature = "redis")]
fn redis_revocations(
    builder: TokenValidatorBuilder,
    url: &str,
    section: Option<&RedisSection>,
) -> Result<TokenValidatorBuilder, ConfigError> {
    let mut channel = super::fleet::RedisRevocations::new(url)?;
    if let Some(prefix) = prefix(section) {
        channel = channel.key_prefix(prefix);
    }
    Ok(builder.revocation_channel(channel))
}

#[cfg(not(feature = "redis"))]
fn redis_key_store(
    _: TokenValidatorBuilder,
    _: &str,
    section: Option<&RedisSection>,
) -> Result<TokenValidatorBuilder, ConfigError> {
    let _ = prefix(section);
    Err(without_redis(
        "AzureAd:LastKnownGoodKeys:Redis:ConnectionString",
    ))
}

#[cfg(not(feature = "redis"))]
fn redis_revocations(
    _: TokenValidatorBuilder,
    _: &str,
    _: Option<&RedisSection>,
) -> Result<TokenValidatorBuilder, ConfigError> {
    Err(without_redis("AzureAd:Revocation:Redis:ConnectionString"))
}

#[cfg(not(feature = "redis"))]
fn without_redis(key: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: "this build has no Redis support: enable the `redis` feature of tower-azure-auth"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ConfigSource;
    use crate::TokenValidator;

    fn build(json: &str) -> Result<TokenValidator, crate::ConfigError> {
        let options = ConfigSource::from_json_str(json)?.section("AzureAd")?;
        TokenValidator::from_options(&options)?.build()
    }

    #[tokio::test]
    async fn the_fleet_keys_configure_the_validator_or_say_why_not() {
        const BASE: &str = r#""Instance": "https://login.microsoftonline.com/", "TenantId": "contoso", "ClientId": "api""#;
        struct Case {
            name: &'static str,
            extra: &'static str,
            /// The key the error names, or `None` when it builds.
            error_key: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "a file",
                extra: r#""LastKnownGoodKeys": {"Path": "/tmp/keys.json", "MaxAgeSeconds": 60}"#,
                error_key: None,
            },
            Case {
                name: "both a file and Redis",
                extra: r#""LastKnownGoodKeys": {"Path": "/tmp/k", "Redis": {"ConnectionString": "redis://127.0.0.1/"}}"#,
                error_key: Some("AzureAd:LastKnownGoodKeys"),
            },
            Case {
                name: "a blank connection string is unset",
                extra: r#""Revocation": {"Redis": {"ConnectionString": " "}}"#,
                error_key: None,
            },
            #[cfg(feature = "redis")]
            Case {
                name: "not a Redis URL",
                extra: r#""Revocation": {"Redis": {"ConnectionString": "http://user:hunter2@redis/"}}"#,
                error_key: Some("AzureAd:Revocation:Redis:ConnectionString"),
            },
            #[cfg(feature = "redis")]
            Case {
                name: "Redis for both",
                extra: r#""LastKnownGoodKeys": {"Redis": {"ConnectionString": "redis://127.0.0.1:1/", "KeyPrefix": "p:"}}, "Revocation": {"Redis": {"ConnectionString": "rediss://:pw@127.0.0.1:1/"}}"#,
                error_key: None,
            },
            #[cfg(not(feature = "redis"))]
            Case {
                name: "Redis without the feature",
                extra: r#""Revocation": {"Redis": {"ConnectionString": "redis://127.0.0.1/"}}"#,
                error_key: Some("AzureAd:Revocation:Redis:ConnectionString"),
            },
        ];
        for case in cases {
            let result = build(&format!(r#"{{"AzureAd": {{{BASE}, {}}}}}"#, case.extra));
            match (case.error_key, result) {
                (None, Ok(_)) => {}
                (Some(key), Err(crate::ConfigError::Invalid { key: found, reason })) => {
                    assert_eq!(found, key, "{}", case.name);
                    assert!(!reason.contains("hunter2"), "{}: {reason}", case.name);
                }
                (expected, result) => {
                    panic!("{}: expected {expected:?}, got {result:?}", case.name)
                }
            }
        }
    }
}
