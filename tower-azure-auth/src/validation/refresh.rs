//! The key refresh: OpenID Connect discovery and the JWKS fetched into a [`Snapshot`] held in
//! an `ArcSwap` (validation never waits on a lock), refreshed in the background every 12 hours
//! and on demand (an unknown `kid`) at most once per interval, single flight, detached from
//! the request that asked (cancellation-safe), keeping the last known good keys on failure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;
use url::Url;

use super::keys::{KeySet, Snapshot};
use super::last_known_good::{self, LastKnownGood};
use super::rules::short;
use crate::authority::{Authority, FetchError, HttpClient, OidcMetadata};
use crate::clock::SharedClock;
use crate::error::AuthErrorKind;
use crate::telemetry::{spans, RefreshTrigger, Start, Telemetry};

const TARGET: &str = "tower_azure_auth::validation";

/// How often and when keys are fetched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshSettings {
    /// Whether a non-Entra discovery document's `issuer` must be the configured authority.
    pub(crate) validate_metadata_issuer: bool,
    /// The background refresh's period.
    pub(crate) refresh_interval: Duration,
    /// The least time between two refreshes forced by unknown keys.
    pub(crate) min_forced_refresh_interval: Duration,
    /// The least time between two refreshes forced while no keys could be fetched yet.
    pub(crate) unavailable_retry_interval: Duration,
}

/// The validator's keys and their refresh.
pub(crate) struct KeyRefresh {
    pub(crate) authority: Authority,
    http: HttpClient,
    clock: SharedClock,
    settings: RefreshSettings,
    pub(crate) snapshot: ArcSwapOption<Snapshot>,
    /// The refresh under way, if any, and how many completed: single flight. Requests that
    /// need keys wait on it for the refresh to complete or be abandoned.
    refresh_status: watch::Sender<RefreshStatus>,
    /// `refresh_status.completed`, read without a lock before each validation.
    pub(crate) generation: AtomicU64,
    /// Whether the background refresh task is running (it can be started lazily, and it
    /// ends when its runtime shuts down).
    refresh_loop: AtomicBool,
    last_forced: Mutex<Option<SystemTime>>,
    fetches: AtomicU64,
    /// Keys installed with [`TokenValidatorBuilder::static_keys`](super::TokenValidatorBuilder::static_keys):
    /// never fetched or refreshed.
    pub(crate) static_keys: bool,
    /// Where fetched keys are kept, to start with while the authority is unreachable.
    last_known_good: Option<LastKnownGood>,
    /// Readiness: when the last refresh succeeded, and the last refresh's error.
    pub(crate) health: RefreshHealth,
    pub(crate) telemetry: Telemetry,
}

/// What the readiness probe reports of the refreshes.
#[derive(Debug, Default)]
pub(crate) struct RefreshHealth {
    /// When the last refresh succeeded.
    pub(crate) last_success: Mutex<Option<SystemTime>>,
    /// The last refresh's error, cleared by a success.
    pub(crate) last_error: Mutex<Option<String>>,
}

impl KeyRefresh {
    /// The keys of `authority`, fixed (`static_snapshot`) or fetched when first needed (the
    /// background refresh starts with [`start_refresh_loop`](Self::start_refresh_loop)).
    pub(crate) fn new(
        authority: Authority,
        http: HttpClient,
        clock: SharedClock,
        settings: RefreshSettings,
        static_snapshot: Option<Snapshot>,
        last_known_good: Option<LastKnownGood>,
        telemetry: Telemetry,
    ) -> Arc<Self> {
        Arc::new(Self {
            last_known_good,
            authority,
            http,
            clock,
            settings,
            static_keys: static_snapshot.is_some(),
            snapshot: ArcSwapOption::new(static_snapshot.map(Arc::new)),
            refresh_status: watch::Sender::new(RefreshStatus::default()),
            generation: AtomicU64::new(0),
            refresh_loop: AtomicBool::new(false),
            last_forced: Mutex::new(None),
            fetches: AtomicU64::new(0),
            health: RefreshHealth::default(),
            telemetry,
        })
    }

    /// How many times metadata and keys were fetched (successfully or not).
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Starts the background refresh task if it is not running, no keys are static, and
    /// the caller runs inside a Tokio runtime (at build, or lazily on a later validation
    /// when the validator was built outside one or the task's runtime shut down).
    pub(crate) fn start_refresh_loop(self: &Arc<Self>) {
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
    pub(crate) async fn refresh(self: &Arc<Self>) -> Result<(), FetchError> {
        self.refresh_since(
            self.generation.load(Ordering::SeqCst),
            RefreshTrigger::Manual,
        )
        .await
    }

    pub(crate) fn refreshing(&self) -> bool {
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
    pub(crate) async fn refresh_since(
        self: &Arc<Self>,
        seen: u64,
        trigger: RefreshTrigger,
    ) -> Result<(), FetchError> {
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
                        return self.run_refresh(trigger).await;
                    };
                    let (sender, receiver) = tokio::sync::oneshot::channel();
                    let inner = Arc::clone(self);
                    runtime.spawn(async move {
                        let _ = sender.send(inner.run_refresh(trigger).await);
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
    pub(crate) async fn join_refresh(&self) {
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
    async fn run_refresh(&self, trigger: RefreshTrigger) -> Result<(), FetchError> {
        let guard = RefreshGuard {
            inner: self,
            completed: false,
        };
        let started = self.telemetry.start();
        let span = spans::key_refresh(trigger);
        let result = tracing::Instrument::instrument(self.fetch(), span.clone()).await;
        if result.is_err() {
            spans::key_refresh_failed(&span);
        }
        self.record(trigger, result.as_ref().err(), started);
        match &result {
            Ok((snapshot, _)) => {
                tracing::debug!(target: TARGET, keys = snapshot.keys.len(), issuer = %snapshot.issuer, "signing keys refreshed");
            }
            Err(error) => {
                let have = self.snapshot.load().is_some();
                tracing::warn!(target: TARGET, %error, keeping_last_known_good = have, "signing key refresh failed");
            }
        }
        let result = match result {
            Ok((mut snapshot, jwks)) => {
                if let Some(previous) = self.snapshot.load().as_ref() {
                    snapshot.keys.reuse_unchanged(&previous.keys);
                    if previous.stored_at.is_some() {
                        tracing::info!(target: TARGET, "the authority answered: stored last-known-good keys replaced by fresh ones");
                    }
                }
                let document = self.last_known_good.as_ref().map(|_| {
                    last_known_good::encode(
                        self.authority.metadata_url().as_str(),
                        &snapshot,
                        &jwks,
                        self.clock.unix_seconds(),
                    )
                });
                self.snapshot.store(Some(Arc::new(snapshot)));
                if let Some(document) = document {
                    self.save_last_known_good(document);
                }
                Ok(())
            }
            Err(error) => {
                self.fall_back_to_last_known_good().await;
                Err(error)
            }
        };
        guard.complete();
        result
    }

    /// Saves what was just fetched, in a task of its own (callers waiting for the refresh
    /// never wait for the store), or in this future without a runtime.
    fn save_last_known_good(&self, document: Vec<u8>) {
        let Some(lkg) = self.last_known_good.clone() else {
            return;
        };
        let authority = self.authority.metadata_url().to_string();
        let save = async move {
            match lkg.store.save(&authority, &document).await {
                Ok(()) => {
                    tracing::debug!(target: TARGET, "last-known-good keys saved");
                }
                Err(error) => {
                    tracing::warn!(target: TARGET, error = %crate::error::error_chain(&error), "cannot save the last-known-good keys");
                }
            }
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(save);
        }
    }

    /// After a failed fetch: with no keys, loads the stored ones if they are usable; with
    /// stored keys past their age, drops them.
    async fn fall_back_to_last_known_good(&self) {
        let Some(lkg) = &self.last_known_good else {
            return;
        };
        let now = self.clock.unix_seconds();
        let current = self.snapshot.load_full();
        match current.as_ref().map(|s| s.stored_at) {
            // Fresh keys from an earlier fetch: they stay.
            Some(None) => {}
            Some(Some(stored_at)) => {
                if now.saturating_sub(stored_at) > lkg.max_age.as_secs() {
                    tracing::warn!(target: TARGET, max_age_seconds = lkg.max_age.as_secs(), "the last-known-good keys passed their maximum age and the authority is still unreachable: no keys until it answers");
                    // Only if nothing replaced them meanwhile.
                    let _ = self.snapshot.compare_and_swap(&current, None);
                }
            }
            None => {
                let authority = self.authority.metadata_url().to_string();
                let loaded = match lkg.store.load(&authority).await {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => {
                        tracing::debug!(target: TARGET, "no last-known-good keys stored");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(target: TARGET, error = %crate::error::error_chain(&error), "cannot load the last-known-good keys");
                        return;
                    }
                };
                match last_known_good::decode(&loaded, &authority, now, lkg.max_age).and_then(
                    |snapshot| {
                        self.check_metadata_issuer(
                            &self.authority.metadata_url(),
                            &snapshot.issuer,
                        )
                        .map_err(|error| error.to_string())?;
                        Ok(snapshot)
                    },
                ) {
                    Ok(snapshot) => {
                        let stored_at = snapshot.stored_at.unwrap_or_default();
                        tracing::warn!(target: TARGET, keys = snapshot.keys.len(), age_seconds = now.saturating_sub(stored_at), "the authority is unreachable: serving the last-known-good keys until it answers");
                        // Only if no fetch installed fresh keys meanwhile.
                        let _ = self
                            .snapshot
                            .compare_and_swap(&current, Some(Arc::new(snapshot)));
                    }
                    Err(reason) => {
                        tracing::warn!(target: TARGET, %reason, "the stored last-known-good keys are ignored");
                    }
                }
            }
        }
    }

    /// The refresh's outcome for readiness and the instruments.
    fn record(&self, trigger: RefreshTrigger, error: Option<&FetchError>, started: Start) {
        let metadata_url = self.authority.metadata_url();
        let server = metadata_url.host_str().unwrap_or_default();
        self.telemetry
            .key_refresh(trigger, server, error.is_none(), started);
        if let Ok(mut last_error) = self.health.last_error.lock() {
            *last_error = error.map(ToString::to_string);
        }
        if error.is_none() {
            if let Ok(mut last_success) = self.health.last_success.lock() {
                *last_success = Some(self.clock.now());
            }
        }
    }

    /// Whether the keys held now were loaded from the last-known-good store.
    pub(crate) fn serving_last_known_good(&self) -> bool {
        self.snapshot
            .load()
            .as_ref()
            .is_some_and(|s| s.stored_at.is_some())
    }

    /// Time since the last successful refresh.
    pub(crate) fn last_refresh_age(&self) -> Option<Duration> {
        let last = (*self.health.last_success.lock().ok()?)?;
        Some(self.clock.now().duration_since(last).unwrap_or_default())
    }

    async fn fetch(&self) -> Result<(Snapshot, bytes::Bytes), FetchError> {
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
        Ok((
            Snapshot {
                keys,
                issuer: metadata.issuer,
                v1_issuer,
                stored_at: None,
            },
            body,
        ))
    }

    /// For an OpenID Connect authority that is not Entra ID: the discovery document's `issuer`
    /// must be the configured authority (OpenID Connect Discovery §4.3), trailing `/` aside.
    /// Entra's metadata is checked by Entra's issuer rules instead (tenant templates, v1).
    fn check_metadata_issuer(&self, metadata_url: &Url, issuer: &str) -> Result<(), FetchError> {
        if self.authority.is_entra() || !self.settings.validate_metadata_issuer {
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

    /// Whether a request that met an unknown key (or no keys) may force a refresh now; takes
    /// the slot if so.
    pub(crate) fn take_forced_refresh_slot(&self, kind: AuthErrorKind) -> bool {
        let interval = match kind {
            AuthErrorKind::KeysUnavailable => self.settings.unavailable_retry_interval,
            _ => self.settings.min_forced_refresh_interval,
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

/// What [`KeyRefresh::claim_refresh`] found.
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
    inner: &'a KeyRefresh,
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

async fn refresh_loop(inner: Weak<KeyRefresh>) {
    /// Marks the task as gone when it ends or is dropped (its runtime shut down), so that a
    /// later validation inside a runtime starts it again.
    struct Running(Weak<KeyRefresh>);
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
            let (seen, trigger) = if std::mem::take(&mut first) {
                (0, RefreshTrigger::Startup)
            } else if inner.snapshot.load().is_none() {
                (
                    inner.generation.load(Ordering::SeqCst),
                    RefreshTrigger::Startup,
                )
            } else {
                (
                    inner.generation.load(Ordering::SeqCst),
                    RefreshTrigger::Scheduled,
                )
            };
            let refreshed =
                inner.refresh_since(seen, trigger).await.is_ok() && inner.snapshot.load().is_some();
            if refreshed {
                backoff = FIRST_BACKOFF;
                inner.settings.refresh_interval
            } else {
                let wait = backoff;
                // Serving stored keys: ask again soon, as without keys.
                let cap = if inner.snapshot.load().is_some() && !inner.serving_last_known_good() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the validator holds of the refresh, for the tests written against it.
    struct Validator {
        inner: Arc<KeyRefresh>,
    }

    fn key_refresh(authority: Authority) -> Arc<KeyRefresh> {
        KeyRefresh::new(
            authority,
            HttpClient::new().expect("http client"),
            crate::clock::system(),
            RefreshSettings {
                validate_metadata_issuer: true,
                refresh_interval: Duration::from_secs(12 * 3600),
                min_forced_refresh_interval: Duration::from_secs(300),
                unavailable_retry_interval: Duration::from_secs(10),
            },
            None,
            None,
            Telemetry::default(),
        )
    }

    /// Without a Tokio runtime the fetch runs in the caller's future: dropping that future
    /// (or a panic in it: the HTTP client needs a runtime) releases the refresh instead of
    /// leaving it "under way" for ever.
    #[test]
    fn a_refresh_dropped_outside_a_runtime_releases_its_claim() {
        use std::future::Future as _;
        use std::task::{Context, Waker};
        let validator = Validator {
            inner: key_refresh(Authority::oidc("http://127.0.0.1:9").expect("authority")),
        };
        assert!(tokio::runtime::Handle::try_current().is_err());
        for round in 0..2 {
            let mut refresh = Box::pin(validator.inner.refresh());
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
    fn a_refresh_is_claimed_once_and_not_after_one_completed() {
        let keys = key_refresh(Authority::oidc("http://127.0.0.1:9").expect("authority"));
        assert!(
            matches!(keys.claim_refresh(0), Claim::Claimed),
            "free: claimed"
        );
        assert!(keys.refreshing());
        assert!(
            matches!(keys.claim_refresh(0), Claim::Running),
            "taken: running"
        );
        RefreshGuard {
            inner: &keys,
            completed: false,
        }
        .complete();
        assert!(!keys.refreshing());
        assert_eq!(keys.generation.load(Ordering::SeqCst), 1, "completed once");
        assert!(
            matches!(keys.claim_refresh(0), Claim::Done),
            "a caller that saw generation 0 needs no new refresh"
        );
        assert!(
            matches!(keys.claim_refresh(1), Claim::Claimed),
            "generation 1: claimed"
        );
        drop(RefreshGuard {
            inner: &keys,
            completed: false,
        });
        assert!(!keys.refreshing(), "abandoned: released");
        assert_eq!(
            keys.generation.load(Ordering::SeqCst),
            1,
            "abandoned: not completed"
        );
    }

    #[test]
    fn forced_refreshes_are_spaced_by_their_interval() {
        let clock = Arc::new(crate::clock::ManualClock::at_unix(1_700_000_000));
        let keys = KeyRefresh::new(
            Authority::oidc("http://127.0.0.1:9").expect("authority"),
            HttpClient::new().expect("http client"),
            clock.clone(),
            RefreshSettings {
                validate_metadata_issuer: true,
                refresh_interval: Duration::from_secs(12 * 3600),
                min_forced_refresh_interval: Duration::from_secs(300),
                unavailable_retry_interval: Duration::from_secs(10),
            },
            None,
            None,
            Telemetry::default(),
        );
        struct Case {
            name: &'static str,
            advance: u64,
            kind: AuthErrorKind,
            allowed: bool,
        }
        let cases = [
            Case {
                name: "first",
                advance: 0,
                kind: AuthErrorKind::UnknownSigningKey,
                allowed: true,
            },
            Case {
                name: "at once again",
                advance: 0,
                kind: AuthErrorKind::UnknownSigningKey,
                allowed: false,
            },
            Case {
                name: "keys unavailable: 10 s",
                advance: 10,
                kind: AuthErrorKind::KeysUnavailable,
                allowed: true,
            },
            Case {
                name: "unknown key inside 5 min",
                advance: 100,
                kind: AuthErrorKind::UnknownSigningKey,
                allowed: false,
            },
            Case {
                name: "unknown key after 5 min",
                advance: 300,
                kind: AuthErrorKind::UnknownSigningKey,
                allowed: true,
            },
        ];
        for case in cases {
            clock.advance(Duration::from_secs(case.advance));
            assert_eq!(
                keys.take_forced_refresh_slot(case.kind),
                case.allowed,
                "{}",
                case.name
            );
        }
    }
}
