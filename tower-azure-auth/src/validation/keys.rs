//! Signing keys: JWKS parsing and the key set held by the validator.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

/// Keys beyond this many in one JWKS are ignored (Entra publishes fewer than 10).
pub(crate) const MAX_KEYS: usize = 64;
/// RSA moduli below this many bits are refused.
const MIN_RSA_BITS: usize = 2048;

/// One RSA signing key from a JWKS.
#[derive(Clone)]
pub(crate) struct SigningKey {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    /// Entra's per-key `issuer` (may hold `{tenantid}`).
    pub(crate) issuer: Option<String>,
    /// The public key material, to recognise an unchanged key across refreshes.
    material: (String, String),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one JWKS, by `kid` (and by `x5t`, which Entra sets equal to the kid
/// and which very old v1 tokens carry instead of `kid`).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySet {
    by_id: HashMap<String, Arc<SigningKey>>,
    all: Vec<Arc<SigningKey>>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    kid: Option<String>,
    x5t: Option<String>,
    n: Option<String>,
    e: Option<String>,
    issuer: Option<String>,
}

impl KeySet {
    /// Parses a JWKS document, keeping the RSA signature keys of at least 2048 bits and
    /// skipping anything else (other key types, encryption keys, malformed entries).
    pub(crate) fn from_jwks(body: &[u8]) -> Result<Self, String> {
        let jwks: Jwks = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut set = KeySet::default();
        for raw in jwks.keys.into_iter().take(MAX_KEYS) {
            let Ok(raw) = serde_json::from_value::<RawJwk>(raw) else {
                continue;
            };
            if raw.kty != "RSA" || raw.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let (Some(n), Some(e)) = (raw.n.as_deref(), raw.e.as_deref()) else {
                continue;
            };
            let Ok(modulus) = URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')) else {
                continue;
            };
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant * 8 < MIN_RSA_BITS {
                continue;
            }
            let Ok(key) =
                DecodingKey::from_rsa_components(n.trim_end_matches('='), e.trim_end_matches('='))
            else {
                continue;
            };
            let key = Arc::new(SigningKey {
                kid: raw.kid.clone(),
                key,
                issuer: raw.issuer,
                material: (n.to_owned(), e.to_owned()),
            });
            for id in [raw.kid, raw.x5t].into_iter().flatten() {
                set.by_id.entry(id).or_insert_with(|| key.clone());
            }
            set.all.push(key);
        }
        if set.all.is_empty() {
            return Err("the key set holds no usable RSA signing key".into());
        }
        Ok(set)
    }

    /// The key for a token header's `kid` (or `x5t`); with neither, the only key if there is
    /// exactly one.
    pub(crate) fn find(&self, kid: Option<&str>, x5t: Option<&str>) -> Option<&Arc<SigningKey>> {
        match (kid, x5t) {
            (Some(kid), _) => self.by_id.get(kid),
            (None, Some(x5t)) => self.by_id.get(x5t),
            (None, None) if self.all.len() == 1 => self.all.first(),
            (None, None) => None,
        }
    }

    /// Keeps the previous `Arc` of every key that did not change, so that what was verified
    /// with it (the verified-token cache) stays valid across refreshes.
    pub(crate) fn reuse_unchanged(&mut self, previous: &KeySet) {
        for key in &mut self.all {
            if let Some(old) = previous.all.iter().find(|old| {
                old.kid == key.kid && old.material == key.material && old.issuer == key.issuer
            }) {
                *key = old.clone();
            }
        }
        for key in self.by_id.values_mut() {
            if let Some(old) = previous.all.iter().find(|old| {
                old.kid == key.kid && old.material == key.material && old.issuer == key.issuer
            }) {
                *key = old.clone();
            }
        }
    }

    /// Whether `key` (the same `Arc`) is still in this set under its kid.
    pub(crate) fn holds(&self, key: &Arc<SigningKey>) -> bool {
        match key.kid.as_deref() {
            Some(kid) => self.by_id.get(kid).is_some_and(|k| Arc::ptr_eq(k, key)),
            None => self.all.iter().any(|k| Arc::ptr_eq(k, key)),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modulus(bits: usize) -> String {
        let mut n = vec![0xC5u8; bits / 8];
        n[0] = 0xE1;
        URL_SAFE_NO_PAD.encode(n)
    }

    #[test]
    fn jwks_parsing() {
        struct Case {
            name: &'static str,
            jwks: String,
            keys: Result<usize, &'static str>,
        }
        let good = modulus(2048);
        let cases = [
            Case {
                name: "one good key",
                jwks: format!(
                    r#"{{"keys":[{{"kty":"RSA","use":"sig","kid":"a","x5t":"a","n":"{good}","e":"AQAB"}}]}}"#
                ),
                keys: Ok(1),
            },
            Case {
                name: "small, EC, encryption and malformed keys are skipped",
                jwks: format!(
                    r#"{{"keys":[{{"kty":"RSA","kid":"s","n":"{}","e":"AQAB"}},{{"kty":"EC","kid":"e"}},{{"kty":"RSA","use":"enc","kid":"x","n":"{good}","e":"AQAB"}},{{"kty":"RSA","kid":"m","n":"!!","e":"AQAB"}},{{"kty":1}},{{"kty":"RSA","kid":"ok","n":"{good}","e":"AQAB"}}]}}"#,
                    modulus(1024)
                ),
                keys: Ok(1),
            },
            Case {
                name: "empty key set",
                jwks: r#"{"keys":[]}"#.into(),
                keys: Err("no usable"),
            },
            Case {
                name: "not a jwks",
                jwks: "<html>".into(),
                keys: Err("not a JWKS"),
            },
        ];
        for case in cases {
            match (KeySet::from_jwks(case.jwks.as_bytes()), case.keys) {
                (Ok(set), Ok(n)) => assert_eq!(set.len(), n, "{}", case.name),
                (Err(e), Err(expected)) => assert!(e.contains(expected), "{}: {e}", case.name),
                (other, expected) => panic!(
                    "{}: {:?} vs {expected:?}",
                    case.name,
                    other.map(|s| s.len())
                ),
            }
        }
    }

    #[test]
    fn a_jwks_of_more_than_64_keys_keeps_the_first_64() {
        let good = modulus(2048);
        let keys: Vec<String> = (0..MAX_KEYS + 6)
            .map(|i| format!(r#"{{"kty":"RSA","kid":"k{i}","n":"{good}","e":"AQAB"}}"#))
            .collect();
        let set = KeySet::from_jwks(format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes())
            .expect("usable");
        assert_eq!(set.len(), MAX_KEYS);
        assert!(set.find(Some("k63"), None).is_some());
        assert!(set.find(Some("k64"), None).is_none(), "past the bound");
    }

    #[test]
    fn find_by_kid_x5t_or_single() {
        let good = modulus(2048);
        let set = KeySet::from_jwks(
            format!(
                r#"{{"keys":[{{"kty":"RSA","kid":"k1","x5t":"t1","n":"{good}","e":"AQAB"}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert!(set.find(Some("k1"), None).is_some());
        assert!(set.find(None, Some("t1")).is_some());
        assert!(set.find(None, None).is_some());
        assert!(set.find(Some("nope"), None).is_none());
    }
}
