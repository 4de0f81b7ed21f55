//! [`BackgroundRefreshEvent`]: what the hook of
//! [`ConfidentialClientBuilder::on_background_refresh`](super::ConfidentialClientBuilder::on_background_refresh)
//! is told when a background token refresh ends (MSAL.NET's
//! `OnBackgroundTokenRefreshCompleted`).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::warn;

use super::token::{AccessToken, TokenError};

const TARGET: &str = "tower_azure_auth::credentials";

/// How a background refresh ended, for the hook set with
/// [`ConfidentialClientBuilder::on_background_refresh`](super::ConfidentialClientBuilder::on_background_refresh).
/// Never carries the token itself.
#[non_exhaustive]
pub struct BackgroundRefreshEvent<'a> {
    scopes: &'a [String],
    duration: Duration,
    outcome: Result<SystemTime, &'a TokenError>,
}

impl<'a> BackgroundRefreshEvent<'a> {
    pub(crate) fn new(
        scopes: &'a [String],
        duration: Duration,
        outcome: Result<&AccessToken, &'a TokenError>,
    ) -> Self {
        Self {
            scopes,
            duration,
            outcome: outcome.map(AccessToken::expires_on),
        }
    }

    /// Whether a new token replaced the cached one.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The scopes refreshed.
    #[must_use]
    pub fn scopes(&self) -> &[String] {
        self.scopes
    }

    /// How long the refresh took (the request to the authority, or to the shared cache).
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// When the new token expires, after a success.
    #[must_use]
    pub fn expires_on(&self) -> Option<SystemTime> {
        self.outcome.ok()
    }

    /// Why the refresh failed (the cached token stays in use while it is usable).
    #[must_use]
    pub fn error(&self) -> Option<&TokenError> {
        self.outcome.err()
    }
}

impl fmt::Debug for BackgroundRefreshEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundRefreshEvent")
            .field("scopes", &self.scopes)
            .field("duration", &self.duration)
            .field("outcome", &self.outcome)
            .finish()
    }
}

/// The hook, shared by the client's clones.
#[derive(Clone)]
pub(crate) struct RefreshHook(Arc<dyn Fn(&BackgroundRefreshEvent<'_>) + Send + Sync>);

impl RefreshHook {
    pub(crate) fn new(hook: impl Fn(&BackgroundRefreshEvent<'_>) + Send + Sync + 'static) -> Self {
        Self(Arc::new(hook))
    }

    /// Calls the hook; a panic in it is caught and logged, and the client goes on.
    pub(crate) fn call(&self, event: &BackgroundRefreshEvent<'_>) {
        if catch_unwind(AssertUnwindSafe(|| (self.0)(event))).is_err() {
            warn!(target: TARGET, "the background refresh hook panicked; the client goes on");
        }
    }
}

impl fmt::Debug for RefreshHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshHook")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_panicking_hook_is_contained() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let hook = RefreshHook::new(move |event| {
            seen.fetch_add(1, Ordering::SeqCst);
            assert!(event.succeeded());
            panic!("a hook that panics");
        });
        let scopes = vec!["api://x/.default".to_owned()];
        let token = AccessToken::new("secret-token", SystemTime::now(), scopes.clone());
        let event = BackgroundRefreshEvent::new(&scopes, Duration::from_millis(3), Ok(&token));
        hook.call(&event);
        hook.call(&event);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(!format!("{event:?}").contains("secret-token"));
    }
}
