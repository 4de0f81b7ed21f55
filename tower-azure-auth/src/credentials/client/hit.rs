//! The cache hit of [`ConfidentialClient::acquire_token_for_client`]: the slot looked up by a
//! borrowed key ([`KeyRef`]), the token handle cloned (one reference count), nothing
//! allocated. Anything else (a miss, an expired token, one due for its background refresh,
//! invalid scopes, more than [`INLINE_SCOPES`](crate::credentials::cache::INLINE_SCOPES)
//! scopes) takes the full path, which reports it.

use std::sync::Arc;

use super::ClientInner;
#[cfg(doc)]
use super::ConfidentialClient;
use crate::credentials::cache::{KeyBuf, KeyRef, EXPIRY_MARGIN};
use crate::credentials::observe::Acquisition;
use crate::credentials::token::AccessToken;

impl ClientInner {
    /// The cached token for `scopes` when it is usable and not yet due for its refresh,
    /// reported as an L1 cache hit; `None` sends the caller down the full path.
    pub(super) fn cached_token<S: AsRef<str>>(
        self: &Arc<Self>,
        scopes: &[S],
    ) -> Option<AccessToken> {
        let acquisition = Acquisition::start(&self.telemetry);
        self.check_scopes(scopes).ok()?;
        let mut buf = KeyBuf::new();
        let key = KeyRef::new(&mut buf, &self.authority_key, &self.client_id, scopes)?;
        let slot = self.cache.get(&key)?;
        let now = self.now();
        let token = {
            let current = slot.token.load();
            let token = current.as_deref()?;
            if !token.usable_at(now, EXPIRY_MARGIN) || now >= token.refresh_on() {
                return None;
            }
            token.clone()
        };
        let span = crate::telemetry::spans::acquisition();
        let result = Ok(token);
        acquisition.report(&self.telemetry, &span, &result, now);
        result.ok()
    }
}

/// `scope.contains(char::is_whitespace)`, a byte scan for ASCII scopes (every real one).
pub(super) fn has_whitespace(scope: &str) -> bool {
    if scope.is_ascii() {
        // char::is_whitespace in ASCII: \t \n \x0b \x0c \r and the space. A fold, not `any`:
        // without the early exit it vectorises.
        scope
            .bytes()
            .fold(false, |found, b| found | matches!(b, b'\t'..=b'\r' | b' '))
    } else {
        scope.contains(char::is_whitespace)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn whitespace_is_found_as_char_is_whitespace_finds_it() {
        for scope in [
            "api://x/.default",
            "api://x/.default ",
            "\tapi://x/.default",
            "a\x0bb",
            "a\x0cb",
            "a\rb",
            "a\nb",
            "a\x1cb",
            "a\u{a0}b",
            "a\u{2003}b",
            "é/.default",
            "",
        ] {
            assert_eq!(
                super::has_whitespace(scope),
                scope.contains(char::is_whitespace),
                "{scope:?}"
            );
        }
    }
}
