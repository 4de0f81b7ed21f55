// Run: CallApi__ClientCertificates__0__CertificatePassword=… cargo run -p weather-client -- --config examples/weather-client/appsettings.json

//! The seed's client: certificate → token (client credentials) → GET {ApiBaseAddress}/weatherforecast.
//! Settings come from `--config FILE` (the seed's `CallApi` section) and `CallApi__…` environment
//! variables, which win. Prints the JSON and exits 0, or one paragraph saying what went wrong and
//! exits 1. Logs (RUST_LOG, default `warn`) go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tower_azure_auth::CallApiOptions;

/// Calls the weather API with an app token obtained with a client certificate.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A JSON configuration file with a `CallApi` section (appsettings.json shape).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match CallApiOptions::load(args.config.as_deref()) {
        Ok(options) => weather_client::run(options).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(forecast) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&forecast).unwrap_or_else(|_| forecast.to_string())
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}", error.explain());
            ExitCode::FAILURE
        }
    }
}
