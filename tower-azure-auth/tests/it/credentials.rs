//! Certificate loading (every format and every refusal) and client assertions verified with
//! an independent JWT library.

use crate::credentials_support as support;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation};
use p12_keystore::EncryptionAlgorithm;
use serde_json::Value;
use support::*;
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::credentials::{
    thumbprints, AssertionAlgorithm, AssertionRequest, CertificateError, CertificateLoader,
    ClientCertificate, ClientCredential, CredentialDescriptions,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The clock for loading: 2030, inside every test certificate's validity.
fn loader() -> CertificateLoader {
    CertificateLoader::new().clock(Arc::new(ManualClock::at_unix(1_900_000_000)))
}

fn kind(result: &Result<ClientCertificate, CertificateError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => format!("{e:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

#[test]
fn pem_formats_and_refusals() {
    let good = rsa_cert("pem-client");
    let other = rsa_cert("other");
    let expired = rsa_cert_valid("expired", (2001, 1, 1), (2002, 1, 1));
    let future = rsa_cert_valid("future", (2090, 1, 1), (2095, 1, 1));
    let ec_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_cert = rcgen::CertificateParams::new(vec!["ec".into()])
        .unwrap()
        .self_signed(&ec_key)
        .unwrap();
    let pkcs1 = pem("RSA PRIVATE KEY", &pkcs1_from_pkcs8(&good.key_pkcs8_der));

    struct Case {
        name: &'static str,
        pem: String,
        expected: &'static str,
        message: &'static str,
    }
    let cases = [
        Case {
            name: "certificate + PKCS#8 key",
            pem: good.combined_pem(),
            expected: "ok",
            message: "",
        },
        Case {
            name: "key first, then certificate",
            pem: format!("{}{}", good.key_pkcs8_pem, good.cert_pem),
            expected: "ok",
            message: "",
        },
        Case {
            name: "certificate + PKCS#1 key",
            pem: format!("{}{pkcs1}", good.cert_pem),
            expected: "ok",
            message: "",
        },
        Case {
            name: "certificate only",
            pem: good.cert_pem.clone(),
            expected: "NoPrivateKey",
            message: "no private key found for the certificate `CN=pem-client`",
        },
        Case {
            name: "key only",
            pem: good.key_pkcs8_pem.clone(),
            expected: "NotACertificate",
            message: "not a certificate",
        },
        Case {
            name: "someone else's key",
            pem: format!("{}{}", good.cert_pem, other.key_pkcs8_pem),
            expected: "KeyMismatch",
            message: "does not match the certificate `CN=pem-client`",
        },
        Case {
            name: "not PEM at all",
            pem: "hello".into(),
            expected: "NotACertificate",
            message: "not a certificate",
        },
        Case {
            name: "broken base64",
            pem: "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".into(),
            expected: "Pem",
            message: "malformed PEM",
        },
        Case {
            name: "EC certificate and key",
            pem: format!("{}{}", ec_cert.pem(), ec_key.serialize_pem()),
            expected: "UnsupportedKeyType",
            message: "only RSA keys",
        },
        Case {
            name: "expired",
            pem: expired.combined_pem(),
            expected: "Expired",
            message: "the certificate `CN=expired` expired at",
        },
        Case {
            name: "not yet valid",
            pem: future.combined_pem(),
            expected: "NotYetValid",
            message: "is not valid before",
        },
        Case {
            name: "1024-bit key (openssl)",
            pem: std::fs::read_to_string(data("rsa1024.pem")).unwrap(),
            expected: "KeyTooSmall",
            message: "the RSA key has 1024 bits; at least 2048 are required",
        },
        Case {
            name: "encrypted PKCS#8 key (openssl)",
            pem: std::fs::read_to_string(data("encrypted-key.pem")).unwrap(),
            expected: "EncryptedPemKey",
            message: "encrypted",
        },
        Case {
            name: "PKCS#1 key from openssl",
            pem: format!(
                "{}{}",
                std::fs::read_to_string(data("legacy.crt")).unwrap(),
                std::fs::read_to_string(data("legacy-pkcs1.key")).unwrap()
            ),
            expected: "ok",
            message: "",
        },
    ];
    for case in cases {
        let result = loader().from_pem(case.pem.as_bytes());
        assert_eq!(kind(&result), case.expected, "{}: {result:?}", case.name);
        if let Err(e) = &result {
            let text = e.to_string();
            assert!(text.contains(case.message), "{}: {text}", case.name);
            assert!(
                !text.contains("BEGIN"),
                "{}: no key material in messages: {text}",
                case.name
            );
        }
    }
}

#[test]
fn separate_pem_files_and_from_file() {
    let good = rsa_cert("files");
    let dir = std::env::temp_dir().join(format!("taa-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("c.crt"), &good.cert_pem).unwrap();
    std::fs::write(dir.join("c.key"), &good.key_pkcs8_pem).unwrap();
    std::fs::write(dir.join("both.pem"), good.combined_pem()).unwrap();
    let from_files = loader()
        .from_pem_files(dir.join("c.crt"), dir.join("c.key"))
        .unwrap();
    let from_file = loader().from_file(dir.join("both.pem"), None).unwrap();
    assert_eq!(from_files.der(), good.cert_der.as_slice());
    assert_eq!(from_file.thumbprints(), from_files.thumbprints());
    let missing = loader().from_file(dir.join("nope.pfx"), None).unwrap_err();
    assert!(
        matches!(missing, CertificateError::Io { .. }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("nope.pfx"), "{missing}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A new user's `cannot read `certs/caller.pfx`` said neither why nor, for a wrong password,
/// which file: the message now names the file and carries the operating system's cause.
#[test]
fn certificate_file_errors_name_the_file_and_the_os_cause() {
    let good = rsa_cert("caller");
    let dir = std::env::temp_dir().join(format!("taa-pfx-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pfx = dir.join("caller.pfx");
    std::fs::write(
        &pfx,
        pkcs12(
            &good.cert_der,
            Some(&good.key_pkcs8_der),
            "right",
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
        ),
    )
    .unwrap();
    let missing = dir.join("missing.pfx");
    let os_cause = std::fs::read(&missing).unwrap_err().to_string();

    struct Case {
        name: &'static str,
        result: Result<ClientCertificate, CertificateError>,
        message: String,
    }
    let cases = [
        Case {
            name: "missing file",
            result: ClientCertificate::from_file(&missing, None),
            message: format!("cannot read {}: {os_cause}", missing.display()),
        },
        Case {
            name: "missing key file of a PEM pair",
            result: loader().from_pem_files(&pfx, &missing),
            message: format!("cannot read {}: {os_cause}", missing.display()),
        },
        Case {
            name: "wrong password",
            result: loader().from_file(&pfx, Some("wrong")),
            message: format!(
                "{}: the PKCS#12 password is wrong (or the file is damaged)",
                pfx.display()
            ),
        },
        Case {
            name: "no password",
            result: loader().from_file(&pfx, None),
            message: format!(
                "the PKCS#12 file {} is protected by a password and none was given (set CertificatePassword)",
                pfx.display()
            ),
        },
    ];
    for case in cases {
        let error = case.result.expect_err(case.name);
        assert_eq!(error.to_string(), case.message, "{}", case.name);
    }
    // The OS cause is in the message, so it is not also the source (printed twice otherwise).
    let error = ClientCertificate::from_file(&missing, None).unwrap_err();
    assert!(std::error::Error::source(&error).is_none(), "{error:?}");
    assert!(
        matches!(&error, CertificateError::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
    // In memory there is no file to name.
    let der = std::fs::read(&pfx).unwrap();
    assert_eq!(
        loader()
            .from_pkcs12(&der, Some("wrong"))
            .unwrap_err()
            .to_string(),
        "the PKCS#12 password is wrong (or the file is damaged)"
    );
    assert!(loader().from_file(&pfx, Some("right")).is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pkcs12_formats_and_refusals() {
    let good = rsa_cert("pfx-client");
    let other = rsa_cert("other");
    let aes = |password: &str| {
        pkcs12(
            &good.cert_der,
            Some(&good.key_pkcs8_der),
            password,
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
        )
    };
    let triple_des = pkcs12(
        &good.cert_der,
        Some(&good.key_pkcs8_der),
        "pw",
        EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
    );
    let mismatched = pkcs12(
        &good.cert_der,
        Some(&other.key_pkcs8_der),
        "pw",
        EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
    );
    let cert_only = pkcs12(
        &good.cert_der,
        None,
        "pw",
        EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
    );
    let expired = rsa_cert_valid("old", (2001, 1, 1), (2002, 1, 1));
    let expired = pkcs12(
        &expired.cert_der,
        Some(&expired.key_pkcs8_der),
        "pw",
        EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
    );
    let legacy = std::fs::read(data("legacy-3des.pfx")).unwrap();
    let no_password = std::fs::read(data("no-password.pfx")).unwrap();

    struct Case {
        name: &'static str,
        der: Vec<u8>,
        password: Option<&'static str>,
        expected: &'static str,
    }
    let cases = [
        Case {
            name: "AES-256 (PBES2) with a password",
            der: aes("secret"),
            password: Some("secret"),
            expected: "ok",
        },
        Case {
            name: "AES with an empty password, given as empty",
            der: aes(""),
            password: Some(""),
            expected: "ok",
        },
        Case {
            name: "AES with an empty password, given as none",
            der: aes(""),
            password: None,
            expected: "ok",
        },
        Case {
            name: "3DES written by p12-keystore",
            der: triple_des.clone(),
            password: Some("pw"),
            expected: "ok",
        },
        Case {
            name: "legacy 3DES written by openssl",
            der: legacy.clone(),
            password: Some("legacy-password"),
            expected: "ok",
        },
        Case {
            name: "no password at all (openssl -nomac, NONE)",
            der: no_password,
            password: None,
            expected: "ok",
        },
        Case {
            name: "wrong password",
            der: aes("secret"),
            password: Some("nope"),
            expected: "WrongPassword",
        },
        Case {
            name: "wrong password, legacy",
            der: legacy,
            password: Some("nope"),
            expected: "WrongPassword",
        },
        Case {
            name: "password needed, none given",
            der: triple_des,
            password: None,
            expected: "PasswordRequired",
        },
        Case {
            name: "not PKCS#12",
            der: b"definitely not DER".to_vec(),
            password: None,
            expected: "NotPkcs12",
        },
        Case {
            name: "a certificate is not a PKCS#12",
            der: good.cert_der.clone(),
            password: None,
            expected: "NotPkcs12",
        },
        Case {
            name: "key of another certificate",
            der: mismatched,
            password: Some("pw"),
            expected: "KeyMismatch",
        },
        Case {
            name: "certificate without key",
            der: cert_only,
            password: Some("pw"),
            expected: "NoPrivateKey",
        },
        Case {
            name: "expired",
            der: expired,
            password: Some("pw"),
            expected: "Expired",
        },
    ];
    for case in cases {
        let result = loader().from_pkcs12(&case.der, case.password);
        assert_eq!(kind(&result), case.expected, "{}: {result:?}", case.name);
    }
}

#[test]
fn base64_pkcs12() {
    let good = rsa_cert("b64");
    let der = pkcs12(
        &good.cert_der,
        Some(&good.key_pkcs8_der),
        "",
        EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    // Line breaks, as pasted from a file, are fine.
    let wrapped: String = b64
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let certificate = loader().from_base64_pkcs12(&wrapped, None).unwrap();
    assert_eq!(certificate.der(), good.cert_der.as_slice());
    let error = loader()
        .from_base64_pkcs12("not base64 ***", None)
        .unwrap_err();
    assert!(matches!(error, CertificateError::Base64), "{error:?}");
}

#[test]
fn thumbprints_match_openssl() {
    // Fingerprints printed by `openssl x509 -fingerprint` (tests/data/README.md).
    let sha1 = "3CE5D52163C3C00032AC0836CA74B00660651373";
    let sha256 = "63DE01FA6E00EFBC9F955E69DF74653513D48BAB1C9DC177D62F7BFB2595F4B0";
    let pem_text = std::fs::read(data("legacy.crt")).unwrap();
    let t = thumbprints(&pem_text).unwrap();
    assert_eq!(t.sha1_hex(), sha1);
    assert_eq!(t.sha256_hex(), sha256);
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(t.x5t(), b64url.encode(hex(sha1)));
    assert_eq!(t.x5t_s256(), b64url.encode(hex(sha256)));
    // DER input gives the same; so does the loaded PKCS#12 with that certificate.
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem_text)
        .map(|c: rustls_pki_types::CertificateDer<'_>| c.to_vec())
        .unwrap();
    assert_eq!(thumbprints(&der).unwrap(), t);
    let loaded = loader()
        .from_file(data("legacy-3des.pfx"), Some("legacy-password"))
        .unwrap();
    assert_eq!(loaded.thumbprints(), &t);
    assert!(matches!(
        thumbprints(b"nope"),
        Err(CertificateError::NotACertificate { .. })
    ));
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn debug_shows_subject_thumbprint_and_validity_only() {
    let good = rsa_cert("debug-me");
    let certificate = loader().from_pem(good.combined_pem().as_bytes()).unwrap();
    let debug = format!("{certificate:?}");
    assert!(debug.contains("CN=debug-me"), "{debug}");
    assert!(
        debug.contains(&certificate.thumbprints().sha1_hex()),
        "{debug}"
    );
    assert!(debug.contains("2100"), "{debug}");
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(&good.key_pkcs8_der);
    assert!(!debug.contains(&key_b64[40..80]), "{debug}");
    assert!(!debug.to_lowercase().contains("private"), "{debug}");
}

#[test]
fn assertions_verify_with_jsonwebtoken() {
    let good = rsa_cert("assertion");
    let certificate = loader().from_pem(good.combined_pem().as_bytes()).unwrap();
    let audience = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
    let now = jsonwebtoken::get_current_timestamp();
    struct Case {
        name: &'static str,
        algorithm: AssertionAlgorithm,
        jwt_alg: Algorithm,
        send_x5c: bool,
    }
    let cases = [
        Case {
            name: "PS256 for Entra",
            algorithm: AssertionAlgorithm::Ps256,
            jwt_alg: Algorithm::PS256,
            send_x5c: false,
        },
        Case {
            name: "RS256 with x5c",
            algorithm: AssertionAlgorithm::Rs256,
            jwt_alg: Algorithm::RS256,
            send_x5c: true,
        },
        Case {
            name: "PS256 with x5c",
            algorithm: AssertionAlgorithm::Ps256,
            jwt_alg: Algorithm::PS256,
            send_x5c: true,
        },
    ];
    let mut jtis = std::collections::HashSet::new();
    for case in cases {
        let request = AssertionRequest {
            client_id: "client-1",
            audience,
            algorithm: case.algorithm,
            send_x5c: case.send_x5c,
            now,
        };
        let jwt = certificate.client_assertion(&request).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, case.jwt_alg, "{}", case.name);
        assert_eq!(header.typ.as_deref(), Some("JWT"), "{}", case.name);
        let t = certificate.thumbprints();
        if case.algorithm == AssertionAlgorithm::Ps256 {
            assert_eq!(
                header.x5t_s256.as_deref(),
                Some(t.x5t_s256().as_str()),
                "{}",
                case.name
            );
            assert_eq!(header.x5t, None, "{}", case.name);
        } else {
            assert_eq!(
                header.x5t.as_deref(),
                Some(t.x5t().as_str()),
                "{}",
                case.name
            );
            assert_eq!(header.x5t_s256, None, "{}", case.name);
        }
        match header.x5c {
            Some(x5c) => {
                assert!(case.send_x5c, "{}", case.name);
                assert_eq!(x5c.len(), 1, "{}", case.name);
                let der = base64::engine::general_purpose::STANDARD
                    .decode(&x5c[0])
                    .unwrap();
                assert_eq!(der, good.cert_der, "{}", case.name);
            }
            None => assert!(!case.send_x5c, "{}", case.name),
        }
        let mut validation = Validation::new(case.jwt_alg);
        validation.set_audience(&[audience]);
        validation.set_issuer(&["client-1"]);
        validation.sub = Some("client-1".into());
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(&jwt, &good.decoding_key(), &validation)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name))
            .claims;
        assert_eq!(
            claims["nbf"].as_u64(),
            Some(now),
            "{}: integer nbf",
            case.name
        );
        assert_eq!(
            claims["iat"].as_u64(),
            Some(now),
            "{}: integer iat",
            case.name
        );
        assert_eq!(
            claims["exp"].as_u64(),
            Some(now + 600),
            "{}: 10 minutes",
            case.name
        );
        let jti = claims["jti"].as_str().unwrap().to_owned();
        assert_eq!(jti.len(), 36, "{}", case.name);
        assert!(jtis.insert(jti), "{}: fresh jti", case.name);
        // Another key does not verify it.
        let other = rsa_cert("other");
        assert!(
            jsonwebtoken::decode::<Value>(&jwt, &other.decoding_key(), &validation).is_err(),
            "{}",
            case.name
        );
        // Nor does the other algorithm family member.
        let mut wrong = validation.clone();
        wrong.algorithms = vec![if case.jwt_alg == Algorithm::PS256 {
            Algorithm::RS256
        } else {
            Algorithm::PS256
        }];
        assert!(
            jsonwebtoken::decode::<Value>(&jwt, &good.decoding_key(), &wrong).is_err(),
            "{}",
            case.name
        );
    }
}

#[test]
fn credential_descriptions_first_that_loads_wins_and_failures_are_explained() {
    let good = rsa_cert("described");
    let dir = std::env::temp_dir().join(format!("taa-desc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pfx = pkcs12(
        &good.cert_der,
        Some(&good.key_pkcs8_der),
        "pw",
        EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
    );
    std::fs::write(dir.join("client.pfx"), &pfx).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pfx);

    struct Case {
        name: &'static str,
        json: String,
        ok: Option<&'static str>,
        error_contains: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "key vault cannot load synchronously, the next one loads",
            json: r#"[{"SourceType":"KeyVault","KeyVaultUrl":"https://v.vault.azure.net","KeyVaultCertificateName":"c"},
                              {"SourceType":"Path","CertificateDiskPath":"client.pfx","CertificatePassword":"pw"}]"#.into(),
            ok: Some("certificate"),
            error_contains: &[],
        },
        Case {
            name: "base64",
            json: format!(r#"[{{"SourceType":"Base64Encoded","Base64EncodedValue":"{b64}","CertificatePassword":"pw"}}]"#),
            ok: Some("certificate"),
            error_contains: &[],
        },
        Case {
            name: "skipped entries are ignored",
            json: r#"[{"SourceType":"Path","CertificateDiskPath":"missing.pfx","Skip":true},{"SourceType":"ClientSecret","ClientSecret":"s"}]"#.into(),
            ok: Some("secret"),
            error_contains: &[],
        },
        Case {
            name: "every failure is explained",
            json: r#"[{"SourceType":"Path","CertificateDiskPath":"client.pfx","CertificatePassword":"wrong"},
                      {"SourceType":"SignedAssertionFromManagedIdentity"},
                      {"SourceType":"StoreWithThumbprint","CertificateThumbprint":"AB"},
                      {"SourceType":"Base64Encoded"}]"#.into(),
            ok: None,
            error_contains: &["[0] certificate file", "client.pfx", "password is wrong",
                "[1] SourceType SignedAssertionFromManagedIdentity needs network access",
                "[2] this SourceType is not supported", "[3] SourceType Base64Encoded needs Base64EncodedValue"],
        },
        Case {
            name: "nothing configured",
            json: "[]".into(),
            ok: None,
            error_contains: &["no client credential is configured"],
        },
    ];
    for case in cases {
        let json = format!(r#"{{"CallApi":{{"ClientCertificates":{}}}}}"#, case.json);
        let options: tower_azure_auth::CallApiOptions =
            tower_azure_auth::config::ConfigSource::from_json_str(&json)
                .unwrap()
                .section("CallApi")
                .unwrap();
        let result = CredentialDescriptions::from_call_api(&options)
            .base_dir(&dir)
            .load_now();
        match (case.ok, result) {
            (Some("certificate"), Ok(ClientCredential::Certificate(c))) => {
                assert_eq!(c.der(), good.cert_der.as_slice(), "{}", case.name)
            }
            (Some("secret"), Ok(ClientCredential::Secret(s))) => {
                assert_eq!(s.expose(), "s", "{}", case.name)
            }
            (None, Err(error)) => {
                let text = error.to_string();
                for needle in case.error_contains {
                    assert!(
                        text.contains(needle),
                        "{}: {text:?} lacks {needle:?}",
                        case.name
                    );
                }
                assert!(
                    !text.contains("wrong\""),
                    "{}: no password in messages",
                    case.name
                );
            }
            (expected, got) => panic!("{}: expected {expected:?}, got {got:?}", case.name),
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}
