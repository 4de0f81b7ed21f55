//! What a token acquisition reports to the instruments and its span: where the token came
//! from, why the cache did not answer, and a failure's low-cardinality code.

use std::time::SystemTime;

use crate::telemetry::{spans, CacheRefreshReason, Start, Telemetry, TokenSource};

use super::token::{AccessToken, TokenError};

/// One acquisition in progress: filled in by the client as it decides, reported once.
pub(crate) struct Acquisition {
    started: Start,
    /// Where the token came from (the L1 cache until the client goes further).
    pub(crate) source: TokenSource,
    /// Why the cache did not answer.
    pub(crate) reason: CacheRefreshReason,
}

impl Acquisition {
    pub(crate) fn start(telemetry: &Telemetry) -> Self {
        Self {
            started: telemetry.start(),
            source: TokenSource::L1Cache,
            reason: CacheRefreshReason::NotApplicable,
        }
    }

    /// The token goes to the identity provider, for `reason`.
    pub(crate) fn goes_to_identity_provider(&mut self, reason: CacheRefreshReason) {
        self.source = TokenSource::IdentityProvider;
        self.reason = reason;
    }

    /// Reports the outcome to `telemetry` and `span`.
    pub(crate) fn report(
        &self,
        telemetry: &Telemetry,
        span: &tracing::Span,
        result: &Result<AccessToken, TokenError>,
        now: SystemTime,
    ) {
        match result {
            Ok(token) => {
                spans::acquisition_outcome(span, Ok(self.source.as_str()));
                let remaining = token.expires_on().duration_since(now).unwrap_or_default();
                telemetry.acquisition_succeeded(self.source, self.reason, remaining, self.started);
            }
            Err(error) => {
                let code = error_code(error);
                spans::acquisition_outcome(span, Err((code, error.aadsts_code())));
                telemetry.acquisition_failed(self.reason, code, error.aadsts_code());
            }
        }
    }
}

/// MSAL's `ErrorCode` of a failure: the authority's OAuth 2 `error` (`invalid_client`, …)
/// when it sent one, else the kind of failure.
pub(crate) fn error_code(error: &TokenError) -> &str {
    match error {
        TokenError::Rejected(error) => &error.error,
        TokenError::Throttled { .. } => "throttled",
        TokenError::Transport(_) => "transport",
        TokenError::Metadata(_) => "metadata",
        TokenError::BadResponse { .. } => "bad_response",
        TokenError::InvalidScope { .. } => "invalid_scope",
        TokenError::InvalidClaims { .. } => "invalid_claims",
        TokenError::InvalidTenant { .. } => "invalid_tenant",
        TokenError::Configuration(_) => "configuration",
        TokenError::Assertion(_) => "assertion",
        TokenError::Credential(_) => "credential",
        TokenError::Signing(_) => "signing",
    }
}
