use super::*;

fn rsa_certificate_der() -> Vec<u8> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8: Pkcs8V1Der<'_> = key.as_der().unwrap();
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    cert.der().to_vec()
}

fn ec_certificate_der() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    cert.der().to_vec()
}

#[test]
fn certificate_bundles_are_checked_before_signing() {
    struct Case {
        name: &'static str,
        bundle: String,
        expected: Result<&'static str, &'static str>,
    }
    let vault = Url::parse("https://contoso.vault.azure.net/").unwrap();
    let cer = STANDARD.encode(rsa_certificate_der());
    let ec = STANDARD.encode(ec_certificate_der());
    let kid = "https://contoso.vault.azure.net/keys/cert/0123abcd";
    let cases = [
        Case {
            name: "azure shape",
            bundle: format!(
                r#"{{"kid":"{kid}","cer":"{cer}","attributes":{{"enabled":true,"exp":4000000000}},"policy":{{"key_props":{{"exportable":false,"kty":"RSA"}}}}}}"#
            ),
            expected: Ok("https://contoso.vault.azure.net/keys/cert/0123abcd/sign?api-version=7.4"),
        },
        Case {
            name: "hsm key",
            bundle: format!(
                r#"{{"kid":"{kid}","cer":"{cer}","policy":{{"key_props":{{"kty":"RSA-HSM"}}}}}}"#
            ),
            expected: Ok("https://contoso.vault.azure.net/keys/cert/0123abcd/sign?api-version=7.4"),
        },
        Case {
            name: "ec key in the policy",
            bundle: format!(
                r#"{{"kid":"{kid}","cer":"{cer}","policy":{{"key_props":{{"kty":"EC"}}}}}}"#
            ),
            expected: Err("of type EC, not RSA"),
        },
        Case {
            name: "ec certificate",
            bundle: format!(r#"{{"kid":"{kid}","cer":"{ec}"}}"#),
            expected: Err("not usable"),
        },
        Case {
            name: "disabled",
            bundle: format!(r#"{{"kid":"{kid}","cer":"{cer}","attributes":{{"enabled":false}}}}"#),
            expected: Err("disabled"),
        },
        Case {
            name: "expired version",
            bundle: format!(r#"{{"kid":"{kid}","cer":"{cer}","attributes":{{"exp":1600000000}}}}"#),
            expected: Err("expired"),
        },
        Case {
            name: "key on another host",
            bundle: format!(r#"{{"kid":"https://evil.example/keys/cert/01","cer":"{cer}"}}"#),
            expected: Err("not on this vault"),
        },
        Case {
            name: "another key",
            bundle: format!(
                r#"{{"kid":"https://contoso.vault.azure.net/keys/other/01","cer":"{cer}"}}"#
            ),
            expected: Err("not of the form"),
        },
        Case {
            name: "no version",
            bundle: format!(
                r#"{{"kid":"https://contoso.vault.azure.net/keys/cert","cer":"{cer}"}}"#
            ),
            expected: Err("not of the form"),
        },
        Case {
            name: "no cer",
            bundle: format!(r#"{{"kid":"{kid}"}}"#),
            expected: Err("no `cer`"),
        },
        Case {
            name: "no kid",
            bundle: format!(r#"{{"cer":"{cer}"}}"#),
            expected: Err("no `kid`"),
        },
    ];
    for case in cases {
        let bundle: Bundle = serde_json::from_str(&case.bundle).unwrap();
        let result = check_bundle(&vault, "cert", &bundle, 1_700_000_000);
        match (result, case.expected) {
            (Ok(checked), Ok(url)) => {
                assert_eq!(checked.sign_url.as_str(), url, "{}", case.name);
                assert_eq!(checked.version, "0123abcd", "{}", case.name);
            }
            (Err(reason), Err(fragment)) => {
                assert!(reason.contains(fragment), "{}: {reason}", case.name);
            }
            (Ok(_), Err(fragment)) => panic!("{}: accepted, expected `{fragment}`", case.name),
            (Err(reason), Ok(_)) => panic!("{}: refused: {reason}", case.name),
        }
    }
}

#[test]
fn sign_errors_say_what_to_grant() {
    struct Case {
        name: &'static str,
        status: u16,
        body: &'static str,
        contains: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "no sign permission",
            status: 403,
            body: r#"{"error":{"code":"Forbidden","message":"does not have keys sign permission","innererror":{"code":"ForbiddenByPolicy"}}}"#,
            contains: &[
                "403",
                "Forbidden/ForbiddenByPolicy",
                "permission `sign`",
                "Key Vault Crypto User",
            ],
        },
        Case {
            name: "disabled key",
            status: 403,
            body: r#"{"error":{"code":"Forbidden","message":"Operation sign is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}}"#,
            contains: &["KeyDisabled", "disabled in the vault"],
        },
        Case {
            name: "no such version",
            status: 404,
            body: r#"{"error":{"code":"KeyNotFound","message":"A key with (name/id) c/v was not found"}}"#,
            contains: &["404", "KeyNotFound", "no such key version"],
        },
        Case {
            name: "not json",
            status: 500,
            body: "<html>",
            contains: &["500", "no error code"],
        },
    ];
    for case in cases {
        let text = explain(case.status, case.body.as_bytes(), Operation::Sign);
        for fragment in case.contains {
            assert!(text.contains(fragment), "{}: {text}", case.name);
        }
    }
}
