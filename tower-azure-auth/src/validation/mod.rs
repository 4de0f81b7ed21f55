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

mod keys;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use url::Url;

use tokio::sync::watch;

use self::keys::{algorithm_name, KeySet};
use crate::authority::{Authority, FetchError, HttpClient, OidcMetadata};
use crate::claims::{numeric_date, Claims, TokenVersion};
use crate::clock::{self, SharedClock};
use crate::config::AzureAdOptions;
use crate::error::{AuthError, AuthErrorKind, ConfigError};

const TARGET: &str = "tower_azure_auth::validation";

/// Validates access tokens. Cheap to clone; share one per API.
#[derive(Clone)]
pub struct TokenValidator {
    inner: Arc<Inner>,
}

struct Inner {
    authority: Authority,
    http: HttpClient,
    clock: SharedClock,
    audiences: Vec<String>,
    default_audience_client_id: Option<String>,
    /// Trimmed, compared ignoring ASCII case (tenant ids are GUIDs).
    allowed_tenants: Vec<String>,
    /// Trimmed, compared ignoring ASCII case (client ids are GUIDs); empty: any caller.
    allowed_client_ids: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    /// Seconds.
    max_token_lifetime: u64,
    max_token_size: usize,
    require_scope_or_role: bool,
    /// Keep the expected and actual values of a refusal in [`AuthError::detail`] (and log them).
    pii: bool,
    /// Send that detail in responses too.
    detailed_errors: bool,
    validate_metadata_issuer: bool,
    refresh_interval: Duration,
    min_forced_refresh_interval: Duration,
    unavailable_retry_interval: Duration,
    snapshot: ArcSwapOption<Snapshot>,
    /// The refresh under way, if any, and how many completed: single flight. Requests that
    /// need keys wait on it for the refresh to complete or be abandoned.
    refresh_status: watch::Sender<RefreshStatus>,
    /// `refresh_status.completed`, read without a lock before each validation.
    generation: AtomicU64,
    /// Whether the background refresh task is running (it can be started lazily, and it
    /// ends when its runtime shuts down).
    refresh_loop: AtomicBool,
    last_forced: Mutex<Option<SystemTime>>,
    fetches: AtomicU64,
    cache: Option<TokenCache>,
    /// Keys installed with [`TokenValidatorBuilder::static_keys`]: never fetched or refreshed.
    static_keys: bool,
}

/// Where the key refresh stands.
#[derive(Debug, Clone, Copy, Default)]
struct RefreshStatus {
    /// Refreshes completed (successfully or not) since build.
    completed: u64,
    /// A refresh is fetching. It runs detached from the request that started it (a spawned
    /// task), or, without a Tokio runtime, in that request's future with a guard that clears
    /// this if the future is dropped.
    running: bool,
}

/// What [`Inner::claim_refresh`] found.
enum Claim {
    /// A refresh completed since the caller looked: its keys are as fresh as it needs.
    Done,
    /// Another refresh is fetching.
    Running,
    /// The caller now owns the refresh and must run it.
    Claimed,
}

/// Releases a claimed refresh: completed by [`RefreshGuard::complete`], abandoned when
/// dropped before (its future dropped, a panic, its runtime shut down), so that a refresh
/// never stays "under way" without anyone fetching.
struct RefreshGuard<'a> {
    inner: &'a Inner,
    completed: bool,
}

impl RefreshGuard<'_> {
    fn complete(mut self) {
        self.completed = true;
    }
}

impl Drop for RefreshGuard<'_> {
    fn drop(&mut self) {
        let completed = self.completed;
        let generation = &self.inner.generation;
        self.inner.refresh_status.send_modify(|status| {
            status.running = false;
            if completed {
                status.completed += 1;
                generation.store(status.completed, Ordering::SeqCst);
            }
        });
    }
}

/// Verified tokens by their full text: a hit skips the signature check and the JSON parse,
/// never the lifetime check, and only while the key that verified it is still published.
type TokenCache = quick_cache::sync::Cache<Box<str>, CachedToken, TokenWeight>;

#[derive(Clone)]
struct CachedToken {
    claims: Claims,
    /// The [`keys::SigningKey::id`] of the key that verified it.
    key_id: u64,
    weight: u64,
}

/// What a cached token costs besides its text and its claims: its slot in the cache's slab
/// (the entry and its links, with room for the slab's growth and for the ghost entries of
/// evicted tokens) and in its hash table.
const CACHE_ENTRY_OVERHEAD: usize = 2 * (size_of::<(Box<str>, CachedToken)>() + 16) + 16;

/// Weighs a cached token as the heap it holds: the token's text, its claims (computed once,
/// at insert, by [`Claims::heap_bytes`]) and the cache's own per-entry overhead, so that the
/// budget of [`TokenValidatorBuilder::verified_token_cache`] bounds real memory.
#[derive(Clone)]
struct TokenWeight;

impl quick_cache::Weighter<Box<str>, CachedToken> for TokenWeight {
    fn weight(&self, _token: &Box<str>, value: &CachedToken) -> u64 {
        value.weight
    }
}

#[derive(Debug)]
struct Snapshot {
    keys: KeySet,
    /// The v2 (or only) metadata's `issuer`.
    issuer: String,
    /// The v1 metadata's `issuer` (Entra only).
    v1_issuer: Option<String>,
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.inner.snapshot.load();
        f.debug_struct("TokenValidator")
            .field("authority", &self.inner.authority)
            .field("audiences", &self.inner.audiences)
            .field("algorithms", &self.inner.algorithms)
            .field("keys", &snapshot.as_ref().map(|s| s.keys.len()))
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenValidator`].
#[derive(Debug)]
#[must_use]
pub struct TokenValidatorBuilder {
    authority: Authority,
    client_id: Option<String>,
    audiences: Vec<String>,
    allowed_tenants: Vec<String>,
    allowed_client_ids: Vec<String>,
    algorithms: Vec<String>,
    leeway: Duration,
    max_token_lifetime: Duration,
    max_token_size: usize,
    require_scope_or_role: bool,
    pii: bool,
    detailed_errors: bool,
    validate_metadata_issuer: bool,
    clock: SharedClock,
    http: Option<HttpClient>,
    refresh_interval: Duration,
    min_forced_refresh_interval: Duration,
    unavailable_retry_interval: Duration,
    cache_bytes: usize,
    static_snapshot: Option<Snapshot>,
}

impl TokenValidatorBuilder {
    /// Memory for the verified-token cache, in bytes (default 16 MiB; 0 turns it off). A
    /// token presented again is accepted without a new signature check while it is within
    /// its lifetime and the key that verified it is still published.
    ///
    /// Each entry weighs the heap it holds: the token's text, its parsed claims (every key,
    /// value and array, nested ones included) and the cache's own bookkeeping, so the heap
    /// the cache holds stays within this budget (as requested from the allocator, whose own
    /// per-allocation overhead comes on top).
    pub fn verified_token_cache(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// This API's client id: the default audience when no audience is configured —
    /// `ClientId` for v2 tokens, `ClientId` or `api://ClientId` for v1 tokens of an Entra
    /// authority (Microsoft.Identity.Web's rule), and `ClientId` only for any other OpenID
    /// Connect authority, where `api://` URIs mean nothing.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Accepts this audience (replacing the per-version default).
    pub fn add_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts only tokens whose `tid` is one of these (empty: any tenant the issuer rules
    /// accept). Entries are trimmed and compared ignoring ASCII case (tenant ids are GUIDs);
    /// blank entries are ignored. Entra authorities only.
    pub fn allowed_tenants<I, T>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.allowed_tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// Accepts only tokens whose calling application — `azp` in v2 tokens, `appid` in v1
    /// tokens ([`Claims::client_id`]) — is one of these (`AllowedClientIds`; empty, the
    /// default: any caller). Entries are trimmed and compared ignoring ASCII case (client ids
    /// are GUIDs); blank entries are ignored. Any other token, and a token that names no
    /// calling application, is refused with 401 `invalid_token` and
    /// [`AuthErrorKind::ClientNotAllowed`], before any authorization policy runs.
    ///
    /// ```
    /// use tower_azure_auth::{Authority, AuthErrorKind, TokenValidator};
    /// # use base64::Engine as _;
    /// # let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    /// # let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    /// # use aws_lc_rs::signature::KeyPair as _;
    /// # let public = key.public_key();
    /// # let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1",
    /// #     "n": b64(public.modulus().big_endian_without_leading_zero()),
    /// #     "e": b64(public.exponent().big_endian_without_leading_zero())}]}).to_string();
    /// # let sign = |claims: serde_json::Value| {
    /// #     let message = format!("{}.{}", b64(br#"{"alg":"RS256","kid":"k1"}"#), b64(claims.to_string().as_bytes()));
    /// #     let mut signature = vec![0; key.public_modulus_len()];
    /// #     key.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(),
    /// #         message.as_bytes(), &mut signature).unwrap();
    /// #     format!("{message}.{}", b64(&signature))
    /// # };
    /// # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    /// # let token = |azp: &str| sign(serde_json::json!({"iss": "https://idp.example.com",
    /// #     "aud": "api", "exp": now + 600, "azp": azp, "roles": ["r"]}));
    /// let validator = TokenValidator::builder(Authority::oidc("https://idp.example.com")?)
    ///     .client_id("api")
    ///     .allowed_client_ids(["11111111-AAAA-4000-8000-000000000001"])
    ///     .static_keys("https://idp.example.com", jwks.as_bytes())?
    ///     .build()?;
    /// assert!(validator.validate_with_current_keys(&token("11111111-aaaa-4000-8000-000000000001")).is_ok());
    /// let error = validator
    ///     .validate_with_current_keys(&token("22222222-bbbb-4000-8000-000000000002"))
    ///     .unwrap_err();
    /// assert_eq!(error.kind(), AuthErrorKind::ClientNotAllowed);
    /// assert_eq!(error.status(), 401);
    /// # Ok::<(), tower_azure_auth::ConfigError>(())
    /// ```
    pub fn allowed_client_ids<I, T>(mut self, client_ids: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.allowed_client_ids = client_ids.into_iter().map(Into::into).collect();
        self
    }

    /// Keeps the expected and actual values of a refusal (the token's audience, issuer,
    /// tenant, client and key id, and the API's expected ones) in [`AuthError::detail`] and
    /// logs them at debug (`EnablePiiLogging`; default false). Responses still carry only the
    /// check's name unless [`detailed_errors`](Self::detailed_errors) is on too. Tokens are
    /// never logged.
    pub fn enable_pii_logging(mut self, enable: bool) -> Self {
        self.pii = enable;
        self
    }

    /// For development: puts the expected and actual values of a refusal in the response's
    /// `error_description` too (`DetailedErrors`; default false), as
    /// Microsoft.IdentityModel's `ShowPII` does. The values are then also in
    /// [`AuthError::detail`] and in the debug log. Never in production: the caller learns the
    /// API's configuration (audience, issuer, tenant, allowed clients).
    pub fn detailed_errors(mut self, enable: bool) -> Self {
        self.detailed_errors = enable;
        self
    }

    /// The longest lifetime accepted (default 2 days): a token is refused when its `exp` is
    /// more than this after its `nbf` or `iat` (the later of the two), or after now when it
    /// carries neither. Entra's access tokens live 60–90 minutes, at most about 28 hours
    /// (continuous access evaluation); a token valid for longer was not minted by Entra's
    /// usual rules.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// Whether, for an OpenID Connect authority that is not Entra ID, the discovery
    /// document's `issuer` must be the configured authority URL (default true; a trailing `/`
    /// is ignored), as OpenID Connect Discovery §4.3 requires. When it is not, the metadata is
    /// refused (the fetch fails and the last known good keys stay). Turn it off only for an
    /// authority known to publish another issuer than its own URL; tokens must then carry the
    /// metadata's `issuer`.
    pub fn validate_metadata_issuer(mut self, validate: bool) -> Self {
        self.validate_metadata_issuer = validate;
        self
    }

    /// The accepted signature algorithms by name (default `["RS256"]`); RSA algorithms only.
    pub fn algorithms<I, T>(mut self, algorithms: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.algorithms = algorithms.into_iter().map(Into::into).collect();
        self
    }

    /// Leeway for `exp`, `nbf` and `iat` (default 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Tokens longer than this are refused before any parsing (default 16 KiB).
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = bytes;
        self
    }

    /// Whether a token must carry a non-empty `scp` (a string with at least one scope) or
    /// `roles` (default true, as Microsoft.Identity.Web; `AllowWebApiToBeAuthorizedByACL`
    /// turns it off). `"scp": null` or `""` is no scope.
    pub fn require_scope_or_role(mut self, require: bool) -> Self {
        self.require_scope_or_role = require;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client for metadata and keys (default: [`HttpClient::new`]).
    pub fn http_client(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// How often keys are refreshed in the background (default 12 hours).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// The least time between two refreshes forced by unknown `kid`s (default 5 minutes).
    pub fn min_forced_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_forced_refresh_interval = interval;
        self
    }

    /// While no keys are available at all, the least time between two fetches triggered by
    /// requests (default 10 seconds; the background task retries on its own meanwhile).
    pub fn unavailable_retry_interval(mut self, interval: Duration) -> Self {
        self.unavailable_retry_interval = interval;
        self
    }

    /// Uses this fixed key set and issuer instead of OpenID Connect discovery: nothing is
    /// ever fetched (no background refresh, no refresh on an unknown `kid`, which is then
    /// simply refused), and [`TokenValidator::refresh`] does nothing. For offline tests, fuzzing, and
    /// deployments that pin their keys; the issuer and audience rules still apply (`issuer`
    /// may hold Entra's `{tenantid}` template; v1 issuers are not accepted in this mode).
    ///
    /// `jwks_json` is a JWKS document, parsed like a fetched one (RSA signature keys of
    /// 2048 bits or more, at most 64).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `jwks_json` is not a JWKS or holds no usable key.
    ///
    /// ```
    /// use tower_azure_auth::{Authority, AuthErrorKind, TokenValidator};
    /// # use base64::Engine as _;
    /// # let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xC5u8; 256]);
    /// let jwks = format!(r#"{{"keys":[{{"kty":"RSA","kid":"k1","n":"{n}","e":"AQAB"}}]}}"#);
    /// let validator = TokenValidator::builder(Authority::oidc("https://idp.example.com")?)
    ///     .client_id("api")
    ///     .static_keys("https://idp.example.com", jwks.as_bytes())?
    ///     .build()?;
    /// assert!(validator.has_keys());
    /// let error = validator.validate_with_current_keys("not-a-token").unwrap_err();
    /// assert_eq!(error.kind(), AuthErrorKind::MalformedToken);
    /// # Ok::<(), tower_azure_auth::ConfigError>(())
    /// ```
    pub fn static_keys(mut self, issuer: &str, jwks_json: &[u8]) -> Result<Self, ConfigError> {
        let keys = KeySet::from_jwks(jwks_json).map_err(|reason| ConfigError::Invalid {
            key: "jwks".into(),
            reason,
        })?;
        self.static_snapshot = Some(Snapshot {
            keys,
            issuer: issuer.to_owned(),
            v1_issuer: None,
        });
        Ok(self)
    }

    /// Builds the validator and, inside a Tokio runtime, starts the background key refresh
    /// (outside one, keys are fetched on first use and the first validation inside a runtime
    /// starts the background refresh; with [`static_keys`](Self::static_keys), never).
    ///
    /// # Errors
    ///
    /// When no audience can be derived (no `ClientId` and no `Audience`), an algorithm is not
    /// an RSA signature algorithm, or the HTTP client cannot be built.
    pub fn build(self) -> Result<TokenValidator, ConfigError> {
        if self.client_id.is_none() && self.audiences.is_empty() {
            return Err(ConfigError::Missing {
                key: "AzureAd:ClientId",
                hint: "set ClientId (the default audience) or Audience",
            });
        }
        let mut algorithms = Vec::new();
        for name in &self.algorithms {
            let algorithm = match name.trim().to_ascii_uppercase().as_str() {
                "RS256" => Algorithm::RS256,
                "RS384" => Algorithm::RS384,
                "RS512" => Algorithm::RS512,
                "PS256" => Algorithm::PS256,
                "PS384" => Algorithm::PS384,
                "PS512" => Algorithm::PS512,
                other => {
                    return Err(ConfigError::Invalid {
                        key: "AzureAd:ValidAlgorithms".into(),
                        reason: format!(
                            "`{other}` is not accepted: only RSA signature algorithms (RS256, RS384, RS512, PS256, PS384, PS512) can be verified with the authority's keys"
                        ),
                    })
                }
            };
            algorithms.push(algorithm);
        }
        if algorithms.is_empty() {
            algorithms.push(Algorithm::RS256);
        }
        let http = match self.http {
            Some(http) => http,
            None => HttpClient::new()?,
        };
        let static_keys = self.static_snapshot.is_some();
        let trimmed = |list: Vec<String>| -> Vec<String> {
            list.iter()
                .map(|entry| entry.trim())
                .filter(|entry| !entry.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let inner = Arc::new(Inner {
            authority: self.authority,
            http,
            clock: self.clock,
            audiences: self.audiences,
            default_audience_client_id: self.client_id,
            allowed_tenants: trimmed(self.allowed_tenants),
            allowed_client_ids: trimmed(self.allowed_client_ids),
            algorithms,
            leeway: self.leeway.as_secs(),
            max_token_lifetime: self.max_token_lifetime.as_secs(),
            max_token_size: self.max_token_size,
            require_scope_or_role: self.require_scope_or_role,
            pii: self.pii || self.detailed_errors,
            detailed_errors: self.detailed_errors,
            validate_metadata_issuer: self.validate_metadata_issuer,
            refresh_interval: self.refresh_interval,
            min_forced_refresh_interval: self.min_forced_refresh_interval,
            unavailable_retry_interval: self.unavailable_retry_interval,
            snapshot: ArcSwapOption::new(self.static_snapshot.map(Arc::new)),
            refresh_status: watch::Sender::new(RefreshStatus::default()),
            generation: AtomicU64::new(0),
            refresh_loop: AtomicBool::new(false),
            last_forced: Mutex::new(None),
            fetches: AtomicU64::new(0),
            cache: (self.cache_bytes > 0).then(|| {
                // About 6 KiB per app-only Entra token with its claims, held.
                TokenCache::with_weighter(
                    (self.cache_bytes / 6144).max(16),
                    self.cache_bytes as u64,
                    TokenWeight,
                )
            }),
            static_keys,
        });
        inner.start_refresh_loop();
        Ok(TokenValidator { inner })
    }
}

async fn refresh_loop(inner: Weak<Inner>) {
    /// Marks the task as gone when it ends or is dropped (its runtime shut down), so that a
    /// later validation inside a runtime starts it again.
    struct Running(Weak<Inner>);
    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(inner) = self.0.upgrade() {
                inner.refresh_loop.store(false, Ordering::SeqCst);
            }
        }
    }
    let _running = Running(inner.clone());
    const FIRST_BACKOFF: Duration = Duration::from_secs(1);
    let mut backoff = FIRST_BACKOFF;
    // The first round joins a refresh that anyone completed since the validator was built
    // (an explicit `refresh()`, or a request's forced one, that ran before this task was
    // first scheduled) instead of fetching the same keys again.
    let mut first = true;
    loop {
        let wait = {
            let Some(inner) = inner.upgrade() else { return };
            // A refresh that left no keys (someone else's that failed) counts as failed.
            let seen = if std::mem::take(&mut first) {
                0
            } else {
                inner.generation.load(Ordering::SeqCst)
            };
            let refreshed =
                inner.refresh_since(seen).await.is_ok() && inner.snapshot.load().is_some();
            if refreshed {
                backoff = FIRST_BACKOFF;
                inner.refresh_interval
            } else {
                let wait = backoff;
                let cap = if inner.snapshot.load().is_some() {
                    Duration::from_secs(300)
                } else {
                    Duration::from_secs(30)
                };
                backoff = (backoff * 2).min(cap);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

impl Inner {
    /// Starts the background refresh task if it is not running, no keys are static, and
    /// the caller runs inside a Tokio runtime (at build, or lazily on a later validation
    /// when the validator was built outside one or the task's runtime shut down).
    fn start_refresh_loop(self: &Arc<Self>) {
        if self.static_keys || self.refresh_loop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.refresh_loop.swap(true, Ordering::SeqCst) {
            runtime.spawn(refresh_loop(Arc::downgrade(self)));
        }
    }

    /// One refresh at a time; callers that queued behind a refresh that completed meanwhile
    /// return without fetching again.
    async fn refresh(self: &Arc<Self>) -> Result<(), FetchError> {
        self.refresh_since(self.generation.load(Ordering::SeqCst))
            .await
    }

    fn refreshing(&self) -> bool {
        self.refresh_status.borrow().running
    }

    /// Takes the refresh unless one is fetching or one completed since generation `seen`.
    fn claim_refresh(&self, seen: u64) -> Claim {
        let mut claim = Claim::Running;
        self.refresh_status.send_if_modified(|status| {
            if status.completed != seen {
                claim = Claim::Done;
                false
            } else if status.running {
                false
            } else {
                status.running = true;
                claim = Claim::Claimed;
                true
            }
        });
        claim
    }

    /// Refreshes unless a refresh completed since generation `seen` was observed (then the
    /// keys are already as fresh as this caller needs); joins the refresh under way, if any.
    /// Static keys are never refreshed.
    ///
    /// The fetch runs in a spawned task: dropping this future (a client that disconnects, a
    /// timeout) does not cancel it, and the callers waiting for it still get its keys.
    /// Without a Tokio runtime it runs in this future, and a guard releases the refresh if
    /// the future is dropped.
    async fn refresh_since(self: &Arc<Self>, seen: u64) -> Result<(), FetchError> {
        if self.static_keys {
            return Ok(());
        }
        let mut detach = true;
        loop {
            // Subscribed before looking, so that no change after the look is missed.
            let mut status = self.refresh_status.subscribe();
            match self.claim_refresh(seen) {
                Claim::Done => return Ok(()),
                Claim::Claimed => {
                    let runtime = detach
                        .then(|| tokio::runtime::Handle::try_current().ok())
                        .flatten();
                    let Some(runtime) = runtime else {
                        return self.run_refresh().await;
                    };
                    let (sender, receiver) = tokio::sync::oneshot::channel();
                    let inner = Arc::clone(self);
                    runtime.spawn(async move {
                        let _ = sender.send(inner.run_refresh().await);
                    });
                    match receiver.await {
                        Ok(result) => return result,
                        // The task was dropped unfinished (its runtime is shutting down)
                        // and released the refresh: fetch in this future instead.
                        Err(_) => detach = false,
                    }
                }
                Claim::Running => {
                    // Until it completes or is abandoned; then look again.
                    let _ = status
                        .wait_for(|status| status.completed != seen || !status.running)
                        .await;
                }
            }
        }
    }

    /// Waits for the refresh under way, if any, without ever starting one.
    async fn join_refresh(&self) {
        let mut status = self.refresh_status.subscribe();
        let now = *status.borrow_and_update();
        if now.running {
            let _ = status
                .wait_for(|status| status.completed != now.completed || !status.running)
                .await;
        }
    }

    /// Runs a refresh claimed with [`claim_refresh`](Self::claim_refresh): fetches, stores
    /// the keys, and completes the refresh, or releases it if dropped before.
    async fn run_refresh(&self) -> Result<(), FetchError> {
        let guard = RefreshGuard {
            inner: self,
            completed: false,
        };
        let result = self.fetch().await;
        match &result {
            Ok(snapshot) => {
                tracing::debug!(target: TARGET, keys = snapshot.keys.len(), issuer = %snapshot.issuer, "signing keys refreshed");
            }
            Err(error) => {
                let have = self.snapshot.load().is_some();
                tracing::warn!(target: TARGET, %error, keeping_last_known_good = have, "signing key refresh failed");
            }
        }
        let result = result.map(|mut snapshot| {
            if let Some(previous) = self.snapshot.load().as_ref() {
                snapshot.keys.reuse_unchanged(&previous.keys);
            }
            self.snapshot.store(Some(Arc::new(snapshot)));
        });
        guard.complete();
        result
    }

    async fn fetch(&self) -> Result<Snapshot, FetchError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let metadata_url = self.authority.metadata_url();
        let metadata = OidcMetadata::fetch(&self.http, &metadata_url).await?;
        self.check_metadata_issuer(&metadata_url, &metadata.issuer)?;
        let v1_issuer = match self.authority.v1_metadata_url() {
            Some(url) => match OidcMetadata::fetch(&self.http, &url).await {
                Ok(v1) => Some(v1.issuer),
                Err(error) => {
                    tracing::debug!(target: TARGET, %error, "v1 metadata unavailable; v1 tokens will be refused");
                    self.snapshot
                        .load()
                        .as_ref()
                        .and_then(|s| s.v1_issuer.clone())
                }
            },
            None => None,
        };
        let jwks_url = Url::parse(&metadata.jwks_uri).map_err(|e| FetchError::Invalid {
            url: metadata_url.to_string(),
            reason: format!("jwks_uri is not a URL: {e}"),
        })?;
        let response = self
            .http
            .send(self.http.reqwest().get(jwks_url.clone()), jwks_url.as_str())
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                url: jwks_url.to_string(),
                status: response.status().as_u16(),
            });
        }
        let body = self.http.read_body(response).await?;
        let keys = KeySet::from_jwks(&body).map_err(|reason| FetchError::Invalid {
            url: jwks_url.to_string(),
            reason,
        })?;
        Ok(Snapshot {
            keys,
            issuer: metadata.issuer,
            v1_issuer,
        })
    }

    /// For an OpenID Connect authority that is not Entra ID: the discovery document's `issuer`
    /// must be the configured authority (OpenID Connect Discovery §4.3), trailing `/` aside.
    /// Entra's metadata is checked by Entra's issuer rules instead (tenant templates, v1).
    fn check_metadata_issuer(&self, metadata_url: &Url, issuer: &str) -> Result<(), FetchError> {
        if self.authority.is_entra() || !self.validate_metadata_issuer {
            return Ok(());
        }
        let normalized = |url: &str| match Url::parse(url) {
            Ok(parsed) => parsed.as_str().trim_end_matches('/').to_owned(),
            Err(_) => url.trim_end_matches('/').to_owned(),
        };
        let configured = self.authority.to_string();
        if normalized(issuer) == normalized(&configured) {
            return Ok(());
        }
        Err(FetchError::Invalid {
            url: metadata_url.to_string(),
            reason: format!(
                "the discovery document's issuer `{}` is not the configured authority `{configured}` (OpenID Connect Discovery 4.3); configure the authority as its issuer, or turn the check off with validate_metadata_issuer(false)",
                short(issuer)
            ),
        })
    }

    /// A refusal: `reason` names the check and holds no personal data; `detail` (the
    /// expected and actual values) is built and kept only with PII logging or detailed
    /// errors on.
    fn refuse(
        &self,
        kind: AuthErrorKind,
        reason: impl Into<Cow<'static, str>>,
        detail: impl FnOnce() -> String,
    ) -> AuthError {
        let error = AuthError::new(kind, reason);
        if self.pii {
            error
                .with_detail(detail())
                .with_detail_in_response(self.detailed_errors)
        } else {
            error
        }
    }

    /// Whether a request that met an unknown key (or no keys) may force a refresh now; takes
    /// the slot if so.
    fn take_forced_refresh_slot(&self, kind: AuthErrorKind) -> bool {
        let interval = match kind {
            AuthErrorKind::KeysUnavailable => self.unavailable_retry_interval,
            _ => self.min_forced_refresh_interval,
        };
        let now = self.clock.now();
        let Ok(mut last) = self.last_forced.lock() else {
            return false;
        };
        let allowed = match *last {
            None => true,
            Some(at) => now
                .duration_since(at)
                .map_or(true, |elapsed| elapsed >= interval),
        };
        if allowed {
            *last = Some(now);
        }
        allowed
    }
}

/// The parts of a JWS header the validator reads; anything else (`jwk`, `jku`, `x5u`, `x5c`)
/// is ignored on purpose.
#[derive(Deserialize)]
struct Header<'a> {
    // Borrowed from the decoded header when it has no escapes: no allocation per token.
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    x5t: Option<Cow<'a, str>>,
    /// Whether the header has a `crit` member at all: `"crit": null` counts (an `Option`
    /// would read it as absent).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` for any value, `null` included: used with `#[serde(default)]`, tells whether a
/// member is present.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

fn short(value: &str) -> String {
    let mut s: String = value.chars().take(64).collect();
    if value.len() > s.len() {
        s.push('…');
    }
    s
}

fn matches_issuer(template: &str, tid: Option<&str>, iss: &str) -> bool {
    match (template.split_once("{tenantid}"), tid) {
        (Some((prefix, suffix)), Some(tid)) => {
            iss.len() == prefix.len() + tid.len() + suffix.len()
                && iss.starts_with(prefix)
                && iss.ends_with(suffix)
                && &iss[prefix.len()..iss.len() - suffix.len()] == tid
        }
        (Some(_), None) => false,
        (None, _) => template == iss,
    }
}

fn substitute(template: &str, tid: Option<&str>) -> String {
    match tid {
        Some(tid) => template.replace("{tenantid}", tid),
        None => template.to_owned(),
    }
}

impl TokenValidator {
    /// A builder for the given authority.
    pub fn builder(authority: Authority) -> TokenValidatorBuilder {
        TokenValidatorBuilder {
            authority,
            client_id: None,
            audiences: Vec::new(),
            allowed_tenants: Vec::new(),
            allowed_client_ids: Vec::new(),
            algorithms: Vec::new(),
            leeway: Duration::from_secs(300),
            max_token_lifetime: Duration::from_secs(2 * 24 * 3600),
            max_token_size: 16 * 1024,
            require_scope_or_role: true,
            pii: false,
            detailed_errors: false,
            validate_metadata_issuer: true,
            clock: clock::system(),
            http: None,
            refresh_interval: Duration::from_secs(12 * 3600),
            min_forced_refresh_interval: Duration::from_secs(300),
            unavailable_retry_interval: Duration::from_secs(10),
            cache_bytes: 16 * 1024 * 1024,
            static_snapshot: None,
        }
    }

    /// A builder from the `AzureAd` section: `ClientId`, `Audience`/`Audiences`,
    /// `AllowedTenants`, `AllowedClientIds`, `ValidAlgorithms`, `ClockSkewSeconds`,
    /// `MaxTokenSize`, `AllowWebApiToBeAuthorizedByACL`, `EnablePiiLogging` and
    /// `DetailedErrors`.
    ///
    /// # Errors
    ///
    /// When the authority settings are missing or unusable.
    pub fn from_options(options: &AzureAdOptions) -> Result<TokenValidatorBuilder, ConfigError> {
        let mut builder = Self::builder(Authority::from_options(options)?)
            .allowed_tenants(options.allowed_tenants.iter().cloned())
            .allowed_client_ids(options.allowed_client_ids.iter().cloned())
            .enable_pii_logging(options.enable_pii_logging.unwrap_or(false))
            .detailed_errors(options.detailed_errors.unwrap_or(false))
            .algorithms(options.valid_algorithms.iter().cloned())
            .require_scope_or_role(
                !options
                    .allow_web_api_to_be_authorized_by_acl
                    .unwrap_or(false),
            );
        if let Some(client_id) = options
            .client_id
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        {
            builder = builder.client_id(client_id.trim());
        }
        for audience in options.audience.iter().chain(&options.audiences) {
            if !audience.trim().is_empty() {
                builder = builder.add_audience(audience.trim());
            }
        }
        if let Some(seconds) = options.clock_skew_seconds {
            builder = builder.leeway(Duration::from_secs(seconds));
        }
        if let Some(bytes) = options.max_token_size {
            builder = builder.max_token_size(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        Ok(builder)
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
    pub fn authority(&self) -> &Authority {
        &self.inner.authority
    }

    /// Whether signing keys have been fetched.
    pub fn has_keys(&self) -> bool {
        self.inner.snapshot.load().is_some()
    }

    /// How many verified tokens are cached now.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// How many times metadata and keys were fetched (successfully or not) since start.
    pub fn key_fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Fetches metadata and keys now (single flight with any refresh under way); does nothing
    /// for a validator built with [`TokenValidatorBuilder::static_keys`].
    ///
    /// # Errors
    ///
    /// When the metadata or the key set cannot be fetched; the last known good keys stay.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        self.inner.start_refresh_loop();
        self.inner.refresh().await
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
        // Observed before validating: a refresh that completes after this point is one this
        // caller can wait for instead of starting another (a flood of unknown kids must not
        // turn into back-to-back fetches).
        let seen = self.inner.generation.load(Ordering::SeqCst);
        match self.validate_with_current_keys(token) {
            Err(error) if needs_keys(&error) && !self.inner.static_keys => {
                self.inner.start_refresh_loop();
                if self.inner.refreshing() {
                    // Join the refresh under way; never start another without a slot.
                    self.inner.join_refresh().await;
                    self.validate_with_current_keys(token)
                } else if self.inner.take_forced_refresh_slot(error.kind()) {
                    // The outcome is logged by refresh; the retry below reports what matters.
                    let _ = self.inner.refresh_since(seen).await;
                    self.validate_with_current_keys(token)
                } else {
                    Err(error)
                }
            }
            result => result,
        }
    }

    /// Validates a token with the keys held now, never waiting: what the layers call first.
    /// An [`AuthErrorKind::UnknownSigningKey`] or [`AuthErrorKind::KeysUnavailable`] answer may
    /// change after a refresh ([`TokenValidator::validate`] does that).
    ///
    /// # Errors
    ///
    /// An [`AuthError`] naming the check that failed.
    pub fn validate_with_current_keys(&self, token: &str) -> Result<Claims, AuthError> {
        let result = self.check(token);
        if let Err(error) = &result {
            // The detail (expected and actual values) exists only with PII logging on.
            tracing::debug!(target: TARGET, kind = %error.kind(), reason = error.reason(), detail = error.detail(), "token rejected");
        }
        result
    }

    fn check(&self, token: &str) -> Result<Claims, AuthError> {
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
        if let Some(cache) = &inner.cache {
            if let Some(hit) = cache.get(token) {
                let current = inner.snapshot.load();
                if current.as_ref().is_some_and(|s| s.keys.holds(hit.key_id)) {
                    if let Err(error) = self.check_lifetime(&hit.claims) {
                        cache.remove(token);
                        return Err(error);
                    }
                    return Ok(hit.claims);
                }
                cache.remove(token);
            }
        }
        let (claims, key_id) = self.check_uncached(token)?;
        if let Some(cache) = &inner.cache {
            let weight = (token.len() + claims.heap_bytes() + CACHE_ENTRY_OVERHEAD) as u64;
            cache.insert(
                token.into(),
                CachedToken {
                    claims: claims.clone(),
                    key_id,
                    weight,
                },
            );
        }
        Ok(claims)
    }

    fn check_uncached(&self, token: &str) -> Result<(Claims, u64), AuthError> {
        use AuthErrorKind as K;
        let inner = &*self.inner;
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            let count = token.split('.').count();
            let reason = if count == 5 {
                "encrypted tokens (JWE) are not supported".to_owned()
            } else {
                format!("a JWT has 3 dot-separated parts; this token has {count}")
            };
            return Err(AuthError::new(K::MalformedToken, reason));
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| AuthError::new(K::MalformedToken, "the token header is not base64url"))?;
        let header: Header = serde_json::from_slice(&header_json).map_err(|_| {
            AuthError::new(
                K::MalformedToken,
                "the token header is not a JSON object with an `alg`",
            )
        })?;
        if header.crit {
            // RFC 7515 §4.1.11: no extension is understood here, so any `crit` (even empty or
            // null) makes the token unusable.
            return Err(AuthError::new(
                K::MalformedToken,
                "the token header has a `crit` parameter, which is not supported",
            ));
        }
        let algorithm = inner
            .algorithms
            .iter()
            .copied()
            .find(|a| algorithm_name(*a) == header.alg)
            .ok_or_else(|| {
                AuthError::new(
                    K::DisallowedAlgorithm,
                    format!(
                        "the algorithm '{}' is not accepted; expected one of {}",
                        short(&header.alg),
                        inner
                            .algorithms
                            .iter()
                            .map(|a| algorithm_name(*a))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;

        let snapshot = inner.snapshot.load();
        let Some(snapshot) = snapshot.as_ref() else {
            return Err(inner.refuse(
                K::KeysUnavailable,
                "the signing keys could not be fetched yet",
                || {
                    format!(
                        "the signing keys of {} could not be fetched yet",
                        inner.authority
                    )
                },
            ));
        };
        let key = snapshot
            .keys
            .find(header.kid.as_deref(), header.x5t.as_deref())
            .ok_or_else(|| match (&header.kid, &header.x5t) {
                (Some(id), _) | (None, Some(id)) => inner.refuse(
                    K::UnknownSigningKey,
                    "the signing key was not found: the authority publishes no key with the token's kid",
                    || {
                        format!(
                            "{} publishes no key with kid '{}'",
                            inner.authority,
                            short(id)
                        )
                    },
                ),
                (None, None) => AuthError::new(
                    K::UnknownSigningKey,
                    "the token header names no key (no kid)",
                ),
            })?;
        if !key.allows(algorithm) {
            return Err(AuthError::new(
                K::DisallowedAlgorithm,
                format!(
                    "the algorithm '{}' is not the one the signing key is published for ({})",
                    algorithm_name(algorithm),
                    key.alg().map_or("none", algorithm_name)
                ),
            ));
        }
        let message_len = header_b64.len() + 1 + payload_b64.len();
        let message = &token.as_bytes()[..message_len];
        let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| {
            AuthError::new(K::MalformedToken, "the token signature is not base64url")
        })?;
        if !key.verify(algorithm, message, &signature) {
            return Err(AuthError::new(
                K::InvalidSignature,
                "the signature is invalid",
            ));
        }

        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| AuthError::new(K::MalformedToken, "the token payload is not base64url"))?;
        let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&payload)
            .map_err(|_| {
            AuthError::new(K::MalformedToken, "the token payload is not a JSON object")
        })?;
        let claims =
            Claims::from_map(claims).map_err(|e| AuthError::new(K::InvalidClaim, e.to_string()))?;

        self.check_lifetime(&claims)?;
        self.check_issuer(snapshot, key.issuer.as_deref(), &claims)?;
        self.check_audience(&claims)?;
        self.check_client(&claims)?;
        // `"scp": null`, `""` or a non-string is no scope.
        if inner.require_scope_or_role
            && claims.scopes().next().is_none()
            && claims.roles().is_empty()
        {
            return Err(AuthError::new(
                K::InvalidClaim,
                "the token has neither a scp nor a roles claim (IDW10201); the caller was granted no permission on this API",
            ));
        }
        Ok((claims, key.id()))
    }

    fn check_lifetime(&self, claims: &Claims) -> Result<(), AuthError> {
        use AuthErrorKind as K;
        let now = self.inner.clock.unix_seconds();
        let leeway = self.inner.leeway;
        let date = |name: &'static str| -> Result<Option<u64>, AuthError> {
            match claims.get(name) {
                None => Ok(None),
                Some(value) => numeric_date(value).map(Some).ok_or_else(|| {
                    AuthError::new(
                        K::InvalidClaim,
                        format!("the {name} claim is not a NumericDate"),
                    )
                }),
            }
        };
        let Some(exp) = date("exp")? else {
            return Err(AuthError::new(
                K::InvalidClaim,
                "the token has no expiration (exp)",
            ));
        };
        let nbf = date("nbf")?;
        let iat = date("iat")?;
        if let Some(nbf) = nbf {
            if nbf > exp {
                return Err(AuthError::new(
                    K::InvalidClaim,
                    format!("the token lifetime is invalid: nbf {nbf} is after exp {exp}"),
                ));
            }
            if nbf > now.saturating_add(leeway) {
                return Err(AuthError::new(
                    K::NotYetValid,
                    format!(
                        "the token is not valid before {nbf} (unix time), {} s from now; {leeway} s of clock skew allowed",
                        nbf - now
                    ),
                ));
            }
        }
        if let Some(iat) = iat {
            if iat > now.saturating_add(leeway) {
                return Err(AuthError::new(
                    K::NotYetValid,
                    format!(
                        "the token was issued in the future: iat {iat} (unix time) is {} s from now; {leeway} s of clock skew allowed",
                        iat - now
                    ),
                ));
            }
        }
        if now > exp.saturating_add(leeway) {
            return Err(AuthError::new(
                K::Expired,
                format!(
                    "the token expired at {exp} (unix time), {} s ago; {leeway} s of clock skew allowed",
                    now - exp
                ),
            ));
        }
        // The lifetime from the later of nbf and iat (both at most now + leeway here), or
        // what is left of it when the token has neither.
        let start = nbf.max(iat).unwrap_or(now);
        let lifetime = exp.saturating_sub(start);
        let max = self.inner.max_token_lifetime;
        if lifetime > max {
            return Err(AuthError::new(
                K::InvalidClaim,
                format!(
                    "the token's lifetime of {lifetime} s is longer than the {max} s allowed (exp is {exp}, unix time)"
                ),
            ));
        }
        Ok(())
    }

    fn check_issuer(
        &self,
        snapshot: &Snapshot,
        key_issuer: Option<&str>,
        claims: &Claims,
    ) -> Result<(), AuthError> {
        use AuthErrorKind as K;
        let inner = &*self.inner;
        let iss = claims
            .issuer()
            .ok_or_else(|| AuthError::new(K::InvalidIssuer, "the token has no issuer (iss)"))?;
        if !inner.authority.is_entra() {
            if iss != snapshot.issuer {
                return Err(
                    inner.refuse(K::InvalidIssuer, "the issuer is not accepted", || {
                        format!(
                            "the issuer '{}' is not accepted; expected '{}'",
                            short(iss),
                            snapshot.issuer
                        )
                    }),
                );
            }
            return Ok(());
        }
        let Some(tenant) = claims.tenant_id() else {
            return Err(AuthError::new(
                K::InvalidTenant,
                "the token has no tenant (tid); Entra ID tokens always carry one",
            ));
        };
        if !iss.contains(tenant) {
            return Err(inner.refuse(
                K::InvalidTenant,
                "the token's tenant (tid) does not appear in its issuer",
                || {
                    format!(
                        "the token's tenant '{}' does not appear in its issuer '{}'",
                        short(tenant),
                        short(iss)
                    )
                },
            ));
        }
        let tid = Some(tenant);
        let templates =
            std::iter::once(snapshot.issuer.as_str()).chain(snapshot.v1_issuer.as_deref());
        if !templates.clone().any(|t| matches_issuer(t, tid, iss)) {
            return Err(
                inner.refuse(K::InvalidIssuer, "the issuer is not accepted", || {
                    let expected: Vec<String> = templates
                        .map(|t| format!("'{}'", substitute(t, tid)))
                        .collect();
                    format!(
                        "the issuer '{}' is not accepted; expected {}",
                        short(iss),
                        expected.join(" or ")
                    )
                }),
            );
        }
        if !inner.allowed_tenants.is_empty()
            && !inner
                .allowed_tenants
                .iter()
                .any(|t| t.eq_ignore_ascii_case(tenant))
        {
            return Err(inner.refuse(
                K::InvalidTenant,
                "the tenant is not one of the allowed tenants (AllowedTenants)",
                || {
                    format!(
                        "the tenant '{}' is not in the allowed tenants",
                        short(tenant)
                    )
                },
            ));
        }
        if let Some(key_issuer) = key_issuer {
            let ok = matches_issuer(key_issuer, tid, iss)
                || substitute(key_issuer, tid) == substitute(&snapshot.issuer, tid);
            if !ok {
                return Err(inner.refuse(
                    K::InvalidIssuer,
                    "the signing key is reserved for another issuer",
                    || {
                        format!(
                            "the signing key is reserved for issuer '{}', not '{}'",
                            substitute(key_issuer, tid),
                            short(iss)
                        )
                    },
                ));
            }
        }
        Ok(())
    }

    fn check_audience(&self, claims: &Claims) -> Result<(), AuthError> {
        let inner = &*self.inner;
        // `api://ClientId` is Entra's App ID URI form; other authorities have no such rule.
        let api_uri_default =
            inner.authority.is_entra() && matches!(claims.version(), Some(TokenVersion::V1) | None);
        let accepted = |aud: &str| -> bool {
            if !inner.audiences.is_empty() {
                return inner.audiences.iter().any(|a| a == aud);
            }
            let Some(client_id) = inner.default_audience_client_id.as_deref() else {
                return false;
            };
            aud == client_id || (api_uri_default && aud.strip_prefix("api://") == Some(client_id))
        };
        if claims.audiences().any(accepted) {
            return Ok(());
        }
        Err(inner.refuse(
            AuthErrorKind::InvalidAudience,
            "the audience is not accepted",
            || {
                let expected = if inner.audiences.is_empty() {
                    let client_id = inner
                        .default_audience_client_id
                        .as_deref()
                        .unwrap_or_default();
                    if api_uri_default {
                        format!("'{client_id}' or 'api://{client_id}'")
                    } else {
                        format!("'{client_id}'")
                    }
                } else {
                    inner
                        .audiences
                        .iter()
                        .map(|a| format!("'{a}'"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                };
                let actual: Vec<String> = claims
                    .audiences()
                    .take(4)
                    .map(|a| format!("'{}'", short(a)))
                    .collect();
                let actual = if actual.is_empty() {
                    "none".to_owned()
                } else {
                    actual.join(", ")
                };
                format!("the audience {actual} is not accepted; expected {expected}")
            },
        ))
    }

    /// `AllowedClientIds`: the calling application (`azp`, or `appid` in v1 tokens) must be
    /// listed, when the list is set.
    fn check_client(&self, claims: &Claims) -> Result<(), AuthError> {
        let inner = &*self.inner;
        if inner.allowed_client_ids.is_empty() {
            return Ok(());
        }
        let Some(client) = claims.client_id() else {
            return Err(AuthError::new(
                AuthErrorKind::ClientNotAllowed,
                "the token names no client application (neither azp nor appid), and only the allowed client ids (AllowedClientIds) are accepted",
            ));
        };
        if inner
            .allowed_client_ids
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(client))
        {
            return Ok(());
        }
        Err(inner.refuse(
            AuthErrorKind::ClientNotAllowed,
            "the client application is not one of the allowed client ids (AllowedClientIds)",
            || {
                format!(
                    "the client '{}' is not accepted; expected one of {}",
                    short(client),
                    inner
                        .allowed_client_ids
                        .iter()
                        .map(|c| format!("'{c}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ))
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
pub fn may_resolve_after_refresh(error: &AuthError) -> bool {
    needs_keys(error)
}

// The two scans below run over every request's whole token (about 1-2 KB): written as
// non-short-circuiting folds of byte arithmetic so that they vectorise. With `all` and
// `is_ascii_alphanumeric` they were 90 % of the layer's cost on a cached token.

/// Whether every byte is visible ASCII or a space (0x20..=0x7E).
fn all_visible_ascii(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(true, |ok, &b| ok & (b.wrapping_sub(0x20) < 0x5f))
}

/// Whether every byte may stand in an RFC 6750 `b64token` (before its `=` padding):
/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`.
fn all_token68(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        let digit = b.wrapping_sub(b'0') < 10;
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let mark =
            (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/');
        ok & (digit | letter | mark)
    })
}

/// Extracts the bearer token from the values of the `Authorization` header(s).
///
/// The scheme is case-insensitive; one header only; the token must be an RFC 6750
/// `b64token`. Another scheme (e.g. `Basic`) counts as no bearer token.
///
/// # Errors
///
/// [`AuthErrorKind::MissingToken`] or [`AuthErrorKind::MalformedHeader`].
///
/// ```
/// use tower_azure_auth::validation::bearer_token;
/// use tower_azure_auth::AuthErrorKind;
///
/// assert_eq!(bearer_token([b"bearer abc.def.ghi".as_slice()]).unwrap(), "abc.def.ghi");
/// assert_eq!(bearer_token([]).unwrap_err().kind(), AuthErrorKind::MissingToken);
/// assert_eq!(
///     bearer_token([b"Bearer a".as_slice(), b"Bearer b".as_slice()]).unwrap_err().kind(),
///     AuthErrorKind::MalformedHeader
/// );
/// ```
pub fn bearer_token<'a, I>(values: I) -> Result<&'a str, AuthError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    use AuthErrorKind as K;
    let mut values = values.into_iter();
    let Some(value) = values.next() else {
        return Err(AuthError::missing_token());
    };
    if values.next().is_some() {
        return Err(AuthError::new(
            K::MalformedHeader,
            "more than one Authorization header",
        ));
    }
    let value = Some(value)
        .filter(|v| all_visible_ascii(v))
        .and_then(|v| std::str::from_utf8(v).ok())
        .ok_or_else(|| {
            AuthError::new(
                K::MalformedHeader,
                "the Authorization header is not visible ASCII",
            )
        })?;
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::new(
            K::MissingToken,
            "the Authorization header does not use the Bearer scheme",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::new(
            K::MalformedHeader,
            "the Bearer credential is empty",
        ));
    }
    let body = token.trim_end_matches('=');
    let b64token = !body.is_empty() && all_token68(body.as_bytes());
    if !b64token {
        return Err(AuthError::new(
            K::MalformedHeader,
            "the Bearer credential has characters a token cannot have",
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_classes_match_their_definitions() {
        for b in 0..=255u8 {
            assert_eq!(
                all_visible_ascii(&[b]),
                (0x20..0x7f).contains(&b),
                "visible ascii {b:#04x}"
            );
            assert_eq!(
                all_token68(&[b]),
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'),
                "token68 {b:#04x}"
            );
        }
        // Long inputs, one bad byte anywhere.
        let mut token = vec![b'a'; 4096];
        assert!(all_token68(&token) && all_visible_ascii(&token));
        for at in [0, 31, 32, 1000, 4095] {
            token[at] = 0x7f;
            assert!(!all_token68(&token) && !all_visible_ascii(&token), "{at}");
            token[at] = b'a';
        }
    }

    #[test]
    fn issuer_templates() {
        struct Case {
            name: &'static str,
            template: &'static str,
            tid: Option<&'static str>,
            iss: &'static str,
            ok: bool,
        }
        let cases = [
            Case {
                name: "exact",
                template: "https://a/t/v2.0",
                tid: None,
                iss: "https://a/t/v2.0",
                ok: true,
            },
            Case {
                name: "template",
                template: "https://a/{tenantid}/v2.0",
                tid: Some("t"),
                iss: "https://a/t/v2.0",
                ok: true,
            },
            Case {
                name: "template, other tenant in iss",
                template: "https://a/{tenantid}/v2.0",
                tid: Some("t"),
                iss: "https://a/u/v2.0",
                ok: false,
            },
            Case {
                name: "template without tid",
                template: "https://a/{tenantid}/v2.0",
                tid: None,
                iss: "https://a/t/v2.0",
                ok: false,
            },
            Case {
                name: "suffix differs",
                template: "https://a/{tenantid}/v2.0",
                tid: Some("t"),
                iss: "https://a/t/",
                ok: false,
            },
            Case {
                name: "exact mismatch",
                template: "https://a/t/",
                tid: Some("t"),
                iss: "https://a/t/v2.0",
                ok: false,
            },
        ];
        for case in cases {
            assert_eq!(
                matches_issuer(case.template, case.tid, case.iss),
                case.ok,
                "{}",
                case.name
            );
        }
    }

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
        fn jwks_with(&self, members: serde_json::Value) -> String {
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
                .algorithms(["RS256", "PS256"])
                .clock(Arc::new(crate::clock::ManualClock::at_unix(1_700_000_000)))
                .static_keys(ISSUER, fixture.jwks_with(case.jwk).as_bytes())
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
                .static_keys(ISSUER, fixture.jwks_with(members).as_bytes())
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

    /// Without a Tokio runtime the fetch runs in the caller's future: dropping that future
    /// (or a panic in it: the HTTP client needs a runtime) releases the refresh instead of
    /// leaving it "under way" for ever.
    #[test]
    fn a_refresh_dropped_outside_a_runtime_releases_its_claim() {
        use std::future::Future as _;
        use std::task::{Context, Waker};
        let validator =
            TokenValidator::builder(Authority::oidc("http://127.0.0.1:9").expect("authority"))
                .client_id("api")
                .build()
                .expect("validator");
        assert!(tokio::runtime::Handle::try_current().is_err());
        for round in 0..2 {
            let mut refresh = Box::pin(validator.refresh());
            let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                refresh
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_pending()
            }));
            if polled.is_ok() {
                assert!(validator.inner.refreshing(), "round {round}: fetching");
            }
            drop(refresh);
            assert!(
                !validator.inner.refreshing(),
                "round {round}: a dropped refresh is released"
            );
            assert_eq!(validator.inner.generation.load(Ordering::SeqCst), 0);
        }
        assert!(!validator.inner.refresh_loop.load(Ordering::SeqCst));
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

    #[test]
    fn bearer_header_parsing() {
        struct Case {
            name: &'static str,
            values: &'static [&'static [u8]],
            result: Result<&'static str, AuthErrorKind>,
        }
        let cases = [
            Case {
                name: "plain",
                values: &[b"Bearer a.b.c"],
                result: Ok("a.b.c"),
            },
            Case {
                name: "scheme case",
                values: &[b"BEARER a.b.c"],
                result: Ok("a.b.c"),
            },
            Case {
                name: "extra spaces",
                values: &[b"  Bearer   a.b.c  "],
                result: Ok("a.b.c"),
            },
            Case {
                name: "none",
                values: &[],
                result: Err(AuthErrorKind::MissingToken),
            },
            Case {
                name: "basic",
                values: &[b"Basic dXNlcjpwYXNz"],
                result: Err(AuthErrorKind::MissingToken),
            },
            Case {
                name: "repeated",
                values: &[b"Bearer a", b"Bearer b"],
                result: Err(AuthErrorKind::MalformedHeader),
            },
            Case {
                name: "empty credential",
                values: &[b"Bearer "],
                result: Err(AuthErrorKind::MalformedHeader),
            },
            Case {
                name: "two credentials",
                values: &[b"Bearer a b"],
                result: Err(AuthErrorKind::MalformedHeader),
            },
            Case {
                name: "non ascii",
                values: &[b"Bearer \xff\xfe"],
                result: Err(AuthErrorKind::MalformedHeader),
            },
            Case {
                name: "quote",
                values: &[b"Bearer a\"b"],
                result: Err(AuthErrorKind::MalformedHeader),
            },
        ];
        for case in cases {
            let result = bearer_token(case.values.iter().copied()).map_err(|e| e.kind());
            assert_eq!(result, case.result, "{}", case.name);
        }
    }
}
