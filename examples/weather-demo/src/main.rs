//! The one-command demo: `cargo run -p weather-demo`.
//!
//! Starts a local Entra ID and the weather API, gets a token with a certificate, prints the
//! forecast, then shows the refused calls and a few of the API's metrics. Exits 0 only when
//! every outcome is the expected one.

use std::error::Error as _;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let report = match weather_demo::run().await {
        Ok(report) => report,
        Err(error) => {
            let mut message = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("weather-demo: {message}");
            return ExitCode::FAILURE;
        }
    };
    println!("dev authority token endpoint: {}", report.token_endpoint);
    println!("weather API:                  {}", report.api);
    println!();
    println!("GET /weatherforecast with a token acquired with the certificate:");
    println!(
        "{}",
        serde_json::to_string_pretty(&report.forecast).unwrap_or_default()
    );
    println!();
    for outcome in &report.outcomes {
        println!("{outcome}");
    }
    println!();
    println!("metrics (GET /metrics on the weather API):");
    for figure in &report.figures {
        println!("  {figure}");
    }
    println!();
    if report.all_as_expected() {
        println!("every call got the expected answer");
        ExitCode::SUCCESS
    } else {
        println!("some calls did NOT get the expected answer");
        ExitCode::FAILURE
    }
}
