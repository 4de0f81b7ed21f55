//! Key Vault certificates over real HTTP on 127.0.0.1: the dev authority's vault (PKCS#12
//! and PEM secrets, 401/403/404 error bodies), tokens from its managed identity endpoint,
//! rotation when the authority refuses the old certificate (AADSTS700027) and on the reload
//! schedule, and `CredentialDescriptions` with `SourceType: KeyVault`.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use entra_dev_authority::{
    generate_certificate, ContentType, DevApi, DevApplication, DevAuthority, DevKeyVault, Endpoint,
    GeneratedCertificate,
};
use tower_azure_auth::clock::{ManualClock, SharedClock};
use tower_azure_auth::config::{CallApiOptions, ConfigSource};
use tower_azure_auth::credentials::{
    AccessToken, BoxFuture, ClientCredential, ConfidentialClient, CredentialContext,
    CredentialDescriptions, CredentialSource, Environment, KeyVaultCertificate,
    ManagedIdentityCredential, TokenError, TokenSource,
};
use tower_azure_auth::{Authority, HttpClient};

const CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000002";
const API: &str = "6f8a1c52-0000-4000-8000-000000000001";
const IDENTITY: &str = "5a9f0c1e-0000-4000-8000-000000000009";
const SCOPE: &str = "api://weather/.default";
const CERT_NAME: &str = "ServiceApiCert";

struct Fixture {
    authority: DevAuthority,
    certificate: GeneratedCertificate,
    clock: ManualClock,
}

async fn fixture(content_type: ContentType) -> Fixture {
    let clock = ManualClock::now();
    let certificate = generate_certificate("CN=weather-client").unwrap();
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
        .key_vault(DevKeyVault::new().certificate(CERT_NAME, &certificate, content_type))
        .start()
        .await
        .unwrap();
    Fixture {
        authority,
        certificate,
        clock,
    }
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

    fn vault(&self, name: &str) -> KeyVaultCertificate {
        KeyVaultCertificate::new(&self.authority.vault_url(), name, Arc::new(self.identity()))
            .unwrap()
    }

    fn client(&self, source: Arc<dyn CredentialSource>) -> ConfidentialClient {
        ConfidentialClient::builder(CLIENT)
            .authority(
                Authority::entra(&self.authority.instance(), self.authority.tenant_id()).unwrap(),
            )
            .credential_source(source)
            .clock(self.shared_clock())
            .retry_delay(Duration::ZERO)
            .build()
            .unwrap()
    }

    fn context(&self) -> CredentialContext {
        CredentialContext::new(HttpClient::new().unwrap(), self.shared_clock())
    }
}

fn thumbprint(client: &ConfidentialClient) -> Option<String> {
    match client.credential() {
        Some(ClientCredential::Certificate(c)) => Some(c.thumbprints().x5t()),
        _ => None,
    }
}

#[tokio::test]
async fn pkcs12_and_pem_certificates_from_the_vault_get_tokens() {
    struct Case {
        name: &'static str,
        content_type: ContentType,
    }
    let cases = [
        Case {
            name: "pkcs12",
            content_type: ContentType::Pkcs12,
        },
        Case {
            name: "pem",
            content_type: ContentType::Pem,
        },
    ];
    for case in cases {
        let f = fixture(case.content_type).await;
        let client = f.client(Arc::new(f.vault(CERT_NAME)));
        let token = client
            .acquire_token_for_client(&[SCOPE])
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert!(!token.secret().is_empty(), "{}", case.name);
        assert_eq!(
            thumbprint(&client).as_deref(),
            Some(f.certificate.x5t.as_str()),
            "{}: the vault's certificate is in use",
            case.name
        );
        // Certificate bundle, then the secret version it names; one managed identity token.
        assert_eq!(
            f.authority.request_count(Endpoint::KeyVault),
            2,
            "{}",
            case.name
        );
        assert_eq!(
            f.authority.request_count(Endpoint::ManagedIdentity),
            1,
            "{}",
            case.name
        );
        f.authority.shutdown().await;
    }
}

/// Always returns the same token, whatever is asked.
#[derive(Debug)]
struct FixedToken(&'static str);

impl TokenSource for FixedToken {
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        _force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            Ok(AccessToken::new(
                self.0,
                SystemTime::now() + Duration::from_secs(3600),
                scopes.to_vec(),
            ))
        })
    }
}

#[tokio::test]
async fn vault_errors_name_the_vault_the_certificate_and_the_code() {
    struct Case {
        name: &'static str,
        certificate: &'static str,
        token: Option<Arc<dyn TokenSource>>,
        scope: Option<&'static str>,
        deny: bool,
        needles: &'static [&'static str],
        vault_requests: u64,
    }
    let cases = [
        Case {
            name: "403: the identity has no access",
            certificate: CERT_NAME,
            token: None,
            scope: None,
            deny: true,
            needles: &[
                "HTTP 403",
                "(Forbidden)",
                "no get permission on secrets",
                CERT_NAME,
            ],
            vault_requests: 1,
        },
        Case {
            name: "404: no such certificate",
            certificate: "OtherCert",
            token: None,
            scope: None,
            deny: false,
            needles: &[
                "HTTP 404",
                "(CertificateNotFound)",
                "OtherCert",
                "KeyVaultCertificateName",
            ],
            vault_requests: 1,
        },
        Case {
            name: "401: a token for another resource, retried once with a fresh one",
            certificate: CERT_NAME,
            token: None,
            scope: Some(SCOPE),
            deny: false,
            needles: &[
                "HTTP 401",
                "(Unauthorized)",
                "AKV10022",
                "did not accept the token",
            ],
            vault_requests: 2,
        },
        Case {
            name: "401: a token this authority did not sign",
            certificate: CERT_NAME,
            token: Some(Arc::new(FixedToken(
                "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln",
            ))),
            scope: None,
            deny: false,
            needles: &["HTTP 401", "(Unauthorized)", "AKV10032"],
            vault_requests: 2,
        },
    ];
    let f = fixture(ContentType::Pkcs12).await;
    for case in cases {
        f.authority.reset_request_counts();
        f.authority.deny_vault_access(IDENTITY, case.deny);
        let token: Arc<dyn TokenSource> = case.token.unwrap_or_else(|| Arc::new(f.identity()));
        let mut vault =
            KeyVaultCertificate::new(&f.authority.vault_url(), case.certificate, token).unwrap();
        if let Some(scope) = case.scope {
            vault = vault.with_scope(scope);
        }
        let error = vault.load(&f.context()).await.unwrap_err().to_string();
        for needle in case.needles {
            assert!(
                error.contains(needle),
                "{}: {error:?} lacks {needle:?}",
                case.name
            );
        }
        assert!(
            error.contains(&f.authority.vault_url()),
            "{}: {error}",
            case.name
        );
        assert_eq!(
            f.authority.request_count(Endpoint::KeyVault),
            case.vault_requests,
            "{}",
            case.name
        );
    }
}

#[tokio::test]
async fn the_vault_challenges_requests_without_a_token() {
    let f = fixture(ContentType::Pkcs12).await;
    let url = format!(
        "{}/certificates/{CERT_NAME}?api-version=7.4",
        f.authority.vault_url()
    );
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.contains("resource=\"https://vault.azure.net\""),
        "{challenge}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Unauthorized");
}

#[tokio::test]
async fn a_certificate_rotated_in_the_vault_is_used_after_the_authority_refuses_the_old_one() {
    let f = fixture(ContentType::Pkcs12).await;
    let client = f.client(Arc::new(f.vault(CERT_NAME)));
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(
        thumbprint(&client).as_deref(),
        Some(f.certificate.x5t.as_str())
    );

    // Rotation: a new version in the vault, and the app registration only knows the new one.
    let next = generate_certificate("CN=weather-client 2").unwrap();
    f.authority
        .set_vault_certificate(CERT_NAME, &next, ContentType::Pem)
        .unwrap();
    f.authority
        .set_application_certificates(CLIENT, &[&next.cert_pem])
        .unwrap();
    f.authority.reset_request_counts();

    // The next request is refused (700027), the source reloaded, the request retried once.
    let token = client.force_refresh(&[SCOPE]).await.unwrap();
    assert!(!token.secret().is_empty());
    assert_eq!(thumbprint(&client).as_deref(), Some(next.x5t.as_str()));
    assert_eq!(
        f.authority.request_count(Endpoint::Token),
        2,
        "refused, then accepted"
    );
    assert_eq!(
        f.authority.request_count(Endpoint::KeyVault),
        2,
        "one reload"
    );

    // The old certificate alone is refused with the code that triggers the reload.
    let old_only = ConfidentialClient::builder(CLIENT)
        .authority(Authority::entra(&f.authority.instance(), f.authority.tenant_id()).unwrap())
        .credential(ClientCredential::Certificate(
            tower_azure_auth::credentials::ClientCertificate::from_pem(
                f.certificate.combined_pem().as_bytes(),
            )
            .unwrap(),
        ))
        .clock(f.shared_clock())
        .build()
        .unwrap();
    let error = old_only
        .acquire_token_for_client(&[SCOPE])
        .await
        .unwrap_err();
    assert_eq!(error.aadsts_code(), Some(700027), "{error}");
}

#[tokio::test]
async fn the_vault_is_read_again_after_the_reload_interval() {
    let f = fixture(ContentType::Pkcs12).await;
    let client = ConfidentialClient::builder(CLIENT)
        .authority(Authority::entra(&f.authority.instance(), f.authority.tenant_id()).unwrap())
        .credential_source(Arc::new(f.vault(CERT_NAME)))
        .clock(f.shared_clock())
        .reload_interval(Some(Duration::from_secs(3600)))
        .build()
        .unwrap();
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    let next = generate_certificate("CN=weather-client 2").unwrap();
    f.authority
        .set_vault_certificate(CERT_NAME, &next, ContentType::Pkcs12)
        .unwrap();
    // Both are registered: no refusal, only the schedule can switch certificates.
    f.authority
        .set_application_certificates(CLIENT, &[&f.certificate.cert_pem, &next.cert_pem])
        .unwrap();
    f.authority.reset_request_counts();

    // Before the interval: a new token, the same certificate, no vault request.
    f.clock.advance(Duration::from_secs(1800));
    client.force_refresh(&[SCOPE]).await.unwrap();
    assert_eq!(f.authority.request_count(Endpoint::KeyVault), 0);
    assert_eq!(
        thumbprint(&client).as_deref(),
        Some(f.certificate.x5t.as_str())
    );

    // After it: the next request to the authority reloads first (a cache hit does no I/O).
    f.clock.advance(Duration::from_secs(1801));
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert_eq!(
        f.authority.request_count(Endpoint::KeyVault),
        0,
        "cache hit"
    );
    client.force_refresh(&[SCOPE]).await.unwrap();
    assert_eq!(f.authority.request_count(Endpoint::KeyVault), 2);
    assert_eq!(thumbprint(&client).as_deref(), Some(next.x5t.as_str()));
    assert_eq!(f.authority.request_count(Endpoint::Token), 2);
}

#[tokio::test]
async fn a_failed_scheduled_reload_keeps_the_current_certificate() {
    let f = fixture(ContentType::Pkcs12).await;
    let client = f.client(Arc::new(f.vault(CERT_NAME)));
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    f.authority.deny_vault_access(IDENTITY, true);
    f.clock.advance(Duration::from_secs(2 * 3600));
    let token = client.acquire_token_for_client(&[SCOPE]).await;
    assert!(token.is_ok(), "{token:?}");
    assert_eq!(
        thumbprint(&client).as_deref(),
        Some(f.certificate.x5t.as_str())
    );
}

fn call_api(json: &str) -> CallApiOptions {
    ConfigSource::from_json_str(json)
        .unwrap()
        .section("CallApi")
        .unwrap()
}

#[tokio::test]
async fn descriptions_load_the_vault_with_the_managed_identity_from_the_environment() {
    let f = fixture(ContentType::Pkcs12).await;
    let options = call_api(&format!(
        r#"{{"CallApi": {{"ClientId": "{CLIENT}", "Instance": "{}", "TenantId": "{}",
            "ClientCertificates": [
                {{"SourceType": "KeyVault", "KeyVaultUrl": "{}", "KeyVaultCertificateName": "Missing"}},
                {{"SourceType": "KeyVault", "KeyVaultUrl": "{}", "KeyVaultCertificateName": "{CERT_NAME}"}}]}}}}"#,
        f.authority.instance(),
        f.authority.tenant_id(),
        f.authority.vault_url(),
        f.authority.vault_url(),
    ));
    let env = Environment::from_pairs([
        (
            "MSAL_MANAGED_IDENTITY_ENDPOINT",
            f.authority.imds_endpoint(),
        ),
        ("AZURE_CLIENT_ID", IDENTITY.to_owned()),
    ]);
    let descriptions = CredentialDescriptions::from_call_api(&options).environment(env.clone());
    // The first (missing) certificate fails, the second loads.
    let credential = descriptions.load(&f.context()).await.unwrap();
    assert!(matches!(credential, ClientCredential::Certificate(_)));
    // Synchronous loading cannot reach a vault, and says so for each entry.
    let error = descriptions.load_now().unwrap_err().to_string();
    assert!(
        error.contains("[0]") && error.contains("[1]") && error.contains("needs network access"),
        "{error}"
    );

    // Through the client, as weather-client does.
    let client = ConfidentialClient::builder_from_options(&options)
        .unwrap()
        .credential_source(Arc::new(
            CredentialDescriptions::from_call_api(&options).environment(env),
        ))
        .clock(f.shared_clock())
        .build()
        .unwrap();
    client.acquire_token_for_client(&[SCOPE]).await.unwrap();

    // Every failure is explained when none loads.
    f.authority.deny_vault_access(IDENTITY, true);
    let all_fail = call_api(&format!(
        r#"{{"CallApi": {{"ClientCertificates": [
            {{"SourceType": "KeyVault", "KeyVaultUrl": "{}", "KeyVaultCertificateName": "{CERT_NAME}"}},
            {{"SourceType": "KeyVault", "KeyVaultUrl": "http://vault.example", "KeyVaultCertificateName": "c"}},
            {{"SourceType": "KeyVault", "KeyVaultUrl": "{}"}},
            {{"SourceType": "Path"}}]}}}}"#,
        f.authority.vault_url(),
        f.authority.vault_url(),
    ));
    let error = CredentialDescriptions::from_call_api(&all_fail)
        .environment(Environment::from_pairs([(
            "MSAL_MANAGED_IDENTITY_ENDPOINT",
            f.authority.imds_endpoint(),
        )]))
        .load(&f.context())
        .await
        .unwrap_err()
        .to_string();
    for needle in [
        "[0]",
        "HTTP 403",
        "[1]",
        "must use https",
        "[2]",
        "needs KeyVaultCertificateName",
        "[3]",
        "needs CertificateDiskPath",
    ] {
        assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    }
}

#[tokio::test]
async fn the_vault_token_was_sent_to_any_key_vault_url_host() {
    let f = fixture(ContentType::Pkcs12).await;
    let env = Environment::from_pairs([
        (
            "MSAL_MANAGED_IDENTITY_ENDPOINT",
            f.authority.imds_endpoint(),
        ),
        ("AZURE_CLIENT_ID", IDENTITY.to_owned()),
    ]);
    let options = |vault: &str| {
        call_api(&format!(
            r#"{{"CallApi": {{"ClientCertificates": [
                {{"SourceType": "KeyVault", "KeyVaultUrl": "{vault}", "KeyVaultCertificateName": "{CERT_NAME}"}}]}}}}"#
        ))
    };
    // A host that is not Key Vault's: refused before any token is asked for.
    for vault in [
        "https://vault.contoso.invalid",
        "https://contoso.vault.azure.net.contoso.invalid",
        "https://contosovault.azure.net",
    ] {
        f.authority.reset_request_counts();
        let error = CredentialDescriptions::from_call_api(&options(vault))
            .environment(env.clone())
            .load(&f.context())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("KeyVaultUrl") && error.contains("not a Key Vault host"),
            "{vault}: {error}"
        );
        assert_eq!(
            f.authority.request_count(Endpoint::ManagedIdentity),
            0,
            "{vault}: no vault token was requested"
        );
        let direct = KeyVaultCertificate::new(vault, CERT_NAME, Arc::new(f.identity()));
        assert!(direct.is_err(), "{vault}");
    }
    // The dev authority's vault (loopback) and the clouds' vaults are accepted.
    for vault in [
        "https://contoso.vault.azure.net",
        "https://contoso.vault.azure.cn",
        "https://contoso.vault.usgovcloudapi.net",
        "https://contoso.vault.microsoftazure.de",
        "https://contoso.managedhsm.azure.net",
        "https://CONTOSO.VAULT.AZURE.NET",
        &f.authority.vault_url(),
    ] {
        KeyVaultCertificate::new(vault, CERT_NAME, Arc::new(f.identity()))
            .unwrap_or_else(|e| panic!("{vault}: {e}"));
    }
    // The opt-out: any https host, then the token goes there (here: a host that never
    // resolves, so the load fails after the token was obtained).
    f.authority.reset_request_counts();
    let error = CredentialDescriptions::from_call_api(&options("https://vault.contoso.invalid"))
        .environment(env)
        .allow_any_key_vault_host(true)
        .load(&f.context())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("cannot be reached"), "{error}");
    assert_eq!(f.authority.request_count(Endpoint::ManagedIdentity), 1);
    KeyVaultCertificate::builder(
        "https://vault.contoso.invalid",
        CERT_NAME,
        Arc::new(f.identity()),
    )
    .allow_any_host(true)
    .build()
    .unwrap();
}
