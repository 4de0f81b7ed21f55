//! The claims a validated token hands out are read from its payload in one pass and the full
//! map is built only when asked: these tests send payloads byte for byte (escapes, repeated
//! members, values a JSON parser must refuse) through a validator that fetched its keys over
//! HTTP from a metadata + JWKS server on 127.0.0.1, and check that every accessor says what
//! the full JSON map says. And the per-thread front of the verified-token cache: a token
//! cached by one validator is never answered from it for another.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use support::{TestIdp, TestKey};
use tower_azure_auth::claims::ClientAuthentication;
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::{AuthErrorKind, Authority, Claims, TokenValidator};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const CALLER: &str = "11111111-2222-3333-4444-555555555555";
const NOW: u64 = 1_800_000_000;

async fn validator(idp: &TestIdp, client_id: &str, clock: &ManualClock) -> TokenValidator {
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(client_id)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    validator.refresh().await.unwrap();
    validator
}

/// A payload's JSON text with the issuer of `idp` in it (`{iss}`, written with escaped
/// slashes as some encoders do) and `{rest}` replaced.
fn payload(idp: &TestIdp, rest: &str) -> String {
    let iss = idp.issuer_v2().replace('/', "\\/");
    format!(
        r#"{{"aud":"{API}","iss":"{iss}","iat":{iat},"nbf":{iat},"exp":{exp},"tid":"{TENANT}","ver":"2.0"{rest}}}"#,
        iat = NOW - 60,
        exp = NOW + 3600,
    )
}

/// Every accessor against the map `serde_json` parses from the same text.
fn assert_accessors_match_the_map(claims: &Claims, text: &str, name: &str) {
    let map: Map<String, Value> = serde_json::from_str(text).expect("a JSON object");
    let string = |claim: &str| map.get(claim).and_then(Value::as_str);
    assert_eq!(claims.issuer(), string("iss"), "{name}: iss");
    assert_eq!(claims.tenant_id(), string("tid"), "{name}: tid");
    assert_eq!(
        claims.client_id(),
        string("azp").or_else(|| string("appid")),
        "{name}: client id"
    );
    assert_eq!(claims.object_id(), string("oid"), "{name}: oid");
    assert_eq!(claims.subject(), string("sub"), "{name}: sub");
    for claim in ["uti", "jti", "azpacr", "ver", "scp", "idtyp", "xms_cc"] {
        assert_eq!(claims.get_str(claim), string(claim), "{name}: {claim}");
    }
    let strings = |claim: &str| -> Vec<&str> {
        match map.get(claim) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        }
    };
    assert_eq!(
        claims.audiences().collect::<Vec<_>>(),
        strings("aud"),
        "{name}: aud"
    );
    assert_eq!(
        claims.values("roles").collect::<Vec<_>>(),
        strings("roles"),
        "{name}: roles"
    );
    assert_eq!(claims.roles(), strings("roles"), "{name}: roles()");
    let date = |claim: &str| {
        let n = map.get(claim)?;
        n.as_u64().or_else(|| n.as_f64().map(|f| f as u64))
    };
    assert_eq!(claims.expires_at(), date("exp"), "{name}: exp");
    assert_eq!(claims.not_before(), date("nbf"), "{name}: nbf");
    assert_eq!(claims.raw(), &map, "{name}: the whole map");
    assert_eq!(claims.get("exp"), map.get("exp"), "{name}: get");
}

#[tokio::test]
async fn claims_read_in_one_pass_say_what_the_full_json_map_says() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let clock = ManualClock::at_unix(NOW);
    let validator = validator(&idp, API, &clock).await;
    struct Case {
        name: &'static str,
        rest: String,
    }
    let cases = [
        Case {
            name: "plain",
            rest: format!(
                r#","azp":"{CALLER}","azpacr":"2","roles":["service-api","reader"],"oid":"o","sub":"o","uti":"u","xms_cc":["CP1"]"#
            ),
        },
        Case {
            name: "escaped strings (unicode escapes, slashes, quotes)",
            rest: format!(
                r#","azp":"\u0031{}","azpacr":"\u0032","roles":["service\u002dapi","a\"b"],"oid":"\ud83d\ude00","sub":"tab\there","jti":"j\\k""#,
                &CALLER[1..]
            ),
        },
        Case {
            name: "repeated members: the last one counts, as in a JSON map",
            rest: format!(
                r#","azp":"someone-else","azp":"{CALLER}","roles":["nothing"],"roles":["service-api"],"exp":1,"exp":{}"#,
                NOW + 600
            ),
        },
        Case {
            name: "claims of other types than the accessors read",
            rest: r#","azp":42,"appid":"v1-client","roles":"service-api","scp":null,"sub":{"nested":["x",1,{"y":null}]},"uti":true,"aud2":[1,2.5,-3e2]"#.to_owned(),
        },
        Case {
            name: "an audience array with non-strings, a float expiry",
            rest: format!(
                r#","aud":[1,"{API}",null,"other"],"exp":{}.75,"roles":["service-api"]"#,
                NOW + 3600
            ),
        },
    ];
    for case in cases {
        let text = payload(&idp, &case.rest);
        let token = key.token_with_payload(&text);
        let claims = validator
            .validate(&token)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        assert_accessors_match_the_map(&claims, &text, case.name);
        // The cached copy (a hit) says the same.
        let again = validator.validate(&token).await.unwrap();
        assert_accessors_match_the_map(&again, &text, case.name);
    }

    let text = payload(
        &idp,
        r#","azp":"\u0031\u0031","azpacr":"\u0032","roles":["r"]"#,
    );
    let claims = validator
        .validate(&key.token_with_payload(&text))
        .await
        .unwrap();
    assert_eq!(claims.client_id(), Some("11"));
    assert_eq!(
        claims.client_authentication(),
        Some(ClientAuthentication::Certificate)
    );
}

#[tokio::test]
async fn payloads_a_json_parser_refuses_are_refused() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let clock = ManualClock::at_unix(NOW);
    let validator = validator(&idp, API, &clock).await;
    let roles = r#","roles":["service-api"]"#;
    struct Case {
        name: &'static str,
        payload: Vec<u8>,
        kind: AuthErrorKind,
    }
    let with = |rest: &str| payload(&idp, &format!("{roles}{rest}")).into_bytes();
    let cases = [
        Case {
            name: "a lone surrogate in a claim no rule reads",
            payload: with(r#","note":"\ud800""#),
            kind: AuthErrorKind::MalformedToken,
        },
        Case {
            name: "a number out of range in a claim no rule reads",
            payload: with(r#","note":1e400"#),
            kind: AuthErrorKind::MalformedToken,
        },
        Case {
            name: "a control character in a string",
            payload: with(",\"note\":\"a\u{1}b\""),
            kind: AuthErrorKind::MalformedToken,
        },
        Case {
            name: "an invalid escape",
            payload: with(r#","note":"\q""#),
            kind: AuthErrorKind::MalformedToken,
        },
        Case {
            name: "characters after the object",
            payload: [with("").as_slice(), b" x".as_slice()].concat(),
            kind: AuthErrorKind::MalformedToken,
        },
        Case {
            name: "an array, not an object",
            payload: format!(r#"["{API}"]"#).into_bytes(),
            kind: AuthErrorKind::MalformedToken,
        },
        Case {
            name: "not UTF-8 text",
            payload: {
                let mut bytes = with(r#","note":"X""#);
                let at = bytes.iter().rposition(|b| *b == b'X').unwrap();
                bytes[at] = 0xff;
                bytes
            },
            kind: AuthErrorKind::MalformedToken,
        },
        Case {
            name: "roles of the wrong type",
            payload: payload(&idp, r#","roles":["a",1]"#).into_bytes(),
            kind: AuthErrorKind::InvalidClaim,
        },
        Case {
            name: "an expiry that is a string",
            payload: with(&format!(r#","exp":"{}""#, NOW + 60)),
            kind: AuthErrorKind::InvalidClaim,
        },
        Case {
            name: "a negative not-before",
            payload: with(r#","nbf":-5"#),
            kind: AuthErrorKind::InvalidClaim,
        },
    ];
    for case in cases {
        let error = validator
            .validate(&key.token_with_payload(&case.payload))
            .await
            .expect_err(case.name);
        assert_eq!(error.kind(), case.kind, "{}: {error:?}", case.name);
    }
}

#[tokio::test]
async fn a_repeated_token_is_answered_for_the_validator_that_verified_it_only() {
    let key = TestKey::generate("key-1");
    let idp = TestIdp::start(TENANT, &[&key]).await;
    let clock = ManualClock::at_unix(NOW);
    let ours = validator(&idp, API, &clock).await;
    let theirs = validator(&idp, "another-api", &clock).await;
    let token = key.token(&json!({
        "aud": API, "iss": idp.issuer_v2(), "iat": NOW - 60, "exp": NOW + 600,
        "tid": TENANT, "ver": "2.0", "azp": CALLER, "roles": ["service-api"],
    }));
    // Verified, then answered from the shared cache (its second hit there copies it to this
    // thread's front), then from the front.
    for _ in 0..4 {
        assert!(ours.validate(&token).await.is_ok());
    }
    let error = theirs.validate(&token).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::InvalidAudience);
    assert!(ours.validate(&token).await.is_ok());
    // One byte more or less is another token.
    let longer = format!("{token}A");
    assert!(ours.validate(&longer).await.is_err());
    let shorter = &token[..token.len() - 1];
    assert!(ours.validate(shorter).await.is_err());
    // The expiry is still checked on a hit from the front.
    clock.advance(Duration::from_secs(600 + 301));
    let error = ours.validate(&token).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::Expired);
    assert_eq!(ours.cached_tokens(), 0);
}
