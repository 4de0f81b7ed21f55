//! Our clients as the credential of a real Azure SDK for Rust client: the official
//! `azure_security_keyvault_secrets::SecretClient` reads a secret from the dev authority's Key
//! Vault over HTTPS, doing Key Vault's challenge authentication (an unauthenticated request,
//! `401 WWW-Authenticate: Bearer authorization="…", resource="https://vault.azure.net"`, the
//! challenge resource verified against the vault's host, then the token for
//! `https://vault.azure.net/.default`) with our certificate `ConfidentialClient` and with our
//! `ManagedIdentityCredential` as its `TokenCredential`.
//!
//! The vault is addressed as `devvault.vault.azure.net` (resolved to 127.0.0.1 by the SDK's
//! transport, the TLS certificate names it), so the SDK's challenge-resource check runs as it
//! does against Azure.
#![cfg(feature = "azure-core")]
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, Transport};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use entra_dev_authority::{
    generate_certificate, generate_tls_certificate, ContentType, DevApplication, DevAuthority,
    DevKeyVault, Endpoint, GeneratedCertificate,
};
use tower_azure_auth::credentials::{
    ClientCertificate, ConfidentialClient, ManagedIdentityCredential, TokenError,
};
use tower_azure_auth::error::error_chain;
use tower_azure_auth::{Authority, HttpClient};

const CLIENT: &str = "0b7c5d2e-0000-4000-8000-0000000000a1";
const SECRET_CLIENT: &str = "0b7c5d2e-0000-4000-8000-0000000000a2";
const IDENTITY: &str = "0b7c5d2e-0000-4000-8000-0000000000a3";
const CLIENT_SECRET: &str = "the-right-client-secret";
const SECRET_NAME: &str = "ServiceApiCert";
/// A vault host under Key Vault's DNS suffix, resolved to the dev authority.
const VAULT_HOST: &str = "devvault.vault.azure.net";

struct Fixture {
    authority: DevAuthority,
    tls: GeneratedCertificate,
    client_certificate: GeneratedCertificate,
    vault_certificate: GeneratedCertificate,
}

async fn fixture() -> Fixture {
    let tls = generate_tls_certificate(["127.0.0.1", VAULT_HOST]).unwrap();
    let client_certificate = generate_certificate("CN=weather-client").unwrap();
    let vault_certificate = generate_certificate("CN=stored-in-the-vault").unwrap();
    let authority = DevAuthority::builder()
        .tls(tls.cert_pem.clone(), tls.key_pem.clone())
        .application(
            DevApplication::new(CLIENT)
                .certificate_pem(&client_certificate.cert_pem)
                .unwrap(),
        )
        .application(DevApplication::new(SECRET_CLIENT).secret(CLIENT_SECRET))
        .managed_identity(IDENTITY)
        .key_vault(DevKeyVault::new().certificate(
            SECRET_NAME,
            &vault_certificate,
            ContentType::Pkcs12,
        ))
        .start()
        .await
        .unwrap();
    Fixture {
        authority,
        tls,
        client_certificate,
        vault_certificate,
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

    fn confidential_client(&self) -> ConfidentialClient {
        let certificate = ClientCertificate::from_pem(
            format!(
                "{}\n{}",
                self.client_certificate.cert_pem, self.client_certificate.key_pem
            )
            .as_bytes(),
        )
        .unwrap();
        ConfidentialClient::builder(CLIENT)
            .authority(
                Authority::entra(&self.authority.instance(), self.authority.tenant_id()).unwrap(),
            )
            .certificate(certificate)
            .http_client(self.http())
            .build()
            .unwrap()
    }

    /// The vault's URL under its Key Vault host name.
    fn vault_url(&self) -> String {
        let url = self.authority.vault_url();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        url.replacen("127.0.0.1", VAULT_HOST, 1)
    }

    /// The SDK's `SecretClient` for the vault, with a transport that trusts the dev
    /// authority's certificate and resolves the vault host to it; the SDK's own
    /// challenge-resource verification stays on (its default).
    fn secret_client(&self, credential: Arc<dyn TokenCredential>, url: &str) -> SecretClient {
        let addr: SocketAddr = self.authority.local_addr();
        let transport = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_der(&self.tls.cert_der).unwrap()])
            .resolve(VAULT_HOST, addr)
            .build()
            .unwrap();
        let options = SecretClientOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(transport))),
                ..ClientOptions::default()
            },
            ..SecretClientOptions::default()
        };
        SecretClient::new(url, credential, Some(options)).unwrap()
    }

    /// Reads the vault's secret and checks it is the stored certificate.
    async fn read_secret(&self, client: &SecretClient) -> azure_core::Result<()> {
        let secret = client.get_secret(SECRET_NAME, None).await?.into_model()?;
        assert_eq!(secret.content_type.as_deref(), Some("application/x-pkcs12"));
        let value = secret.value.expect("the secret's value");
        let stored = ClientCertificate::from_base64_pkcs12(&value, None).unwrap();
        assert_eq!(stored.thumbprints().x5t(), self.vault_certificate.x5t);
        Ok(())
    }
}

#[tokio::test]
async fn the_azure_sdk_secret_client_reads_a_vault_secret_with_our_certificate_client() {
    let f = fixture().await;
    let ours = f.confidential_client();
    let client = f.secret_client(Arc::new(ours.clone()), &f.vault_url());

    f.read_secret(&client).await.unwrap();
    // The challenge (no token) and the authorized request; one token from the authority.
    assert_eq!(f.authority.request_count(Endpoint::KeyVault), 2);
    assert_eq!(f.authority.request_count(Endpoint::Token), 1);

    // The token the SDK used came from our cache: asking our client for the same scope makes
    // no request.
    let cached = ours
        .acquire_token_for_client(&["https://vault.azure.net/.default"])
        .await
        .unwrap();
    assert!(!cached.secret().is_empty());
    assert_eq!(f.authority.request_count(Endpoint::Token), 1);

    // A second read (a new SDK client, so a new challenge) reuses our cached token.
    let again = f.secret_client(Arc::new(ours), &f.vault_url());
    f.read_secret(&again).await.unwrap();
    assert_eq!(f.authority.request_count(Endpoint::Token), 1);
    f.authority.shutdown().await;
}

#[tokio::test]
async fn the_dev_vault_challenge_is_verified_by_the_sdk_against_the_vault_host() {
    let f = fixture().await;
    // Addressed by IP, the vault's challenge (`resource="https://vault.azure.net"`) does not
    // match the host: the SDK refuses to send a token there, as it would to a fake vault.
    let client = f.secret_client(Arc::new(f.confidential_client()), &f.authority.vault_url());
    let error = f.read_secret(&client).await.unwrap_err();
    let text = format!("{} {error:?}", error_chain(&error));
    assert!(
        text.contains("doesn't match the requested domain"),
        "{text}"
    );
    assert_eq!(f.authority.request_count(Endpoint::Token), 0);
    f.authority.shutdown().await;
}

#[tokio::test]
async fn a_refused_client_fails_the_sdk_call_with_a_credential_error_and_the_aadsts_code() {
    let f = fixture().await;
    let wrong = ConfidentialClient::builder(SECRET_CLIENT)
        .authority(Authority::entra(&f.authority.instance(), f.authority.tenant_id()).unwrap())
        .client_secret("not-the-secret")
        .http_client(f.http())
        .build()
        .unwrap();
    let credential: Arc<dyn TokenCredential> = Arc::new(wrong);
    let client = f.secret_client(credential.clone(), &f.vault_url());
    let error = f.read_secret(&client).await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(text.contains("7000215"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");

    // Straight from the credential: kind Credential, our TokenError as the source.
    let error = credential
        .get_token(&["https://vault.azure.net/.default"], None)
        .await
        .unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Credential), "{error:?}");
    let source = error.downcast_ref::<TokenError>().expect("our error");
    assert_eq!(source.aadsts_code(), Some(7_000_215));

    // A scope our client refuses is refused before any request.
    let before = f.authority.request_count(Endpoint::Token);
    let error = credential
        .get_token(&["https://vault.azure.net"], None)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("/.default"), "{error}");
    assert_eq!(f.authority.request_count(Endpoint::Token), before);

    // And the right secret works through the same path.
    let right = ConfidentialClient::builder(SECRET_CLIENT)
        .authority(Authority::entra(&f.authority.instance(), f.authority.tenant_id()).unwrap())
        .client_secret(CLIENT_SECRET)
        .http_client(f.http())
        .build()
        .unwrap();
    f.read_secret(&f.secret_client(Arc::new(right), &f.vault_url()))
        .await
        .unwrap();
    f.authority.shutdown().await;
}

#[tokio::test]
async fn the_azure_sdk_secret_client_reads_a_vault_secret_with_our_managed_identity() {
    let f = fixture().await;
    let identity = ManagedIdentityCredential::builder()
        .imds_endpoint(f.authority.imds_endpoint())
        .http_client(f.http())
        .build()
        .unwrap();
    let client = f.secret_client(Arc::new(identity.clone()), &f.vault_url());
    f.read_secret(&client).await.unwrap();
    assert_eq!(f.authority.request_count(Endpoint::ManagedIdentity), 1);
    assert_eq!(f.authority.request_count(Endpoint::Token), 0);

    // From the identity's cache the second time.
    let again = f.secret_client(Arc::new(identity), &f.vault_url());
    f.read_secret(&again).await.unwrap();
    assert_eq!(f.authority.request_count(Endpoint::ManagedIdentity), 1);
    f.authority.shutdown().await;
}
