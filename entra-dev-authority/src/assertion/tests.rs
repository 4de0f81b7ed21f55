//! Unit tests of the client-assertion checks and the replay memory.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{RsaEncoding, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use serde_json::json;

use super::*;
use crate::keys::generate_certificate;
use crate::keys::GeneratedCertificate;
use crate::registration::DevApplication;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000002";
const OTHER: &str = "0b7c5d2e-0000-4000-8000-000000000003";
const ENDPOINT: &str = "http://127.0.0.1:1/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token";
const NOW: i64 = 1_700_000_000;

fn sign(header: &Value, claims: &Value, key_der: &[u8], pss: bool) -> String {
    let encode = |v: &Value| b64url(&serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", encode(header), encode(claims));
    let key = KeyPair::from_pkcs8(key_der).unwrap();
    let mut sig = vec![0; key.public_modulus_len()];
    let alg: &'static dyn RsaEncoding = if pss {
        &RSA_PSS_SHA256
    } else {
        &RSA_PKCS1_SHA256
    };
    key.sign(alg, &SystemRandom::new(), input.as_bytes(), &mut sig)
        .unwrap();
    format!("{input}.{}", b64url(&sig))
}

fn claims() -> Value {
    json!({
        "aud": ENDPOINT, "iss": CLIENT, "sub": CLIENT, "jti": "5f6c0b1e-0000-4000-8000-000000000001",
        "nbf": NOW, "iat": NOW, "exp": NOW + 600,
    })
}

fn with(mut value: Value, changes: &[(&str, Value)]) -> Value {
    for (name, v) in changes {
        if v.is_null() {
            value.as_object_mut().unwrap().remove(*name);
        } else {
            value[*name] = v.clone();
        }
    }
    value
}

struct Fixture {
    cert: GeneratedCertificate,
    other: GeneratedCertificate,
    registry: Registry,
}

fn fixture() -> Fixture {
    let cert = generate_certificate("CN=client").unwrap();
    let other = generate_certificate("CN=unregistered").unwrap();
    let registry = Registry::new(
        TENANT,
        vec![],
        vec![
            DevApplication::new(CLIENT)
                .certificate_pem(&cert.cert_pem)
                .unwrap(),
            DevApplication::new(OTHER)
                .certificate_pem(&other.cert_pem)
                .unwrap(),
        ],
    )
    .unwrap();
    Fixture {
        cert,
        other,
        registry,
    }
}

#[test]
fn assertion_checks() {
    let f = fixture();
    let ps256 = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": f.cert.x5t_s256});
    let rs256 = json!({"alg": "RS256", "typ": "JWT", "x5t": f.cert.x5t});
    let key = f.cert.key_der.as_slice();
    let padded_x5t = URL_SAFE.encode(
        aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &f.cert.cert_der,
        )
        .as_ref(),
    );
    let x5c_with_breaks = {
        let b64 = STANDARD.encode(&f.cert.cert_der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        lines.join("\r\n")
    };

    struct Case {
        name: &'static str,
        assertion: String,
        client_id: Option<&'static str>,
        code: Option<u32>,
    }
    let case = |name, assertion, code| Case {
        name,
        assertion,
        client_id: Some(CLIENT),
        code,
    };
    let cases = vec![
        case(
            "PS256 + x5t#S256 (MSAL.NET)",
            sign(&ps256, &claims(), key, true),
            None,
        ),
        case(
            "RS256 + x5t (ADFS style)",
            sign(&rs256, &claims(), key, false),
            None,
        ),
        Case {
            name: "no client_id parameter: the client is iss",
            assertion: sign(&ps256, &claims(), key, true),
            client_id: None,
            code: None,
        },
        case(
            "padded x5t",
            sign(
                &json!({"alg": "RS256", "typ": "JWT", "x5t": padded_x5t}),
                &claims(),
                key,
                false,
            ),
            None,
        ),
        case(
            "string nbf/exp (MSAL.NET 4.60+), no iat",
            sign(
                &ps256,
                &with(
                    claims(),
                    &[
                        ("nbf", json!(NOW.to_string())),
                        ("exp", json!((NOW + 600).to_string())),
                        ("iat", Value::Null),
                    ],
                ),
                key,
                true,
            ),
            None,
        ),
        case(
            "float exp/iat, no nbf (MSAL Python)",
            sign(
                &rs256,
                &with(
                    claims(),
                    &[
                        ("nbf", Value::Null),
                        ("iat", json!(NOW as f64 + 0.25)),
                        ("exp", json!(NOW as f64 + 600.5)),
                    ],
                ),
                key,
                false,
            ),
            None,
        ),
        case(
            "x5c as a string with line breaks, with x5t",
            sign(
                &json!({"alg": "RS256", "typ": "JWT", "x5t": f.cert.x5t, "x5c": x5c_with_breaks}),
                &claims(),
                key,
                false,
            ),
            None,
        ),
        case(
            "x5c as an array of PEM, no thumbprint (MSAL Python)",
            sign(
                &json!({"alg": "PS256", "typ": "JWT", "x5c": [f.cert.cert_pem.clone()]}),
                &claims(),
                key,
                true,
            ),
            None,
        ),
        case(
            "aud as an array",
            sign(
                &ps256,
                &with(claims(), &[("aud", json!([ENDPOINT]))]),
                key,
                true,
            ),
            None,
        ),
        case("not a JWT", "abc.def".into(), Some(50027)),
        case(
            "header not JSON",
            format!("{}.{}.c2ln", b64url(b"nope"), b64url(b"{}")),
            Some(50027),
        ),
        case(
            "unsigned",
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"none"}"#),
                b64url(&serde_json::to_vec(&claims()).unwrap())
            ),
            Some(50027),
        ),
        case("too long", "a".repeat(MAX_ASSERTION_LEN + 1), Some(50027)),
        Case {
            name: "unknown client",
            assertion: sign(&ps256, &claims(), key, true),
            client_id: Some("99999999-0000-4000-8000-000000000000"),
            code: Some(700016),
        },
        Case {
            name: "iss is not the client_id parameter",
            assertion: sign(
                &ps256,
                &with(claims(), &[("iss", json!(OTHER)), ("sub", json!(OTHER))]),
                key,
                true,
            ),
            client_id: Some(CLIENT),
            code: Some(700021),
        },
        case(
            "sub differs from iss",
            sign(&ps256, &with(claims(), &[("sub", json!(OTHER))]), key, true),
            Some(50048),
        ),
        case(
            "no iss",
            sign(&ps256, &with(claims(), &[("iss", Value::Null)]), key, true),
            Some(50027),
        ),
        case(
            "HS256",
            sign(
                &json!({"alg": "HS256", "x5t": f.cert.x5t}),
                &claims(),
                key,
                false,
            ),
            Some(700027),
        ),
        case(
            "no thumbprint at all",
            sign(&json!({"alg": "RS256"}), &claims(), key, false),
            Some(50027),
        ),
        case(
            "certificate registered on another app",
            sign(
                &json!({"alg": "PS256", "x5t#S256": f.other.x5t_s256}),
                &claims(),
                f.other.key_der.as_slice(),
                true,
            ),
            Some(700027),
        ),
        case(
            "signed with another key",
            sign(&ps256, &claims(), f.other.key_der.as_slice(), true),
            Some(700027),
        ),
        case(
            "alg says PS256 but signed PKCS#1",
            sign(&ps256, &claims(), key, false),
            Some(700027),
        ),
        case(
            "x5c does not match x5t",
            sign(
                &json!({"alg": "RS256", "x5t": f.cert.x5t, "x5c": STANDARD.encode(&f.other.cert_der)}),
                &claims(),
                key,
                false,
            ),
            Some(700027),
        ),
        case(
            "aud is the authority, not the token endpoint",
            sign(
                &ps256,
                &with(
                    claims(),
                    &[(
                        "aud",
                        json!("http://127.0.0.1:1/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"),
                    )],
                ),
                key,
                true,
            ),
            Some(700023),
        ),
        case(
            "no aud",
            sign(&ps256, &with(claims(), &[("aud", Value::Null)]), key, true),
            Some(700023),
        ),
        case(
            "expired",
            sign(
                &ps256,
                &with(
                    claims(),
                    &[
                        ("nbf", json!(NOW - 1200)),
                        ("iat", json!(NOW - 1200)),
                        ("exp", json!(NOW - 600)),
                    ],
                ),
                key,
                true,
            ),
            Some(700024),
        ),
        case(
            "expired within skew is fine",
            sign(
                &ps256,
                &with(
                    claims(),
                    &[
                        ("nbf", json!(NOW - 700)),
                        ("iat", json!(NOW - 700)),
                        ("exp", json!(NOW - 100)),
                    ],
                ),
                key,
                true,
            ),
            None,
        ),
        case(
            "not yet valid",
            sign(
                &ps256,
                &with(
                    claims(),
                    &[("nbf", json!(NOW + 600)), ("exp", json!(NOW + 1200))],
                ),
                key,
                true,
            ),
            Some(700024),
        ),
        case(
            "iat in the future",
            sign(
                &ps256,
                &with(
                    claims(),
                    &[
                        ("nbf", Value::Null),
                        ("iat", json!(NOW + 3600)),
                        ("exp", json!(NOW + 4000)),
                    ],
                ),
                key,
                true,
            ),
            Some(700024),
        ),
        case(
            "absurd lifetime",
            sign(
                &ps256,
                &with(claims(), &[("exp", json!(NOW + 30 * 86_400))]),
                key,
                true,
            ),
            Some(700024),
        ),
        case(
            "no exp",
            sign(&ps256, &with(claims(), &[("exp", Value::Null)]), key, true),
            Some(50027),
        ),
        case(
            "exp not a number",
            sign(
                &ps256,
                &with(claims(), &[("exp", json!("soon"))]),
                key,
                true,
            ),
            Some(50027),
        ),
        case(
            "exp huge",
            sign(&ps256, &with(claims(), &[("exp", json!(1e300))]), key, true),
            Some(50027),
        ),
        case(
            "no jti",
            sign(&ps256, &with(claims(), &[("jti", Value::Null)]), key, true),
            Some(50027),
        ),
    ];
    for case in cases {
        let expect = Expectations {
            token_endpoint: ENDPOINT,
            client_id: case.client_id,
            now: NOW,
            replaced: None,
        };
        let result = verify(&case.assertion, &expect, &f.registry);
        match (result, case.code) {
            (Ok(verified), None) => {
                assert_eq!(verified.client_id, CLIENT, "{}", case.name);
            }
            (Err(e), Some(code)) => assert_eq!(e.code, code, "{}: {}", case.name, e.message),
            (Ok(_), Some(code)) => panic!("{}: accepted, expected AADSTS{code}", case.name),
            (Err(e), None) => panic!(
                "{}: refused with AADSTS{}: {}",
                case.name, e.code, e.message
            ),
        }
    }
}

#[test]
fn hostile_input_never_panics() {
    let f = fixture();
    let expect = Expectations {
        token_endpoint: ENDPOINT,
        client_id: None,
        now: NOW,
        replaced: None,
    };
    let inputs = [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "\u{0}\u{1}.é.ü".into(),
        format!("{}.{}.x", b64url(b"[]"), b64url(b"[]")),
        format!(
            "{}.{}.x",
            b64url(br#"{"alg":"RS256","x5t":5}"#),
            b64url(br#"{"iss":"a","sub":"a"}"#)
        ),
        format!(
            "{}.{}.x",
            b64url(br#"{"alg":"RS256","x5c":{}}"#),
            b64url(&serde_json::to_vec(&claims()).unwrap())
        ),
        format!(
            "{}.{}.x",
            b64url(br#"{"alg":"RS256","x5c":[]}"#),
            b64url(&serde_json::to_vec(&claims()).unwrap())
        ),
        format!(
            "{}.{}.!!!",
            b64url(br#"{"alg":"RS256","x5t":"AAAA"}"#),
            b64url(&serde_json::to_vec(&claims()).unwrap())
        ),
    ];
    for input in inputs {
        assert!(verify(&input, &expect, &f.registry).is_err(), "{input:?}");
    }
}

#[test]
fn replay_cache_never_evicts_unexpired_entries() {
    let mut cache = ReplayCache::default();
    // The entry closest to expiry, still valid for minutes.
    assert_eq!(
        cache.remember(CLIENT, "first", NOW + 300, NOW),
        Remembered::New
    );
    for i in 0..REPLAY_CAPACITY {
        cache.remember(CLIENT, &format!("flood-{i}"), NOW + 600, NOW);
    }
    assert_eq!(cache.len(), REPLAY_CAPACITY);
    assert_eq!(
        cache.remember(CLIENT, "first", NOW + 300, NOW + 1),
        Remembered::Replayed,
        "an unexpired assertion was forgotten and accepted again"
    );
    assert_eq!(
        cache.remember(CLIENT, "new", NOW + 600, NOW + 1),
        Remembered::Full {
            earliest_expiry: NOW + 300 + CLOCK_SKEW
        },
        "a full cache refuses new assertions and says when room frees up"
    );
    // Once the first entry expired (exp + skew), there is room again; the flood's
    // entries are still remembered.
    let later = NOW + 300 + CLOCK_SKEW + 1;
    assert_eq!(
        cache.remember(CLIENT, "new", NOW + 900, later),
        Remembered::New
    );
    assert_eq!(
        cache.remember(CLIENT, "flood-0", NOW + 600, later),
        Remembered::Replayed
    );
    assert_eq!(cache.len(), REPLAY_CAPACITY, "bounded");
}

#[test]
fn replay_cache_remembers_each_entry_until_exp_plus_skew() {
    struct Case {
        name: &'static str,
        at: i64,
        remembered: Remembered,
    }
    let exp = NOW + 600;
    let cases = [
        Case {
            name: "before exp",
            at: exp - 1,
            remembered: Remembered::Replayed,
        },
        Case {
            name: "at exp + skew",
            at: exp + CLOCK_SKEW,
            remembered: Remembered::Replayed,
        },
        Case {
            name: "after exp + skew",
            at: exp + CLOCK_SKEW + 1,
            remembered: Remembered::New,
        },
    ];
    for case in cases {
        let mut cache = ReplayCache::with_capacity(1);
        assert_eq!(cache.remember(CLIENT, "a", exp, NOW), Remembered::New);
        assert_eq!(
            cache.remember(CLIENT, "a", exp, case.at),
            case.remembered,
            "{}",
            case.name
        );
    }
}

#[test]
fn replay_cache() {
    let mut cache = ReplayCache::default();
    let new = Remembered::New;
    assert_eq!(
        cache.remember(CLIENT, "a", NOW + 600, NOW),
        new,
        "first use"
    );
    assert_eq!(
        cache.remember(CLIENT, "a", NOW + 600, NOW),
        Remembered::Replayed,
        "replay"
    );
    assert_eq!(
        cache.remember(&CLIENT.to_uppercase(), "a", NOW + 600, NOW),
        Remembered::Replayed,
        "replay, client id case"
    );
    assert_eq!(
        cache.remember(OTHER, "a", NOW + 600, NOW),
        new,
        "same jti, other client"
    );
    // Past exp + skew the entries are dropped (the lifetime check refuses them anyway).
    assert_eq!(cache.remember(CLIENT, "b", NOW + 2000, NOW + 1000), new);
    assert_eq!(cache.len(), 1, "expired entries were dropped");
    for i in 0..REPLAY_CAPACITY + 10 {
        cache.remember(
            CLIENT,
            &format!("jti-{i}"),
            NOW + 5000 + i as i64,
            NOW + 1000,
        );
    }
    assert_eq!(cache.len(), REPLAY_CAPACITY, "bounded");
}
