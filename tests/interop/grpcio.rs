//! Python's `grpcio` (gRPC's own implementation, `tests/interop/grpcio_client.py`, pinned in
//! `tests/interop/requirements.txt`) calling the Rust `weather-grpc` service with tokens from
//! the dev authority: `OK` with five forecasts, `UNAUTHENTICATED` with the RFC 6750 challenge
//! in the trailing metadata, `PERMISSION_DENIED` naming the failed requirement — as grpcio
//! decodes them (status, percent-decoded details, metadata).

use std::path::PathBuf;

use entra_dev_authority::{DevApi, DevApplication, DevAuthority, IssueToken};
use serde_json::Value;
use tower_azure_auth::claims::TokenVersion;
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::AzureAdOptions;

use crate::support::{ensure, interop_dir, venv_python, Context as _, Suite};

const API: &str = "6f8a1c52-0000-4000-8000-00000000a011";
const CLIENT: &str = API;

struct Fixture {
    authority: DevAuthority,
    python: PathBuf,
    target: String,
}

async fn setup() -> Result<Fixture, String> {
    let python = venv_python()?;
    let authority = DevAuthority::builder()
        .api(
            DevApi::new(API)
                .app_id_uri(format!("api://{API}"))
                .app_roles(["service-api", "weather.read"])
                .token_version(TokenVersion::V2),
        )
        .application(DevApplication::new(CLIENT).grant(format!("api://{API}"), ["service-api"]))
        .start()
        .await
        .context("starting the dev authority")?;
    let options: AzureAdOptions = ConfigSource::new()
        .with_env([
            ("AzureAd__Instance".to_owned(), authority.instance()),
            (
                "AzureAd__TenantId".to_owned(),
                authority.tenant_id().to_owned(),
            ),
            ("AzureAd__ClientId".to_owned(), API.to_owned()),
        ])
        .section("AzureAd")
        .context("AzureAd options")?;
    let service = weather_grpc::WeatherGrpc::from_options(&options).context("weather-grpc")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding weather-grpc")?;
    let target = listener.local_addr().context("address")?.to_string();
    tokio::spawn(async move { service.serve(listener).await });
    Ok(Fixture {
        authority,
        python,
        target,
    })
}

impl Fixture {
    fn token(&self, request: &IssueToken) -> Result<String, String> {
        self.authority
            .issue_token(request)
            .context("issuing a token")
    }

    /// Runs grpcio_client.py; returns its JSON.
    async fn grpcio(&self, token: Option<&str>) -> Result<Value, String> {
        let mut command = tokio::process::Command::new(&self.python);
        command
            .arg(interop_dir().join("grpcio_client.py"))
            .args(["--target", &self.target])
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        let output = command.output().await.context("running grpcio_client.py")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(stdout.trim()).map_err(|e| {
            format!(
                "grpcio_client.py printed no JSON ({e}; is grpcio installed in the venv? run scripts/interop-setup.sh); exit {}\nstdout: {stdout}\nstderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }
}

fn seed() -> IssueToken {
    IssueToken::new(CLIENT, format!("api://{API}")).roles(["service-api"])
}

pub(crate) async fn run(mut suite: Suite) -> Suite {
    let f = match setup().await {
        Ok(f) => f,
        Err(reason) => {
            suite.abort(
                "setup (venv with grpcio, dev authority, weather-grpc)",
                &reason,
            );
            return suite;
        }
    };

    suite
        .case(
            "a dev-authority token with the seed's role: OK with five forecasts",
            Box::pin(async {
                let token = f.token(&seed())?;
                let json = f.grpcio(Some(&token)).await?;
                ensure!(json["code"] == "OK", "grpcio reports {json}");
                let forecasts = json["forecasts"].as_array().context("forecasts")?;
                ensure!(
                    forecasts.len() == 5,
                    "{} forecasts: {json}",
                    forecasts.len()
                );
                for forecast in forecasts {
                    let date = forecast["date"].as_str().unwrap_or_default();
                    ensure!(
                        date.len() == 10 && date.as_bytes()[4] == b'-',
                        "date {forecast}"
                    );
                    ensure!(forecast["summary"].is_string(), "summary {forecast}");
                }
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            "no token: UNAUTHENTICATED, details `no bearer token`, www-authenticate `Bearer`",
            Box::pin(async {
                let json = f.grpcio(None).await?;
                ensure!(json["code"] == "UNAUTHENTICATED", "grpcio reports {json}");
                ensure!(json["details"] == "no bearer token", "details in {json}");
                ensure!(
                    json["trailing_metadata"]["www-authenticate"] == "Bearer",
                    "metadata in {json}"
                );
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            "expired token: UNAUTHENTICATED with the reason and an invalid_token challenge",
            Box::pin(async {
                let token = f.token(
                    &seed()
                        .claim("exp", 1_000_000_000u64)
                        .claim("nbf", 999_000_000u64)
                        .claim("iat", 999_000_000u64),
                )?;
                let json = f.grpcio(Some(&token)).await?;
                ensure!(json["code"] == "UNAUTHENTICATED", "grpcio reports {json}");
                let details = json["details"].as_str().unwrap_or_default();
                ensure!(
                    details.starts_with("the token expired at 1000000000"),
                    "details in {json}"
                );
                let challenge = json["trailing_metadata"]["www-authenticate"]
                    .as_str()
                    .unwrap_or_default();
                ensure!(
                    challenge.starts_with(
                        "Bearer error=\"invalid_token\", error_description=\"the token expired"
                    ),
                    "metadata in {json}"
                );
                let signature = token.rsplit('.').next().unwrap_or_default();
                ensure!(
                    !json.to_string().contains(signature),
                    "the token is in {json}"
                );
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            "a token without the role: PERMISSION_DENIED naming the policy and the failed requirement",
            Box::pin(async {
                let token = f.token(&IssueToken::new(CLIENT, format!("api://{API}")).roles(["weather.read"]))?;
                let json = f.grpcio(Some(&token)).await?;
                ensure!(json["code"] == "PERMISSION_DENIED", "grpcio reports {json}");
                let details = json["details"].as_str().unwrap_or_default();
                ensure!(
                    details.starts_with("the caller does not satisfy the authorization policy `ValidateAccessTokenPolicy`: the caller must have the `service-api` application role"),
                    "details in {json}"
                );
                ensure!(
                    json["trailing_metadata"].get("www-authenticate").is_none(),
                    "a challenge on a denial: {json}"
                );
                Ok(())
            }),
        )
        .await;

    f.authority.shutdown().await;
    suite
}
