//! Revocation: refusing tokens that are otherwise valid, by calling application, object id,
//! tenant or token id, until a given time ([`TokenValidator::revoke`]).
//!
//! A revocation takes effect on the validator at once: matching tokens are evicted from the
//! verified-token cache and every later request is checked, cached or not (when nothing is
//! revoked the check is one atomic load). A refused token gets 401 `invalid_token` with
//! [`AuthErrorKind::Revoked`] and a reason that says it was revoked.
//!
//! A [`RevocationChannel`] shares revocations between replicas: what [`TokenValidator::revoke`]
//! is given is published to every replica subscribed to the channel, and a replica that starts
//! later reads the ones still in force. With the `redis` feature,
//! `validation::fleet::RedisRevocations` is one, over Redis pub/sub
//! and a persisted sorted set.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use tower_azure_auth::validation::revocation::Revocation;
//! use tower_azure_auth::{Authority, AuthErrorKind, TokenValidator};
//! # use base64::Engine as _;
//! # let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
//! # let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
//! # use aws_lc_rs::signature::KeyPair as _;
//! # let public = key.public_key();
//! # let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1",
//! #     "n": b64(public.modulus().big_endian_without_leading_zero()),
//! #     "e": b64(public.exponent().big_endian_without_leading_zero())}]}).to_string();
//! # let sign = |claims: serde_json::Value| {
//! #     let message = format!("{}.{}", b64(br#"{"alg":"RS256","kid":"k1"}"#), b64(claims.to_string().as_bytes()));
//! #     let mut signature = vec![0; key.public_modulus_len()];
//! #     key.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(),
//! #         message.as_bytes(), &mut signature).unwrap();
//! #     format!("{message}.{}", b64(&signature))
//! # };
//! # let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
//! # let token = |azp: &str| sign(serde_json::json!({"iss": "https://idp.example.com",
//! #     "aud": "api", "exp": now + 600, "azp": azp, "roles": ["r"]}));
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let validator = TokenValidator::builder(Authority::oidc("https://idp.example.com")?)
//!     .client_id("api")
//!     .static_keys("https://idp.example.com", jwks.as_bytes())?
//!     .build()?;
//! let leaked = token("11111111-aaaa-4000-8000-000000000001");
//! assert!(validator.validate(&leaked).await.is_ok());
//!
//! // A client application whose certificate leaked: none of its tokens, for the next 2 hours.
//! let revocation = Revocation::client("11111111-aaaa-4000-8000-000000000001")
//!     .until(SystemTime::now() + Duration::from_secs(2 * 3600));
//! validator.revoke(revocation).await.expect("no channel: nothing to share");
//!
//! let error = validator.validate(&leaked).await.unwrap_err();
//! assert_eq!(error.kind(), AuthErrorKind::Revoked);
//! assert_eq!(error.status(), 401);
//! assert!(validator.validate(&token("22222222-bbbb-4000-8000-000000000002")).await.is_ok());
//! # Ok::<(), tower_azure_auth::ConfigError>(())
//! # }).unwrap();
//! ```
//!
//! [`TokenValidator::revoke`]: super::TokenValidator::revoke

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::cache::VerifiedTokens;
pub use super::last_known_good::StoreError;
use crate::claims::Claims;
use crate::error::{AuthError, AuthErrorKind};

/// What a [`Revocation`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Selector {
    /// Every token of this calling application: `azp` (v2 tokens) or `appid` (v1 tokens).
    /// Compared ignoring ASCII case (client ids are GUIDs).
    Client(String),
    /// Every token of this object id (`oid`: the service principal or user). Ignoring ASCII
    /// case.
    Object(String),
    /// Every token of this tenant (`tid`). Ignoring ASCII case.
    Tenant(String),
    /// The one token with this id: its `uti` (Entra's) or its `jti`. Compared exactly.
    TokenId(String),
}

impl Selector {
    /// The selector with its value trimmed and, for the GUID selectors, lowercased.
    pub(crate) fn normalized(&self) -> Self {
        match self {
            Self::Client(v) => Self::Client(v.trim().to_ascii_lowercase()),
            Self::Object(v) => Self::Object(v.trim().to_ascii_lowercase()),
            Self::Tenant(v) => Self::Tenant(v.trim().to_ascii_lowercase()),
            Self::TokenId(v) => Self::TokenId(v.trim().to_owned()),
        }
    }

    fn value(&self) -> &str {
        match self {
            Self::Client(v) | Self::Object(v) | Self::Tenant(v) | Self::TokenId(v) => v,
        }
    }

    /// What the refusal's reason names (no personal data).
    pub(crate) fn what(&self) -> &'static str {
        match self {
            Self::Client(_) => "its client application",
            Self::Object(_) => "its object id",
            Self::Tenant(_) => "its tenant",
            Self::TokenId(_) => "its token id",
        }
    }
}

/// A revocation: which tokens ([`Selector`]) and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Revocation {
    selector: Selector,
    until: Option<SystemTime>,
}

impl Revocation {
    /// Tokens matching `selector`, until the default time (see [`until`](Self::until)).
    pub fn new(selector: Selector) -> Self {
        Self {
            selector,
            until: None,
        }
    }

    /// Every token of the calling application `client_id` (`azp` / `appid`).
    pub fn client(client_id: impl Into<String>) -> Self {
        Self::new(Selector::Client(client_id.into()))
    }

    /// Every token of the object id `oid`.
    pub fn object(oid: impl Into<String>) -> Self {
        Self::new(Selector::Object(oid.into()))
    }

    /// Every token of the tenant `tid`.
    pub fn tenant(tid: impl Into<String>) -> Self {
        Self::new(Selector::Tenant(tid.into()))
    }

    /// The token whose `uti` or `jti` is `id`.
    pub fn token_id(id: impl Into<String>) -> Self {
        Self::new(Selector::TokenId(id.into()))
    }

    /// Refuses until `until` (default: now plus the longest token lifetime the validator
    /// accepts plus its clock leeway, by then every token that exists now has expired). A time
    /// in the past revokes nothing.
    pub fn until(mut self, until: SystemTime) -> Self {
        self.until = Some(until);
        self
    }

    /// What is refused.
    #[must_use]
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// Until when, if set.
    #[must_use]
    pub fn until_time(&self) -> Option<SystemTime> {
        self.until
    }

    /// `until` as Unix seconds, or `default` when unset.
    pub(crate) fn until_unix(&self, default: u64) -> u64 {
        self.until.map_or(default, unix_seconds).min(LATEST_UNIX)
    }
}

/// The latest end a revocation may have: the last second of year 9999 (later ones are
/// clamped to it, so no time arithmetic can overflow).
const LATEST_UNIX: u64 = 253_402_300_799;

/// `seconds` after the Unix epoch, clamped to the end of year 9999 (no overflow).
#[must_use]
pub fn from_unix_seconds(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds.min(LATEST_UNIX))
}

/// Whole seconds since the Unix epoch (0 before it).
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A revocation as replicas exchange it: the selector and the end, in Unix seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct WireRevocation {
    #[serde(flatten)]
    pub(crate) selector: Selector,
    pub(crate) until: u64,
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl WireRevocation {
    /// Parses a message; `None` (logged by the caller) for anything else.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        let wire: Self = serde_json::from_slice(bytes).ok()?;
        (!wire.selector.value().trim().is_empty() && wire.selector.value().len() <= 256)
            .then_some(wire)
    }

    pub(crate) fn into_revocation(self) -> Revocation {
        Revocation::new(self.selector).until(from_unix_seconds(self.until))
    }
}

/// Carries revocations between replicas.
///
/// [`publish`](Self::publish) sends one; [`subscribe`](Self::subscribe) is called once, when
/// the validator is built, and must deliver to the sink every revocation published by any
/// replica (its own ones included is harmless), and on start and after every reconnection
/// the ones still in force, so that a replica that starts or reconnects later honours them.
pub trait RevocationChannel: fmt::Debug + Send + Sync + 'static {
    /// Publishes a revocation (its `until` is set) to every replica.
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Starts delivering revocations to `sink` (in the background; it must not block). Stop
    /// when [`RevocationSink::apply`] returns false: the validator is gone.
    fn subscribe(&self, sink: RevocationSink);
}

/// Where a [`RevocationChannel`] delivers revocations: the validator's list.
#[derive(Clone)]
pub struct RevocationSink {
    target: Weak<Revoker>,
}

impl fmt::Debug for RevocationSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationSink").finish_non_exhaustive()
    }
}

impl RevocationSink {
    /// Puts a revocation in force on this replica (without publishing it again). Returns
    /// false when the validator has been dropped: the channel should stop.
    #[must_use]
    pub fn apply(&self, revocation: &Revocation) -> bool {
        let Some(target) = self.target.upgrade() else {
            return false;
        };
        target.apply(revocation);
        true
    }

    /// Whether the validator still exists.
    #[must_use]
    pub fn is_alive(&self) -> bool {
        self.target.strong_count() > 0
    }
}

/// The revocations in force, by selector, each with its end (Unix seconds).
#[derive(Debug, Default, Clone)]
struct Entries {
    clients: HashMap<Box<str>, u64>,
    objects: HashMap<Box<str>, u64>,
    tenants: HashMap<Box<str>, u64>,
    token_ids: HashMap<Box<str>, u64>,
}

impl Entries {
    fn map(&mut self, selector: &Selector) -> &mut HashMap<Box<str>, u64> {
        match selector {
            Selector::Client(_) => &mut self.clients,
            Selector::Object(_) => &mut self.objects,
            Selector::Tenant(_) => &mut self.tenants,
            Selector::TokenId(_) => &mut self.token_ids,
        }
    }

    fn len(&self) -> usize {
        self.clients.len() + self.objects.len() + self.tenants.len() + self.token_ids.len()
    }

    fn prune(&mut self, now: u64) {
        for map in [
            &mut self.clients,
            &mut self.objects,
            &mut self.tenants,
            &mut self.token_ids,
        ] {
            map.retain(|_, until| *until > now);
        }
    }

    /// The selector that refuses these claims at `now`, if any.
    fn matching(&self, claims: &Claims, now: u64) -> Option<Selector> {
        fn find(map: &HashMap<Box<str>, u64>, value: Option<&str>, now: u64, fold: bool) -> bool {
            let Some(value) = value else { return false };
            if map.is_empty() {
                return false;
            }
            let until = if fold && value.bytes().any(|b| b.is_ascii_uppercase()) {
                map.get(value.to_ascii_lowercase().as_str())
            } else {
                map.get(value)
            };
            until.is_some_and(|until| *until > now)
        }
        if find(&self.clients, claims.client_id(), now, true) {
            return claims.client_id().map(|v| Selector::Client(v.to_owned()));
        }
        if find(&self.objects, claims.object_id(), now, true) {
            return claims.object_id().map(|v| Selector::Object(v.to_owned()));
        }
        if find(&self.tenants, claims.tenant_id(), now, true) {
            return claims.tenant_id().map(|v| Selector::Tenant(v.to_owned()));
        }
        for name in ["uti", "jti"] {
            if find(&self.token_ids, claims.get_str(name), now, false) {
                return claims
                    .get_str(name)
                    .map(|v| Selector::TokenId(v.to_owned()));
            }
        }
        None
    }
}

/// The validator's revocations and what it needs to apply one: the verified-token cache to
/// evict from, and whether refusals may name the values (PII).
pub(crate) struct Revoker {
    /// Whether any entry exists (expired ones included): the hot path's only cost when
    /// nothing is revoked.
    any: AtomicBool,
    entries: ArcSwap<Entries>,
    /// Serializes writers (readers never wait).
    write: Mutex<()>,
    cache: Option<Arc<VerifiedTokens>>,
    clock: crate::clock::SharedClock,
    pii: bool,
}

impl Revoker {
    pub(crate) fn new(
        cache: Option<Arc<VerifiedTokens>>,
        clock: crate::clock::SharedClock,
        pii: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            any: AtomicBool::new(false),
            entries: ArcSwap::from_pointee(Entries::default()),
            write: Mutex::new(()),
            cache,
            clock,
            pii,
        })
    }

    pub(crate) fn sink(self: &Arc<Self>) -> RevocationSink {
        RevocationSink {
            target: Arc::downgrade(self),
        }
    }

    /// Puts `revocation` in force (its `until` must be set, or it ends now) and evicts the
    /// tokens it refuses from the cache. Returns whether it is in force (not already over).
    pub(crate) fn apply(&self, revocation: &Revocation) -> bool {
        let now = self.clock.unix_seconds();
        let until = revocation.until_unix(now);
        let selector = revocation.selector.normalized();
        if until <= now || selector.value().is_empty() {
            return false;
        }
        {
            let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
            let current = self.entries.load();
            let held = match &selector {
                Selector::Client(v) => current.clients.get(v.as_str()),
                Selector::Object(v) => current.objects.get(v.as_str()),
                Selector::Tenant(v) => current.tenants.get(v.as_str()),
                Selector::TokenId(v) => current.token_ids.get(v.as_str()),
            };
            if held.is_some_and(|held| *held >= until) {
                // Already in force at least as long (a resync reads every revocation again):
                // nothing to copy, nothing to evict.
                return true;
            }
            let mut entries = Entries::clone(&current);
            entries.prune(now);
            let slot = entries
                .map(&selector)
                .entry(selector.value().into())
                .or_insert(until);
            *slot = (*slot).max(until);
            self.any.store(entries.len() > 0, Ordering::SeqCst);
            self.entries.store(Arc::new(entries));
        }
        if let Some(cache) = &self.cache {
            let entries = self.entries.load();
            cache.retain(|claims| entries.matching(claims, now).is_none());
        }
        true
    }

    /// Refuses revoked claims. One atomic load when nothing is revoked.
    #[inline]
    pub(crate) fn check(&self, claims: &Claims, now: u64) -> Result<(), AuthError> {
        if !self.any.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.check_slow(claims, now)
    }

    #[cold]
    fn check_slow(&self, claims: &Claims, now: u64) -> Result<(), AuthError> {
        let Some(selector) = self.entries.load().matching(claims, now) else {
            return Ok(());
        };
        let error = AuthError::new(
            AuthErrorKind::Revoked,
            format!("the token was revoked (by {})", selector.what()),
        );
        Err(if self.pii {
            error.with_detail(format!("revoked: {selector:?}"))
        } else {
            error
        })
    }

    /// How many revocations are held (some may have ended since the last write).
    pub(crate) fn len(&self) -> usize {
        self.entries.load().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn claims(json: serde_json::Value) -> Claims {
        Claims::from_json(json).expect("claims")
    }

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn each_selector_refuses_what_it_names_until_its_end() {
        let clock = Arc::new(ManualClock::at_unix(NOW));
        let token = claims(serde_json::json!({
            "azp": "11111111-aaaa-4000-8000-000000000001",
            "oid": "22222222-bbbb-4000-8000-000000000002",
            "tid": "33333333-cccc-4000-8000-000000000003",
            "uti": "AbC-uti", "jti": "the-jti",
        }));
        let v1 = claims(serde_json::json!({"appid": "11111111-AAAA-4000-8000-000000000001"}));
        let until = UNIX_EPOCH + Duration::from_secs(NOW + 60);
        struct Case {
            name: &'static str,
            revocation: Revocation,
            claims: Claims,
            refused: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "client (azp), other case",
                revocation: Revocation::client("11111111-AAAA-4000-8000-000000000001"),
                claims: token.clone(),
                refused: Some("the token was revoked (by its client application)"),
            },
            Case {
                name: "client (appid of a v1 token)",
                revocation: Revocation::client("11111111-aaaa-4000-8000-000000000001"),
                claims: v1,
                refused: Some("the token was revoked (by its client application)"),
            },
            Case {
                name: "object id",
                revocation: Revocation::object(" 22222222-bbbb-4000-8000-000000000002 "),
                claims: token.clone(),
                refused: Some("the token was revoked (by its object id)"),
            },
            Case {
                name: "tenant",
                revocation: Revocation::tenant("33333333-cccc-4000-8000-000000000003"),
                claims: token.clone(),
                refused: Some("the token was revoked (by its tenant)"),
            },
            Case {
                name: "uti",
                revocation: Revocation::token_id("AbC-uti"),
                claims: token.clone(),
                refused: Some("the token was revoked (by its token id)"),
            },
            Case {
                name: "jti",
                revocation: Revocation::token_id("the-jti"),
                claims: token.clone(),
                refused: Some("the token was revoked (by its token id)"),
            },
            Case {
                name: "token ids are case-sensitive",
                revocation: Revocation::token_id("abc-uti"),
                claims: token.clone(),
                refused: None,
            },
            Case {
                name: "another client",
                revocation: Revocation::client("99999999-aaaa-4000-8000-000000000009"),
                claims: token.clone(),
                refused: None,
            },
            Case {
                name: "a blank value revokes nothing",
                revocation: Revocation::tenant("  "),
                claims: token,
                refused: None,
            },
        ];
        for case in cases {
            let revoker = Revoker::new(None, clock.clone(), false);
            assert!(
                revoker.check(&case.claims, NOW).is_ok(),
                "{}: nothing revoked yet",
                case.name
            );
            revoker.apply(&case.revocation.clone().until(until));
            let result = revoker.check(&case.claims, NOW);
            match case.refused {
                Some(reason) => {
                    let error = result.expect_err(case.name);
                    assert_eq!(error.kind(), AuthErrorKind::Revoked, "{}", case.name);
                    assert_eq!(error.reason(), reason, "{}", case.name);
                    assert_eq!(error.status(), 401, "{}", case.name);
                    assert!(error.detail().is_none(), "{}: no PII", case.name);
                    assert!(
                        revoker.check(&case.claims, NOW + 60).is_ok(),
                        "{}: over at its end",
                        case.name
                    );
                }
                None => assert!(result.is_ok(), "{}", case.name),
            }
        }
    }

    #[test]
    fn a_revocation_that_already_ended_revokes_nothing_and_later_ends_are_kept() {
        let clock = Arc::new(ManualClock::at_unix(NOW));
        let revoker = Revoker::new(None, clock.clone(), true);
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert!(!revoker.apply(&Revocation::client("c").until(at(NOW - 1))));
        assert_eq!(revoker.len(), 0);
        assert!(revoker.apply(&Revocation::client("c").until(at(NOW + 100))));
        let before = Arc::as_ptr(&revoker.entries.load_full());
        assert!(revoker.apply(&Revocation::client("c").until(at(NOW + 10))));
        assert_eq!(
            Arc::as_ptr(&revoker.entries.load_full()),
            before,
            "a revocation already in force longer changes nothing (resyncs are cheap)"
        );
        let token = claims(serde_json::json!({"azp": "c"}));
        let error = revoker
            .check(&token, NOW + 50)
            .expect_err("the later end wins");
        assert!(
            error.detail().is_some_and(|d| d.contains("\"c\"")),
            "PII on: {error:?}"
        );
        assert!(revoker.check(&token, NOW + 100).is_ok(), "over at its end");
        assert!(
            revoker.apply(&Revocation::client("c").until(from_unix_seconds(u64::MAX))),
            "a far end is clamped, never an overflow"
        );
        assert!(revoker.check(&token, LATEST_UNIX - 1).is_err());
        assert!(revoker.apply(&Revocation::token_id("short").until(at(NOW + 100))));
        clock.set_unix(NOW + 200);
        assert!(revoker.apply(&Revocation::tenant("t").until(at(NOW + 300))));
        assert_eq!(revoker.len(), 2, "the ended one was pruned");
    }

    #[test]
    fn wire_revocations_round_trip_and_garbage_is_refused() {
        let wire = WireRevocation {
            selector: Selector::TokenId("x".into()),
            until: NOW,
        };
        let text = serde_json::to_string(&wire).expect("json");
        assert_eq!(text, r#"{"by":"token_id","value":"x","until":1700000000}"#);
        let parsed = WireRevocation::parse(text.as_bytes()).expect("parsed");
        assert_eq!(parsed.selector, Selector::TokenId("x".into()));
        for garbage in [
            &b"nope"[..],
            br#"{"by":"tenant","value":"","until":1}"#,
            br#"{"by":"nobody","value":"x","until":1}"#,
            br#"{"by":"tenant","value":"x"}"#,
        ] {
            assert!(
                WireRevocation::parse(garbage).is_none(),
                "{:?}",
                String::from_utf8_lossy(garbage)
            );
        }
    }
}
