//! Outage resilience: a cached token past its usable point but inside the extended lifetime
//! Entra sends (`ext_expires_in`) keeps being served while the token endpoint fails with a
//! retryable error ([`TokenError::is_transient`]: 5xx, 408, 429, timeout, no connection), and
//! is refreshed in the background with exponential backoff until the authority answers again.
//!
//! The decisions are plain functions over a [`Slot`] and the clock so that they are tested
//! without futures; [`ConfidentialClient`](super::ConfidentialClient) calls them at two
//! points: before going to the authority for a cached token that is no longer usable
//! ([`ExtendedLifetime::serve_during_outage`]) and after the authority failed
//! ([`ExtendedLifetime::after_failure`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{debug, warn};

use super::cache::{unix_millis, Slot, EXPIRY_MARGIN};
use super::token::{AccessToken, TokenError};
use crate::telemetry::Telemetry;

const TARGET: &str = "tower_azure_auth::credentials";

/// The first background retry during an outage waits this long (Entra's guidance: "at least
/// 5 seconds after the response"); each failure doubles it, up to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(5);

/// The longest wait between two background retries during an outage.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(120);

/// The wait before background retry number `failures` (1-based) during an outage.
pub(crate) fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1u32 << exponent)
        .min(MAX_BACKOFF)
}

/// Whether `token` may still be served at `now` from its extended lifetime: the authority
/// sent `ext_expires_in` and it has not passed. Never past it.
pub(crate) fn inside_extended_lifetime(token: &AccessToken, now: SystemTime) -> bool {
    token.ext_expires_on().is_some_and(|ext| now < ext)
}

/// The client's setting ([`ConfidentialClientBuilder::extended_token_lifetime`](super::ConfidentialClientBuilder::extended_token_lifetime))
/// and the decisions it drives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExtendedLifetime {
    pub(crate) enabled: bool,
}

impl ExtendedLifetime {
    /// A cached token that is no longer usable, while the slot is in an outage: served from
    /// its extended lifetime (counted and logged at debug), or `None` to go to the authority.
    pub(crate) fn serve_during_outage(
        self,
        slot: &Slot,
        token: &Arc<AccessToken>,
        now: SystemTime,
        telemetry: &Telemetry,
    ) -> Option<AccessToken> {
        if !self.enabled
            || slot.outage_failures.load(Ordering::SeqCst) == 0
            || !inside_extended_lifetime(token, now)
        {
            return None;
        }
        telemetry.extended_lifetime_served();
        debug!(target: TARGET, ext_expires_on = ?token.ext_expires_on(),
            "the authority is failing: the cached token is served from its extended lifetime (ext_expires_in)");
        Some((**token).clone())
    }

    /// The authority failed a request for a token that is no longer usable: with a retryable
    /// failure and a cached token inside its extended lifetime, the slot enters (or stays in)
    /// an outage, the next background retry is pushed back, and the cached token is returned;
    /// otherwise the error. A forced refresh (`force`) always gets the error.
    pub(crate) fn after_failure(
        self,
        slot: &Slot,
        error: TokenError,
        force: bool,
        now: SystemTime,
        telemetry: &Telemetry,
    ) -> Result<AccessToken, TokenError> {
        if !self.enabled || force || !error.is_transient() {
            return Err(error);
        }
        let Some(token) = slot.token.load_full() else {
            return Err(error);
        };
        if !inside_extended_lifetime(&token, now) {
            return Err(error);
        }
        let failures = Self::failed(slot, now);
        telemetry.extended_lifetime_served();
        if failures == 1 {
            warn!(target: TARGET, %error, ext_expires_on = ?token.ext_expires_on(),
                "the token endpoint is failing; the cached token is served from its extended lifetime (ext_expires_in) and refreshed in the background");
        } else {
            debug!(target: TARGET, %error, "the token endpoint is still failing; the cached token stays in use");
        }
        Ok((*token).clone())
    }

    /// A background refresh failed: during an outage (or when this failure starts one for a
    /// token past its usable point but inside its extended lifetime) the next one waits for
    /// the exponential backoff instead of the cache's fixed one.
    pub(crate) fn refresh_failed(self, slot: &Slot, error: &TokenError, now: SystemTime) {
        if !self.enabled || !error.is_transient() {
            return;
        }
        let in_outage = slot.outage_failures.load(Ordering::SeqCst) > 0;
        let extended =
            slot.token.load().as_ref().is_some_and(|t| {
                !t.usable_at(now, EXPIRY_MARGIN) && inside_extended_lifetime(t, now)
            });
        if in_outage || extended {
            Self::failed(slot, now);
        }
    }

    /// A token arrived: the outage, if any, is over.
    pub(crate) fn recovered(self, slot: &Slot) {
        if !self.enabled {
            return;
        }
        let failures = slot.outage_failures.swap(0, Ordering::SeqCst);
        if failures > 0 {
            warn!(target: TARGET, failures,
                "the token endpoint answers again; a new token replaces the one served from its extended lifetime");
            slot.refresh_not_before.store(0, Ordering::SeqCst);
        }
    }

    /// Counts one more failure of the outage and pushes the next background retry back by
    /// the backoff; returns the count.
    fn failed(slot: &Slot, now: SystemTime) -> u32 {
        let failures = slot
            .outage_failures
            .fetch_add(1, Ordering::SeqCst)
            .saturating_add(1);
        let wait = u64::try_from(backoff(failures).as_millis()).unwrap_or(u64::MAX);
        slot.refresh_not_before
            .store(unix_millis(now).saturating_add(wait), Ordering::SeqCst);
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::AuthorityError;

    fn token(now: SystemTime, expires_in: u64, ext_expires_in: Option<u64>) -> AccessToken {
        AccessToken::with_times(
            "t".into(),
            now,
            now + Duration::from_secs(expires_in),
            now + Duration::from_secs(expires_in / 2),
            ext_expires_in.map(|e| now + Duration::from_secs(e)),
            vec!["api://x/.default".into()],
        )
    }

    fn rejected(status: u16) -> TokenError {
        TokenError::Rejected(Box::new(
            AuthorityError::parse(
                status,
                br#"{"error":"temporarily_unavailable","error_description":"AADSTS90033: busy"}"#,
            )
            .expect("an authority error"),
        ))
    }

    #[test]
    fn backoff_doubles_from_5_seconds_up_to_2_minutes() {
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 120, 120]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn only_retryable_failures_are_outages() {
        struct Case {
            name: &'static str,
            error: TokenError,
            outage: bool,
        }
        let cases = [
            Case {
                name: "503",
                error: rejected(503),
                outage: true,
            },
            Case {
                name: "500",
                error: rejected(500),
                outage: true,
            },
            Case {
                name: "408",
                error: rejected(408),
                outage: true,
            },
            Case {
                name: "throttled",
                error: TokenError::Throttled {
                    retry_after: Duration::from_secs(5),
                },
                outage: true,
            },
            Case {
                name: "400 invalid_client",
                error: rejected(400),
                outage: false,
            },
            Case {
                name: "401",
                error: rejected(401),
                outage: false,
            },
            Case {
                name: "unusable response",
                error: TokenError::BadResponse {
                    reason: "no access_token".into(),
                },
                outage: false,
            },
        ];
        for case in cases {
            assert_eq!(case.error.is_transient(), case.outage, "{}", case.name);
        }
    }

    #[test]
    fn the_cached_token_rides_out_an_outage_inside_its_extended_lifetime_only() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let on = ExtendedLifetime { enabled: true };
        let telemetry = Telemetry::default();
        let slot = Slot::default();
        slot.store(token(start, 3600, Some(7200)));
        // Past expires_in, inside ext_expires_in.
        let now = start + Duration::from_secs(3700);
        let cached = slot.token.load_full().unwrap();
        assert!(
            on.serve_during_outage(&slot, &cached, now, &telemetry)
                .is_none(),
            "no outage seen yet: go to the authority"
        );
        let served = on
            .after_failure(&slot, rejected(503), false, now, &telemetry)
            .expect("served during the outage");
        assert_eq!(served.secret(), "t");
        assert_eq!(slot.outage_failures.load(Ordering::SeqCst), 1);
        assert_eq!(
            slot.refresh_not_before.load(Ordering::SeqCst),
            unix_millis(now + FIRST_BACKOFF),
            "the background retry waits for the backoff"
        );
        assert!(on
            .serve_during_outage(&slot, &cached, now, &telemetry)
            .is_some());
        // A forced refresh, a non-retryable error, or the feature off: the error.
        assert!(on
            .after_failure(&slot, rejected(503), true, now, &telemetry)
            .is_err());
        assert!(on
            .after_failure(&slot, rejected(400), false, now, &telemetry)
            .is_err());
        let off = ExtendedLifetime { enabled: false };
        assert!(off
            .serve_during_outage(&slot, &cached, now, &telemetry)
            .is_none());
        assert!(off
            .after_failure(&slot, rejected(503), false, now, &telemetry)
            .is_err());
        // Never past ext_expires_in.
        let ext_end = start + Duration::from_secs(7200);
        assert!(on
            .serve_during_outage(&slot, &cached, ext_end, &telemetry)
            .is_none());
        assert!(on
            .after_failure(&slot, rejected(503), false, ext_end, &telemetry)
            .is_err());
        // A token arrives: the outage is over.
        on.recovered(&slot);
        assert_eq!(slot.outage_failures.load(Ordering::SeqCst), 0);
        assert_eq!(slot.refresh_not_before.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_token_without_ext_expires_in_is_not_extended() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let on = ExtendedLifetime { enabled: true };
        let slot = Slot::default();
        slot.store(token(start, 3600, None));
        let now = start + Duration::from_secs(3400);
        assert!(on
            .after_failure(&slot, rejected(503), false, now, &Telemetry::default())
            .is_err());
    }

    #[test]
    fn background_failures_back_off_exponentially_during_an_outage() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let on = ExtendedLifetime { enabled: true };
        let slot = Slot::default();
        slot.store(token(start, 3600, Some(7200)));
        let now = start + Duration::from_secs(3700);
        for (n, expected) in [(1u32, 5u64), (2, 10), (3, 20)] {
            on.refresh_failed(&slot, &rejected(503), now);
            assert_eq!(slot.outage_failures.load(Ordering::SeqCst), n);
            assert_eq!(
                slot.refresh_not_before.load(Ordering::SeqCst),
                unix_millis(now + Duration::from_secs(expected)),
                "failure {n}"
            );
        }
        // A refusal is not an outage: the ordinary 30 s backoff of the cache stays.
        let other = Slot::default();
        other.store(token(start, 3600, Some(7200)));
        on.refresh_failed(&other, &rejected(400), now);
        assert_eq!(other.outage_failures.load(Ordering::SeqCst), 0);
    }
}
