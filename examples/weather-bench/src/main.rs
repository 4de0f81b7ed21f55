//! The server side of `scripts/load.sh`: a route behind no authentication, token validation,
//! or validation and the seed's policy, with a dev authority in the same process that mints the
//! tokens the load generator sends.
//!
//! Run: `cargo run --release -p weather-bench -- --mode policy --listen 127.0.0.1:8080 --tokens /tmp/tokens.txt --count 10000`

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use axum::routing::get;
use axum::Router;
use clap::{Parser, ValueEnum};
use entra_dev_authority::{DevApi, DevApplication, DevAuthority, IssueToken};
use tower_azure_auth::authorization::{Policies, Policy};
use tower_azure_auth::claims::{ClientAuthentication, TokenVersion};
use tower_azure_auth::layers::{RequirePolicyLayer, ValidateAccessTokenLayer};
use tower_azure_auth::{Authority, TokenValidator};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const SERVICE: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// No authentication at all: the baseline.
    None,
    /// `ValidateAccessTokenLayer` only.
    Validate,
    /// Validation without the verified-token cache.
    ValidateNoCache,
    /// Validation and the seed's policy.
    Policy,
}

/// The weather API for load tests.
#[derive(Debug, Parser)]
struct Args {
    /// What stands in front of the route.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where to write the tokens, one per line.
    #[arg(long)]
    tokens: PathBuf,
    /// How many distinct tokens to mint.
    #[arg(long, default_value_t = 1)]
    count: usize,
}

const BODY: &str =
    r#"[{"date":"2026-11-29","temperatureC":21,"temperatureF":69,"summary":"Mild"}]"#;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let uri = format!("api://{SERVICE}");
    let authority = match DevAuthority::builder()
        .tenant_id(TENANT)
        .api(
            DevApi::new(SERVICE)
                .app_id_uri(&uri)
                .app_roles(["service-api"])
                .token_version(TokenVersion::V2),
        )
        .application(DevApplication::new(SERVICE).grant(&uri, ["service-api"]))
        .start()
        .await
    {
        Ok(authority) => authority,
        Err(error) => {
            eprintln!("weather-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut file = match std::fs::File::create(&args.tokens) {
        Ok(file) => std::io::BufWriter::new(file),
        Err(error) => {
            eprintln!("weather-bench: {}: {error}", args.tokens.display());
            return ExitCode::FAILURE;
        }
    };
    for i in 0..args.count.max(1) {
        let token = authority
            .issue_token(
                &IssueToken::new(SERVICE, &uri)
                    .roles(["service-api"])
                    .claim("uti", format!("load-{i}")),
            )
            .expect("mint a token");
        writeln!(file, "{token}").expect("write tokens");
    }
    file.flush().expect("write tokens");

    let route = Router::new().route("/weatherforecast", get(|| async { BODY }));
    let validator = |cache: bool| {
        TokenValidator::builder(Authority::entra(&authority.instance(), TENANT).expect("authority"))
            .client_id(SERVICE)
            .verified_token_cache(if cache { 16 << 20 } else { 0 })
            .build()
            .expect("validator")
    };
    let (with_cache, without_cache) = (validator(true), validator(false));
    for v in [&with_cache, &without_cache] {
        if let Err(error) = v.refresh().await {
            eprintln!("weather-bench: {error}");
            return ExitCode::FAILURE;
        }
    }
    let app = match args.mode {
        Mode::None => route,
        Mode::Validate => route.layer(ValidateAccessTokenLayer::new(with_cache)),
        Mode::ValidateNoCache => route.layer(ValidateAccessTokenLayer::new(without_cache)),
        Mode::Policy => {
            let policies = Policies::builder()
                .add_policy(
                    "ValidateAccessTokenPolicy",
                    Policy::builder()
                        .require_role("service-api")
                        .require_client_id(SERVICE)
                        .require_client_authentication(ClientAuthentication::Certificate)
                        .build(),
                )
                .build();
            route
                .layer(
                    RequirePolicyLayer::named(&policies, "ValidateAccessTokenPolicy")
                        .expect("policy"),
                )
                .layer(ValidateAccessTokenLayer::new(with_cache))
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .expect("listen");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("address")
    );
    axum::serve(listener, app).await.expect("serve");
    ExitCode::SUCCESS
}
