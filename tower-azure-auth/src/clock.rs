//! Time, injectable: validation and the token cache read the time from a [`Clock`] so that
//! tests can move it instead of sleeping.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time as whole seconds since the Unix epoch.
    fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; for tests.
///
/// ```
/// use std::time::Duration;
/// use tower_azure_auth::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::at_unix(1_700_000_000);
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.unix_seconds(), 1_700_000_060);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at the given Unix time (seconds).
    #[must_use]
    pub fn at_unix(seconds: u64) -> Self {
        Self {
            millis: Arc::new(AtomicU64::new(seconds.saturating_mul(1000))),
        }
    }

    /// A clock standing at the current system time.
    #[must_use]
    pub fn now() -> Self {
        Self::at_unix(SystemClock.unix_seconds())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the clock to the given Unix time (seconds).
    pub fn set_unix(&self, seconds: u64) {
        self.millis
            .store(seconds.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The default shared clock (the system clock).
#[must_use]
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}
