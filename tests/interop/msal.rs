//! Microsoft's MSAL for Python (`tests/interop/msal_client.py`, pinned in
//! `tests/interop/requirements.txt`) against our `DevAuthority` over TLS.

use std::path::PathBuf;

use entra_dev_authority::{
    generate_tls_certificate, DevApi, DevApplication, DevAuthority, GeneratedCertificate,
};
use serde_json::Value;
use tower_azure_auth::authority::HttpClient;
use tower_azure_auth::claims::TokenVersion;
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::{Authority, AzureAdOptions, TokenValidator};

use crate::certs;
use crate::support::{ensure, interop_dir, venv_python, Context as _, Outcome, Suite, TempDir};

const API: &str = "6f8a1c52-0000-4000-8000-00000000a001";
const CLIENT: &str = "0b7c5d2e-0000-4000-8000-00000000c002";
const SCOPE: &str = "api://weather/.default";
const PFX_PASSWORD: &str = "msal-pfx-password";

struct Fixture {
    authority: DevAuthority,
    dir: TempDir,
    python: PathBuf,
    ca: PathBuf,
    client: GeneratedCertificate,
    key: PathBuf,
    cert: PathBuf,
    pfx: PathBuf,
    unregistered: GeneratedCertificate,
    unregistered_key: PathBuf,
    validator: TokenValidator,
    api_url: String,
}

async fn setup() -> Result<Fixture, String> {
    let python = venv_python()?;
    let dir = TempDir::new("interop-msal")?;
    let tls = generate_tls_certificate(["127.0.0.1", "localhost"]).context("TLS certificate")?;
    let ca = dir.write("dev-authority-ca.pem", &tls.cert_pem)?;
    let client = certs::client_certificate("CN=msal-client")?;
    let key = dir.write("client-key.pem", &client.key_pem)?;
    let cert = dir.write("client-cert.pem", &client.cert_pem)?;
    let pfx = certs::write_pkcs12(&dir, "client.pfx", &client, PFX_PASSWORD)?;
    let unregistered = certs::client_certificate("CN=msal-unregistered")?;
    let unregistered_key = dir.write("unregistered-key.pem", &unregistered.key_pem)?;

    let authority = DevAuthority::builder()
        .tls(tls.cert_pem.clone(), tls.key_pem.clone())
        .api(
            DevApi::new(API)
                .app_id_uri("api://weather")
                .app_roles(["service-api"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(CLIENT)
                .display_name("msal-client")
                .certificate_pem(&client.cert_pem)
                .context("registering the client certificate")?
                .grant("api://weather", ["service-api"]),
        )
        .start()
        .await
        .context("starting the dev authority with TLS")?;

    let validator = validator_for(&authority, &tls.cert_der, API, CLIENT)?;
    let api_url = serve_weather_api(&authority, validator.clone(), API, CLIENT).await?;

    Ok(Fixture {
        authority,
        dir,
        python,
        ca,
        client,
        key,
        cert,
        pfx,
        unregistered,
        unregistered_key,
        validator,
        api_url,
    })
}

/// A validator for tokens of `api` from the dev authority, trusting its TLS certificate.
pub(crate) fn validator_for(
    authority: &DevAuthority,
    tls_cert_der: &[u8],
    api: &str,
    client: &str,
) -> Result<TokenValidator, String> {
    let http = HttpClient::builder()
        .add_root_certificate(tls_cert_der.to_vec())
        .build()
        .context("an HTTP client trusting the dev authority")?;
    TokenValidator::builder(
        Authority::entra(&authority.instance(), authority.tenant_id()).context("authority")?,
    )
    .client_id(api)
    // AllowedClientIds, as `serve_weather_api` configures it: the library's rule, as
    // `TokenValidator::from_options` sets it.
    .allowed_client_ids([client])
    .http_client(http)
    .build()
    .context("a validator for the dev authority")
}

/// The weather API (axum, in-process: it must trust the test TLS certificate) for tokens of
/// `api`, with the seed's policy: role service-api, azp = `client`, azpacr 2. Returns its
/// base URL.
pub(crate) async fn serve_weather_api(
    authority: &DevAuthority,
    validator: TokenValidator,
    api: &str,
    client: &str,
) -> Result<String, String> {
    let options: AzureAdOptions = ConfigSource::from_json_str(
        &serde_json::json!({ "AzureAd": {
            "Instance": authority.instance(),
            "TenantId": authority.tenant_id(),
            "ClientId": api,
            "AllowedClientIds": [client],
        }})
        .to_string(),
    )
    .and_then(|c| c.section("AzureAd"))
    .context("AzureAd options")?;
    let policies = weather_api_axum::configure_policies(&options).context("policies")?;
    let router = weather_api_axum::router(validator, &policies).context("router")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the API")?;
    let api_url = format!("http://{}", listener.local_addr().context("API address")?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(api_url)
}

impl Fixture {
    /// The authority as MSAL takes it: `https://127.0.0.1:PORT/{tenant}`.
    fn msal_authority(&self) -> String {
        format!(
            "{}{}",
            self.authority.instance(),
            self.authority.tenant_id()
        )
    }

    /// Runs msal_client.py; returns its JSON and whether it exited 0.
    async fn msal(&self, args: &[&str]) -> Result<(Value, bool), String> {
        let output = tokio::process::Command::new(&self.python)
            .arg(interop_dir().join("msal_client.py"))
            .args(["--authority", &self.msal_authority()])
            .args(["--client-id", CLIENT, "--scope", SCOPE])
            .args(args)
            .env("REQUESTS_CA_BUNDLE", &self.ca)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .current_dir(self.dir.path())
            .output()
            .await
            .context("running msal_client.py")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let json: Value = serde_json::from_str(stdout.trim()).map_err(|e| {
            format!(
                "msal_client.py printed no JSON ({e}); exit {}\nstdout: {stdout}\nstderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        Ok((json, output.status.success()))
    }

    /// What every accepted MSAL token must satisfy: MSAL sent its usual request, the token
    /// validates with Entra's rules and the weather API answers 200.
    async fn check_accepted(&self, json: &Value, ok: bool) -> Outcome {
        let result = &json["result"];
        ensure!(ok, "MSAL got no token: {result}");
        ensure!(
            result["token_type"] == "Bearer",
            "token_type {}",
            result["token_type"]
        );
        let fields = &json["form_fields"];
        for field in [
            "client_assertion",
            "client_assertion_type",
            "client_id",
            "client_info",
            "grant_type",
            "scope",
        ] {
            ensure!(
                fields
                    .as_array()
                    .is_some_and(|f| f.iter().any(|v| v == field)),
                "MSAL did not send {field}; it sent {fields}"
            );
        }
        let token = result["access_token"].as_str().context("access_token")?;
        let claims = self
            .validator
            .validate(token)
            .await
            .map_err(|e| format!("TokenValidator refused MSAL's token: {e}"))?;
        ensure!(
            claims.client_id() == Some(CLIENT),
            "azp {:?}",
            claims.client_id()
        );
        ensure!(
            claims.get_str("azpacr") == Some("2"),
            "azpacr {:?}",
            claims.get("azpacr")
        );
        ensure!(claims.has_role("service-api"), "roles {:?}", claims.roles());
        ensure!(
            claims.version() == Some(TokenVersion::V2),
            "ver {:?}",
            claims.get("ver")
        );
        let response = reqwest::Client::new()
            .get(format!("{}/weatherforecast", self.api_url))
            .bearer_auth(token)
            .send()
            .await
            .context("GET /weatherforecast")?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        ensure!(status == 200, "the weather API answered {status}: {body}");
        Ok(())
    }
}

fn unpadded(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('=')
        .to_owned()
}

pub(crate) async fn run(mut suite: Suite) -> Suite {
    let f = match setup().await {
        Ok(f) => f,
        Err(reason) => {
            suite.abort(
                "setup (venv, dev authority with TLS, certificates)",
                &reason,
            );
            return suite;
        }
    };

    suite
        .case(
            "private_key + thumbprint (SHA-1): RS256 + x5t assertion accepted; token validates; API 200",
            Box::pin(async {
                let thumbprint = certs::sha1_hex(&f.client)?;
                let key = f.key.to_string_lossy();
                let (json, ok) = f
                    .msal(&["--mode", "thumbprint", "--key", &key, "--thumbprint", &thumbprint])
                    .await?;
                let header = &json["assertion_header"];
                ensure!(header["alg"] == "RS256", "MSAL sent {header}");
                ensure!(unpadded(&header["x5t"]) == f.client.x5t, "x5t in {header}, expected {}", f.client.x5t);
                f.check_accepted(&json, ok).await
            }),
        )
        .await;

    suite
        .case(
            "private_key + public_certificate: PS256 + x5t#S256 + x5c assertion accepted; token validates; API 200",
            Box::pin(async {
                let key = f.key.to_string_lossy();
                let cert = f.cert.to_string_lossy();
                let (json, ok) = f
                    .msal(&["--mode", "public_certificate", "--key", &key, "--cert", &cert])
                    .await?;
                let header = &json["assertion_header"];
                ensure!(header["alg"] == "PS256", "MSAL sent {header}");
                ensure!(unpadded(&header["x5t#S256"]) == f.client.x5t_s256, "x5t#S256 in {header}");
                ensure!(header["x5c"].is_array(), "MSAL sent no x5c list: {header}");
                f.check_accepted(&json, ok).await
            }),
        )
        .await;

    suite
        .case(
            "private_key_pfx_path (PKCS#12 with passphrase): PS256 + x5t#S256 assertion accepted; token validates; API 200",
            Box::pin(async {
                let pfx = f.pfx.to_string_lossy();
                let (json, ok) = f
                    .msal(&["--mode", "pfx", "--pfx", &pfx, "--passphrase", PFX_PASSWORD])
                    .await?;
                let header = &json["assertion_header"];
                ensure!(header["alg"] == "PS256", "MSAL sent {header}");
                ensure!(unpadded(&header["x5t#S256"]) == f.client.x5t_s256, "x5t#S256 in {header}");
                f.check_accepted(&json, ok).await
            }),
        )
        .await;

    suite
        .case(
            "unregistered certificate: MSAL receives invalid_client with AADSTS700027 in Entra's error shape",
            Box::pin(async {
                let thumbprint = certs::sha1_hex(&f.unregistered)?;
                let key = f.unregistered_key.to_string_lossy();
                let (json, ok) = f
                    .msal(&["--mode", "thumbprint", "--key", &key, "--thumbprint", &thumbprint])
                    .await?;
                let result = &json["result"];
                ensure!(!ok && result.get("access_token").is_none(), "MSAL got a token: {result}");
                ensure!(result["error"] == "invalid_client", "error in {result}");
                ensure!(
                    result["error_codes"].as_array().is_some_and(|c| c.iter().any(|v| v == 700027)),
                    "error_codes in {result}"
                );
                ensure!(
                    result["error_description"].as_str().is_some_and(|d| d.starts_with("AADSTS700027")),
                    "error_description in {result}"
                );
                Ok(())
            }),
        )
        .await;

    f.authority.shutdown().await;
    suite
}
