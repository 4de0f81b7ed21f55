//! The knobs a test turns: endpoint families (for counters and faults), injected faults,
//! key rollover and assertion reuse. The bottom of the crate: it uses no other module.

use std::time::Duration;

use http::StatusCode;

/// An endpoint family, for counters and injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// The v1 and v2 discovery documents.
    Metadata,
    /// The v1 and v2 key sets.
    Jwks,
    /// The v1 and v2 token endpoints.
    Token,
    /// The managed identity endpoints (IMDS and App Service shapes).
    ManagedIdentity,
    /// The Key Vault endpoints.
    KeyVault,
}

/// Whether [`DevAuthority::rotate_signing_key`](crate::DevAuthority::rotate_signing_key) keeps publishing the previous keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepOld {
    /// Keep the previous keys in the key set (tokens they signed still verify).
    Yes,
    /// Publish only the new key (tokens signed before no longer verify).
    No,
}

/// Whether the token endpoint accepts a client assertion it has already accepted (same
/// client, same `jti`) again. Set with [`DevAuthorityBuilder::assertion_reuse`](crate::DevAuthorityBuilder::assertion_reuse).
///
/// Entra accepts a reused assertion while it is valid, and Microsoft's clients count on it:
/// MSAL (.NET, Python, Node, Go) signs one assertion and sends it with every token request
/// until it nears expiry, for any scope. [`WithinLifetime`](Self::WithinLifetime), the
/// default, behaves the same; [`Refuse`](Self::Refuse) is RFC 7523's strict replay check,
/// for tests of a client that must send a fresh assertion each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionReuse {
    /// Accept an assertion again until it expires (`exp` plus five minutes of skew), as
    /// Entra does.
    #[default]
    WithinLifetime,
    /// Refuse the second use of a `jti` with AADSTS50027 until the assertion expires. The
    /// authority remembers up to 10 000 unexpired assertions; while that many are held it
    /// refuses new ones (503 `temporarily_unavailable`, saying when room frees up) rather
    /// than forget one that could then be replayed.
    Refuse,
}

/// A fault to inject into the next requests to an [`Endpoint`]: fail with a status, delay,
/// or both.
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use entra_dev_authority::Fault;
///
/// let outage = Fault::fail(StatusCode::SERVICE_UNAVAILABLE).times(2);
/// let throttled = Fault::fail(StatusCode::TOO_MANY_REQUESTS).retry_after(5);
/// let slow = Fault::delay(Duration::from_millis(200));
/// # let _ = (outage, throttled, slow);
/// ```
#[derive(Debug, Clone)]
pub struct Fault {
    pub(crate) status: Option<StatusCode>,
    pub(crate) delay: Option<Duration>,
    pub(crate) retry_after: Option<u64>,
    pub(crate) times: u32,
}

impl Fault {
    /// Answer the next request with this status and an Entra error body
    /// (`temporarily_unavailable` for 429 and 5xx).
    #[must_use]
    pub fn fail(status: StatusCode) -> Self {
        Self {
            status: Some(status),
            delay: None,
            retry_after: None,
            times: 1,
        }
    }

    /// Delay the next request, then answer it normally.
    #[must_use]
    pub fn delay(delay: Duration) -> Self {
        Self {
            status: None,
            delay: Some(delay),
            retry_after: None,
            times: 1,
        }
    }

    /// Apply to the next `n` requests instead of one.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    /// Also delay before failing.
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Add a `Retry-After: {seconds}` header to the failure.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}
