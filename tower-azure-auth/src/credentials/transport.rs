//! [`TransportOptions`]: what the outbound builders that call an endpoint for tokens
//! ([`ConfidentialClientBuilder`](super::ConfidentialClientBuilder) and
//! [`ManagedIdentityBuilder`](super::ManagedIdentityBuilder)) both take, with their defaults
//! in one place: the HTTP client, the clock, the retry delay and the forced-refresh interval.

use std::time::Duration;

use crate::authority::HttpClient;
use crate::clock::{self, SharedClock};
use crate::error::ConfigError;

use super::cache::FORCED_REFRESH_INTERVAL;

/// The shared transport settings of the outbound builders; each builder's setters document
/// what the values mean for it (one retry for the token endpoint, a back-off for managed
/// identity).
#[derive(Debug, Clone)]
pub(crate) struct TransportOptions {
    /// `None`: [`HttpClient::new`] at build time.
    pub(crate) http: Option<HttpClient>,
    pub(crate) clock: SharedClock,
    pub(crate) retry_delay: Duration,
    pub(crate) forced_refresh_interval: Duration,
}

impl Default for TransportOptions {
    /// No HTTP client yet, the system clock, 1 s, 30 s.
    fn default() -> Self {
        Self {
            http: None,
            clock: clock::system(),
            retry_delay: Duration::from_secs(1),
            forced_refresh_interval: FORCED_REFRESH_INTERVAL,
        }
    }
}

impl TransportOptions {
    /// The HTTP client given, else a default one.
    ///
    /// # Errors
    ///
    /// [`ConfigError::HttpClient`] when the default client cannot be built.
    pub(crate) fn http_client(&mut self) -> Result<HttpClient, ConfigError> {
        match self.http.take() {
            Some(http) => Ok(http),
            None => HttpClient::new(),
        }
    }
}
