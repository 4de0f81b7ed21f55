//! The `weather-client` binary as a real process, configured only through `CallApi__…`
//! environment variables like the seed's `CallApi` section, against the dev authority and the
//! axum weather API on 127.0.0.1.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::process::Output;

use entra_dev_authority::{
    generate_certificate, DevApi, DevApplication, DevAuthority, GeneratedCertificate,
};
use tower_azure_auth::claims::TokenVersion;
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::AzureAdOptions;

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const SERVICE: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";

struct World {
    authority: DevAuthority,
    api: String,
    dir: PathBuf,
}

async fn world(registered: &GeneratedCertificate) -> World {
    let uri = format!("api://{SERVICE}");
    let authority = DevAuthority::builder()
        .tenant_id(TENANT)
        .api(
            DevApi::new(SERVICE)
                .app_id_uri(&uri)
                .app_roles(["service-api"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(SERVICE)
                .certificate_pem(&registered.cert_pem)
                .unwrap()
                .grant(&uri, ["service-api"]),
        )
        .start()
        .await
        .unwrap();
    let options: AzureAdOptions = ConfigSource::new()
        .with_env([
            ("AzureAd__Instance".to_owned(), authority.instance()),
            ("AzureAd__TenantId".to_owned(), TENANT.to_owned()),
            ("AzureAd__ClientId".to_owned(), SERVICE.to_owned()),
        ])
        .section("AzureAd")
        .unwrap();
    let app = weather_api_axum::app(&options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = std::env::temp_dir().join(format!("weather-client-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    World {
        authority,
        api,
        dir,
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn run_client(world: &World, certificate: &GeneratedCertificate) -> Output {
    let pem = world.dir.join("client.pem");
    std::fs::write(&pem, certificate.combined_pem()).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_weather-client"))
        .env_clear()
        .env(
            "CallApi__ScopeForAccessToken",
            format!("api://{SERVICE}/.default"),
        )
        .env("CallApi__ApiBaseAddress", &world.api)
        .env("CallApi__Instance", world.authority.instance())
        .env("CallApi__TenantId", TENANT)
        .env("CallApi__ClientId", SERVICE)
        .env("CallApi__ClientCertificates__0__SourceType", "Path")
        .env("CallApi__ClientCertificates__0__CertificateDiskPath", &pem)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_binary_gets_a_forecast_with_its_certificate() {
    let certificate = generate_certificate("CN=weather-service").unwrap();
    let world = world(&certificate).await;
    let output = run_client(&world, &certificate).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let forecast: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(forecast.as_array().map(Vec::len), Some(5), "{stdout}");
    std::fs::remove_dir_all(&world.dir).ok();
}

#[tokio::test]
async fn an_unregistered_certificate_is_explained_with_its_aadsts_code() {
    let registered = generate_certificate("CN=weather-service").unwrap();
    let stranger = generate_certificate("CN=not-registered").unwrap();
    let world = world(&registered).await;
    let output = run_client(&world, &stranger).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("AADSTS700027"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    assert_eq!(output.stdout.len(), 0);
    std::fs::remove_dir_all(&world.dir).ok();
}
