//! Signing keys: JWKS parsing and the key set held by the validator.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use aws_lc_rs::signature::{self as lc, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

/// Keys beyond this many in one JWKS are ignored (Entra publishes fewer than 10).
pub(crate) const MAX_KEYS: usize = 64;
/// RSA moduli below this many bits are refused.
const MIN_RSA_BITS: usize = 2048;

/// The RSA algorithms a key can verify, in the order of [`SigningKey::parsed`]; each with
/// the aws-lc-rs parameters jsonwebtoken uses for it (keys of 2048 to 8192 bits).
const RSA_ALGORITHMS: [(Algorithm, &RsaParameters); 6] = [
    (Algorithm::RS256, &lc::RSA_PKCS1_2048_8192_SHA256),
    (Algorithm::RS384, &lc::RSA_PKCS1_2048_8192_SHA384),
    (Algorithm::RS512, &lc::RSA_PKCS1_2048_8192_SHA512),
    (Algorithm::PS256, &lc::RSA_PSS_2048_8192_SHA256),
    (Algorithm::PS384, &lc::RSA_PSS_2048_8192_SHA384),
    (Algorithm::PS512, &lc::RSA_PSS_2048_8192_SHA512),
];

/// One RSA signing key from a JWKS.
///
/// The key is parsed once per algorithm (on first use) into an aws-lc-rs [`ParsedPublicKey`],
/// which also keeps its Montgomery context: verifying then costs the RSA operation and the
/// hash only, instead of building the key from `n`/`e` for every token.
#[derive(Clone)]
pub(crate) struct SigningKey {
    /// Unique per parsed key (kept across refreshes with the key itself, see
    /// [`KeySet::reuse_unchanged`]): what the verified-token cache remembers, so that a hit
    /// touches no reference count shared with other requests.
    id: u64,
    pub(crate) kid: Option<String>,
    /// The JWK's `alg`, when it has one: the only algorithm this key verifies.
    alg: Option<Algorithm>,
    /// Modulus and exponent, big-endian without leading zeros.
    n: Vec<u8>,
    e: Vec<u8>,
    /// Parsed keys by [`RSA_ALGORITHMS`] index; `None` when aws-lc refuses the key.
    parsed: [OnceLock<Option<ParsedPublicKey>>; RSA_ALGORITHMS.len()],
    /// Entra's per-key `issuer` (may hold `{tenantid}`).
    pub(crate) issuer: Option<String>,
}

/// The next [`SigningKey::id`].
static NEXT_KEY_ID: AtomicU64 = AtomicU64::new(1);

impl SigningKey {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The same key as `other`: same kid, `alg`, modulus, exponent and per-key issuer.
    fn same_as(&self, other: &Self) -> bool {
        self.kid == other.kid
            && self.alg == other.alg
            && self.n == other.n
            && self.e == other.e
            && self.issuer == other.issuer
    }

    /// The JWK's `alg`, if it named one.
    pub(crate) fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// Whether this key may verify `algorithm`'s signatures: any RSA algorithm when the JWK
    /// has no `alg`, exactly its `alg` when it has one (RFC 7517 §4.4).
    pub(crate) fn allows(&self, algorithm: Algorithm) -> bool {
        self.alg.is_none_or(|alg| alg == algorithm)
    }

    /// Whether `signature` is `algorithm`'s signature of `message` under this key. Only the
    /// RSA algorithms are known, and only the JWK's `alg` when it has one; any other is never
    /// verified.
    pub(crate) fn verify(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.allows(algorithm)
            && self
                .parsed_for(algorithm)
                .is_some_and(|key| key.verify_sig(message, signature).is_ok())
    }

    fn parsed_for(&self, algorithm: Algorithm) -> Option<&ParsedPublicKey> {
        let index = RSA_ALGORITHMS.iter().position(|(a, _)| *a == algorithm)?;
        let params = RSA_ALGORITHMS[index].1;
        self.parsed[index]
            .get_or_init(|| {
                RsaPublicKeyComponents {
                    n: self.n.as_slice(),
                    e: self.e.as_slice(),
                }
                .to_parsed_public_key(params)
                .ok()
            })
            .as_ref()
    }
}

/// The JOSE name of an RSA algorithm (`RS256` …); `unsupported` for any other.
pub(crate) fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        _ => "unsupported",
    }
}

/// Big-endian bytes without the leading zeros (which aws-lc refuses in `n` and `e`).
fn without_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one JWKS, by `kid` and, in a map of its own, by `x5t` (which Entra
/// sets equal to the kid and which very old v1 tokens carry instead of `kid`): one key's
/// `x5t` never stands for another key's `kid`.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<SigningKey>>,
    by_x5t: HashMap<String, Arc<SigningKey>>,
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
    alg: Option<String>,
    key_ops: Option<Vec<String>>,
    n: Option<String>,
    e: Option<String>,
    issuer: Option<String>,
}

impl KeySet {
    /// Parses a JWKS document, keeping the RSA signature keys of at least 2048 bits and
    /// skipping anything else: other key types, encryption keys (`use` other than `sig`,
    /// `key_ops` without `verify`), keys whose `alg` is not an RSA signature algorithm, and
    /// malformed entries.
    pub(crate) fn from_jwks(body: &[u8]) -> Result<Self, String> {
        let jwks: Jwks = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut set = Self::default();
        for raw in jwks.keys.into_iter().take(MAX_KEYS) {
            let Ok(raw) = serde_json::from_value::<RawJwk>(raw) else {
                continue;
            };
            if raw.kty != "RSA" || raw.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            // RFC 7517 §4.3: a key whose operations do not include `verify` is not a
            // signature verification key.
            if raw
                .key_ops
                .as_ref()
                .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
            {
                continue;
            }
            // RFC 7517 §4.4: a key with an `alg` is for that algorithm only; one that names
            // no RSA signature algorithm (`RSA-OAEP`, `ES256`…) verifies nothing here.
            let alg = match raw.alg.as_deref() {
                None => None,
                Some(name) => match RSA_ALGORITHMS
                    .iter()
                    .find(|(a, _)| algorithm_name(*a) == name)
                {
                    Some((algorithm, _)) => Some(*algorithm),
                    None => continue,
                },
            };
            let (Some(n), Some(e)) = (raw.n.as_deref(), raw.e.as_deref()) else {
                continue;
            };
            let (Ok(modulus), Ok(exponent)) = (
                URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')),
                URL_SAFE_NO_PAD.decode(e.trim_end_matches('=')),
            ) else {
                continue;
            };
            let (modulus, exponent) = (
                without_leading_zeros(modulus),
                without_leading_zeros(exponent),
            );
            if modulus.len() * 8 < MIN_RSA_BITS || exponent.is_empty() {
                continue;
            }
            let key = SigningKey {
                id: NEXT_KEY_ID.fetch_add(1, Ordering::Relaxed),
                kid: raw.kid.clone(),
                alg,
                n: modulus,
                e: exponent,
                parsed: Default::default(),
                issuer: raw.issuer,
            };
            // Parsed now for its algorithm (RS256, Entra's, when it names none), so that an
            // unusable key is skipped here rather than refused at every token.
            if key.parsed_for(alg.unwrap_or(Algorithm::RS256)).is_none() {
                continue;
            }
            let key = Arc::new(key);
            // The first key with a given kid (or x5t) wins: a later duplicate cannot replace it.
            if let Some(kid) = raw.kid {
                set.by_kid.entry(kid).or_insert_with(|| key.clone());
            }
            if let Some(x5t) = raw.x5t {
                set.by_x5t.entry(x5t).or_insert_with(|| key.clone());
            }
            set.all.push(key);
        }
        if set.all.is_empty() {
            return Err("the key set holds no usable RSA signing key".into());
        }
        Ok(set)
    }

    /// The key for a token header: by `kid` among the keys' `kid`s first, then by `x5t`
    /// among the keys' `x5t`s (as Microsoft.IdentityModel resolves keys); with neither, the
    /// only key if there is exactly one.
    pub(crate) fn find(&self, kid: Option<&str>, x5t: Option<&str>) -> Option<&Arc<SigningKey>> {
        match (kid, x5t) {
            (None, None) if self.all.len() == 1 => self.all.first(),
            (None, None) => None,
            _ => kid
                .and_then(|kid| self.by_kid.get(kid))
                .or_else(|| x5t.and_then(|x5t| self.by_x5t.get(x5t))),
        }
    }

    /// Keeps the previous `Arc` of every key that did not change, so that what was verified
    /// with it (the verified-token cache) stays valid across refreshes.
    pub(crate) fn reuse_unchanged(&mut self, previous: &Self) {
        for key in self
            .all
            .iter_mut()
            .chain(self.by_kid.values_mut())
            .chain(self.by_x5t.values_mut())
        {
            if let Some(old) = previous.all.iter().find(|old| old.same_as(key)) {
                *key = old.clone();
            }
        }
    }

    /// Whether the key with this [`SigningKey::id`] is still in this set (a scan: sets hold a
    /// handful of keys, 64 at most).
    pub(crate) fn holds(&self, id: u64) -> bool {
        self.all.iter().any(|k| k.id == id)
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// Every key, in the JWKS's order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<SigningKey>> {
        self.all.iter()
    }
}

/// What one refresh fetched: the keys and the issuers they are published for.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The signing keys.
    pub(crate) keys: KeySet,
    /// The v2 (or only) metadata's `issuer`.
    pub(crate) issuer: String,
    /// The v1 metadata's `issuer` (Entra only).
    pub(crate) v1_issuer: Option<String>,
    /// For keys loaded from a last-known-good store: when they were fetched (Unix seconds).
    pub(crate) stored_at: Option<u64>,
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
    fn a_parsed_key_verifies_every_rsa_algorithm_and_nothing_else() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
        use aws_lc_rs::signature::{
            KeyPair as _, RsaEncoding, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512,
            RSA_PSS_SHA256, RSA_PSS_SHA384, RSA_PSS_SHA512,
        };

        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        // A leading zero byte in `n`, as some JWKS publishers write it, is accepted.
        let mut n = vec![0u8];
        n.extend_from_slice(&components.n);
        let jwks = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"k","n":"{}","e":"{}"}}]}}"#,
            URL_SAFE_NO_PAD.encode(&n),
            URL_SAFE_NO_PAD.encode(&components.e)
        );
        let set = KeySet::from_jwks(jwks.as_bytes()).unwrap();
        let key = set.find(Some("k"), None).unwrap();

        let signers: [(Algorithm, &'static dyn RsaEncoding); 6] = [
            (Algorithm::RS256, &RSA_PKCS1_SHA256),
            (Algorithm::RS384, &RSA_PKCS1_SHA384),
            (Algorithm::RS512, &RSA_PKCS1_SHA512),
            (Algorithm::PS256, &RSA_PSS_SHA256),
            (Algorithm::PS384, &RSA_PSS_SHA384),
            (Algorithm::PS512, &RSA_PSS_SHA512),
        ];
        let message = b"header.payload";
        for (algorithm, encoding) in signers {
            let mut signature = vec![0; pair.public_modulus_len()];
            pair.sign(encoding, &SystemRandom::new(), message, &mut signature)
                .unwrap();
            assert!(key.verify(algorithm, message, &signature), "{algorithm:?}");
            assert!(
                !key.verify(algorithm, b"header.payloaD", &signature),
                "{algorithm:?}: other message"
            );
            let mut flipped = signature.clone();
            flipped[10] ^= 1;
            assert!(
                !key.verify(algorithm, message, &flipped),
                "{algorithm:?}: flipped bit"
            );
            assert!(
                !key.verify(algorithm, message, &signature[1..]),
                "{algorithm:?}: short"
            );
        }
        // A signature of one RSA algorithm never passes as another.
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message,
            &mut signature,
        )
        .unwrap();
        assert!(!key.verify(Algorithm::PS256, message, &signature));
        assert!(!key.verify(Algorithm::RS384, message, &signature));
        // Not RSA: never verified.
        for algorithm in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert!(!key.verify(algorithm, message, &signature), "{algorithm:?}");
        }
    }

    #[test]
    fn a_jwk_alg_or_key_ops_limits_what_the_key_verifies() {
        struct Case {
            name: &'static str,
            /// The JWK's members besides kty, kid, n and e.
            members: &'static str,
            /// `None`: the key is skipped; else which of RS256 / PS256 it verifies.
            verifies: Option<[bool; 2]>,
        }
        let cases = [
            Case {
                name: "no alg: any RSA algorithm",
                members: "",
                verifies: Some([true, true]),
            },
            Case {
                name: "alg RS256: RS256 only",
                members: r#","alg":"RS256""#,
                verifies: Some([true, false]),
            },
            Case {
                name: "alg PS256: PS256 only",
                members: r#","alg":"PS256""#,
                verifies: Some([false, true]),
            },
            Case {
                name: "alg of an encryption algorithm: skipped",
                members: r#","alg":"RSA-OAEP""#,
                verifies: None,
            },
            Case {
                name: "alg of another key type: skipped",
                members: r#","alg":"ES256""#,
                verifies: None,
            },
            Case {
                name: "alg is case-sensitive (RFC 7518): skipped",
                members: r#","alg":"rs256""#,
                verifies: None,
            },
            Case {
                name: "key_ops with verify",
                members: r#","key_ops":["verify"]"#,
                verifies: Some([true, true]),
            },
            Case {
                name: "key_ops with verify among others",
                members: r#","key_ops":["encrypt","verify"]"#,
                verifies: Some([true, true]),
            },
            Case {
                name: "key_ops without verify: not a signature key",
                members: r#","key_ops":["encrypt","wrapKey"]"#,
                verifies: None,
            },
            Case {
                name: "empty key_ops: not a signature key",
                members: r#","key_ops":[]"#,
                verifies: None,
            },
            Case {
                name: "key_ops not a list of strings: malformed, skipped",
                members: r#","key_ops":"verify""#,
                verifies: None,
            },
            Case {
                name: "use sig with alg and key_ops",
                members: r#","use":"sig","alg":"RS256","key_ops":["verify"]"#,
                verifies: Some([true, false]),
            },
        ];
        let good = modulus(2048);
        for case in cases {
            // A second, plain key keeps every key set usable, so a skipped key shows as absent.
            let jwks = format!(
                r#"{{"keys":[{{"kty":"RSA","kid":"k","n":"{good}","e":"AQAB"{}}},{{"kty":"RSA","kid":"other","n":"{good}","e":"AQAB"}}]}}"#,
                case.members
            );
            let set =
                KeySet::from_jwks(jwks.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let key = set.find(Some("k"), None);
            let verifies =
                key.map(|key| [key.allows(Algorithm::RS256), key.allows(Algorithm::PS256)]);
            assert_eq!(verifies, case.verifies, "{}", case.name);
        }
    }

    #[test]
    fn a_keys_x5t_never_shadows_another_keys_kid() {
        let good = modulus(2048);
        // Key "a" comes first and its x5t is key "b"'s kid; key "b"'s x5t is "tb".
        let set = KeySet::from_jwks(
            format!(
                r#"{{"keys":[{{"kty":"RSA","kid":"a","x5t":"b","n":"{good}","e":"AQAB"}},{{"kty":"RSA","kid":"b","x5t":"tb","n":"{good}","e":"AQAB"}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        struct Case {
            name: &'static str,
            kid: Option<&'static str>,
            x5t: Option<&'static str>,
            found: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "kid b is key b, not the key whose x5t is b",
                kid: Some("b"),
                x5t: None,
                found: Some("b"),
            },
            Case {
                name: "kid a",
                kid: Some("a"),
                x5t: None,
                found: Some("a"),
            },
            Case {
                name: "x5t b alone is key a's x5t",
                kid: None,
                x5t: Some("b"),
                found: Some("a"),
            },
            Case {
                name: "kid first: kid a wins over x5t tb",
                kid: Some("a"),
                x5t: Some("tb"),
                found: Some("a"),
            },
            Case {
                name: "an unknown kid falls back to the x5t",
                kid: Some("nope"),
                x5t: Some("tb"),
                found: Some("b"),
            },
            Case {
                name: "an x5t value is not looked up among kids",
                kid: None,
                x5t: Some("a"),
                found: None,
            },
            Case {
                name: "a kid value is not looked up among x5ts",
                kid: Some("tb"),
                x5t: None,
                found: None,
            },
            Case {
                name: "neither, with two keys",
                kid: None,
                x5t: None,
                found: None,
            },
        ];
        for case in cases {
            let found = set.find(case.kid, case.x5t).and_then(|k| k.kid.as_deref());
            assert_eq!(found, case.found, "{}", case.name);
        }
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
