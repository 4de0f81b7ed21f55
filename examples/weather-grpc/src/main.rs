//! The weather service over gRPC, and its client.
//!
//! Run the server: `cargo run -p weather-grpc -- --listen 127.0.0.1:5001 --config appsettings.json`
//! (or configure with `AzureAd__Instance`, `AzureAd__TenantId`, `AzureAd__ClientId` …).
//! Run the client: `cargo run -p weather-grpc -- client --config client.json` (or `CallApi__…`
//! variables; `CallApi:ApiBaseAddress` is the server, e.g. `http://127.0.0.1:5001`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tower_azure_auth::{AzureAdOptions, CallApiOptions};

/// The seed's weather service over gRPC: GetForecast behind ValidateAccessTokenPolicy.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5001")]
    listen: SocketAddr,
    /// An appsettings.json-style file with an `AzureAd` section (server) or a `CallApi`
    /// section (client); `AzureAd__…` / `CallApi__…` environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Call GetForecast with a certificate-acquired token and print the forecasts as JSON.
    Client,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_azure_auth=debug".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match args.mode {
        Some(Mode::Client) => client(args.config).await,
        None => server(args.listen, args.config).await,
    }
}

async fn client(config: Option<PathBuf>) -> ExitCode {
    let result = match CallApiOptions::load(config.as_deref()) {
        Ok(options) => weather_grpc::call(&options).await,
        Err(error) => Err(error.into()),
    };
    match result {
        Ok(forecasts) => {
            println!("{}", weather_grpc::to_json(&forecasts));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("weather-grpc client: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn server(listen: SocketAddr, config: Option<PathBuf>) -> ExitCode {
    let service = match AzureAdOptions::load(config.as_deref())
        .and_then(|options| weather_grpc::WeatherGrpc::from_options(&options))
    {
        Ok(service) => service,
        Err(error) => {
            eprintln!("weather-grpc: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let (listener, addr) = match weather_grpc::bind(listen).await {
        Ok(bound) => bound,
        Err(error) => {
            eprintln!("weather-grpc: cannot listen on {listen}: {error}");
            return ExitCode::from(2);
        }
    };
    println!("weather-grpc listening on http://{addr}");
    if let Err(error) = service.serve(listener).await {
        eprintln!("weather-grpc: server error: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
