//! The weather Service API on actix-web.
//!
//! Run: `cargo run -p weather-api-actix -- --listen 127.0.0.1:5000 --config appsettings.json`
//! (or configure with `AzureAd__Instance`, `AzureAd__TenantId`, `AzureAd__ClientId` …).
//!
//! Metrics: Prometheus text on `GET /metrics`, or OTLP over HTTP to the collector at
//! `OTEL_EXPORTER_OTLP_ENDPOINT` when it is set. Readiness on `GET /readyz`.

use std::error::Error as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tower_azure_auth::AzureAdOptions;
use weather_api_actix::WeatherApi;

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

#[actix_web::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // one line per refused request, with the reason
                .unwrap_or_else(|_| "info,actix_azure_auth=debug".into()),
        )
        .init();
    let args = Args::parse();
    let metrics = match weather_api_actix::Metrics::from_env("weather-api-actix") {
        Ok(metrics) => metrics,
        Err(error) => {
            eprintln!("weather-api-actix: {error}");
            return ExitCode::from(2);
        }
    };
    opentelemetry::global::set_meter_provider(metrics.provider().clone());
    let api = match AzureAdOptions::load(args.config.as_deref())
        .and_then(|options| WeatherApi::with_metrics(&options, &metrics))
    {
        Ok(api) => api,
        Err(error) => {
            eprintln!("weather-api-actix: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let listener = match std::net::TcpListener::bind(args.listen) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "weather-api-actix: cannot listen on {}: {error}",
                args.listen
            );
            return ExitCode::from(2);
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen);
    let server = match weather_api_actix::server(api, listener, None) {
        Ok(server) => server,
        Err(error) => {
            let cause = error.source().map(ToString::to_string).unwrap_or_default();
            eprintln!("weather-api-actix: cannot listen on {addr}: {cause}");
            return ExitCode::from(2);
        }
    };
    println!("weather-api-actix listening on http://{addr}");
    let served = server.await;
    // Pushes what OTLP has not sent yet.
    metrics.shutdown();
    if let Err(error) = served {
        eprintln!("weather-api-actix: server error: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
