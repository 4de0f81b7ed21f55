//! [`TokenValidator`]: the one place that decides whether an access token is valid.
//!
//! It checks, in order: the token's size and shape (a `crit` header parameter, even `null`, is
//! refused); the header's `alg` against an allow-list (RS256 by default; never `none` or
//! HMAC); the signature with the authority's published key named by `kid` (then `x5t`), which
//! must be published for that `alg` when its JWK names one (keys come from OpenID Connect
//! discovery, never from the token: `jwk`, `jku`, `x5u` and `x5c` headers play no part); `exp`
//! (required), `nbf` and `iat` (neither after now) with 5 minutes of leeway, and a lifetime of
//! at most 2 days ([`TokenValidatorBuilder::max_token_lifetime`]); the issuer by Entra's rules
//! (v1 and v2 issuers, the `{tenantid}` template of multi-tenant metadata, an allowed-tenants
//! list, the signing key's own `issuer`) or, for any other OpenID Connect authority, exactly the
//! metadata's `issuer` (which must itself be the configured authority); the audience
//! (configured, or as Microsoft.Identity.Web does: `ClientId`, and for v1 tokens of an Entra
//! authority also `api://ClientId`); the calling application when allowed client ids are
//! configured ([`TokenValidatorBuilder::allowed_client_ids`]); and that the token carries a
//! non-empty `scp` or `roles`.
//!
//! A refusal's [`AuthError::reason`] names the check; the expected and actual values
//! (audience, issuer, tenant, client, key id) are kept in [`AuthError::detail`] only with PII
//! logging or detailed errors on ([`TokenValidatorBuilder::enable_pii_logging`],
//! [`TokenValidatorBuilder::detailed_errors`]), and reach the response only with detailed
//! errors.
//!
//! Keys live in an [`ArcSwap`](arc_swap::ArcSwap): validation never waits on a lock. They are
//! refreshed in the background every 12 hours; a token signed with an unknown `kid` triggers one
//! refresh at most every 5 minutes, single flight, whatever the number of requests; the refresh
//! runs detached from the request that triggered it, so a request that is dropped meanwhile (a
//! client that disconnects, a timeout) neither cancels it nor blocks later ones; a failed
//! refresh keeps the last known good keys. While no keys could be fetched yet (the authority is
//! down at start), tokens are refused with [`AuthErrorKind::KeysUnavailable`] — 503 with
//! `Retry-After` — and the validator recovers by itself.
//!
//! ```
//! # async fn example() -> Result<(), tower_azure_auth::ConfigError> {
//! use tower_azure_auth::{AzureAdOptions, TokenValidator};
//!
//! let options: AzureAdOptions = tower_azure_auth::config::ConfigSource::from_json_str(r#"{
//!   "AzureAd": {
//!     "Instance": "https://login.microsoftonline.com/",
//!     "TenantId": "7ff95b15-dc21-4ba6-bc92-824856578fc1",
//!     "ClientId": "b178f3a5-7588-492a-924f-72d7887b7e48"
//!   }
//! }"#)?.section("AzureAd")?;
//! let validator = TokenValidator::new(&options)?;
//! let error = validator.validate("not-a-token").await.unwrap_err();
//! assert_eq!(error.status(), 401);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(example()).unwrap();
//! ```

mod builder;
mod cache;
mod claims_challenge;
mod diagnose;
#[cfg(feature = "redis")]
pub mod fleet;
mod fleet_options;
mod front;
mod jws;
mod keys;
pub mod last_known_good;
mod readiness;
mod refresh;
pub mod revocation;
mod rules;

pub use self::builder::TokenValidatorBuilder;
pub use self::diagnose::{Check, CheckName, CheckOutcome, Diagnosis, KeyInfo, KeysReport};
pub use self::readiness::{KeysState, Readiness};

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use self::cache::VerifiedTokens;
use self::keys::{KeySet, Snapshot};
use self::last_known_good::{LastKnownGood, LastKnownGoodStore};
use self::refresh::{KeyRefresh, RefreshSettings};
use self::revocation::{Revocation, RevocationChannel, Revoker, StoreError};
use self::rules::Rules;
use crate::algorithm::SignatureAlgorithm;
use crate::authority::{Authority, FetchError, HttpClient};
use crate::claims::Claims;
use crate::clock::{self, SharedClock};
use crate::config::AzureAdOptions;
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::telemetry::{spans, RefreshTrigger, Start, Telemetry};

/// Bearer-header parsing, kept here for the paths that name it in `validation`.
pub use crate::bearer::bearer_token;

const TARGET: &str = "tower_azure_auth::validation";

/// Validates access tokens. Cheap to clone; share one per API.
#[derive(Clone)]
pub struct TokenValidator {
    inner: Arc<Inner>,
}

/// The validator's parts: its keys and their refresh ([`refresh`]), the claim rules
/// ([`rules`]), the accepted algorithms and size ([`jws`]), the verified-token cache
/// ([`cache`]).
struct Inner {
    keys: Arc<KeyRefresh>,
    rules: Rules,
    clock: SharedClock,
    algorithms: Vec<Algorithm>,
    max_token_size: usize,
    cache: Option<Arc<VerifiedTokens>>,
    revoker: Arc<Revoker>,
    /// Answers revoked `cp1` tokens with a claims challenge, when on.
    claims_challenge: Option<claims_challenge::ClaimsChallenge>,
    revocation_channel: Option<Arc<dyn RevocationChannel>>,
    telemetry: Telemetry,
}

impl Inner {
    /// A revocation refusal, as a claims challenge when that option is on.
    #[cold]
    fn challenge(&self, error: AuthError, claims: &Claims, now: u64) -> AuthError {
        match &self.claims_challenge {
            Some(challenge) => challenge.answer(error, claims, now),
            None => error,
        }
    }
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.inner.keys.snapshot.load();
        f.debug_struct("TokenValidator")
            .field("authority", &self.inner.keys.authority)
            .field("audiences", &self.inner.rules.audiences)
            .field("algorithms", &self.inner.algorithms)
            .field("keys", &snapshot.as_ref().map(|s| s.keys.len()))
            .finish_non_exhaustive()
    }
}

/// A refused token, logged at debug (the detail, expected and actual values, exists only
/// with PII logging on).
fn log_refusal(error: &AuthError) {
    tracing::debug!(target: TARGET, kind = %error.kind(), reason = error.reason(), detail = error.detail(), "token rejected");
}

impl TokenValidator {
    /// A builder for the given authority.
    pub fn builder(authority: Authority) -> TokenValidatorBuilder {
        TokenValidatorBuilder::new(authority)
    }

    /// A builder from the `AzureAd` section: `ClientId`, `Audience`/`Audiences`,
    /// `AllowedTenants`, `AllowedClientIds`, `ValidAlgorithms`, `ClockSkewSeconds`,
    /// `MaxTokenSize`, `AllowWebApiToBeAuthorizedByACL`, `EnablePiiLogging`,
    /// `DetailedErrors`, `LastKnownGoodKeys` ([`LastKnownGoodOptions`]) and `Revocation`
    /// ([`RevocationOptions`]).
    ///
    /// [`LastKnownGoodOptions`]: crate::config::LastKnownGoodOptions
    /// [`RevocationOptions`]: crate::config::RevocationOptions
    ///
    /// # Errors
    ///
    /// When the authority settings are missing or unusable, or `ValidAlgorithms` names an
    /// algorithm that is not an RSA signature algorithm.
    pub fn from_options(options: &AzureAdOptions) -> Result<TokenValidatorBuilder, ConfigError> {
        TokenValidatorBuilder::from_section(options)
    }

    /// A validator from the `AzureAd` section, with the defaults.
    ///
    /// # Errors
    ///
    /// See [`TokenValidator::from_options`] and [`TokenValidatorBuilder::build`].
    pub fn new(options: &AzureAdOptions) -> Result<Self, ConfigError> {
        Self::from_options(options)?.build()
    }

    /// The authority whose tokens this validator accepts.
    #[must_use]
    pub fn authority(&self) -> &Authority {
        &self.inner.keys.authority
    }

    /// Whether signing keys have been fetched.
    #[must_use]
    pub fn has_keys(&self) -> bool {
        self.inner.keys.snapshot.load().is_some()
    }

    /// Whether the keys in use were loaded from the last-known-good store
    /// ([`TokenValidatorBuilder::last_known_good`]) because the authority could not be
    /// reached: a readiness probe may report it.
    #[must_use]
    pub fn serving_last_known_good_keys(&self) -> bool {
        self.inner.keys.serving_last_known_good()
    }

    /// How many verified tokens are cached now.
    #[must_use]
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, |cache| cache.len())
    }

    /// Refuses the tokens `revocation` names until its end (by default: now plus the
    /// longest token lifetime accepted plus the clock leeway), on this validator at once —
    /// matching tokens leave the verified-token cache — and, with a
    /// [`revocation_channel`](TokenValidatorBuilder::revocation_channel), on every replica.
    /// Refused tokens get 401 `invalid_token` with [`AuthErrorKind::Revoked`]. A revocation
    /// cannot be withdrawn before its end.
    ///
    /// # Errors
    ///
    /// When the channel could not publish it: the revocation is in force here all the same;
    /// publish it again (or on another replica) to reach the others.
    pub async fn revoke(&self, revocation: Revocation) -> Result<(), StoreError> {
        let inner = &*self.inner;
        let default_until = inner
            .clock
            .unix_seconds()
            .saturating_add(inner.rules.max_token_lifetime)
            .saturating_add(inner.rules.leeway);
        let until = revocation.until_unix(default_until);
        let revocation = revocation.until(revocation::from_unix_seconds(until));
        let in_force = inner.revoker.apply(&revocation);
        tracing::info!(target: TARGET, by = revocation.selector().what(), until, in_force, "revocation applied");
        match &inner.revocation_channel {
            Some(channel) if in_force => channel.publish(&revocation).await,
            _ => Ok(()),
        }
    }

    /// How many revocations this validator holds (some may have ended since the last one
    /// was added).
    #[must_use]
    pub fn revocations(&self) -> usize {
        self.inner.revoker.len()
    }

    /// Whether the validator can check tokens now, for a readiness probe: keys loaded (or
    /// last-known-good keys served), how long since the last successful refresh, the last
    /// refresh's error. Not ready until signing keys are loaded. The axum handler is
    /// `tower_azure_auth::axum::readiness` (feature `axum`); actix-azure-auth has its own.
    ///
    /// ```
    /// use tower_azure_auth::validation::KeysState;
    /// use tower_azure_auth::{Authority, TokenValidator};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // An authority that cannot be reached: no keys, not ready.
    /// let validator = TokenValidator::builder(Authority::oidc("http://127.0.0.1:9")?)
    ///     .client_id("api")
    ///     .build()?;
    /// assert!(validator.refresh().await.is_err());
    /// let readiness = validator.readiness();
    /// assert_eq!(readiness.keys, KeysState::Missing);
    /// assert!(!readiness.is_ready());
    /// assert_eq!(readiness.status_code(), 503);
    /// assert!(readiness.last_error.is_some());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn readiness(&self) -> Readiness {
        let keys = &self.inner.keys;
        let snapshot = keys.snapshot.load();
        Readiness {
            keys: if snapshot.is_none() {
                KeysState::Missing
            } else if keys.serving_last_known_good() {
                KeysState::LastKnownGood
            } else {
                KeysState::Loaded
            },
            key_count: snapshot.as_ref().map_or(0, |s| s.keys.len()),
            last_refresh_age: keys.last_refresh_age(),
            last_error: keys
                .health
                .last_error
                .lock()
                .ok()
                .and_then(|error| error.clone()),
        }
    }

    /// How many times metadata and keys were fetched (successfully or not) since start.
    #[must_use]
    pub fn key_fetches(&self) -> u64 {
        self.inner.keys.fetches()
    }

    /// Fetches metadata and keys now (single flight with any refresh under way); does nothing
    /// for a validator built with [`TokenValidatorBuilder::static_keys`].
    ///
    /// # Errors
    ///
    /// When the metadata or the key set cannot be fetched; the last known good keys stay.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        self.inner.keys.start_refresh_loop();
        self.inner.keys.refresh().await
    }

    /// Validates a token, refreshing the keys first if the token names an unknown key and the
    /// refresh rules allow it (at most once per 5 minutes, single flight).
    ///
    /// Cancellation-safe: the refresh runs detached from this future, so dropping it (a
    /// client that disconnects, a timeout) neither cancels the fetch nor keeps other requests
    /// from refreshing. Called inside a Tokio runtime, it also starts the background refresh
    /// if [`TokenValidatorBuilder::build`] could not (built outside a runtime) or its runtime
    /// has shut down since.
    ///
    /// # Errors
    ///
    /// An [`AuthError`] naming the check that failed.
    pub async fn validate(&self, token: &str) -> Result<Claims, AuthError> {
        use tracing::Instrument as _;
        let started = self.inner.telemetry.start();
        let span = spans::validation();
        let mut cached = false;
        let result = self
            .validate_refreshing(token, &mut cached)
            .instrument(span.clone())
            .await;
        self.observe(&span, &result, cached, started);
        result
    }

    async fn validate_refreshing(
        &self,
        token: &str,
        cached: &mut bool,
    ) -> Result<Claims, AuthError> {
        // Observed before validating: a refresh that completes after this point is one this
        // caller can wait for instead of starting another (a flood of unknown kids must not
        // turn into back-to-back fetches).
        let seen = self.inner.keys.generation.load(Ordering::SeqCst);
        match self.check_logged(token, cached) {
            Err(error) if needs_keys(&error) && !self.inner.keys.static_keys => {
                let keys = &self.inner.keys;
                keys.start_refresh_loop();
                if keys.refreshing() {
                    // Join the refresh under way; never start another without a slot.
                    keys.join_refresh().await;
                    self.check_logged(token, cached)
                } else if keys.take_forced_refresh_slot(error.kind()) {
                    // The outcome is logged by refresh; the retry below reports what matters.
                    let trigger = RefreshTrigger::for_error(error.kind());
                    let _ = keys.refresh_since(seen, trigger).await;
                    self.check_logged(token, cached)
                } else {
                    Err(error)
                }
            }
            result => result,
        }
    }

    /// Records a validation's outcome (metrics and span).
    fn observe(
        &self,
        span: &tracing::Span,
        result: &Result<Claims, AuthError>,
        cached: bool,
        started: Start,
    ) {
        let outcome = result.as_ref().map(|_| ()).map_err(AuthError::kind);
        spans::validation_outcome(span, outcome, cached);
        self.inner.telemetry.validation(outcome, cached, started);
    }

    /// Validates a token with the keys held now, never waiting: what the layers call first.
    /// An [`AuthErrorKind::UnknownSigningKey`] or [`AuthErrorKind::KeysUnavailable`] answer may
    /// change after a refresh ([`TokenValidator::validate`] does that).
    ///
    /// The metrics count such an answer (see [`may_resolve_after_refresh`]) only when the
    /// keys are static: otherwise the caller is expected to ask [`validate`](Self::validate),
    /// which counts the final answer, so that one request is one validation.
    ///
    /// # Errors
    ///
    /// An [`AuthError`] naming the check that failed.
    pub fn validate_with_current_keys(&self, token: &str) -> Result<Claims, AuthError> {
        let started = self.inner.telemetry.start();
        let span = spans::validation();
        let mut cached = false;
        let result = span.in_scope(|| self.check_logged(token, &mut cached));
        let deferred =
            matches!(&result, Err(error) if needs_keys(error)) && !self.inner.keys.static_keys;
        if !deferred {
            self.observe(&span, &result, cached, started);
        }
        result
    }

    /// [`check`](Self::check), with a refusal logged at debug.
    fn check_logged(&self, token: &str, cached: &mut bool) -> Result<Claims, AuthError> {
        let result = self.check(token, cached);
        if let Err(error) = &result {
            log_refusal(error);
        }
        result
    }

    fn check(&self, token: &str, cached: &mut bool) -> Result<Claims, AuthError> {
        use AuthErrorKind as K;
        let inner = &*self.inner;
        if token.len() > inner.max_token_size {
            return Err(AuthError::new(
                K::TokenTooLarge,
                format!(
                    "the token is {} bytes, more than the {} allowed",
                    token.len(),
                    inner.max_token_size
                ),
            ));
        }
        if let Some(result) = self.check_cached(token) {
            *cached = true;
            return result;
        }
        if inner.cache.is_some() {
            inner.telemetry.token_cache_lookup(false);
        }
        let (claims, key_id) = self.check_uncached(token)?;
        // Cached even when revoked: the revocation is checked on every hit, so a revoked
        // token presented again is refused without another signature check.
        if let Some(cache) = &inner.cache {
            cache.insert(token, &claims, key_id);
        }
        let now = inner.clock.unix_seconds();
        inner
            .revoker
            .check(&claims, now)
            .map_err(|e| inner.challenge(e, &claims, now))?;
        Ok(claims)
    }

    /// The hit path of [`check`](Self::check): the result for a token this validator
    /// verified and still caches, under a key it still holds (lifetime and revocation
    /// checked again); `None` when it has no such token.
    fn check_cached(&self, token: &str) -> Option<Result<Claims, AuthError>> {
        let inner = &*self.inner;
        let cache = inner.cache.as_ref()?;
        // This thread's front first (no shared write), then the shared cache.
        let owner = cache.owner();
        let (claims, key_id) = front::get(owner, token).or_else(|| {
            let hit = cache.get(token)?;
            if hit.weight_is_stale() {
                // A caller built the claims map since: count it against the budget.
                cache.insert(token, &hit.claims, hit.key_id);
            }
            front::put(owner, token, &hit.claims, hit.key_id);
            Some((hit.claims, hit.key_id))
        })?;
        let current = inner.keys.snapshot.load();
        if !current.as_ref().is_some_and(|s| s.keys.holds(key_id)) {
            front::remove(owner, token);
            cache.remove(token);
            return None;
        }
        inner.telemetry.token_cache_lookup(true);
        let now = inner.clock.unix_seconds();
        if let Err(error) = inner.rules.check_lifetime(&claims, now) {
            front::remove(owner, token);
            cache.remove(token);
            return Some(Err(error));
        }
        if let Err(error) = inner.revoker.check(&claims, now) {
            return Some(Err(inner.challenge(error, &claims, now)));
        }
        Some(Ok(claims))
    }

    /// [`validate_with_current_keys`](Self::validate_with_current_keys) for a token this
    /// validator verified and still caches, reported the same way; `None`, with nothing
    /// reported, when it is not cached (the caller then validates it in full).
    ///
    /// The inbound layer looks a bearer credential up here before checking its bytes: a
    /// cached token is byte for byte one that passed base64url decoding, so those checks
    /// could not refuse it (they were a third of the layer's cost on a cached token).
    pub(crate) fn validate_cached(&self, token: &str) -> Option<Result<Claims, AuthError>> {
        if token.len() > self.inner.max_token_size {
            return None;
        }
        let started = self.inner.telemetry.start();
        let result = self.check_cached(token)?;
        let span = spans::validation();
        if let Err(error) = &result {
            span.in_scope(|| log_refusal(error));
        }
        self.observe(&span, &result, true, started);
        Some(result)
    }

    /// The signature ([`jws`]), then the claim rules ([`rules`]).
    fn check_uncached(&self, token: &str) -> Result<(Claims, u64), AuthError> {
        let inner = &*self.inner;
        let snapshot = inner.keys.snapshot.load();
        let verified = jws::verify(
            token,
            &inner.algorithms,
            snapshot.as_deref(),
            &inner.rules,
            &inner.keys.authority,
        )?;
        inner.rules.check(
            &verified.claims,
            inner.clock.unix_seconds(),
            &verified.snapshot.issuer,
            verified.snapshot.v1_issuer.as_deref(),
            verified.key.issuer.as_deref(),
        )?;
        Ok((verified.claims, verified.key.id()))
    }
}

fn needs_keys(error: &AuthError) -> bool {
    matches!(
        error.kind(),
        AuthErrorKind::UnknownSigningKey | AuthErrorKind::KeysUnavailable
    )
}

/// Whether an error may go away after a key refresh (an unknown `kid`, or no keys yet): the
/// layers take the asynchronous path only then.
#[must_use]
pub fn may_resolve_after_refresh(error: &AuthError) -> bool {
    needs_keys(error)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;

    /// A token signed by hand with an RSA key generated here, and its JWKS.
    struct StaticFixture {
        pair: aws_lc_rs::rsa::KeyPair,
        jwks: String,
    }

    impl StaticFixture {
        fn new() -> Self {
            use aws_lc_rs::signature::KeyPair as _;
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("generate an RSA key");
            let public = pair.public_key();
            let jwks = serde_json::json!({"keys": [{
                "kty": "RSA", "use": "sig", "kid": "k1",
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            }]})
            .to_string();
            Self { pair, jwks }
        }

        fn token(&self, kid: &str, claims: &serde_json::Value) -> String {
            self.signed("RS256", kid, claims)
        }

        /// Signed with `alg`, RS256 or PS256.
        fn signed(&self, alg: &str, kid: &str, claims: &serde_json::Value) -> String {
            let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid});
            let message = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let encoding: &dyn aws_lc_rs::signature::RsaEncoding = match alg {
                "PS256" => &aws_lc_rs::signature::RSA_PSS_SHA256,
                _ => &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            };
            let mut signature = vec![0; self.pair.public_modulus_len()];
            self.pair
                .sign(
                    encoding,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    message.as_bytes(),
                    &mut signature,
                )
                .expect("sign");
            format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
        }

        /// The JWKS with `members` added to the key.
        fn jwks_with(&self, members: &serde_json::Value) -> String {
            let mut jwks: serde_json::Value = serde_json::from_str(&self.jwks).expect("jwks");
            for (name, value) in members.as_object().expect("members") {
                jwks["keys"][0][name] = value.clone();
            }
            jwks.to_string()
        }
    }

    #[tokio::test]
    async fn a_jwk_alg_binds_its_key_to_that_algorithm() {
        const ISSUER: &str = "https://idp.example.com";
        let fixture = StaticFixture::new();
        let claims = serde_json::json!({"iss": ISSUER, "aud": "api", "exp": 1_700_003_600u64,
            "iat": 1_700_000_000u64, "roles": ["r"]});
        struct Case {
            name: &'static str,
            jwk: serde_json::Value,
            token_alg: &'static str,
            result: Result<(), AuthErrorKind>,
        }
        let cases = [
            Case {
                name: "no alg on the key: RS256",
                jwk: serde_json::json!({}),
                token_alg: "RS256",
                result: Ok(()),
            },
            Case {
                name: "no alg on the key: PS256",
                jwk: serde_json::json!({}),
                token_alg: "PS256",
                result: Ok(()),
            },
            Case {
                name: "key for RS256, token RS256",
                jwk: serde_json::json!({"alg": "RS256"}),
                token_alg: "RS256",
                result: Ok(()),
            },
            Case {
                name: "key for RS256, token PS256 (a valid PS256 signature of that key)",
                jwk: serde_json::json!({"alg": "RS256"}),
                token_alg: "PS256",
                result: Err(AuthErrorKind::DisallowedAlgorithm),
            },
            Case {
                name: "key for PS256, token RS256",
                jwk: serde_json::json!({"alg": "PS256"}),
                token_alg: "RS256",
                result: Err(AuthErrorKind::DisallowedAlgorithm),
            },
            Case {
                name: "key for PS256, token PS256",
                jwk: serde_json::json!({"alg": "PS256"}),
                token_alg: "PS256",
                result: Ok(()),
            },
        ];
        for case in cases {
            let validator = TokenValidator::builder(Authority::oidc(ISSUER).expect("authority"))
                .client_id("api")
                .algorithms([SignatureAlgorithm::Rs256, SignatureAlgorithm::Ps256])
                .clock(Arc::new(crate::clock::ManualClock::at_unix(1_700_000_000)))
                .static_keys(ISSUER, fixture.jwks_with(&case.jwk).as_bytes())
                .expect("static keys")
                .build()
                .expect("validator");
            let token = fixture.signed(case.token_alg, "k1", &claims);
            let result = validator.validate_with_current_keys(&token).map(|_| ());
            assert_eq!(result.map_err(|e| e.kind()), case.result, "{}", case.name);
        }
    }

    #[tokio::test]
    async fn a_key_whose_key_ops_exclude_verify_verifies_nothing() {
        const ISSUER: &str = "https://idp.example.com";
        let fixture = StaticFixture::new();
        let claims = serde_json::json!({"iss": ISSUER, "aud": "api", "exp": 1_700_003_600u64,
            "iat": 1_700_000_000u64, "roles": ["r"]});
        let build = |members: serde_json::Value| {
            TokenValidator::builder(Authority::oidc(ISSUER).expect("authority"))
                .client_id("api")
                .clock(Arc::new(crate::clock::ManualClock::at_unix(1_700_000_000)))
                .static_keys(ISSUER, fixture.jwks_with(&members).as_bytes())
        };
        // The only key is an encryption key: no usable key at all.
        assert!(matches!(
            build(serde_json::json!({"key_ops": ["encrypt"]})),
            Err(ConfigError::Invalid { .. })
        ));
        let validator = build(serde_json::json!({"key_ops": ["verify"]}))
            .expect("static keys")
            .build()
            .expect("validator");
        assert!(validator
            .validate_with_current_keys(&fixture.token("k1", &claims))
            .is_ok());
    }

    #[tokio::test]
    async fn static_keys_validate_offline_and_never_fetch() {
        const ISSUER: &str = "https://idp.example.com";
        let fixture = StaticFixture::new();
        let clock = Arc::new(crate::clock::ManualClock::at_unix(1_700_000_000));
        // An unroutable authority: any fetch would fail, and `key_fetches` would count it.
        let validator = TokenValidator::builder(Authority::oidc(ISSUER).expect("authority"))
            .client_id("api")
            .clock(clock)
            .static_keys(ISSUER, fixture.jwks.as_bytes())
            .expect("static keys")
            .build()
            .expect("validator");
        let claims = |iss: &str| {
            serde_json::json!({"iss": iss, "aud": "api", "exp": 1_700_003_600u64,
                "iat": 1_700_000_000u64, "roles": ["r"]})
        };
        struct Case {
            name: &'static str,
            token: String,
            result: Result<(), AuthErrorKind>,
        }
        let cases = [
            Case {
                name: "a token signed with the static key",
                token: fixture.token("k1", &claims(ISSUER)),
                result: Ok(()),
            },
            Case {
                name: "an unknown kid is refused without a fetch",
                token: fixture.token("k2", &claims(ISSUER)),
                result: Err(AuthErrorKind::UnknownSigningKey),
            },
            Case {
                name: "the issuer rules still apply",
                token: fixture.token("k1", &claims("https://other.example.com")),
                result: Err(AuthErrorKind::InvalidIssuer),
            },
        ];
        for case in cases {
            let result = validator.validate(&case.token).await.map(|_| ());
            assert_eq!(result.map_err(|e| e.kind()), case.result, "{}", case.name);
        }
        assert!(validator.has_keys());
        assert!(validator.refresh().await.is_ok());
        assert_eq!(
            validator.key_fetches(),
            0,
            "a static validator never fetches"
        );
    }

    #[test]
    fn static_keys_refuse_unusable_key_sets() {
        struct Case {
            name: &'static str,
            jwks: &'static str,
        }
        let cases = [
            Case {
                name: "not json",
                jwks: "<html>",
            },
            Case {
                name: "no usable key",
                jwks: r#"{"keys":[{"kty":"EC","kid":"e"}]}"#,
            },
            Case {
                name: "empty",
                jwks: r#"{"keys":[]}"#,
            },
        ];
        for case in cases {
            let result = TokenValidator::builder(
                Authority::oidc("https://idp.example.com").expect("authority"),
            )
            .client_id("api")
            .static_keys("https://idp.example.com", case.jwks.as_bytes());
            assert!(
                matches!(result, Err(ConfigError::Invalid { .. })),
                "{}: {result:?}",
                case.name
            );
        }
    }
}
