//! A small per-thread front for the verified-token cache: the last few tokens this thread
//! found in the shared cache, each with its own copy of the claims.
//!
//! A hit in the shared cache takes its shard's read lock and bumps the reference count of
//! the cached claims: two threads serving the same token write the same two cache lines on
//! every request. A hit here writes nothing another thread reads: the slot is this thread's
//! and so is the copy of the claims it hands out. What a hit may skip is the same as for the
//! shared cache (the signature and the parse); the validator still checks, on every hit, that
//! the verifying key is published, the lifetime and the revocations.
//!
//! Bounded: [`SLOTS`] tokens per thread that validates, overwritten in place; a token is
//! only ever put here after it was found in the shared cache, that is verified.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::claims::Claims;

/// Tokens kept per thread (direct-mapped by the token's last bytes).
pub(crate) const SLOTS: usize = 8;

/// Tells apart the shared caches of the validators of one process.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A new owner id for a shared cache.
pub(crate) fn new_owner() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

struct Slot {
    owner: u64,
    token: Box<str>,
    claims: Claims,
    key_id: u64,
}

struct Front {
    slots: [Option<Slot>; SLOTS],
    /// Per slot, the fingerprint of the last token found in the shared cache and not kept:
    /// a token is copied here on its second hit in a row for its slot, so that a thread
    /// cycling through many tokens does not copy claims on every request.
    candidates: [u64; SLOTS],
}

thread_local! {
    static FRONT: RefCell<Front> = const {
        RefCell::new(Front { slots: [const { None }; SLOTS], candidates: [0; SLOTS] })
    };
}

/// A token's fingerprint, from its last 8 bytes (the end of its signature) and its length.
fn fingerprint(token: &str) -> u64 {
    let bytes = token.as_bytes();
    let mut tail = [0u8; 8];
    let start = bytes.len().saturating_sub(8);
    tail[..bytes.len() - start].copy_from_slice(&bytes[start..]);
    (u64::from_le_bytes(tail) ^ bytes.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The slot of a token.
fn slot_of(token: &str) -> usize {
    (fingerprint(token) >> 59) as usize % SLOTS
}

/// This thread's copy of `token`'s claims and the id of the key that verified it, if the
/// token (every byte of it) is in this thread's front for the cache `owner`.
pub(crate) fn get(owner: u64, token: &str) -> Option<(Claims, u64)> {
    FRONT
        .try_with(|front| {
            let front = front.try_borrow().ok()?;
            match &front.slots[slot_of(token)] {
                Some(slot) if slot.owner == owner && *slot.token == *token => {
                    Some((slot.claims.clone(), slot.key_id))
                }
                _ => None,
            }
        })
        .ok()
        .flatten()
}

/// Keeps `token`, just found in the shared cache `owner`, in this thread's front with a
/// copy of its claims of its own, when it was also the last token found there for its slot
/// (its second hit in a row).
pub(crate) fn put(owner: u64, token: &str, claims: &Claims, key_id: u64) {
    let _ = FRONT.try_with(|front| {
        if let Ok(mut front) = front.try_borrow_mut() {
            let slot = slot_of(token);
            let seen = fingerprint(token) ^ owner.wrapping_mul(0xff51_afd7_ed55_8ccd);
            if front.candidates[slot] != seen {
                front.candidates[slot] = seen;
                return;
            }
            front.slots[slot] = Some(Slot {
                owner,
                token: token.into(),
                claims: claims.deep_copy(),
                key_id,
            });
        }
    });
}

/// Forgets `token` from this thread's front (a refused hit).
pub(crate) fn remove(owner: u64, token: &str) {
    let _ = FRONT.try_with(|front| {
        if let Ok(mut front) = front.try_borrow_mut() {
            let slot = &mut front.slots[slot_of(token)];
            if slot
                .as_ref()
                .is_some_and(|s| s.owner == owner && *s.token == *token)
            {
                *slot = None;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_spread_and_stay_in_bounds() {
        let mut seen = [false; SLOTS];
        for i in 0..256 {
            let slot = slot_of(&format!("header.payload.signature{i:08}"));
            assert!(slot < SLOTS);
            seen[slot] = true;
        }
        assert!(seen.iter().all(|s| *s), "every slot used: {seen:?}");
        assert!(slot_of("") < SLOTS);
        assert!(slot_of("a") < SLOTS);
    }
}
