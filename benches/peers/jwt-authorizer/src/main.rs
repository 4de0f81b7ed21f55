//! The weather route of `examples/weather-bench` (same path, same handler, same body) behind
//! jwt-authorizer 0.15: the signature against the dev authority's JWKS (the algorithms its keys
//! name), lifetime, issuer and audience checked.
//! Started by `scripts/peers.sh`.
//!
//! Run: `peer-jwt-authorizer --listen 127.0.0.1:18081 --jwks-url URL --issuer ISS --audience AUD`

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::routing::get;
use axum::Router;
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, RegisteredClaims, Validation};

const BODY: &str =
    r#"[{"date":"2026-11-29","temperatureC":21,"temperatureF":69,"summary":"Mild"}]"#;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(jwks), Some(issuer), Some(audience)) = (
        arg(&args, "--listen"),
        arg(&args, "--jwks-url"),
        arg(&args, "--issuer"),
        arg(&args, "--audience"),
    ) else {
        eprintln!("usage: peer-jwt-authorizer --listen ADDR --jwks-url URL --issuer ISS --audience AUD");
        return ExitCode::FAILURE;
    };
    let Ok(listen) = listen.parse::<SocketAddr>() else {
        eprintln!("peer-jwt-authorizer: --listen {listen}: not an address");
        return ExitCode::FAILURE;
    };
    let authorizer: Authorizer<RegisteredClaims> = match JwtAuthorizer::from_jwks_url(&jwks)
        .validation(
            Validation::new()
                .iss(&[issuer])
                .aud(&[audience]),
        )
        .build()
        .await
    {
        Ok(authorizer) => authorizer,
        Err(error) => {
            eprintln!("peer-jwt-authorizer: {error}");
            return ExitCode::FAILURE;
        }
    };
    let app = Router::new()
        .route("/weatherforecast", get(|| async { BODY }))
        .layer(authorizer.into_layer());
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("peer-jwt-authorizer: {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{listen}");
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("peer-jwt-authorizer: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
