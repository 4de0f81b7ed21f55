//! Sealing of shared-cache entries: AES-256-GCM (aws-lc-rs) with a random 96-bit nonce and
//! the entry's store key as associated data, under [`EncryptionKeys`] (the first key seals,
//! every key opens, so keys can rotate).
//!
//! A sealed entry is `0x01 ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`; the plaintext
//! is a small JSON document with the token and its times. Nothing in a sealed entry is
//! readable without a key, and an entry copied under another store key does not open.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

use super::token::AccessToken;

/// The format version byte in front of every sealed entry.
const VERSION: u8 = 1;
/// AES-256-GCM's tag length.
const TAG_LEN: usize = 16;

/// The configuration key the encryption keys come from, for error messages.
const KEYS_SETTING: &str = "CallApi:TokenCache:EncryptionKeys";

/// The AES-256-GCM keys that seal and open entries of the shared token cache: the first key
/// seals new entries, every key opens (list the new key first and keep the old one while
/// entries sealed with it may still be in the store, then drop it). `Debug` shows how many
/// keys there are, never their bytes.
///
/// ```
/// use tower_azure_auth::credentials::EncryptionKeys;
///
/// // 32 random bytes, base64-encoded (`openssl rand -base64 32`).
/// let keys = EncryptionKeys::from_base64(["q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k="])?;
/// assert_eq!(keys.len(), 1);
/// assert_eq!(format!("{keys:?}"), "EncryptionKeys { keys: 1 }");
/// assert!(EncryptionKeys::from_base64(["c2hvcnQ="]).is_err()); // not 32 bytes
/// # Ok::<(), tower_azure_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct EncryptionKeys {
    keys: Vec<[u8; 32]>,
}

impl fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl EncryptionKeys {
    /// Keys given as bytes; the first seals.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] when the list is empty.
    pub fn new(keys: impl IntoIterator<Item = [u8; 32]>) -> Result<Self, ConfigError> {
        let keys: Vec<[u8; 32]> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(ConfigError::Missing {
                key: KEYS_SETTING,
                hint: "set at least one base64-encoded 32-byte key (e.g. `openssl rand -base64 32`); entries of the shared token cache are always sealed",
            });
        }
        Ok(Self { keys })
    }

    /// Keys given in base64 (standard alphabet, padding optional), each 32 bytes; the first
    /// seals.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a value that is not base64 or not 32 bytes (the error
    /// names its position, never its value); [`ConfigError::Missing`] for an empty list.
    pub fn from_base64<S: AsRef<str>>(
        keys: impl IntoIterator<Item = S>,
    ) -> Result<Self, ConfigError> {
        let mut decoded = Vec::new();
        for (index, key) in keys.into_iter().enumerate() {
            let text = key.as_ref().trim();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .map_err(|_| ConfigError::Invalid {
                    key: format!("{KEYS_SETTING}:{index}"),
                    reason: "not base64".into(),
                })?;
            let key: [u8; 32] =
                bytes
                    .try_into()
                    .map_err(|bytes: Vec<u8>| ConfigError::Invalid {
                        key: format!("{KEYS_SETTING}:{index}"),
                        reason: format!("an AES-256 key is 32 bytes, this one has {}", bytes.len()),
                    })?;
            decoded.push(key);
        }
        Self::new(decoded)
    }

    /// How many keys there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false (there is at least one key).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Seals `plaintext` under the first key, bound to `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, &self.keys[0]).ok()?;
        let mut in_out = plaintext.to_vec();
        let nonce = key
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .ok()?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Some(sealed)
    }

    /// Opens an entry sealed by any of the keys and bound to `aad`; `None` for anything else
    /// (another key, another store key, a truncated or altered entry, another format).
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.keys.iter().find_map(|bytes| {
            let key = RandomizedNonceKey::new(&AES_256_GCM, bytes).ok()?;
            let mut in_out = ciphertext.to_vec();
            let plaintext = key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut in_out,
                )
                .ok()?;
            Some(plaintext.to_vec())
        })
    }
}

/// What a sealed entry holds.
#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "t")]
    token: String,
    #[serde(rename = "exp")]
    expires_on: u64,
    #[serde(rename = "ref")]
    refresh_on: u64,
    #[serde(rename = "ext", default, skip_serializing_if = "Option::is_none")]
    ext_expires_on: Option<u64>,
    #[serde(rename = "acq")]
    acquired_on: u64,
    #[serde(rename = "scp")]
    scopes: Vec<String>,
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn time(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// The token as the plaintext of an entry.
pub(crate) fn encode(token: &AccessToken) -> Vec<u8> {
    let entry = Entry {
        token: token.secret().to_owned(),
        expires_on: millis(token.expires_on()),
        refresh_on: millis(token.refresh_on()),
        ext_expires_on: token.ext_expires_on().map(millis),
        acquired_on: millis(token.acquired_on()),
        scopes: token.scopes().to_vec(),
    };
    serde_json::to_vec(&entry).unwrap_or_default()
}

/// The token in an entry's plaintext; `None` when it is not one.
pub(crate) fn decode(plaintext: &[u8]) -> Option<AccessToken> {
    let entry: Entry = serde_json::from_slice(plaintext).ok()?;
    if entry.token.is_empty() {
        return None;
    }
    Some(AccessToken::with_times(
        entry.token,
        time(entry.acquired_on),
        time(entry.expires_on),
        time(entry.refresh_on),
        entry.ext_expires_on.map(time),
        entry.scopes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> EncryptionKeys {
        EncryptionKeys::new(bytes.iter().map(|b| [*b; 32])).unwrap()
    }

    #[test]
    fn sealed_entries_open_only_with_a_listed_key_and_the_same_store_key() {
        struct Case {
            name: &'static str,
            opener: EncryptionKeys,
            aad: &'static [u8],
            tamper: Option<usize>,
            opens: bool,
        }
        let sealer = keys(&[1, 2]);
        let plaintext = b"{\"t\":\"eyJ.payload.sig\"}";
        let cases = [
            Case {
                name: "same keys",
                opener: keys(&[1, 2]),
                aad: b"p:token:abc",
                tamper: None,
                opens: true,
            },
            Case {
                name: "sealing key listed second (rotation)",
                opener: keys(&[9, 1]),
                aad: b"p:token:abc",
                tamper: None,
                opens: true,
            },
            Case {
                name: "only the old, non-sealing key",
                opener: keys(&[2]),
                aad: b"p:token:abc",
                tamper: None,
                opens: false,
            },
            Case {
                name: "another key",
                opener: keys(&[7]),
                aad: b"p:token:abc",
                tamper: None,
                opens: false,
            },
            Case {
                name: "moved to another store key",
                opener: keys(&[1]),
                aad: b"p:token:abd",
                tamper: None,
                opens: false,
            },
            Case {
                name: "a flipped ciphertext byte",
                opener: keys(&[1]),
                aad: b"p:token:abc",
                tamper: Some(20),
                opens: false,
            },
            Case {
                name: "a flipped nonce byte",
                opener: keys(&[1]),
                aad: b"p:token:abc",
                tamper: Some(3),
                opens: false,
            },
            Case {
                name: "another version byte",
                opener: keys(&[1]),
                aad: b"p:token:abc",
                tamper: Some(0),
                opens: false,
            },
        ];
        for case in cases {
            let mut sealed = sealer.seal(b"p:token:abc", plaintext).unwrap();
            if let Some(index) = case.tamper {
                sealed[index] ^= 0x40;
            }
            let opened = case.opener.open(case.aad, &sealed);
            assert_eq!(opened.is_some(), case.opens, "{}", case.name);
            if let Some(opened) = opened {
                assert_eq!(opened, plaintext, "{}", case.name);
            }
        }
    }

    #[test]
    fn a_sealed_entry_shows_nothing_of_the_token_and_every_seal_differs() {
        let keys = keys(&[1]);
        let token = AccessToken::new(
            "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGkifQ.c2lnbmF0dXJl",
            SystemTime::now() + Duration::from_secs(3600),
            vec!["api://x/.default".into()],
        );
        let plaintext = encode(&token);
        let a = keys.seal(b"k", &plaintext).unwrap();
        let b = keys.seal(b"k", &plaintext).unwrap();
        assert_ne!(a, b, "a fresh random nonce per seal");
        for sealed in [&a, &b] {
            for needle in [&b"eyJ"[..], b"c2lnbmF0dXJl", b"api://x"] {
                assert!(
                    !sealed.windows(needle.len()).any(|w| w == needle),
                    "the sealed entry contains {needle:?}"
                );
            }
        }
        let opened = decode(&keys.open(b"k", &a).unwrap()).unwrap();
        assert_eq!(opened.secret(), token.secret());
        assert_eq!(millis(opened.expires_on()), millis(token.expires_on()));
        assert_eq!(millis(opened.refresh_on()), millis(token.refresh_on()));
        assert_eq!(opened.scopes(), token.scopes());
    }

    #[test]
    fn garbage_is_never_a_token() {
        let keys = keys(&[1]);
        for garbage in [&b""[..], b"\x01", b"not sealed at all", &[1u8; 40]] {
            assert!(keys.open(b"k", garbage).is_none(), "{garbage:?}");
        }
        for plaintext in [
            &b"{}"[..],
            b"[]",
            b"{\"t\":\"\",\"exp\":1,\"ref\":1,\"acq\":1,\"scp\":[]}",
        ] {
            assert!(decode(plaintext).is_none(), "{plaintext:?}");
        }
    }

    #[test]
    fn keys_from_configuration_are_checked_and_never_echoed() {
        struct Case {
            name: &'static str,
            keys: &'static [&'static str],
            error: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "one padded key",
                keys: &["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="],
                error: None,
            },
            Case {
                name: "unpadded",
                keys: &["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"],
                error: None,
            },
            Case {
                name: "too short",
                keys: &["c2VjcmV0LXZhbHVl"],
                error: Some("32 bytes, this one has 12"),
            },
            Case {
                name: "not base64",
                keys: &["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "%%secret%%"],
                error: Some("EncryptionKeys:1"),
            },
            Case {
                name: "empty list",
                keys: &[],
                error: Some("at least one"),
            },
        ];
        for case in cases {
            match (EncryptionKeys::from_base64(case.keys), case.error) {
                (Ok(keys), None) => assert_eq!(keys.len(), case.keys.len(), "{}", case.name),
                (Err(error), Some(expected)) => {
                    let text = error.to_string();
                    assert!(text.contains(expected), "{}: {text}", case.name);
                    for key in case.keys {
                        assert!(!text.contains(key), "{}: {text}", case.name);
                    }
                }
                (result, _) => panic!("{}: {result:?}", case.name),
            }
        }
    }
}
