//! Client assertions signed by SoftHSM2 (Debian's `softhsm2`, installed by
//! `scripts/interop-setup.sh`) through PKCS#11: a token in a temporary directory, an RSA key
//! generated in the test as non-extractable (checked: `CKA_EXTRACTABLE` false, wrapping it
//! fails, its private exponent cannot be read), a certificate for it signed by the token
//! itself, assertions verified by `jsonwebtoken` with only the public certificate and accepted
//! by the dev authority, `SourceType: Pkcs11` from configuration, and the errors.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use entra_dev_authority::{DevApi, DevApplication, DevAuthority};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tower_azure_auth::clock::{Clock, ManualClock};
use tower_azure_auth::config::{CallApiOptions, ConfigSource};
use tower_azure_auth::credentials::{
    private_keys_loaded_on_this_thread, signed_assertion, AssertionAlgorithm, AssertionRequest,
    ClientCredential, ConfidentialClient, CredentialContext, CredentialDescriptions,
    CredentialSource, Pkcs11Source, Signer,
};
use tower_azure_auth::error::error_chain;
use tower_azure_auth::{Authority, HttpClient};
use x509_parser::prelude::{FromDer, X509Certificate};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "tower-azure-auth-it";
const PIN: &str = "4711-user-pin";
const SO_PIN: &str = "so-pin-0815";
const CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000002";
const API: &str = "6f8a1c52-0000-4000-8000-000000000001";
const SCOPE: &str = "api://weather/.default";

/// The process's SoftHSM token: one configuration (`SOFTHSM2_CONF` is read once per process
/// by `C_Initialize`), one token, one key per test.
struct Hsm {
    dir: PathBuf,
    _module: Pkcs11,
    /// The test's own session (key generation, checks), logged in only while it works:
    /// PKCS#11 login state is per process, and a process already logged in is never asked
    /// for the PIN again, so the wrong-PIN check needs nobody logged in.
    session: Mutex<Session>,
}

/// The PKCS#11 tests take turns (see [`Hsm::session`]).
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn user_login(session: &Session) {
    match session.login(UserType::User, Some(&AuthPin::from(PIN.to_owned()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
}

fn logout(session: &Session) {
    match session.logout() {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => {}
        Err(e) => panic!("logout: {e}"),
    }
}

fn hsm() -> &'static Hsm {
    static HSM: OnceLock<Hsm> = OnceLock::new();
    HSM.get_or_init(|| {
        assert!(
            Path::new(MODULE).is_file(),
            "SoftHSM2 is missing ({MODULE}): run scripts/interop-setup.sh (installs Debian's softhsm2)"
        );
        let dir = std::env::temp_dir().join(format!("taa-softhsm-{}", std::process::id()));
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let module = Pkcs11::new(MODULE).unwrap();
        module
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .unwrap();
        let slot = module.get_all_slots().unwrap()[0];
        module
            .init_token(slot, &AuthPin::from(SO_PIN.to_owned()), TOKEN)
            .unwrap();
        let slot = *module
            .get_slots_with_token()
            .unwrap()
            .iter()
            .find(|s| module.get_token_info(**s).unwrap().label().trim_end() == TOKEN)
            .unwrap();
        {
            let so = module.open_rw_session(slot).unwrap();
            so.login(UserType::So, Some(&AuthPin::from(SO_PIN.to_owned())))
                .unwrap();
            so.init_pin(&AuthPin::from(PIN.to_owned())).unwrap();
            so.logout().unwrap();
        }
        let session = module.open_rw_session(slot).unwrap();
        std::fs::write(dir.join("pin"), format!("{PIN}\n")).unwrap();
        Hsm {
            dir,
            _module: module,
            session: Mutex::new(session),
        }
    })
}

/// A key generated in the token (non-extractable, sensitive) and a self-signed certificate
/// for it, signed by the token; the certificate is stored on the token under the same label.
struct HsmKey {
    label: String,
    cert_der: Vec<u8>,
    cert_pem: String,
}

/// `RSAPublicKey` DER: SEQUENCE { INTEGER modulus, INTEGER exponent }.
fn rsa_public_key_der(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    fn length(len: usize) -> Vec<u8> {
        if len < 0x80 {
            vec![u8::try_from(len).unwrap()]
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            let mut out = vec![0x80 | u8::try_from(bytes.len()).unwrap()];
            out.extend(bytes);
            out
        }
    }
    fn integer(value: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = value.iter().copied().skip_while(|b| *b == 0).collect();
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02];
        out.extend(length(v.len()));
        out.extend(v);
        out
    }
    let mut body = integer(modulus);
    body.extend(integer(exponent));
    let mut out = vec![0x30];
    out.extend(length(body.len()));
    out.extend(body);
    out
}

/// The token's key as rcgen's remote signing key.
struct TokenKey<'a> {
    session: &'a Session,
    private: ObjectHandle,
    public_der: Vec<u8>,
}

impl rcgen::PublicKeyData for TokenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public_der
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for TokenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.session
            .sign(&Mechanism::Sha256RsaPkcs, self.private, msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

fn generate_key(label: &str) -> HsmKey {
    let hsm = hsm();
    let session = hsm.session.lock().unwrap();
    user_login(&session);
    let label_bytes = label.as_bytes().to_vec();
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                Attribute::Label(label_bytes.clone()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Label(label_bytes.clone()),
            ],
        )
        .unwrap();
    let attributes = session
        .get_attributes(
            public,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )
        .unwrap();
    let (mut modulus, mut exponent) = (Vec::new(), Vec::new());
    for attribute in attributes {
        match attribute {
            Attribute::Modulus(m) => modulus = m,
            Attribute::PublicExponent(e) => exponent = e,
            _ => {}
        }
    }
    let key = TokenKey {
        session: &session,
        private,
        public_der: rsa_public_key_der(&modulus, &exponent),
    };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "weather-client (HSM)");
    let cert = params.self_signed(&key).unwrap();
    let cert_der = cert.der().to_vec();
    let (_, parsed) = X509Certificate::from_der(&cert_der).unwrap();
    session
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Label(label_bytes),
            Attribute::Subject(parsed.subject().as_raw().to_vec()),
            Attribute::Value(cert_der.clone()),
        ])
        .unwrap();
    drop(key);
    logout(&session);
    HsmKey {
        label: label.to_owned(),
        cert_pem: cert.pem(),
        cert_der,
    }
}

async fn authority(key: &HsmKey, clock: &ManualClock) -> DevAuthority {
    DevAuthority::builder()
        .clock(Arc::new(clock.clone()))
        .token_lifetime(Duration::from_secs(3600))
        .api(
            DevApi::new(API)
                .app_id_uri("api://weather")
                .app_roles(["service-api"]),
        )
        .application(
            DevApplication::new(CLIENT)
                .certificate_pem(&key.cert_pem)
                .unwrap()
                .grant("api://weather", ["service-api"]),
        )
        .start()
        .await
        .unwrap()
}

fn source(key: &HsmKey) -> Pkcs11Source {
    Pkcs11Source::new(MODULE, TOKEN, &key.label, hsm().dir.join("pin"))
}

fn signer_of(credential: Option<ClientCredential>) -> Arc<dyn Signer> {
    match credential {
        Some(ClientCredential::Signer(signer)) => signer,
        other => panic!("expected a PKCS#11 signer, got {other:?}"),
    }
}

#[tokio::test]
async fn softhsm_keys_are_not_extractable_and_sign_assertions_the_authority_accepts() {
    let _turn = TURN.lock().await;
    let key = generate_key("it-softhsm-signs");
    // The key really stays in the token.
    {
        let session = hsm().session.lock().unwrap();
        user_login(&session);
        // Handles of private objects do not outlive a logout: find the key again.
        let private = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(key.label.as_bytes().to_vec()),
            ])
            .unwrap()[0];
        let attributes = session
            .get_attributes(
                private,
                &[AttributeType::Extractable, AttributeType::Sensitive],
            )
            .unwrap();
        assert!(
            attributes.contains(&Attribute::Extractable(false)),
            "{attributes:?}"
        );
        assert!(
            attributes.contains(&Attribute::Sensitive(true)),
            "{attributes:?}"
        );
        let wrapping = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::ValueLen(32.into()),
                    Attribute::Wrap(true),
                    Attribute::Token(false),
                ],
            )
            .unwrap();
        let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, private);
        assert!(
            matches!(wrapped, Err(CkError::Pkcs11(RvError::KeyUnextractable, _))),
            "wrapping (exporting) the key must fail: {wrapped:?}"
        );
        let exponent = session.get_attributes(private, &[AttributeType::PrivateExponent]);
        assert!(
            !matches!(&exponent, Ok(a) if a.iter().any(|a| matches!(a, Attribute::PrivateExponent(_)))),
            "the private exponent must not be readable: {exponent:?}"
        );
        logout(&session);
    }

    let clock = ManualClock::now();
    let authority = authority(&key, &clock).await;
    let keys_before = private_keys_loaded_on_this_thread();
    let client = ConfidentialClient::builder(CLIENT)
        .authority(Authority::entra(&authority.instance(), authority.tenant_id()).unwrap())
        .credential_source(Arc::new(source(&key)))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let token = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert!(!token.secret().is_empty());
    let signer = signer_of(client.credential());
    assert_eq!(signer.backend(), "pkcs11");
    assert_eq!(
        signer.certificate().der(),
        key.cert_der.as_slice(),
        "read from the token"
    );

    let (_, cert) = X509Certificate::from_der(&key.cert_der).unwrap();
    let public = DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
    let audience = format!(
        "{}{}/oauth2/v2.0/token",
        authority.instance(),
        authority.tenant_id()
    );
    for (algorithm, jwt) in [
        (AssertionAlgorithm::Ps256, Algorithm::PS256),
        (AssertionAlgorithm::Rs256, Algorithm::RS256),
    ] {
        let assertion = signed_assertion(
            signer.as_ref(),
            &AssertionRequest {
                client_id: CLIENT,
                audience: &audience,
                algorithm,
                send_x5c: false,
                now: clock.unix_seconds(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{algorithm:?}: {}", error_chain(&e)));
        let mut validation = Validation::new(jwt);
        validation.set_audience(&[audience.as_str()]);
        validation.set_issuer(&[CLIENT]);
        let decoded = jsonwebtoken::decode::<serde_json::Value>(&assertion, &public, &validation)
            .unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
        assert_eq!(decoded.claims["sub"], CLIENT);
    }
    // RS256 assertions are accepted too (generic authorities).
    let rs256 = ConfidentialClient::builder(CLIENT)
        .authority(Authority::entra(&authority.instance(), authority.tenant_id()).unwrap())
        .signer(Arc::clone(&signer))
        .assertion_algorithm(AssertionAlgorithm::Rs256)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    rs256.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(
        private_keys_loaded_on_this_thread(),
        keys_before,
        "no ClientCertificate with a private key was built on the PKCS#11 path"
    );
}

#[tokio::test]
async fn pkcs11_from_configuration_with_a_certificate_file_and_clear_errors() {
    let _turn = TURN.lock().await;
    let key = generate_key("it-softhsm-config");
    let clock = ManualClock::now();
    let authority = authority(&key, &clock).await;
    let cert_file = hsm().dir.join("it-softhsm-config.pem");
    std::fs::write(&cert_file, &key.cert_pem).unwrap();
    let wrong_pin = hsm().dir.join("wrong-pin");
    std::fs::write(&wrong_pin, "0000-not-the-pin\n").unwrap();
    let entry = |token: &str, label: &str, pin: &Path| {
        format!(
            r#"{{"SourceType": "Pkcs11", "Pkcs11Module": "{MODULE}", "Pkcs11TokenLabel": "{token}",
                "Pkcs11KeyLabel": "{label}", "Pkcs11PinFile": "{}", "CertificateDiskPath": "{}"}}"#,
            pin.display(),
            cert_file.display()
        )
    };
    let pin = hsm().dir.join("pin");
    let json = format!(
        r#"{{"CallApi": {{"ClientId": "{CLIENT}", "Instance": "{}", "TenantId": "{}",
            "ClientCertificates": [{}, {}, {}, {}]}}}}"#,
        authority.instance(),
        authority.tenant_id(),
        // The wrong PIN first: once the process is logged in, the token asks for no PIN.
        entry(TOKEN, &key.label, &wrong_pin),
        entry("no-such-token", &key.label, &pin),
        entry(TOKEN, "no-such-key", &pin),
        entry(TOKEN, &key.label, &pin),
    );
    let options: CallApiOptions = ConfigSource::from_json_str(&json)
        .unwrap()
        .section("CallApi")
        .unwrap();
    let context = CredentialContext::new(HttpClient::new().unwrap(), Arc::new(clock.clone()));
    // Nobody is logged in to the token now: the wrong PIN is really checked.
    // The first three entries fail; each failure says why, and never shows a PIN.
    let failing = ConfigSource::from_json_str(
        &json.replace(&format!(", {}]", entry(TOKEN, &key.label, &pin)), "]"),
    )
    .unwrap()
    .section::<CallApiOptions>("CallApi")
    .unwrap();
    let error = CredentialDescriptions::from_call_api(&failing)
        .load(&context)
        .await
        .unwrap_err();
    let text = error_chain(&error);
    for fragment in [
        "no token is labelled `no-such-token`",
        TOKEN,
        "no private key labelled `no-such-key`",
        "wrong PIN",
    ] {
        assert!(text.contains(fragment), "`{fragment}` in {text}");
    }
    assert!(
        !text.contains(PIN) && !text.contains("0000-not-the-pin"),
        "{text}"
    );

    let descriptions = CredentialDescriptions::from_call_api(&options);
    let credential = descriptions.load(&context).await.unwrap();
    assert!(matches!(credential, ClientCredential::Signer(_)));
    drop(credential);

    let client = ConfidentialClient::builder_from_options(&options)
        .unwrap()
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(signer_of(client.credential()).backend(), "pkcs11");
}

#[tokio::test]
async fn a_pkcs11_certificate_of_another_key_is_refused() {
    let _turn = TURN.lock().await;
    let key = generate_key("it-softhsm-mismatch");
    let other = generate_key("it-softhsm-other");
    let cert_file = hsm().dir.join("it-softhsm-other.pem");
    std::fs::write(&cert_file, &other.cert_pem).unwrap();
    let context = CredentialContext::new(HttpClient::new().unwrap(), Arc::new(ManualClock::now()));
    let error = source(&key)
        .certificate_path(&cert_file)
        .load(&context)
        .await
        .unwrap_err();
    assert!(
        error_chain(&error).contains("not this key's"),
        "{}",
        error_chain(&error)
    );
}
