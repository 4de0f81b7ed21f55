//! The dev authority as a process: a local Entra ID for development and for clients in other
//! languages.
//!
//! ```text
//! # once: make the client certificate the example registration points at (PEM; --pfx FILE
//! # [--pfx-password PW] also writes a PKCS#12; both are written with mode 0600)
//! cargo run -p entra-dev-authority -- --generate-certificate CN=weather-client \
//!     --out entra-dev-authority/certs/weather-client.pem
//! # then
//! cargo run -p entra-dev-authority -- --config entra-dev-authority/registration.json --listen 127.0.0.1:5100
//! # https (MSAL.NET, MSAL Python … refuse plain http):
//! cargo run -p entra-dev-authority -- --generate-tls-certificate 127.0.0.1,localhost \
//!     --out entra-dev-authority/certs/tls.pem
//! cargo run -p entra-dev-authority -- --config entra-dev-authority/registration.json \
//!     --tls-cert entra-dev-authority/certs/tls.pem --tls-key entra-dev-authority/certs/tls.pem
//! # strict replay checks (a reused client assertion gets AADSTS50027):
//! cargo run -p entra-dev-authority -- --config entra-dev-authority/registration.json \
//!     --assertion-reuse refuse
//! ```
//!
//! The registration format is documented in the `entra_dev_authority` crate docs
//! "Registration file"). Runs until Ctrl-C. Logs go to stderr, coloured only when it is a
//! terminal (and `NO_COLOR` is not set).

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use entra_dev_authority::{
    generate_certificate, generate_tls_certificate, AssertionReuse, DevAuthority,
    GeneratedCertificate,
};
use tower_azure_auth::error::error_chain;

/// A local Microsoft Entra ID (client credentials, v1 and v2 metadata, keys and tokens).
#[derive(Debug, Parser)]
#[command(name = "dev-authority")]
#[command(group(clap::ArgGroup::new("certificate_output").args(["out", "pfx"]).multiple(true)))]
struct Args {
    /// The registration file (JSON): tenant, APIs, applications.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["generate_certificate", "generate_tls_certificate"])]
    config: Option<PathBuf>,
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5100")]
    listen: SocketAddr,
    /// Serve https with this certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Whether a client assertion may be used again until it expires (as Entra allows and
    /// MSAL does), or is refused as a replay (AADSTS50027). Replaces the registration
    /// file's `assertionReuse`; within-lifetime by default.
    #[arg(long, value_name = "MODE", value_enum)]
    assertion_reuse: Option<Reuse>,
    /// Write a new client certificate and key (RSA 2048) for SUBJECT to --out (PEM) and/or
    /// --pfx (PKCS#12), and exit.
    #[arg(
        long,
        value_name = "SUBJECT",
        requires = "certificate_output",
        conflicts_with = "config"
    )]
    generate_certificate: Option<String>,
    /// Write a new TLS server certificate and key for these comma-separated names to --out,
    /// and exit.
    #[arg(long, value_name = "NAMES", requires = "out", conflicts_with_all = ["config", "generate_certificate"])]
    generate_tls_certificate: Option<String>,
    /// Where --generate-certificate / --generate-tls-certificate write the PEM (certificate,
    /// then private key; mode 0600).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Where --generate-certificate writes a PKCS#12 (.pfx) of the certificate and its key
    /// (mode 0600), for `SourceType: Path` with `CertificatePassword`.
    #[arg(
        long,
        value_name = "FILE",
        requires = "generate_certificate",
        conflicts_with = "generate_tls_certificate"
    )]
    pfx: Option<PathBuf>,
    /// The --pfx file's password (empty when left out).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "DEV_AUTHORITY_PFX_PASSWORD",
        hide_env_values = true,
        requires = "pfx",
        default_value = ""
    )]
    pfx_password: String,
}

/// `--assertion-reuse`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Reuse {
    /// Accept an assertion again until it expires.
    WithinLifetime,
    /// Refuse the second use of an assertion.
    Refuse,
}

impl From<Reuse> for AssertionReuse {
    fn from(reuse: Reuse) -> Self {
        match reuse {
            Reuse::WithinLifetime => Self::WithinLifetime,
            Reuse::Refuse => Self::Refuse,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,entra_dev_authority=debug".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colours(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").is_some(),
        ))
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dev-authority: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Colours in the logs: only on a terminal, and never when `NO_COLOR` is set.
fn colours(terminal: bool, no_color: bool) -> bool {
    terminal && !no_color
}

async fn run(args: Args) -> Result<(), String> {
    if let Some(cert) = generated(&args)? {
        if let Some(out) = &args.out {
            cert.write_pem(out).map_err(|e| error_chain(&e))?;
            println!("wrote {}", out.display());
        }
        if let Some(pfx) = &args.pfx {
            cert.write_pkcs12(pfx, &args.pfx_password)
                .map_err(|e| error_chain(&e))?;
            println!("wrote {}", pfx.display());
        }
        return Ok(());
    }
    let authority = start(&args).await?;
    print_endpoints(&authority);
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    authority.shutdown().await;
    Ok(())
}

/// The certificate (with its private key) asked for by a --generate-* flag, if any.
fn generated(args: &Args) -> Result<Option<GeneratedCertificate>, String> {
    if let Some(subject) = &args.generate_certificate {
        let cert = generate_certificate(subject).map_err(|e| e.to_string())?;
        println!("x5t: {}\nx5t#S256: {}", cert.x5t, cert.x5t_s256);
        return Ok(Some(cert));
    }
    if let Some(names) = &args.generate_tls_certificate {
        let names: Vec<&str> = names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let cert = generate_tls_certificate(names).map_err(|e| e.to_string())?;
        return Ok(Some(cert));
    }
    Ok(None)
}

async fn start(args: &Args) -> Result<DevAuthority, String> {
    let config = args.config.as_ref().ok_or("--config is required")?;
    let mut builder = DevAuthority::builder()
        .bind(args.listen)
        .from_registration_file(config)
        .map_err(|e| error_chain(&e))?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        builder = builder.tls(read(cert)?, read(key)?);
    }
    if let Some(reuse) = args.assertion_reuse {
        builder = builder.assertion_reuse(reuse.into());
    }
    builder.start().await.map_err(|e| error_chain(&e))
}

fn print_endpoints(authority: &DevAuthority) {
    println!("dev authority running (Ctrl-C to stop)");
    println!("  instance        {}", authority.instance());
    println!("  tenant          {}", authority.tenant_id());
    println!("  authority       {}", authority.authority());
    println!("  metadata        {}", authority.metadata_url());
    println!("  v1 metadata     {}", authority.v1_metadata_url());
    println!("  keys            {}", authority.jwks_uri());
    println!("  token endpoint  {}", authority.token_endpoint());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        struct Case {
            name: &'static str,
            argv: &'static [&'static str],
            ok: bool,
        }
        let cases = [
            Case {
                name: "config and listen",
                argv: &["--config", "r.json", "--listen", "127.0.0.1:0"],
                ok: true,
            },
            Case {
                name: "tls needs both files",
                argv: &["--config", "r.json", "--tls-cert", "c.pem"],
                ok: false,
            },
            Case {
                name: "tls with both",
                argv: &[
                    "--config",
                    "r.json",
                    "--tls-cert",
                    "c.pem",
                    "--tls-key",
                    "k.pem",
                ],
                ok: true,
            },
            Case {
                name: "strict replay checks",
                argv: &["--config", "r.json", "--assertion-reuse", "refuse"],
                ok: true,
            },
            Case {
                name: "assertion reuse within the lifetime",
                argv: &["--config", "r.json", "--assertion-reuse", "within-lifetime"],
                ok: true,
            },
            Case {
                name: "unknown assertion reuse mode",
                argv: &["--config", "r.json", "--assertion-reuse", "never"],
                ok: false,
            },
            Case {
                name: "no config",
                argv: &["--listen", "127.0.0.1:0"],
                ok: false,
            },
            Case {
                name: "generate a certificate",
                argv: &["--generate-certificate", "CN=x", "--out", "x.pem"],
                ok: true,
            },
            Case {
                name: "generate without --out",
                argv: &["--generate-certificate", "CN=x"],
                ok: false,
            },
            Case {
                name: "generate a PKCS#12 only",
                argv: &["--generate-certificate", "CN=x", "--pfx", "x.pfx"],
                ok: true,
            },
            Case {
                name: "generate PEM and PKCS#12 with a password",
                argv: &[
                    "--generate-certificate",
                    "CN=x",
                    "--out",
                    "x.pem",
                    "--pfx",
                    "x.pfx",
                    "--pfx-password",
                    "pw",
                ],
                ok: true,
            },
            Case {
                name: "a password without --pfx",
                argv: &[
                    "--generate-certificate",
                    "CN=x",
                    "--out",
                    "x.pem",
                    "--pfx-password",
                    "pw",
                ],
                ok: false,
            },
            Case {
                name: "--pfx is for client certificates",
                argv: &[
                    "--generate-tls-certificate",
                    "localhost",
                    "--out",
                    "t.pem",
                    "--pfx",
                    "t.pfx",
                ],
                ok: false,
            },
        ];
        for case in cases {
            let argv = std::iter::once("dev-authority").chain(case.argv.iter().copied());
            assert_eq!(Args::try_parse_from(argv).is_ok(), case.ok, "{}", case.name);
        }
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours(true, false));
        assert!(!colours(false, false), "piped output is plain");
        assert!(!colours(true, true), "NO_COLOR wins");
    }

    /// The shipped registration file works once its certificate exists.
    #[tokio::test]
    async fn shipped_registration_starts_and_serves() {
        let dir =
            std::env::temp_dir().join(format!("dev-authority-example-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/registration.json");
        std::fs::copy(shipped, dir.join("registration.json")).unwrap();
        let args = Args::try_parse_from([
            "dev-authority",
            "--generate-certificate",
            "CN=weather-client",
            "--out",
            dir.join("certs/weather-client.pem").to_str().unwrap(),
        ])
        .unwrap();
        run(args).await.unwrap();

        let args = Args::try_parse_from([
            "dev-authority",
            "--config",
            dir.join("registration.json").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        let authority = start(&args).await.unwrap();
        assert_eq!(
            authority.tenant_id(),
            "8c2b3a4d-5e6f-4a1b-9c2d-3e4f5a6b7c8d"
        );
        assert_eq!(
            authority.assertion_reuse(),
            AssertionReuse::WithinLifetime,
            "MSAL's reused assertions are accepted by default"
        );
        let http = reqwest::Client::new();
        let metadata = http.get(authority.metadata_url()).send().await.unwrap();
        assert_eq!(metadata.status(), 200);
        let token = http
            .post(authority.token_endpoint())
            .form(&[
                ("client_id", "1c8d6e3f-0b9c-4d8e-9f7a-6b5c4d3e2f1a"),
                ("client_secret", "dev-secret-do-not-use-in-production"),
                ("scope", "api://weather/.default"),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 200);
        authority.shutdown().await;

        // https from one generated PEM file holding certificate and key.
        let tls_pem = dir.join("certs/tls.pem");
        let tls_path = tls_pem.to_str().unwrap();
        let generate = [
            "dev-authority",
            "--generate-tls-certificate",
            "127.0.0.1,localhost",
            "--out",
            tls_path,
        ];
        run(Args::try_parse_from(generate).unwrap()).await.unwrap();
        let args = Args::try_parse_from([
            "dev-authority",
            "--config",
            dir.join("registration.json").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            tls_path,
            "--tls-key",
            tls_path,
        ])
        .unwrap();
        let authority = start(&args).await.unwrap();
        let pem = std::fs::read(&tls_pem).unwrap();
        let https = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .build()
            .unwrap();
        assert!(authority.metadata_url().starts_with("https://"));
        let metadata = https.get(authority.metadata_url()).send().await.unwrap();
        assert_eq!(metadata.status(), 200);
        authority.shutdown().await;

        let strict = Args::try_parse_from([
            "dev-authority",
            "--config",
            dir.join("registration.json").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--assertion-reuse",
            "refuse",
        ])
        .unwrap();
        let authority = start(&strict).await.unwrap();
        assert_eq!(authority.assertion_reuse(), AssertionReuse::Refuse);
        authority.shutdown().await;

        let missing =
            Args::try_parse_from(["dev-authority", "--config", "/nonexistent/r.json"]).unwrap();
        let error = start(&missing).await.unwrap_err();
        assert!(error.contains("/nonexistent/r.json"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
