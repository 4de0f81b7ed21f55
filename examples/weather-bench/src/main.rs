//! The server side of `scripts/load.sh`: a route behind no authentication, token validation,
//! or validation and the seed's policy, with a dev authority in the same process that mints the
//! tokens the load generator sends.
//!
//! Run: `cargo run --release -p weather-bench -- --mode policy --listen 127.0.0.1:8080 --tokens /tmp/tokens.txt --count 10000`
//!
//! `--mode rsa-verify --count N` serves nothing: it times N RS256 verifications (RSA 2048, the
//! key parsed once, aws-lc-rs: what the validator does per uncached token) and prints
//! `RSA_VERIFY ns=…`, the mean; `scripts/load.sh` uses it for the fresh-token ceiling.

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
    /// No server: times `--count` RS256 verifications and prints the mean.
    RsaVerify,
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
    /// Where to write the tokens, one per line (required to serve).
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// How many distinct tokens to mint.
    #[arg(long, default_value_t = 1)]
    count: usize,
}

const BODY: &str =
    r#"[{"date":"2026-11-29","temperatureC":21,"temperatureF":69,"summary":"Mild"}]"#;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if matches!(args.mode, Mode::RsaVerify) {
        return match rsa_verify_ns(args.count.max(1)) {
            Ok(ns) => {
                println!("RSA_VERIFY ns={ns:.0} count={}", args.count.max(1));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("weather-bench: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(tokens) = args.tokens.as_ref() else {
        eprintln!("weather-bench: --tokens is required to serve");
        return ExitCode::FAILURE;
    };
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
    let mut file = match std::fs::File::create(tokens) {
        Ok(file) => std::io::BufWriter::new(file),
        Err(error) => {
            eprintln!("weather-bench: {}: {error}", tokens.display());
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
        Mode::RsaVerify => unreachable!("handled above"),
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
    // For a peer server validating the same tokens (scripts/peers.sh): a v2 token's `aud`
    // is the API's client id.
    println!(
        "jwks {} issuer {} audience {SERVICE}",
        authority.jwks_uri(),
        authority.issuer(TokenVersion::V2)
    );
    axum::serve(listener, app).await.expect("serve");
    ExitCode::SUCCESS
}

/// The mean time of one RS256 verification (RSA 2048, e = 65537, the key parsed once) of a
/// token-sized message, in nanoseconds: the cost a fresh token cannot avoid.
fn rsa_verify_ns(count: usize) -> Result<f64, Box<dyn std::error::Error>> {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::{KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)?;
    let message = vec![b'e'; 800];
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        &message,
        &mut signature,
    )?;
    let public = key.public_key().as_der()?;
    let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public.as_ref())?;
    // Warm-up, then the timed run.
    for _ in 0..count.min(1_000) {
        parsed.verify_sig(&message, &signature)?;
    }
    let started = std::time::Instant::now();
    for _ in 0..count {
        parsed.verify_sig(
            std::hint::black_box(&message),
            std::hint::black_box(&signature),
        )?;
    }
    Ok(started.elapsed().as_nanos() as f64 / count as f64)
}
