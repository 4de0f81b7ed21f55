//! [`Readiness`]: whether a validator can check tokens now, for a readiness probe (Kubernetes
//! `readinessProbe` on `/readyz`), distinct from liveness: a process whose keys are not loaded
//! is alive but must not receive traffic.

use std::fmt;
use std::time::Duration;

/// Where the validator's signing keys stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeysState {
    /// Keys fetched from the authority (or fixed with `static_keys`): ready.
    Loaded,
    /// Keys restored from a last-known-good store while the authority cannot be reached:
    /// still ready (tokens are checked with them). Nothing in this crate sets it yet: it is
    /// for the last-known-good key store.
    LastKnownGood,
    /// No keys yet (the first fetch has not succeeded): not ready; tokens are refused with
    /// 503.
    Missing,
}

impl KeysState {
    /// A short stable name: `loaded`, `last_known_good`, `missing`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::LastKnownGood => "last_known_good",
            Self::Missing => "missing",
        }
    }
}

/// What [`TokenValidator::readiness`](super::TokenValidator::readiness) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// Whether keys are loaded, and from where.
    pub keys: KeysState,
    /// How many signing keys are held.
    pub key_count: usize,
    /// Time since the last successful refresh (`None`: never refreshed, or fixed keys).
    pub last_refresh_age: Option<Duration>,
    /// The last refresh's error, when the last refresh failed (cleared by a success). It
    /// names URLs of the authority, never a token.
    pub last_error: Option<String>,
}

impl Readiness {
    /// Ready to check tokens: keys [`Loaded`](KeysState::Loaded) or
    /// [`LastKnownGood`](KeysState::LastKnownGood). A failed refresh with keys still held
    /// leaves the validator ready (it keeps the last known good keys).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        matches!(self.keys, KeysState::Loaded | KeysState::LastKnownGood)
    }

    /// The HTTP status a readiness probe answers: 200 when ready, 503 when not.
    #[must_use]
    pub fn status_code(&self) -> u16 {
        if self.is_ready() {
            200
        } else {
            503
        }
    }

    /// The probe's JSON body: `{"status":"ready"|"not_ready","keys":"loaded",
    /// "key_count":2,"last_refresh_age_seconds":12,"last_refresh_failed":false}`. The error
    /// text stays out of the body (it names the authority's URLs); it is in the log and in
    /// [`last_error`](Self::last_error).
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "status": if self.is_ready() { "ready" } else { "not_ready" },
            "keys": self.keys.as_str(),
            "key_count": self.key_count,
            "last_refresh_age_seconds": self.last_refresh_age.map(|age| age.as_secs()),
            "last_refresh_failed": self.last_error.is_some(),
        })
        .to_string()
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (keys {}, {} held",
            if self.is_ready() {
                "ready"
            } else {
                "not ready"
            },
            self.keys.as_str(),
            self.key_count
        )?;
        if let Some(age) = self.last_refresh_age {
            write!(f, ", refreshed {} s ago", age.as_secs())?;
        }
        if let Some(error) = &self.last_error {
            write!(f, ", last refresh failed: {error}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_with_loaded_or_last_known_good_keys_only() {
        struct Case {
            name: &'static str,
            keys: KeysState,
            last_error: Option<&'static str>,
            ready: bool,
        }
        let cases = [
            Case {
                name: "loaded",
                keys: KeysState::Loaded,
                last_error: None,
                ready: true,
            },
            Case {
                name: "loaded, last refresh failed (keeps the last known good keys)",
                keys: KeysState::Loaded,
                last_error: Some("cannot reach"),
                ready: true,
            },
            Case {
                name: "last known good",
                keys: KeysState::LastKnownGood,
                last_error: Some("cannot reach"),
                ready: true,
            },
            Case {
                name: "missing",
                keys: KeysState::Missing,
                last_error: Some("cannot reach"),
                ready: false,
            },
        ];
        for case in cases {
            let readiness = Readiness {
                keys: case.keys,
                key_count: 1,
                last_refresh_age: Some(Duration::from_secs(5)),
                last_error: case.last_error.map(str::to_owned),
            };
            assert_eq!(readiness.is_ready(), case.ready, "{}", case.name);
            assert_eq!(
                readiness.status_code(),
                if case.ready { 200 } else { 503 },
                "{}",
                case.name
            );
            let json: serde_json::Value = serde_json::from_str(&readiness.to_json()).unwrap();
            assert_eq!(json["keys"], case.keys.as_str(), "{}", case.name);
            assert_eq!(
                json["last_refresh_failed"],
                case.last_error.is_some(),
                "{}",
                case.name
            );
            assert!(
                !readiness.to_json().contains("cannot reach"),
                "{}: no error text in the body",
                case.name
            );
        }
    }
}
