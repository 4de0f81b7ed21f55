//! Client assertions signed by Key Vault (`keys/{name}/{version}/sign`) over real HTTP on
//! 127.0.0.1: the dev authority's vault holds a non-exportable key, the assertion is verified
//! by `jsonwebtoken` with only the public certificate and accepted by the dev authority; no
//! private key is ever loaded in the process; rotation of the key version while running;
//! the permission and disabled-key errors; proactive reload before `notAfter` with a manual
//! clock; observer events in order.
#![allow(missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entra_dev_authority::{
    generate_certificate, generate_certificate_valid, DevApi, DevApplication, DevAuthority,
    DevKeyVault, GeneratedCertificate,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tower_azure_auth::clock::{ManualClock, SharedClock};
use tower_azure_auth::config::{CallApiOptions, ConfigSource};
use tower_azure_auth::credentials::{
    private_keys_loaded_on_this_thread, signed_assertion, AssertionAlgorithm, AssertionRequest,
    CertificateEvent, ClientCredential, ConfidentialClient, CredentialContext,
    CredentialDescriptions, CredentialSource, KeyVaultCertificate, KeyVaultSigning,
    ManagedIdentityCredential, Signer, TokenError,
};
use tower_azure_auth::error::error_chain;
use tower_azure_auth::{Authority, HttpClient};
use x509_parser::prelude::{FromDer, X509Certificate};

const CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000002";
const API: &str = "6f8a1c52-0000-4000-8000-000000000001";
const IDENTITY: &str = "5a9f0c1e-0000-4000-8000-000000000009";
const SCOPE: &str = "api://weather/.default";
const CERT_NAME: &str = "ClientSigningCert";

struct Fixture {
    authority: DevAuthority,
    certificate: GeneratedCertificate,
    clock: ManualClock,
}

async fn fixture_with(clock: ManualClock, certificate: GeneratedCertificate) -> Fixture {
    let authority = DevAuthority::builder()
        .clock(Arc::new(clock.clone()))
        .token_lifetime(Duration::from_secs(3600))
        .api(
            DevApi::new(API)
                .app_id_uri("api://weather")
                .app_roles(["service-api"]),
        )
        .application(
            DevApplication::new(CLIENT)
                .certificate_pem(&certificate.cert_pem)
                .unwrap()
                .grant("api://weather", ["service-api"]),
        )
        .managed_identity(IDENTITY)
        .key_vault(DevKeyVault::new().non_exportable_certificate(CERT_NAME, &certificate))
        .start()
        .await
        .unwrap();
    Fixture {
        authority,
        certificate,
        clock,
    }
}

async fn fixture() -> Fixture {
    fixture_with(
        ManualClock::now(),
        generate_certificate("CN=weather-client").unwrap(),
    )
    .await
}

impl Fixture {
    fn shared_clock(&self) -> SharedClock {
        Arc::new(self.clock.clone())
    }

    fn identity(&self) -> ManagedIdentityCredential {
        ManagedIdentityCredential::builder()
            .imds_endpoint(self.authority.imds_endpoint())
            .client_id(Some(IDENTITY))
            .clock(self.shared_clock())
            .retry_delay(Duration::ZERO)
            .build()
            .unwrap()
    }

    fn source(&self) -> KeyVaultSigning {
        KeyVaultSigning::new(
            KeyVaultCertificate::new(
                &self.authority.vault_url(),
                CERT_NAME,
                Arc::new(self.identity()),
            )
            .unwrap(),
        )
    }

    fn builder(
        &self,
        source: Arc<dyn CredentialSource>,
    ) -> tower_azure_auth::credentials::ConfidentialClientBuilder {
        ConfidentialClient::builder(CLIENT)
            .authority(
                Authority::entra(&self.authority.instance(), self.authority.tenant_id()).unwrap(),
            )
            .credential_source(source)
            .clock(self.shared_clock())
            .retry_delay(Duration::ZERO)
    }

    fn context(&self) -> CredentialContext {
        CredentialContext::new(HttpClient::new().unwrap(), self.shared_clock())
    }

    fn token_endpoint(&self) -> String {
        format!(
            "{}{}/oauth2/v2.0/token",
            self.authority.instance(),
            self.authority.tenant_id()
        )
    }
}

/// The certificate's `RSAPublicKey`, for `jsonwebtoken`: nothing but the public half.
fn public_key(cert_der: &[u8]) -> DecodingKey {
    let (_, cert) = X509Certificate::from_der(cert_der).unwrap();
    DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data)
}

fn signer_of(credential: Option<ClientCredential>) -> Arc<dyn Signer> {
    match credential {
        Some(ClientCredential::Signer(signer)) => signer,
        other => panic!("expected a remote signer, got {other:?}"),
    }
}

#[tokio::test]
async fn key_vault_signed_assertions_verify_with_the_public_certificate_and_get_tokens() {
    let f = fixture().await;
    let keys_before = private_keys_loaded_on_this_thread();
    let client = f.builder(Arc::new(f.source())).build().unwrap();
    let token = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert!(!token.secret().is_empty());

    let signer = signer_of(client.credential());
    assert_eq!(signer.backend(), "key vault");
    assert_eq!(
        signer.certificate().der(),
        f.certificate.cert_der.as_slice()
    );
    let signatures: u64 = f
        .authority
        .vault_signatures(CERT_NAME)
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        signatures, 1,
        "the token request's assertion was signed by the vault"
    );

    struct Case {
        name: &'static str,
        algorithm: AssertionAlgorithm,
        jwt: Algorithm,
        header: &'static str,
        thumbprint: String,
    }
    let cases = [
        Case {
            name: "PS256 with x5t#S256 (Entra)",
            algorithm: AssertionAlgorithm::Ps256,
            jwt: Algorithm::PS256,
            header: "x5t#S256",
            thumbprint: f.certificate.x5t_s256.clone(),
        },
        Case {
            name: "RS256 with x5t (other authorities)",
            algorithm: AssertionAlgorithm::Rs256,
            jwt: Algorithm::RS256,
            header: "x5t",
            thumbprint: f.certificate.x5t.clone(),
        },
    ];
    let audience = f.token_endpoint();
    for case in cases {
        let assertion = signed_assertion(
            signer.as_ref(),
            &AssertionRequest {
                client_id: CLIENT,
                audience: &audience,
                algorithm: case.algorithm,
                send_x5c: true,
                now: f.clock.unix_seconds_now(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {}", case.name, error_chain(&e)));
        let mut validation = Validation::new(case.jwt);
        validation.set_audience(&[audience.as_str()]);
        validation.set_issuer(&[CLIENT]);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            &assertion,
            &public_key(&f.certificate.cert_der),
            &validation,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(decoded.claims["sub"], CLIENT, "{}", case.name);
        let header: serde_json::Value =
            serde_json::from_slice(&base64_url(assertion.split('.').next().unwrap())).unwrap();
        assert_eq!(
            header[case.header],
            case.thumbprint.as_str(),
            "{}",
            case.name
        );
        assert_eq!(
            header["x5c"][0],
            base64_std(&f.certificate.cert_der).as_str(),
            "{}",
            case.name
        );
        // A signature over another message does not verify: the vault signed this one.
        let mut forged: Vec<&str> = assertion.split('.').collect();
        let other = signed_assertion(
            signer.as_ref(),
            &AssertionRequest {
                client_id: "someone-else",
                audience: &audience,
                algorithm: case.algorithm,
                send_x5c: false,
                now: 1,
            },
        )
        .await
        .unwrap();
        forged[2] = other.rsplit('.').next().unwrap();
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(
                &forged.join("."),
                &public_key(&f.certificate.cert_der),
                &validation
            )
            .is_err(),
            "{}",
            case.name
        );
    }
    assert_eq!(
        private_keys_loaded_on_this_thread(),
        keys_before,
        "no ClientCertificate (certificate with its private key) was built on the Key Vault signing path"
    );
}

#[tokio::test]
async fn a_non_exportable_key_cannot_be_downloaded_from_the_vault() {
    let f = fixture().await;
    // The download source (SourceType KeyVault) refuses, saying why.
    let vault =
        KeyVaultCertificate::new(&f.authority.vault_url(), CERT_NAME, Arc::new(f.identity()))
            .unwrap();
    let error = vault.fetch(&f.context()).await.unwrap_err();
    assert!(
        error_chain(&error).contains("not exportable"),
        "{}",
        error_chain(&error)
    );
    // And the secret itself, read by hand, holds the certificate only.
    let token = tower_azure_auth::TokenSource::token(
        &f.identity(),
        &["https://vault.azure.net/.default".to_owned()],
        false,
    )
    .await
    .unwrap();
    let bundle: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/certificates/{CERT_NAME}?api-version=7.4",
            f.authority.vault_url()
        ))
        .bearer_auth(token.secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bundle["policy"]["key_props"]["exportable"], false);
    let secret: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}?api-version=7.4",
            bundle["sid"].as_str().unwrap()
        ))
        .bearer_auth(token.secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let value = secret["value"].as_str().unwrap();
    assert!(value.contains("BEGIN CERTIFICATE"), "{value}");
    assert!(
        !value.contains("PRIVATE KEY"),
        "the secret holds no private key"
    );
}

#[tokio::test]
async fn sign_refusals_say_which_permission_or_that_the_key_is_disabled() {
    let f = fixture().await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    let client = f
        .builder(Arc::new(f.source()))
        .certificate_observer(Arc::new(move |event: &CertificateEvent<'_>| {
            log.lock().unwrap().push(event.name());
        }))
        .build()
        .unwrap();

    f.authority.deny_vault_sign(IDENTITY, true);
    let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
    let text = error_chain(&error);
    assert!(matches!(error, TokenError::Signing(_)), "{text}");
    assert!(!error.is_transient(), "{text}");
    for fragment in [
        "403",
        "ForbiddenByPolicy",
        "permission `sign`",
        "Key Vault Crypto User",
    ] {
        assert!(text.contains(fragment), "`{fragment}` in {text}");
    }
    // Refused, reloaded once (the same certificate: no event), refused again.
    assert_eq!(*events.lock().unwrap(), ["selected", "failed", "failed"]);

    f.authority.deny_vault_sign(IDENTITY, false);
    let version = signer_of(client.credential())
        .certificate()
        .thumbprints()
        .x5t();
    assert_eq!(version, f.certificate.x5t);
    let (version, _) = f.authority.vault_signatures(CERT_NAME).pop().unwrap();
    assert!(f
        .authority
        .set_vault_key_enabled(CERT_NAME, &version, false));
    let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
    let text = error_chain(&error);
    assert!(
        text.contains("KeyDisabled") && text.contains("disabled in the vault"),
        "{text}"
    );

    assert!(f.authority.set_vault_key_enabled(CERT_NAME, &version, true));
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(
        *events.lock().unwrap(),
        [
            "selected",
            "failed",
            "failed",
            "failed",
            "failed",
            "successfully_used"
        ]
    );
}

#[tokio::test]
async fn key_version_rotation_while_running_uses_the_new_version_without_a_failed_call() {
    let f = fixture().await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    let keys_before = private_keys_loaded_on_this_thread();
    let client = f
        .builder(Arc::new(f.source()))
        .reload_interval(Some(Duration::from_secs(600)))
        .certificate_observer(Arc::new(move |event: &CertificateEvent<'_>| {
            let thumbprint = event.certificate().map(|c| c.x5t_s256.clone());
            log.lock().unwrap().push((event.name(), thumbprint));
        }))
        .build()
        .unwrap();
    for _ in 0..3 {
        client.force_refresh(&[SCOPE]).await.unwrap();
    }
    // Rotation: the app registration trusts both certificates during the overlap, the vault
    // gets a new version whose key is again non-exportable.
    let next = generate_certificate("CN=weather-client").unwrap();
    f.authority
        .set_application_certificates(CLIENT, &[&f.certificate.cert_pem, &next.cert_pem])
        .unwrap();
    let new_version = f
        .authority
        .set_vault_non_exportable_certificate(CERT_NAME, &next)
        .unwrap();
    // Until the reload the old version keeps signing; after it, the new one.
    client.force_refresh(&[SCOPE]).await.unwrap();
    f.clock.advance(Duration::from_secs(601));
    for _ in 0..3 {
        client.force_refresh(&[SCOPE]).await.unwrap();
    }
    let signatures = f.authority.vault_signatures(CERT_NAME);
    assert_eq!(signatures.len(), 2);
    assert_eq!(
        signatures[0].1, 4,
        "the old version signed until the reload"
    );
    assert_eq!(
        signatures[1],
        (new_version, 3),
        "the new version signs after it"
    );
    assert_eq!(
        signer_of(client.credential())
            .certificate()
            .thumbprints()
            .x5t(),
        next.x5t
    );
    let old = Some(f.certificate.x5t_s256.clone());
    let new = Some(next.x5t_s256.clone());
    let mut expected = vec![("selected", old.clone())];
    expected.extend(std::iter::repeat_n(("successfully_used", old.clone()), 4));
    expected.push(("deselected", old));
    expected.push(("selected", new.clone()));
    expected.extend(std::iter::repeat_n(("successfully_used", new), 3));
    assert_eq!(
        *events.lock().unwrap(),
        expected,
        "observer events in order"
    );
    assert_eq!(private_keys_loaded_on_this_thread(), keys_before);
}

#[tokio::test]
async fn a_disabled_old_key_version_is_replaced_by_the_new_one_at_once() {
    let f = fixture().await;
    let client = f
        .builder(Arc::new(f.source()))
        .reload_interval(None)
        .build()
        .unwrap();
    client.force_refresh(&[SCOPE]).await.unwrap();
    let next = generate_certificate("CN=weather-client").unwrap();
    f.authority
        .set_application_certificates(CLIENT, &[&next.cert_pem])
        .unwrap();
    let new_version = f
        .authority
        .set_vault_non_exportable_certificate(CERT_NAME, &next)
        .unwrap();
    let (old_version, _) = f.authority.vault_signatures(CERT_NAME)[0].clone();
    assert!(f
        .authority
        .set_vault_key_enabled(CERT_NAME, &old_version, false));
    // The old version refuses to sign: the source is read again and the new version signs,
    // within the same call.
    client.force_refresh(&[SCOPE]).await.unwrap();
    assert_eq!(
        f.authority.vault_signatures(CERT_NAME),
        [(old_version, 1), (new_version, 1)]
    );
    assert_eq!(
        signer_of(client.credential())
            .certificate()
            .thumbprints()
            .x5t(),
        next.x5t
    );
}

#[tokio::test]
async fn proactive_reload_happens_inside_the_jittered_window_before_not_after() {
    let start = SystemTime::now() - Duration::from_secs(3600);
    let not_after = start + Duration::from_secs(30 * 86_400);
    let certificate = generate_certificate_valid("CN=weather-client", start, not_after).unwrap();
    let clock = ManualClock::now();
    let f = fixture_with(clock, certificate).await;
    let window = Duration::from_secs(48 * 3600);
    let client = f
        .builder(Arc::new(f.source()))
        .reload_interval(None)
        .proactive_reload(Some(window))
        .build()
        .unwrap();
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    let not_after = UNIX_EPOCH + Duration::from_secs(secs(not_after));
    let at = client
        .next_proactive_reload()
        .expect("a reload is scheduled");
    assert!(
        at >= not_after - window && at < not_after - window / 2,
        "{at:?} is within [notAfter - 48 h, notAfter - 24 h)"
    );
    // Rotated in the vault (and trusted by the registration) ahead of expiry.
    let next = generate_certificate("CN=weather-client").unwrap();
    f.authority
        .set_application_certificates(CLIENT, &[&f.certificate.cert_pem, &next.cert_pem])
        .unwrap();
    f.authority
        .set_vault_non_exportable_certificate(CERT_NAME, &next)
        .unwrap();
    // Just before the window: no reload (the old certificate is still used).
    f.clock.set_unix(secs(not_after - window) - 60);
    client.force_refresh(&[SCOPE]).await.unwrap();
    assert_eq!(
        signer_of(client.credential())
            .certificate()
            .thumbprints()
            .x5t(),
        f.certificate.x5t
    );
    // At the end of the jitter spread the reload has happened.
    f.clock.set_unix(secs(not_after - window / 2));
    client.force_refresh(&[SCOPE]).await.unwrap();
    assert_eq!(
        signer_of(client.credential())
            .certificate()
            .thumbprints()
            .x5t(),
        next.x5t,
        "the new version was loaded before the old certificate expired"
    );
}

#[tokio::test]
async fn key_vault_signing_from_configuration() {
    let f = fixture().await;
    let json = format!(
        r#"{{"CallApi": {{"ClientId": "{CLIENT}", "Instance": "{}", "TenantId": "{}",
            "ClientCertificates": [{{"SourceType": "KeyVaultSigning", "KeyVaultUrl": "{}",
              "KeyVaultCertificateName": "{CERT_NAME}", "ManagedIdentityClientId": "{IDENTITY}"}}]}}}}"#,
        f.authority.instance(),
        f.authority.tenant_id(),
        f.authority.vault_url()
    );
    let options: CallApiOptions = ConfigSource::from_json_str(&json)
        .unwrap()
        .section("CallApi")
        .unwrap();
    // ManagedIdentityClientId names the identity; the endpoint comes from the environment.
    let env = tower_azure_auth::credentials::Environment::from_pairs([(
        "MSAL_MANAGED_IDENTITY_ENDPOINT",
        f.authority.imds_endpoint(),
    )]);
    let keys_before = private_keys_loaded_on_this_thread();
    let client = ConfidentialClient::builder_from_options(&options)
        .unwrap()
        .credential_source(Arc::new(
            CredentialDescriptions::from_call_api(&options).environment(env),
        ))
        .clock(f.shared_clock())
        .build()
        .unwrap();
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(signer_of(client.credential()).backend(), "key vault");
    assert_eq!(private_keys_loaded_on_this_thread(), keys_before);
}

fn secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

trait UnixNow {
    fn unix_seconds_now(&self) -> u64;
}

impl UnixNow for ManualClock {
    fn unix_seconds_now(&self) -> u64 {
        tower_azure_auth::clock::Clock::unix_seconds(self)
    }
}
