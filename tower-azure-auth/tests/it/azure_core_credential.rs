//! The `azure-core` feature over real HTTPS on 127.0.0.1: a credential of the official
//! `azure_identity` crate (`ClientSecretCredential`, pointed at the dev authority as a custom
//! cloud) gets the Key Vault token through `AzureCoreCredential`, the vault's certificate then
//! gets the weather API's token; a failing or misbehaving credential is explained.
#![cfg(feature = "azure-core")]
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use entra_dev_authority::{
    generate_certificate, generate_tls_certificate, ContentType, DevApi, DevApplication,
    DevAuthority, DevKeyVault, Endpoint, GeneratedCertificate,
};
use tower_azure_auth::config::{CallApiOptions, ConfigSource};
use tower_azure_auth::credentials::{
    AzureCoreCredential, ClientCredential, ConfidentialClient, CredentialContext,
    CredentialDescriptions, CredentialSource, TokenError, TokenSource, KEY_VAULT_SCOPE,
};
use tower_azure_auth::error::error_chain;
use tower_azure_auth::HttpClient;

const CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000002";
const API: &str = "6f8a1c52-0000-4000-8000-000000000001";
/// The app whose secret `azure_identity` holds: it only reads the vault.
const VAULT_READER: &str = "3c2b1a09-0000-4000-8000-000000000007";
const VAULT_READER_SECRET: &str = "vault-reader-secret-value";
const SCOPE: &str = "api://weather/.default";
const CERT_NAME: &str = "ServiceApiCert";

struct Fixture {
    authority: DevAuthority,
    tls: GeneratedCertificate,
    certificate: GeneratedCertificate,
}

async fn fixture() -> Fixture {
    let tls = generate_tls_certificate(["127.0.0.1"]).unwrap();
    let certificate = generate_certificate("CN=weather-client").unwrap();
    let authority = DevAuthority::builder()
        .tls(tls.cert_pem.clone(), tls.key_pem.clone())
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
        .application(DevApplication::new(VAULT_READER).secret(VAULT_READER_SECRET))
        .key_vault(DevKeyVault::new().certificate(CERT_NAME, &certificate, ContentType::Pkcs12))
        .start()
        .await
        .unwrap();
    Fixture {
        authority,
        tls,
        certificate,
    }
}

impl Fixture {
    /// Our HTTP client, trusting the dev authority's TLS certificate.
    fn http(&self) -> HttpClient {
        HttpClient::builder()
            .add_root_certificate(self.tls.cert_der.clone())
            .build()
            .unwrap()
    }

    /// `azure_identity`'s own client-secret credential, with the dev authority as a custom
    /// cloud and a transport that trusts its certificate.
    fn azure_identity_credential(&self, secret: &str) -> Arc<dyn TokenCredential> {
        let transport = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_der(&self.tls.cert_der).unwrap()])
            .build()
            .unwrap();
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = self.authority.instance();
        let options = ClientSecretCredentialOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(transport))),
                cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
                ..ClientOptions::default()
            },
        };
        ClientSecretCredential::new(
            self.authority.tenant_id(),
            VAULT_READER.to_owned(),
            Secret::new(secret.to_owned()),
            Some(options),
        )
        .unwrap()
    }

    fn call_api(&self) -> CallApiOptions {
        let json = format!(
            r#"{{"CallApi": {{"ClientId": "{CLIENT}", "Instance": "{}", "TenantId": "{}",
                "ClientCertificates": [{{"SourceType": "KeyVault", "KeyVaultUrl": "{}",
                    "KeyVaultCertificateName": "{CERT_NAME}"}}]}}}}"#,
            self.authority.instance(),
            self.authority.tenant_id(),
            self.authority.vault_url(),
        );
        ConfigSource::from_json_str(&json)
            .unwrap()
            .section("CallApi")
            .unwrap()
    }

    fn context(&self) -> CredentialContext {
        CredentialContext::new(self.http(), Arc::new(tower_azure_auth::clock::SystemClock))
    }
}

#[tokio::test]
async fn an_azure_identity_credential_reads_the_vault_for_the_configured_key_vault_source() {
    let f = fixture().await;
    assert!(f.authority.vault_url().starts_with("https://127.0.0.1:"));
    let options = f.call_api();
    let descriptions = CredentialDescriptions::from_call_api(&options)
        .vault_credential(f.azure_identity_credential(VAULT_READER_SECRET));

    // The configured KeyVault source loads the vault's certificate with azure_identity's token.
    let credential = descriptions.load(&f.context()).await.unwrap();
    let ClientCredential::Certificate(certificate) = &credential else {
        panic!("the KeyVault source loads a certificate");
    };
    assert_eq!(certificate.thumbprints().x5t(), f.certificate.x5t);

    // And the confidential client, fed by that source, gets the weather API's token.
    let client = ConfidentialClient::builder_from_options(&options)
        .unwrap()
        .http_client(f.http())
        .credential_source(Arc::new(descriptions))
        .build()
        .unwrap();
    let token = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    assert!(!token.secret().is_empty());

    // One token request from azure_identity (client secret, for the vault), one from the
    // confidential client (certificate, for the API).
    assert_eq!(f.authority.request_count(Endpoint::Token), 2);
    f.authority.shutdown().await;
}

#[tokio::test]
async fn the_adapter_returns_the_credentials_token_and_expiry() {
    let f = fixture().await;
    let source = AzureCoreCredential::new(f.azure_identity_credential(VAULT_READER_SECRET));
    let scopes = [KEY_VAULT_SCOPE.to_owned()];
    let token = source.token(&scopes, false).await.unwrap();
    assert_eq!(token.scopes(), &scopes);
    let left = token
        .expires_on()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        left > Duration::from_secs(600) && left <= Duration::from_secs(24 * 3600),
        "expiry carried over: {left:?} left"
    );
    // The credential's own cache answers the second call (force_refresh cannot be passed on).
    let again = source.token(&scopes, true).await.unwrap();
    assert_eq!(again.secret(), token.secret());
    assert_eq!(f.authority.request_count(Endpoint::Token), 1);
    f.authority.shutdown().await;
}

#[tokio::test]
async fn a_refused_azure_identity_credential_is_explained_with_the_aadsts_code() {
    let f = fixture().await;
    let descriptions = CredentialDescriptions::from_call_api(&f.call_api())
        .vault_credential(f.azure_identity_credential("not-the-secret"));
    let error = descriptions
        .load(&f.context())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("KeyVault")
            && error.contains("the token credential failed")
            && error.contains("7000215"),
        "{error}"
    );
    // The SDK's message names its source already; the chain says it once.
    assert_eq!(error.matches("AADSTS7000215").count(), 1, "{error}");
    assert!(!error.contains("not-the-secret"), "{error}");
    f.authority.shutdown().await;
}

/// A credential that answers what it is told to, like a test double of `DefaultAzureCredential`.
#[derive(Debug)]
enum Scripted {
    Fails,
    Expired,
    Empty,
}

#[async_trait::async_trait]
impl TokenCredential for Scripted {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        let in_an_hour =
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        match self {
            Self::Fails => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "no credential in the chain could authenticate",
            )),
            Self::Expired => Ok(azure_core::credentials::AccessToken::new(
                "expired-token",
                azure_core::time::OffsetDateTime::now_utc()
                    - azure_core::time::Duration::minutes(1),
            )),
            Self::Empty => Ok(azure_core::credentials::AccessToken::new("", in_an_hour)),
        }
    }
}

#[tokio::test]
async fn a_failing_or_misbehaving_credential_is_an_error_never_a_token() {
    struct Case {
        name: &'static str,
        credential: Scripted,
        expected: &'static str,
    }
    let cases = [
        Case {
            name: "the credential fails",
            credential: Scripted::Fails,
            expected: "no credential in the chain could authenticate",
        },
        Case {
            name: "an expired token",
            credential: Scripted::Expired,
            expected: "returned an expired token",
        },
        Case {
            name: "an empty token",
            credential: Scripted::Empty,
            expected: "returned an empty token",
        },
    ];
    let scopes = [KEY_VAULT_SCOPE.to_owned()];
    for case in cases {
        let source = AzureCoreCredential::new(Arc::new(case.credential));
        let error = source.token(&scopes, false).await.unwrap_err();
        let chain = error_chain(&error);
        assert!(chain.contains(case.expected), "{}: {chain}", case.name);
        if case.name == "the credential fails" {
            assert!(matches!(error, TokenError::Credential(_)), "{}", case.name);
        }
        assert!(!chain.contains("expired-token"), "{}: {chain}", case.name);
    }
    // `Debug` never shows the wrapped credential.
    let debug = format!(
        "{:?}",
        AzureCoreCredential::new(Arc::new(Scripted::Expired))
    );
    assert_eq!(debug, "AzureCoreCredential { .. }");
}
