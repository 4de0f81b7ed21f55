//! One replica of `weather-client` for the fleet tests: the same program as
//! `examples/weather-client/src/main.rs` (configured by `CallApi__…` variables only, the JSON
//! on stdout and exit 0, or the explanation on stderr and exit 1), built in this crate so the
//! tests can start it as many processes at once.

use std::process::ExitCode;

use tower_azure_auth::CallApiOptions;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // The tests read these logs.
        .with_ansi(false)
        .init();
    let result = match CallApiOptions::load(None) {
        Ok(options) => weather_client::run(options).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(forecast) => {
            println!("{forecast}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}", error.explain());
            ExitCode::FAILURE
        }
    }
}
