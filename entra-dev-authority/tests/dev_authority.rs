//! The dev authority over real HTTP on 127.0.0.1: metadata, keys, the token endpoint's rules
//! one by one, MSAL-shaped assertions, token claims (verified against the published keys),
//! key rotation, fault hooks, TLS and registration files.

#[path = "dev_authority/cli.rs"]
mod cli;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{RsaEncoding, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use entra_dev_authority::{
    generate_certificate, generate_tls_certificate, AssertionReuse, DevApi, DevApplication,
    DevAuthority, Endpoint, Fault, GeneratedCertificate, IssueToken, KeepOld,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tower_azure_auth::claims::{ClientAuthentication, TokenVersion};
use tower_azure_auth::clock::{Clock, ManualClock};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const WEATHER_API: &str = "6f8a1c52-0000-4000-8000-000000000001";
const LEGACY_API: &str = "6f8a1c52-0000-4000-8000-000000000009";
const CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000002";
const NO_ROLES_CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000003";
const SECRET: &str = "dev-secret-value";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Fixture {
    authority: DevAuthority,
    clock: ManualClock,
    cert: GeneratedCertificate,
    unregistered: GeneratedCertificate,
    http: reqwest::Client,
}

async fn fixture() -> Fixture {
    fixture_with(AssertionReuse::default()).await
}

async fn fixture_with(reuse: AssertionReuse) -> Fixture {
    let cert = generate_certificate("CN=weather-client").unwrap();
    let unregistered = generate_certificate("CN=someone-else").unwrap();
    let clock = ManualClock::now();
    let authority = DevAuthority::builder()
        .tenant_id(TENANT)
        .clock(Arc::new(clock.clone()))
        .assertion_reuse(reuse)
        .api(
            DevApi::new(WEATHER_API)
                .app_id_uri("api://weather")
                .app_roles(["service-api", "weather.read"])
                .token_version(TokenVersion::V2),
        )
        .api(
            DevApi::new(LEGACY_API)
                .app_id_uri("api://legacy")
                .app_roles(["legacy.read"]),
        )
        .application(
            DevApplication::new(CLIENT)
                .display_name("weather-client")
                .certificate_pem(&cert.combined_pem())
                .unwrap()
                .secret(SECRET)
                .grant("api://weather", ["service-api"])
                .grant(LEGACY_API, ["legacy.read"]),
        )
        .application(DevApplication::new(NO_ROLES_CLIENT).secret(SECRET))
        .start()
        .await
        .unwrap();
    Fixture {
        authority,
        clock,
        cert,
        unregistered,
        http: reqwest::Client::new(),
    }
}

impl Fixture {
    fn now(&self) -> i64 {
        self.clock.unix_seconds() as i64
    }

    fn claims(&self) -> Value {
        let now = self.now();
        json!({
            "aud": self.authority.token_endpoint(),
            "iss": CLIENT,
            "sub": CLIENT,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        })
    }

    /// An assertion the way our own client builds it, with jsonwebtoken.
    fn jsonwebtoken_assertion(&self, alg: Algorithm, claims: &Value) -> String {
        let mut header = Header::new(alg);
        match alg {
            Algorithm::PS256 => header.x5t_s256 = Some(self.cert.x5t_s256.clone()),
            _ => header.x5t = Some(self.cert.x5t.clone()),
        }
        let key = EncodingKey::from_rsa_pem(self.cert.key_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    #[allow(clippy::unused_self, reason = "a fixture method, like its neighbours")]
    fn certificate_form(&self, assertion: String) -> Vec<(&'static str, String)> {
        vec![
            ("client_id", CLIENT.into()),
            ("client_assertion_type", ASSERTION_TYPE.into()),
            ("client_assertion", assertion),
            ("scope", "api://weather/.default".into()),
            ("grant_type", "client_credentials".into()),
            ("client_info", "2".into()),
        ]
    }

    async fn post(&self, url: &str, form: &[(&str, String)]) -> (StatusCode, Value) {
        let response = self.http.post(url).form(form).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        (status, body)
    }

    async fn post_token(&self, form: &[(&str, String)]) -> (StatusCode, Value) {
        self.post(&self.authority.token_endpoint(), form).await
    }

    async fn get(&self, url: &str) -> (StatusCode, Value) {
        let response = self.http.get(url).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn jwks(&self) -> JwkSet {
        let (status, body) = self.get(&self.authority.jwks_uri()).await;
        assert_eq!(status, 200);
        serde_json::from_value(body).unwrap()
    }

    /// Verifies a token with jsonwebtoken against the published keys and returns its claims.
    async fn verify(&self, token: &str, audience: &str, issuer: &str) -> Value {
        let header = jsonwebtoken::decode_header(token).unwrap();
        let jwks = self.jwks().await;
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("the token's kid is published");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap()
            .claims
    }
}

/// Signs `header.claims` by hand, the way MSAL libraries do, with the PKCS#8 key.
fn sign_by_hand(header: &Value, claims: &Value, key_der: &[u8], pss: bool) -> String {
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", encode(header), encode(claims));
    let key = KeyPair::from_pkcs8(key_der).unwrap();
    let mut signature = vec![0; key.public_modulus_len()];
    let alg: &'static dyn RsaEncoding = if pss {
        &RSA_PSS_SHA256
    } else {
        &RSA_PKCS1_SHA256
    };
    key.sign(alg, &SystemRandom::new(), input.as_bytes(), &mut signature)
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn header_of(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn metadata_documents_are_shaped_like_entra() {
    let f = fixture().await;
    let base = f.authority.instance();
    assert_eq!(base, format!("http://{}/", f.authority.local_addr()));

    let (status, v2) = f.get(&f.authority.metadata_url()).await;
    assert_eq!(status, 200);
    assert_eq!(v2["issuer"], format!("{base}{TENANT}/v2.0"));
    assert_eq!(
        v2["jwks_uri"],
        format!("{base}{TENANT}/discovery/v2.0/keys")
    );
    assert_eq!(
        v2["token_endpoint"],
        format!("{base}{TENANT}/oauth2/v2.0/token")
    );
    assert_eq!(
        v2["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert!(v2["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("private_key_jwt")));

    let (status, v1) = f.get(&f.authority.v1_metadata_url()).await;
    assert_eq!(status, 200);
    assert_eq!(v1["issuer"], format!("{base}{TENANT}/"));
    assert_eq!(v1["jwks_uri"], format!("{base}{TENANT}/discovery/keys"));
    assert_eq!(v1["token_endpoint"], format!("{base}{TENANT}/oauth2/token"));

    for tenant in ["common", "organizations"] {
        let (status, multi) = f
            .get(&format!(
                "{base}{tenant}/v2.0/.well-known/openid-configuration"
            ))
            .await;
        assert_eq!(status, 200, "{tenant}");
        assert_eq!(
            multi["issuer"],
            format!("{base}{{tenantid}}/v2.0"),
            "{tenant}"
        );
        assert_eq!(
            multi["jwks_uri"],
            format!("{base}{tenant}/discovery/v2.0/keys"),
            "{tenant}"
        );
        let (_, multi_v1) = f
            .get(&format!("{base}{tenant}/.well-known/openid-configuration"))
            .await;
        assert_eq!(
            multi_v1["issuer"],
            format!("{base}{{tenantid}}/"),
            "{tenant}"
        );
    }

    // The tenant GUID in any case is the tenant.
    let (status, _) = f
        .get(&format!(
            "{base}{}/v2.0/.well-known/openid-configuration",
            TENANT.to_uppercase()
        ))
        .await;
    assert_eq!(status, 200);

    let (status, error) = f
        .get(&format!(
            "{base}11111111-1111-1111-1111-111111111111/v2.0/.well-known/openid-configuration"
        ))
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["error_codes"], json!([90002]));
}

#[tokio::test]
async fn key_sets_are_shaped_like_entra() {
    let f = fixture().await;
    let base = f.authority.instance();
    let (_, v2) = f.get(&f.authority.jwks_uri()).await;
    let (_, v1) = f.get(&format!("{base}{TENANT}/discovery/keys")).await;
    let (_, common) = f.get(&format!("{base}common/discovery/v2.0/keys")).await;
    assert_eq!(common["keys"], v2["keys"], "common publishes the same keys");
    for (name, set, issuer) in [
        ("v2", &v2, Some(format!("{base}{{tenantid}}/v2.0"))),
        ("v1", &v1, None),
    ] {
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{name}");
        let key = &keys[0];
        assert_eq!(key["kty"], "RSA", "{name}");
        assert_eq!(key["use"], "sig", "{name}");
        assert_eq!(key["e"], "AQAB", "{name}");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(key["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256,
            "{name}: a 2048-bit modulus"
        );
        assert_eq!(key["kid"], key["x5t"], "{name}");
        let der = STANDARD.decode(key["x5c"][0].as_str().unwrap()).unwrap();
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        assert_eq!(
            key["x5t"],
            URL_SAFE_NO_PAD.encode(sha1),
            "{name}: x5t is the SHA-1 of x5c"
        );
        assert_eq!(
            key.get("issuer").map(|i| i.as_str().unwrap().to_owned()),
            issuer,
            "{name}"
        );
    }
    assert_eq!(
        f.authority.signing_key_ids(),
        vec![v2["keys"][0]["kid"].as_str().unwrap().to_owned()]
    );
}

#[tokio::test]
async fn certificate_assertions_from_jsonwebtoken_get_v2_tokens() {
    let f = fixture().await;
    for alg in [Algorithm::PS256, Algorithm::RS256] {
        let assertion = f.jsonwebtoken_assertion(alg, &f.claims());
        let (status, body) = f.post_token(&f.certificate_form(assertion)).await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        let expires_in = body["expires_in"].as_u64().unwrap();
        assert!(
            (3600..=5400).contains(&expires_in),
            "{alg:?}: 60 to 90 minutes, got {expires_in}"
        );
        assert_eq!(body["ext_expires_in"], body["expires_in"]);
        let token = body["access_token"].as_str().unwrap();

        let header = header_of(token);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], f.authority.signing_key_ids()[0].as_str());
        assert!(header.get("x5t").is_none(), "v2 tokens carry only kid");

        let claims = f
            .verify(token, WEATHER_API, &f.authority.issuer(TokenVersion::V2))
            .await;
        let now = f.now();
        assert_eq!(claims["aud"], WEATHER_API);
        assert_eq!(
            claims["iss"],
            format!("{}{TENANT}/v2.0", f.authority.instance())
        );
        assert_eq!(claims["azp"], CLIENT);
        assert_eq!(claims["azpacr"], "2");
        assert_eq!(claims["roles"], json!(["service-api"]));
        assert_eq!(claims["tid"], TENANT);
        assert_eq!(claims["ver"], "2.0");
        assert_eq!(claims["sub"], claims["oid"]);
        assert_eq!(
            claims["iat"],
            now - 300,
            "back-dated five minutes, from the injected clock"
        );
        assert_eq!(claims["nbf"], now - 300);
        assert_eq!(claims["exp"], now + expires_in as i64);
        for name in ["aio", "rh", "uti", "oid"] {
            assert!(
                claims[name].as_str().is_some_and(|v| !v.is_empty()),
                "{name}"
            );
        }
        for absent in ["appid", "appidacr", "scp", "idp"] {
            assert!(
                claims.get(absent).is_none(),
                "{absent} is not in v2 app tokens"
            );
        }
        let typed = tower_azure_auth::Claims::from_json(claims).unwrap();
        assert_eq!(
            typed.client_authentication(),
            Some(ClientAuthentication::Certificate)
        );
    }
}

#[tokio::test]
async fn msal_shaped_assertions_are_accepted() {
    let f = fixture().await;
    let now = f.now();
    let key = f.cert.key_der.as_slice();
    let endpoint = f.authority.token_endpoint();
    let sha1 = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &f.cert.cert_der,
    );
    let padded_x5t = URL_SAFE.encode(sha1);
    assert!(
        padded_x5t.ends_with('='),
        "the test needs a padded thumbprint"
    );
    let x5c_with_line_breaks = STANDARD
        .encode(&f.cert.cert_der)
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    let pem_body = f
        .cert
        .cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n");

    struct Case {
        name: &'static str,
        header: Value,
        claims: Value,
        pss: bool,
    }
    let cases = [
        Case {
            name: "MSAL.NET 4.61+: PS256, x5t#S256, string nbf/exp, no iat",
            header: json!({"alg": "PS256", "typ": "JWT", "x5t#S256": f.cert.x5t_s256}),
            claims: json!({"aud": endpoint, "iss": CLIENT, "sub": CLIENT, "nbf": now.to_string(),
                "exp": (now + 600).to_string(), "jti": uuid::Uuid::new_v4().to_string()}),
            pss: true,
        },
        Case {
            name: "MSAL.NET with SendX5C: x5c as one string with line breaks",
            header: json!({"alg": "PS256", "typ": "JWT", "x5t#S256": f.cert.x5t_s256, "x5c": x5c_with_line_breaks}),
            claims: json!({"aud": endpoint, "iss": CLIENT, "sub": CLIENT, "nbf": now.to_string(),
                "exp": (now + 600).to_string(), "jti": uuid::Uuid::new_v4().to_string()}),
            pss: true,
        },
        Case {
            name: "older MSAL: RS256 with a padded x5t, integer times",
            header: json!({"alg": "RS256", "typ": "JWT", "x5t": padded_x5t}),
            claims: json!({"aud": endpoint, "iss": CLIENT, "sub": CLIENT, "nbf": now,
                "exp": now + 600, "jti": uuid::Uuid::new_v4().to_string()}),
            pss: false,
        },
        Case {
            name: "MSAL Python: float iat/exp, no nbf, x5c as an array of PEM bodies",
            header: json!({"alg": "RS256", "typ": "JWT", "x5t": f.cert.x5t, "x5c": [pem_body]}),
            claims: json!({"aud": endpoint, "iss": CLIENT, "sub": CLIENT, "iat": now as f64 + 0.123,
                "exp": now as f64 + 600.123, "jti": uuid::Uuid::new_v4().to_string()}),
            pss: false,
        },
    ];
    for case in cases {
        let assertion = sign_by_hand(&case.header, &case.claims, key, case.pss);
        let (status, body) = f.post_token(&f.certificate_form(assertion)).await;
        assert_eq!(status, 200, "{}: {body}", case.name);
        assert!(body["access_token"].is_string(), "{}", case.name);
    }
}

#[tokio::test]
async fn token_endpoint_rules_one_by_one() {
    let f = fixture().await;
    let now = f.now();
    let base = f.authority.instance();
    let with = |changes: &[(&str, Value)]| {
        let mut claims = f.claims();
        for (name, value) in changes {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(*name);
            } else {
                claims[*name] = value.clone();
            }
        }
        claims
    };
    let cert_form = |assertion: String| f.certificate_form(assertion);
    let ps256 = |claims: &Value| f.jsonwebtoken_assertion(Algorithm::PS256, claims);
    let secret_form = |client: &str, secret: &str, scope: &str| -> Vec<(&'static str, String)> {
        vec![
            ("client_id", client.to_owned()),
            ("client_secret", secret.to_owned()),
            ("scope", scope.to_owned()),
            ("grant_type", "client_credentials".into()),
        ]
    };
    let replace =
        |mut form: Vec<(&'static str, String)>, name: &'static str, value: Option<&str>| {
            form.retain(|(k, _)| *k != name);
            if let Some(value) = value {
                form.push((name, value.to_owned()));
            }
            form
        };

    struct Case {
        name: &'static str,
        url: Option<String>,
        form: Vec<(&'static str, String)>,
        status: u16,
        error: &'static str,
        code: u32,
    }
    let cases = vec![
        Case {
            name: "unknown tenant",
            url: Some(format!(
                "{base}11111111-1111-1111-1111-111111111111/oauth2/v2.0/token"
            )),
            form: secret_form(CLIENT, SECRET, "api://weather/.default"),
            status: 400,
            error: "invalid_request",
            code: 90002,
        },
        Case {
            name: "common has no app-only tokens",
            url: Some(format!("{base}common/oauth2/v2.0/token")),
            form: secret_form(CLIENT, SECRET, "api://weather/.default"),
            status: 400,
            error: "invalid_request",
            code: 90002,
        },
        Case {
            name: "missing grant_type",
            url: None,
            form: replace(
                secret_form(CLIENT, SECRET, "api://weather/.default"),
                "grant_type",
                None,
            ),
            status: 400,
            error: "invalid_request",
            code: 900144,
        },
        Case {
            name: "unsupported grant type",
            url: None,
            form: replace(
                secret_form(CLIENT, SECRET, "api://weather/.default"),
                "grant_type",
                Some("password"),
            ),
            status: 400,
            error: "unsupported_grant_type",
            code: 70003,
        },
        Case {
            name: "scope without /.default",
            url: None,
            form: secret_form(CLIENT, SECRET, "api://weather/weather.read"),
            status: 400,
            error: "invalid_scope",
            code: 1002012,
        },
        Case {
            name: "unknown resource",
            url: None,
            form: secret_form(CLIENT, SECRET, "api://unknown/.default"),
            status: 400,
            error: "invalid_resource",
            code: 500011,
        },
        Case {
            name: "unknown client (secret)",
            url: None,
            form: secret_form(
                "99999999-0000-4000-8000-000000000000",
                SECRET,
                "api://weather/.default",
            ),
            status: 400,
            error: "unauthorized_client",
            code: 700016,
        },
        Case {
            name: "unknown client (assertion)",
            url: None,
            form: replace(
                cert_form(ps256(&f.claims())),
                "client_id",
                Some("99999999-0000-4000-8000-000000000000"),
            ),
            status: 400,
            error: "unauthorized_client",
            code: 700016,
        },
        Case {
            name: "no credential",
            url: None,
            form: replace(
                secret_form(CLIENT, SECRET, "api://weather/.default"),
                "client_secret",
                None,
            ),
            status: 401,
            error: "invalid_client",
            code: 7000218,
        },
        Case {
            name: "wrong secret",
            url: None,
            form: secret_form(CLIENT, "not-the-secret", "api://weather/.default"),
            status: 401,
            error: "invalid_client",
            code: 7000215,
        },
        Case {
            name: "unregistered certificate",
            url: None,
            form: cert_form({
                let mut header = Header::new(Algorithm::PS256);
                header.x5t_s256 = Some(f.unregistered.x5t_s256.clone());
                let key = EncodingKey::from_rsa_pem(f.unregistered.key_pem.as_bytes()).unwrap();
                jsonwebtoken::encode(&header, &f.claims(), &key).unwrap()
            }),
            status: 401,
            error: "invalid_client",
            code: 700027,
        },
        Case {
            name: "registered thumbprint, signed with another key",
            url: None,
            form: cert_form({
                let mut header = Header::new(Algorithm::PS256);
                header.x5t_s256 = Some(f.cert.x5t_s256.clone());
                let key = EncodingKey::from_rsa_pem(f.unregistered.key_pem.as_bytes()).unwrap();
                jsonwebtoken::encode(&header, &f.claims(), &key).unwrap()
            }),
            status: 401,
            error: "invalid_client",
            code: 700027,
        },
        Case {
            name: "tampered payload",
            url: None,
            form: cert_form({
                let token = ps256(&f.claims());
                let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
                let mut claims: Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
                claims["exp"] = json!(now + 6000);
                parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
                parts.join(".")
            }),
            status: 401,
            error: "invalid_client",
            code: 700027,
        },
        Case {
            name: "expired assertion",
            url: None,
            form: cert_form(ps256(&with(&[
                ("nbf", json!(now - 1800)),
                ("iat", json!(now - 1800)),
                ("exp", json!(now - 1200)),
            ]))),
            status: 401,
            error: "invalid_client",
            code: 700024,
        },
        Case {
            name: "assertion not yet valid",
            url: None,
            form: cert_form(ps256(&with(&[
                ("nbf", json!(now + 1200)),
                ("iat", json!(now + 1200)),
                ("exp", json!(now + 1800)),
            ]))),
            status: 401,
            error: "invalid_client",
            code: 700024,
        },
        Case {
            name: "assertion valid for a month",
            url: None,
            form: cert_form(ps256(&with(&[("exp", json!(now + 30 * 86_400))]))),
            status: 401,
            error: "invalid_client",
            code: 700024,
        },
        Case {
            name: "aud is the authority, not the token endpoint",
            url: None,
            form: cert_form(ps256(&with(&[("aud", json!(f.authority.authority()))]))),
            status: 401,
            error: "invalid_client",
            code: 700023,
        },
        Case {
            name: "aud is the v1 endpoint while posting to v2",
            url: None,
            form: cert_form(ps256(&with(&[(
                "aud",
                json!(format!("{base}{TENANT}/oauth2/token")),
            )]))),
            status: 401,
            error: "invalid_client",
            code: 700023,
        },
        Case {
            name: "iss is another client",
            url: None,
            form: cert_form(ps256(&with(&[
                ("iss", json!(NO_ROLES_CLIENT)),
                ("sub", json!(NO_ROLES_CLIENT)),
            ]))),
            status: 401,
            error: "invalid_client",
            code: 700021,
        },
        Case {
            name: "sub differs from iss",
            url: None,
            form: cert_form(ps256(&with(&[("sub", json!(NO_ROLES_CLIENT))]))),
            status: 401,
            error: "invalid_client",
            code: 50048,
        },
        Case {
            name: "malformed assertion",
            url: None,
            form: cert_form("not.a.jwt-at-all".into()),
            status: 400,
            error: "invalid_request",
            code: 50027,
        },
        Case {
            name: "wrong client_assertion_type",
            url: None,
            form: replace(
                cert_form(ps256(&f.claims())),
                "client_assertion_type",
                Some("urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
            ),
            status: 400,
            error: "invalid_request",
            code: 50027,
        },
    ];
    for case in cases {
        let url = case
            .url
            .clone()
            .unwrap_or_else(|| f.authority.token_endpoint());
        let (status, body) = f.post(&url, &case.form).await;
        assert_eq!(status.as_u16(), case.status, "{}: {body}", case.name);
        assert_eq!(body["error"], case.error, "{}: {body}", case.name);
        assert_eq!(
            body["error_codes"],
            json!([case.code]),
            "{}: {body}",
            case.name
        );
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.starts_with(&format!("AADSTS{}: ", case.code)),
            "{}: {description}",
            case.name
        );
        for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
            assert!(body[field].is_string(), "{}: {field}", case.name);
        }
    }
}

#[tokio::test]
async fn with_assertion_reuse_refused_an_assertion_is_accepted_once() {
    let f = fixture_with(AssertionReuse::Refuse).await;
    let assertion = f.jsonwebtoken_assertion(Algorithm::PS256, &f.claims());
    let (first, _) = f.post_token(&f.certificate_form(assertion.clone())).await;
    assert_eq!(first, 200);
    let (second, body) = f.post_token(&f.certificate_form(assertion)).await;
    assert_eq!(second, 400, "{body}");
    assert_eq!(body["error_codes"], json!([50027]));
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("replay"));
    // A fresh jti is fine.
    let fresh = f.jsonwebtoken_assertion(Algorithm::PS256, &f.claims());
    assert_eq!(f.post_token(&f.certificate_form(fresh)).await.0, 200);
}

#[tokio::test]
async fn assertion_lifetime_follows_the_injected_clock() {
    let f = fixture().await;
    // Two assertions made at the same moment, with different jti.
    let early = f.jsonwebtoken_assertion(Algorithm::PS256, &f.claims());
    let late = f.jsonwebtoken_assertion(Algorithm::PS256, &f.claims());
    assert_eq!(f.post_token(&f.certificate_form(early)).await.0, 200);
    // exp is now + 600; with 5 minutes of skew it is refused 16 minutes later.
    f.clock.advance(Duration::from_secs(16 * 60));
    let (status, body) = f.post_token(&f.certificate_form(late)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_codes"], json!([700024]));
}

#[tokio::test]
async fn secrets_get_tokens_with_azpacr_1_and_basic_auth_works() {
    let f = fixture().await;
    let form = vec![
        ("client_id", CLIENT.to_owned()),
        ("client_secret", SECRET.to_owned()),
        ("scope", format!("{WEATHER_API}/.default")),
        ("grant_type", "client_credentials".to_owned()),
    ];
    let (status, body) = f.post_token(&form).await;
    assert_eq!(status, 200, "{body}");
    let claims = f
        .verify(
            body["access_token"].as_str().unwrap(),
            WEATHER_API,
            &f.authority.issuer(TokenVersion::V2),
        )
        .await;
    assert_eq!(claims["azpacr"], "1");
    assert_eq!(claims["azp"], CLIENT);

    let response = f
        .http
        .post(f.authority.token_endpoint())
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[
            ("scope", "api://weather/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "client_secret_basic");
}

#[tokio::test]
async fn roles_claim_is_absent_when_nothing_was_granted() {
    let f = fixture().await;
    let form = vec![
        ("client_id", NO_ROLES_CLIENT.to_owned()),
        ("client_secret", SECRET.to_owned()),
        ("scope", "api://weather/.default".to_owned()),
        ("grant_type", "client_credentials".to_owned()),
    ];
    let (status, body) = f.post_token(&form).await;
    assert_eq!(status, 200, "{body}");
    let claims = f
        .verify(
            body["access_token"].as_str().unwrap(),
            WEATHER_API,
            &f.authority.issuer(TokenVersion::V2),
        )
        .await;
    assert!(claims.get("roles").is_none(), "{claims}");
    assert_eq!(claims["azp"], NO_ROLES_CLIENT);
}

#[tokio::test]
async fn v1_apis_get_v1_tokens() {
    let f = fixture().await;
    // v2 endpoint, v1 API: the token is v1 (the API decides), aud is the resource as named.
    let mut form = f.certificate_form(f.jsonwebtoken_assertion(Algorithm::PS256, &f.claims()));
    form.retain(|(k, _)| *k != "scope");
    form.push(("scope", "api://legacy/.default".into()));
    let (status, body) = f.post_token(&form).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let header = header_of(token);
    assert_eq!(header["x5t"], header["kid"], "v1 tokens carry x5t = kid");
    let issuer = f.authority.issuer(TokenVersion::V1);
    assert_eq!(issuer, format!("{}{TENANT}/", f.authority.instance()));
    let claims = f.verify(token, "api://legacy", &issuer).await;
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["appid"], CLIENT);
    assert_eq!(claims["appidacr"], "2");
    assert_eq!(claims["idp"], issuer);
    assert_eq!(claims["roles"], json!(["legacy.read"]));
    assert_eq!(claims["sub"], claims["oid"]);
    assert_eq!(claims["tid"], TENANT);
    for absent in ["azp", "azpacr"] {
        assert!(claims.get(absent).is_none(), "{absent}");
    }

    // The v1 endpoint: `resource`, assertion aud = the v1 endpoint, string numbers.
    let v1_endpoint = format!("{}{TENANT}/oauth2/token", f.authority.instance());
    let mut claims = f.claims();
    claims["aud"] = json!(v1_endpoint);
    let form = vec![
        ("client_id", CLIENT.to_owned()),
        ("client_assertion_type", ASSERTION_TYPE.to_owned()),
        (
            "client_assertion",
            f.jsonwebtoken_assertion(Algorithm::RS256, &claims),
        ),
        ("resource", LEGACY_API.to_owned()),
        ("grant_type", "client_credentials".to_owned()),
    ];
    let (status, body) = f.post(&v1_endpoint, &form).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["expires_in"].is_string(),
        "v1 answers numbers as strings"
    );
    assert_eq!(body["resource"], LEGACY_API);
    let claims = f
        .verify(body["access_token"].as_str().unwrap(), LEGACY_API, &issuer)
        .await;
    assert_eq!(
        claims["aud"], LEGACY_API,
        "aud is the resource as requested"
    );
}

#[tokio::test]
async fn issue_token_mints_without_http() {
    let f = fixture().await;
    let default = f
        .authority
        .issue_token(&IssueToken::new(CLIENT, "api://weather"))
        .unwrap();
    let claims = f
        .verify(&default, WEATHER_API, &f.authority.issuer(TokenVersion::V2))
        .await;
    assert_eq!(
        claims["roles"],
        json!(["service-api"]),
        "granted roles by default"
    );
    assert_eq!(claims["azpacr"], "2");

    let custom = f
        .authority
        .issue_token(
            &IssueToken::new(CLIENT, "api://weather")
                .roles(["weather.read"])
                .version(TokenVersion::V1)
                .client_authentication(ClientAuthentication::Secret)
                .lifetime(Duration::from_secs(600))
                .claim("idtyp", "app")
                .without_claim("aio"),
        )
        .unwrap();
    let claims = f
        .verify(
            &custom,
            "api://weather",
            &f.authority.issuer(TokenVersion::V1),
        )
        .await;
    assert_eq!(claims["roles"], json!(["weather.read"]));
    assert_eq!(claims["appidacr"], "1");
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["exp"], f.now() + 600);
    assert!(claims.get("aio").is_none());

    let none = f
        .authority
        .issue_token(&IssueToken::new(CLIENT, "api://weather").roles(Vec::<String>::new()))
        .unwrap();
    let claims = f
        .verify(&none, WEATHER_API, &f.authority.issuer(TokenVersion::V2))
        .await;
    assert!(claims.get("roles").is_none());

    assert!(f
        .authority
        .issue_token(&IssueToken::new(CLIENT, "api://nope"))
        .is_err());
}

#[tokio::test]
async fn signing_keys_rotate_on_demand() {
    let f = fixture().await;
    let first_kid = f.authority.signing_key_ids()[0].clone();
    let old_token = f
        .authority
        .issue_token(&IssueToken::new(CLIENT, "api://weather"))
        .unwrap();

    let second_kid = f.authority.rotate_signing_key(KeepOld::Yes).unwrap();
    assert_ne!(first_kid, second_kid);
    let kids: Vec<String> = f
        .jwks()
        .await
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(
        kids,
        vec![second_kid.clone(), first_kid.clone()],
        "new key first, old kept"
    );
    let new_token = f
        .authority
        .issue_token(&IssueToken::new(CLIENT, "api://weather"))
        .unwrap();
    assert_eq!(header_of(&new_token)["kid"], second_kid.as_str());
    let issuer = f.authority.issuer(TokenVersion::V2);
    f.verify(&old_token, WEATHER_API, &issuer).await;
    f.verify(&new_token, WEATHER_API, &issuer).await;

    let third_kid = f.authority.rotate_signing_key(KeepOld::No).unwrap();
    let jwks = f.jwks().await;
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(
        jwks.keys[0].common.key_id.as_deref(),
        Some(third_kid.as_str())
    );
    assert!(jwks.find(&first_kid).is_none(), "old keys dropped");
    assert!(jwks.find(&second_kid).is_none(), "old keys dropped");
}

#[tokio::test]
async fn counters_and_injected_faults() {
    let f = fixture().await;
    assert_eq!(f.authority.request_count(Endpoint::Metadata), 0);
    f.get(&f.authority.metadata_url()).await;
    f.get(&f.authority.v1_metadata_url()).await;
    f.get(&f.authority.jwks_uri()).await;
    assert_eq!(f.authority.request_count(Endpoint::Metadata), 2);
    assert_eq!(f.authority.request_count(Endpoint::Jwks), 1);
    assert_eq!(f.authority.request_count(Endpoint::Token), 0);

    f.authority.inject_fault(
        Endpoint::Token,
        Fault::fail(StatusCode::SERVICE_UNAVAILABLE).times(2),
    );
    f.authority.inject_fault(
        Endpoint::Token,
        Fault::fail(StatusCode::TOO_MANY_REQUESTS).retry_after(7),
    );
    let form = || {
        vec![
            ("client_id", CLIENT.to_owned()),
            ("client_secret", SECRET.to_owned()),
            ("scope", "api://weather/.default".to_owned()),
            ("grant_type", "client_credentials".to_owned()),
        ]
    };
    for attempt in 0..2 {
        let (status, body) = f.post_token(&form()).await;
        assert_eq!(status, 503, "attempt {attempt}");
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    let response = f
        .http
        .post(f.authority.token_endpoint())
        .form(&form())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(f.post_token(&form()).await.0, 200, "faults are used up");
    assert_eq!(f.authority.request_count(Endpoint::Token), 4);
    assert_eq!(
        f.authority.request_count(Endpoint::Metadata),
        2,
        "other endpoints untouched"
    );

    // A delay alone answers normally; cleared faults do not fire.
    f.authority
        .inject_fault(Endpoint::Jwks, Fault::delay(Duration::from_millis(1)));
    assert_eq!(f.get(&f.authority.jwks_uri()).await.0, 200);
    f.authority.inject_fault(
        Endpoint::Metadata,
        Fault::fail(StatusCode::INTERNAL_SERVER_ERROR).times(5),
    );
    f.authority.clear_faults();
    assert_eq!(f.get(&f.authority.metadata_url()).await.0, 200);
    f.authority.reset_request_counts();
    assert_eq!(f.authority.request_count(Endpoint::Metadata), 0);
}

#[tokio::test]
async fn hostile_requests_get_errors_not_crashes() {
    let f = fixture().await;
    let big = "a".repeat(200 * 1024);
    let response = f
        .http
        .post(f.authority.token_endpoint())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion", big.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    for body in ["", "%%%", "grant_type", "client_assertion=a.b.c&grant_type=client_credentials&scope=api://weather/.default&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer"] {
        let response = f
            .http
            .post(f.authority.token_endpoint())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{body:?}: {}", response.status());
        let json: Value = response.json().await.unwrap();
        assert!(json["error_codes"].is_array(), "{body:?}");
    }
    // The authority still works.
    assert_eq!(f.get(&f.authority.metadata_url()).await.0, 200);
}

#[tokio::test]
async fn tls_mode_serves_https() {
    let server_cert = generate_tls_certificate(["127.0.0.1", "localhost"]).unwrap();
    let authority = DevAuthority::builder()
        .tls(server_cert.cert_pem.clone(), server_cert.key_pem.clone())
        .start()
        .await
        .unwrap();
    assert!(authority.instance().starts_with("https://127.0.0.1:"));
    let trusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server_cert.cert_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let response = trusting.get(authority.metadata_url()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(
        metadata["issuer"],
        format!(
            "https://{}/{}/v2.0",
            authority.local_addr(),
            authority.tenant_id()
        )
    );

    // A client that does not trust the certificate is refused by TLS.
    let other = generate_tls_certificate(["127.0.0.1"]).unwrap();
    let distrusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(other.cert_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    assert!(distrusting
        .get(authority.metadata_url())
        .send()
        .await
        .is_err());
    // And the authority keeps serving after the failed handshake.
    assert_eq!(
        trusting
            .get(authority.jwks_uri())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    authority.shutdown().await;
}

#[tokio::test]
async fn registration_file_with_certificate_files() {
    let dir = std::env::temp_dir().join(format!("dev-authority-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    let cert = generate_certificate("CN=file-client").unwrap();
    std::fs::write(dir.join("certs/client.pem"), cert.combined_pem()).unwrap();
    let registration = json!({
        "tenantId": TENANT,
        "tokenLifetimeSeconds": 1800,
        "apis": [{
            "clientId": WEATHER_API, "appIdUri": "api://weather",
            "appRoles": ["service-api"], "requestedAccessTokenVersion": 2
        }],
        "applications": [{
            "clientId": CLIENT, "displayName": "file-client",
            "certificateFiles": ["certs/client.pem"],
            "grants": {"api://weather": ["service-api"]}
        }]
    });
    let path = dir.join("registration.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&registration).unwrap()).unwrap();

    let authority = DevAuthority::builder()
        .from_registration_file(&path)
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(authority.tenant_id(), TENANT);
    let now = tower_azure_auth::clock::SystemClock.unix_seconds() as i64;
    let mut header = Header::new(Algorithm::PS256);
    header.x5t_s256 = Some(cert.x5t_s256.clone());
    let assertion = jsonwebtoken::encode(
        &header,
        &json!({"aud": authority.token_endpoint(), "iss": CLIENT, "sub": CLIENT,
            "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "exp": now + 600}),
        &EncodingKey::from_rsa_pem(cert.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let response = reqwest::Client::new()
        .post(authority.token_endpoint())
        .form(&[
            ("client_id", CLIENT),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
            ("scope", "api://weather/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 1800, "tokenLifetimeSeconds");

    // Typos are refused, missing certificate files are named.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "applicatons": []}"#,
    )
    .unwrap();
    let error = DevAuthority::builder()
        .from_registration_file(&bad)
        .unwrap_err();
    assert!(error.to_string().contains("bad.json"), "{error}");
    let missing = dir.join("missing.json");
    std::fs::write(
        &missing,
        serde_json::to_vec(
            &json!({"applications": [{"clientId": CLIENT, "certificateFiles": ["nope.pem"]}]}),
        )
        .unwrap(),
    )
    .unwrap();
    let error = DevAuthority::builder()
        .from_registration_file(&missing)
        .unwrap_err();
    assert!(error.to_string().contains("nope.pem"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_server() {
    let f = fixture().await;
    let url = f.authority.metadata_url();
    let clone = f.authority.clone();
    assert_eq!(f.get(&url).await.0, 200);
    clone.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(
        fresh.get(&url).send().await.is_err(),
        "stopped after shutdown"
    );

    let dropped = DevAuthority::builder().start().await.unwrap();
    let url = dropped.metadata_url();
    assert_eq!(fresh.get(&url).send().await.unwrap().status(), 200);
    drop(dropped);
    // Dropping signals the server; it stops once the signal is seen. Poll without sleeping
    // on a timer: yield to the runtime until the port refuses connections.
    let mut stopped = false;
    for _ in 0..1000 {
        if reqwest::Client::new().get(&url).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(stopped, "stopped after the last handle was dropped");
}

#[tokio::test]
async fn debug_output_has_no_secrets() {
    let f = fixture().await;
    let debug = format!("{:?}", f.authority);
    assert!(debug.contains(TENANT));
    assert!(!debug.contains("PRIVATE"));
    let app = DevApplication::new(CLIENT).secret(SECRET);
    assert!(!format!("{app:?}").contains(SECRET));
    assert!(!format!("{:?}", f.cert).contains("PRIVATE KEY"));
}

/// The certificate form for `assertion`, asking for `scope`.
fn form_for_scope(f: &Fixture, assertion: &str, scope: &str) -> Vec<(&'static str, String)> {
    let mut form = f.certificate_form(assertion.to_owned());
    form.retain(|(name, _)| *name != "scope");
    form.push(("scope", scope.to_owned()));
    form
}

#[tokio::test]
async fn a_reused_assertion_gets_tokens_for_two_apis() {
    // MSAL signs one assertion and sends it with every token request until it nears expiry;
    // Entra accepts it, and so does the dev authority by default.
    let f = fixture().await;
    let assertion = f.jsonwebtoken_assertion(Algorithm::PS256, &f.claims());
    let (weather, body) = f
        .post_token(&form_for_scope(&f, &assertion, "api://weather/.default"))
        .await;
    assert_eq!(weather, 200, "{body}");
    let claims = f
        .verify(
            body["access_token"].as_str().unwrap(),
            WEATHER_API,
            &f.authority.issuer(TokenVersion::V2),
        )
        .await;
    assert_eq!(claims["azp"], CLIENT);
    let (legacy, body) = f
        .post_token(&form_for_scope(&f, &assertion, "api://legacy/.default"))
        .await;
    assert_eq!(
        legacy, 200,
        "the second use of the assertion was refused: {body}"
    );
    let claims = f
        .verify(
            body["access_token"].as_str().unwrap(),
            "api://legacy",
            &f.authority.issuer(TokenVersion::V1),
        )
        .await;
    assert_eq!(claims["appid"], CLIENT);
    // Until it expires: exp is now + 600, with five minutes of skew.
    f.clock.advance(Duration::from_secs(600 + 300));
    let (again, body) = f
        .post_token(&form_for_scope(&f, &assertion, "api://weather/.default"))
        .await;
    assert_eq!(again, 200, "{body}");
    f.clock.advance(Duration::from_secs(1));
    let (expired, body) = f
        .post_token(&form_for_scope(&f, &assertion, "api://weather/.default"))
        .await;
    assert_eq!(expired, 401, "{body}");
    assert_eq!(body["error_codes"], json!([700024]));
}

#[tokio::test]
async fn with_assertion_reuse_refused_the_second_api_gets_aadsts50027() {
    let f = fixture_with(AssertionReuse::Refuse).await;
    let assertion = f.jsonwebtoken_assertion(Algorithm::PS256, &f.claims());
    let (weather, body) = f
        .post_token(&form_for_scope(&f, &assertion, "api://weather/.default"))
        .await;
    assert_eq!(weather, 200, "{body}");
    let (legacy, body) = f
        .post_token(&form_for_scope(&f, &assertion, "api://legacy/.default"))
        .await;
    assert_eq!(legacy, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["error_codes"], json!([50027]));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used (replay)"),
        "{body}"
    );
}

#[tokio::test]
async fn registration_file_sets_assertion_reuse() {
    let dir = std::env::temp_dir().join(format!("dev-authority-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = generate_certificate("CN=file-client").unwrap();
    let registration = |reuse: &str| {
        json!({
            "tenantId": TENANT,
            "assertionReuse": reuse,
            "apis": [{"clientId": WEATHER_API, "appIdUri": "api://weather"}],
            "applications": [{"clientId": CLIENT, "certificatePems": [cert.cert_pem]}]
        })
    };
    struct Case {
        name: &'static str,
        reuse: &'static str,
        second_use: u16,
    }
    let cases = [
        Case {
            name: "withinLifetime",
            reuse: "withinLifetime",
            second_use: 200,
        },
        Case {
            name: "refuse",
            reuse: "refuse",
            second_use: 400,
        },
    ];
    for case in cases {
        let path = dir.join(format!("{}.json", case.name));
        std::fs::write(&path, registration(case.reuse).to_string()).unwrap();
        // The file's setting replaces the builder's.
        let authority = DevAuthority::builder()
            .assertion_reuse(AssertionReuse::Refuse)
            .assertion_reuse(AssertionReuse::WithinLifetime)
            .from_registration_file(&path)
            .unwrap()
            .start()
            .await
            .unwrap();
        let now = tower_azure_auth::clock::SystemClock.unix_seconds() as i64;
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = Some(cert.x5t_s256.clone());
        let assertion = jsonwebtoken::encode(
            &header,
            &json!({"aud": authority.token_endpoint(), "iss": CLIENT, "sub": CLIENT,
                "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "exp": now + 600}),
            &EncodingKey::from_rsa_pem(cert.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
        let form = [
            ("client_id", CLIENT),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
            ("scope", "api://weather/.default"),
            ("grant_type", "client_credentials"),
        ];
        let http = reqwest::Client::new();
        let first = http.post(authority.token_endpoint()).form(&form).send();
        assert_eq!(first.await.unwrap().status(), 200, "{}", case.name);
        let second = http.post(authority.token_endpoint()).form(&form).send();
        assert_eq!(
            second.await.unwrap().status().as_u16(),
            case.second_use,
            "{}",
            case.name
        );
        authority.shutdown().await;
    }
    let bad = dir.join("bad.json");
    std::fs::write(&bad, registration("never").to_string()).unwrap();
    let error = DevAuthority::builder()
        .from_registration_file(&bad)
        .unwrap_err();
    assert!(
        tower_azure_auth::error::error_chain(&error).contains("never"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn start_up_errors_are_the_dev_authoritys_own_and_say_what_failed() {
    use entra_dev_authority::DevAuthorityError;

    // An address already in use: the error names it and keeps the OS error as its source.
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let error = DevAuthority::builder()
        .bind(addr)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DevAuthorityError::Listen { addr: a, source } if *a == addr && source.kind() == std::io::ErrorKind::AddrInUse),
        "{error:?}"
    );
    assert!(error.to_string().contains(&addr.to_string()), "{error}");

    // A registration that is not usable names what was given.
    let error = DevAuthority::builder()
        .application(DevApplication::new("not-a-guid"))
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DevAuthorityError::Invalid { key, reason } if key == "DevApplication:ClientId" && reason.contains("not-a-guid")),
        "{error:?}"
    );

    // A PEM without a certificate, and a registration file that does not exist.
    let error = DevApplication::new("0b7c5d2e-0000-4000-8000-000000000002")
        .certificate_pem("not a pem")
        .unwrap_err();
    assert!(
        matches!(&error, DevAuthorityError::Invalid { key, .. } if key == "certificate"),
        "{error:?}"
    );
    let missing = std::env::temp_dir().join("no-such-registrations.json");
    let error = DevAuthority::builder()
        .from_registration_file(&missing)
        .unwrap_err();
    assert!(
        matches!(&error, DevAuthorityError::Io { path, .. } if path == &missing),
        "{error:?}"
    );
}
