//! The one-command demo: `cargo run -p weather-demo` (`-- --help` for what it does).
//!
//! Starts a local Entra ID and the weather API, gets a token with a certificate, prints the
//! forecast, then shows the refused calls and a few of the API's metrics, narrating each step,
//! and ends with what to do next. Exits 0 only when every outcome is the expected one.

use std::error::Error as _;
use std::process::ExitCode;

use clap::Parser;

/// The seed's whole flow in one process, against a local Entra ID: a certificate is
/// generated and registered, a client gets a token with it (an RFC 7523 client assertion),
/// calls the weather API and gets the forecast; then the calls the API refuses (no token, a
/// token for another API, a client secret instead of the certificate, a missing role).
///
/// Nothing leaves 127.0.0.1 and nothing is written to disk. Exits 0 when every call got the
/// expected answer. Set RUST_LOG (e.g. RUST_LOG=debug) to see the libraries' logs.
#[derive(Debug, Parser)]
#[command(name = "weather-demo", version)]
struct Args {}

#[tokio::main]
async fn main() -> ExitCode {
    let Args {} = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
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
    println!(
        "weather-demo: the client credentials flow with a certificate, against a local Entra ID"
    );
    println!();
    for (number, step) in report.steps.iter().enumerate() {
        println!("{:>2}. {step}", number + 1);
    }
    println!();
    println!("dev authority token endpoint: {}", report.token_endpoint);
    println!("weather API:                  {}", report.api);
    println!();
    println!("GET /weatherforecast with a token acquired with the certificate:");
    println!(
        "{}",
        serde_json::to_string_pretty(&report.forecast).unwrap_or_default()
    );
    println!();
    println!("each call and the API's answer:");
    for outcome in &report.outcomes {
        println!("{outcome}");
    }
    println!();
    println!("metrics (GET /metrics on the weather API):");
    for figure in &report.figures {
        println!("  {figure}");
    }
    println!();
    println!(
        "the whole flow took {} ms (certificates, registrations, token, {} calls)",
        report.elapsed.as_millis(),
        report.outcomes.len()
    );
    let status = if report.all_as_expected() {
        println!("every call got the expected answer");
        ExitCode::SUCCESS
    } else {
        println!("some calls did NOT get the expected answer");
        ExitCode::FAILURE
    };
    println!();
    println!("what next:");
    for (what, pointer) in weather_demo::WHAT_NEXT {
        println!("  - {what}: {pointer}");
    }
    status
}
