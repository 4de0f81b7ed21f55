//! The weather Service API on axum.
//!
//! Run: `cargo run -p weather-api-axum -- --listen 127.0.0.1:5000 --config appsettings.json`
//! (or configure with `AzureAd__Instance`, `AzureAd__TenantId`, `AzureAd__ClientId` …).
//!
//! Metrics: Prometheus text on `GET /metrics`, or OTLP over HTTP to the collector at
//! `OTEL_EXPORTER_OTLP_ENDPOINT` when it is set. Readiness on `GET /readyz`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tower_azure_auth::AzureAdOptions;

/// The seed's Service API: GET /weatherforecast behind ValidateAccessTokenPolicy.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
    /// An appsettings.json-style file with an `AzureAd` section; `AzureAd__…` environment
    /// variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_azure_auth=debug".into()),
        )
        .init();
    let args = Args::parse();
    let metrics = match weather_api_axum::Metrics::from_env("weather-api-axum") {
        Ok(metrics) => metrics,
        Err(error) => {
            eprintln!("weather-api-axum: {error}");
            return ExitCode::from(2);
        }
    };
    opentelemetry::global::set_meter_provider(metrics.provider().clone());
    let app = match AzureAdOptions::load(args.config.as_deref())
        .and_then(|options| weather_api_axum::app_with_metrics(&options, &metrics))
    {
        Ok(app) => app,
        Err(error) => {
            eprintln!("weather-api-axum: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "weather-api-axum: cannot listen on {}: {error}",
                args.listen
            );
            return ExitCode::from(2);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("weather-api-axum listening on http://{addr}"),
        Err(_) => println!("weather-api-axum listening on http://{}", args.listen),
    }
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    // Pushes what OTLP has not sent yet.
    metrics.shutdown();
    if let Err(error) = served {
        eprintln!("weather-api-axum: server error: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
