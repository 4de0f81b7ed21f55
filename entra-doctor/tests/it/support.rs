//! A dev authority with the weather API and its client registered, configuration files, and
//! the doctor run as a process.

use std::path::{Path, PathBuf};
use std::process::Output;

use entra_dev_authority::{
    generate_certificate, DevApi, DevApplication, DevAuthority, GeneratedCertificate,
};
use tower_azure_auth::claims::TokenVersion;

pub(crate) const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
pub(crate) const SERVICE: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
pub(crate) const CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000002";
/// The API's own client secret in its configuration: never printed.
pub(crate) const API_SECRET: &str = "api-secret-Zq8~never-printed";
/// The client's secret registered in the dev authority: never printed.
pub(crate) const CLIENT_SECRET: &str = "client-secret-Xy7~never-printed";
pub(crate) const POLICY: &str = "ValidateAccessTokenPolicy";

pub(crate) struct World {
    pub(crate) authority: DevAuthority,
    pub(crate) registered: GeneratedCertificate,
    pub(crate) dir: PathBuf,
}

impl World {
    pub(crate) async fn start() -> Self {
        let registered = generate_certificate("CN=weather-client").unwrap();
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
                DevApplication::new(CLIENT)
                    .certificate_pem(&registered.cert_pem)
                    .unwrap()
                    .secret(CLIENT_SECRET)
                    .grant(&uri, ["service-api"]),
            )
            .start()
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "entra-doctor-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let world = Self {
            authority,
            registered,
            dir,
        };
        world.write(
            "appsettings.json",
            &serde_json::json!({
                "AzureAd": {
                    "Instance": world.authority.instance(),
                    "TenantId": TENANT,
                    "ClientId": SERVICE,
                    "ClientSecret": API_SECRET,
                },
                "Authorization": {
                    "Policies": [{
                        "Name": POLICY,
                        "RequireRoles": ["service-api"],
                        "RequireClientAuthentication": "Certificate"
                    }]
                }
            })
            .to_string(),
        );
        world
    }

    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.join("appsettings.json")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// What the doctor printed and its exit code.
pub(crate) struct Run {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) code: i32,
}

/// Runs the doctor with only `env` in its environment.
pub(crate) async fn doctor(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Run {
    let output: Output = tokio::process::Command::new(env!("CARGO_BIN_EXE_entra-doctor"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(cwd)
        .output()
        .await
        .unwrap();
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code().unwrap_or(-1),
    }
}

/// No secret, no private key anywhere in the output.
pub(crate) fn assert_no_secret(run: &Run, keys: &[&str], context: &str) {
    for text in [&run.stdout, &run.stderr] {
        for secret in [API_SECRET, CLIENT_SECRET, "PRIVATE KEY"]
            .iter()
            .chain(keys)
        {
            assert!(
                !text.contains(secret),
                "{context}: `{secret}` printed:\n{text}"
            );
        }
    }
}
