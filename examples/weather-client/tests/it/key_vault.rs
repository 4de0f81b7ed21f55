//! The `weather-client` binary configured like the seed's `CallApi` section with
//! `SourceType: KeyVault`: the vault URL points at the dev authority's Key Vault, the vault's
//! token comes from its managed identity endpoint (`MSAL_MANAGED_IDENTITY_ENDPOINT`), the
//! certificate signs the assertion, and the forecast comes from the axum weather API.
#![allow(missing_docs)]

use std::process::Output;

use entra_dev_authority::{
    generate_certificate, ContentType, DevApi, DevApplication, DevAuthority, DevKeyVault,
    GeneratedCertificate,
};
use tower_azure_auth::claims::TokenVersion;
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::AzureAdOptions;

const CLIENT_ID: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const TENANT_ID: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const IDENTITY: &str = "5a9f0c1e-0000-4000-8000-000000000009";

pub(crate) struct Setup {
    pub(crate) authority: DevAuthority,
    pub(crate) api: String,
    pub(crate) config: std::path::PathBuf,
}

async fn setup() -> Setup {
    let certificate = generate_certificate("CN=ServiceApiCert").unwrap();
    start(
        &certificate,
        DevKeyVault::new().certificate("ServiceApiCert", &certificate, ContentType::Pkcs12),
        |authority| {
            format!(
                r#"{{"SourceType": "KeyVault", "KeyVaultUrl": "{}", "KeyVaultCertificateName": "ServiceApiCert"}}"#,
                authority.vault_url()
            )
        },
        "kv",
    )
    .await
}

/// The dev authority (with `vault` and a managed identity), the axum weather API, and the
/// seed's `CallApi` section in a file with `ClientCertificates: [credential(authority)]`.
pub(crate) async fn start(
    certificate: &GeneratedCertificate,
    vault: DevKeyVault,
    credential: impl FnOnce(&DevAuthority) -> String,
    name: &str,
) -> Setup {
    let api_uri = format!("api://{CLIENT_ID}");
    let authority = DevAuthority::builder()
        .tenant_id(TENANT_ID)
        .api(
            DevApi::new(CLIENT_ID)
                .app_id_uri(&api_uri)
                .app_roles(["service-api"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(CLIENT_ID)
                .certificate_pem(&certificate.cert_pem)
                .unwrap()
                .grant(&api_uri, ["service-api"]),
        )
        .managed_identity(IDENTITY)
        .key_vault(vault)
        .start()
        .await
        .unwrap();

    let options: AzureAdOptions = ConfigSource::from_json_str(&format!(
        r#"{{"AzureAd": {{"Instance": "{}", "TenantId": "{TENANT_ID}", "ClientId": "{CLIENT_ID}"}}}}"#,
        authority.instance()
    ))
    .unwrap()
    .section("AzureAd")
    .unwrap();
    let app = weather_api_axum::app(&options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // The seed's CallApi section, the vault URL pointed at the local vault.
    let config =
        std::env::temp_dir().join(format!("weather-client-{name}-{}.json", std::process::id()));
    let credential = credential(&authority);
    std::fs::write(
        &config,
        format!(
            r#"{{"CallApi": {{
                "ScopeForAccessToken": "api://{CLIENT_ID}/.default",
                "ApiBaseAddress": "{api}",
                "Instance": "{}",
                "Domain": "damienbodhotmail.onmicrosoft.com",
                "TenantId": "{TENANT_ID}",
                "ClientId": "{CLIENT_ID}",
                "ClientCertificates": [{credential}]}}}}"#,
            authority.instance(),
        ),
    )
    .unwrap();
    Setup {
        authority,
        api,
        config,
    }
}

pub(crate) async fn run_client(setup: &Setup, env: &[(&str, &std::ffi::OsStr)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_weather-client"))
        .envs(env.iter().copied())
        .arg("--config")
        .arg(&setup.config)
        .env(
            "MSAL_MANAGED_IDENTITY_ENDPOINT",
            setup.authority.imds_endpoint(),
        )
        .env_remove("IDENTITY_ENDPOINT")
        .env_remove("IDENTITY_HEADER")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_POD_IDENTITY_AUTHORITY_HOST")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_key_vault_configuration_gets_a_forecast() {
    let setup = setup().await;
    let output = run_client(&setup, &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let forecast: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(forecast.as_array().map(Vec::len), Some(5), "{forecast}");
    assert!(setup.api.starts_with("http://127.0.0.1:"));

    // The identity loses access to the vault: a one-paragraph explanation, exit 1.
    setup.authority.deny_vault_access(IDENTITY, true);
    let output = run_client(&setup, &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    for needle in ["ServiceApiCert", "HTTP 403", "no get permission"] {
        assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    }
    let _ = std::fs::remove_file(&setup.config);
}
