// Run: cargo run -p entra-doctor -- token "$TOKEN" --config appsettings.json --policy ValidateAccessTokenPolicy

//! `entra-doctor`: says why an API refuses a Microsoft Entra ID access token, or why a client
//! gets none, with tower-azure-auth's own validator, policies and client (no rule of its own).
//!
//! * `entra-doctor token <JWT | -> [--config FILE] [--policy NAME] [--at TIME] [--offline --jwks FILE]`:
//!   the token's header and claims, then every check the API runs, each ✔/✘ with what it
//!   expects, what the token holds and what to change.
//! * `entra-doctor client [--config FILE]`: the `CallApi` credentials (certificate subject,
//!   validity, thumbprints), a token request, and the authority's answer explained.
//! * `entra-doctor api --config FILE [--token JWT]`: the authority's discovery document and
//!   keys (ids and ages), and whether a sample token passes.
//!
//! Exit codes: 0 the API accepts the token (or the client got one, or the API's metadata and
//! keys were fetched), 1 it refuses it (or the client got none), 2 the doctor could not run
//! (bad arguments, unreadable configuration). `--json` prints one JSON object instead (its
//! fields are listed in the README's "My token is refused" section). Colours only on a
//! terminal, never with `NO_COLOR`. Secrets and private keys are never printed: the
//! configuration's are reported as present or absent, and an access token obtained by
//! `client` is not shown.

mod api;
mod client;
mod fixes;
mod output;
mod token;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::output::{Report, Style};

/// Explains why Microsoft Entra ID tokens are refused and why clients get none.
#[derive(Debug, Parser)]
#[command(name = "entra-doctor", version, about)]
struct Cli {
    /// Print one JSON object (stable field names) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Holds an access token against an API's configuration: every check, and why it fails.
    Token(TokenArgs),
    /// Loads a client's credentials (`CallApi`), requests a token and explains the answer.
    Client(ClientArgs),
    /// Fetches the API's authority metadata and signing keys; optionally checks a token.
    Api(ApiArgs),
}

/// Where the API's settings come from: `--config` (its `AzureAd` and `Authorization`
/// sections), `AzureAd__…` environment variables, then these flags.
#[derive(Debug, Args)]
pub(crate) struct ApiSettings {
    /// The API's configuration file (appsettings.json shape: `AzureAd`, `Authorization`).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The authority URL (replaces `AzureAd:Authority`).
    #[arg(long, value_name = "URL")]
    pub(crate) authority: Option<String>,
    /// The Entra instance, e.g. `https://login.microsoftonline.com/` (`AzureAd:Instance`).
    #[arg(long, value_name = "URL")]
    pub(crate) instance: Option<String>,
    /// The tenant (`AzureAd:TenantId`).
    #[arg(long, value_name = "ID")]
    pub(crate) tenant_id: Option<String>,
    /// The API's client id (`AzureAd:ClientId`, the default audience).
    #[arg(long, value_name = "ID")]
    pub(crate) client_id: Option<String>,
    /// An accepted audience (`AzureAd:Audience`; repeat for more).
    #[arg(long, value_name = "AUDIENCE")]
    pub(crate) audience: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The access token, or `-` to read it from standard input (a `Bearer ` prefix is
    /// ignored).
    #[arg(value_name = "JWT")]
    pub(crate) token: String,
    #[command(flatten)]
    pub(crate) settings: ApiSettings,
    /// A policy of the configuration's `Authorization` section to check as well.
    #[arg(long, value_name = "NAME")]
    pub(crate) policy: Option<String>,
    /// Check as of this time: RFC 3339 (`2026-12-02T06:00:00Z`) or Unix seconds. Default: now.
    #[arg(long, value_name = "TIME")]
    pub(crate) at: Option<String>,
    /// Fetch nothing: verify with the keys of `--jwks`.
    #[arg(long, requires = "jwks")]
    pub(crate) offline: bool,
    /// A JWKS file (the authority's `jwks_uri` document), for `--offline`.
    #[arg(long, value_name = "FILE", requires = "offline")]
    pub(crate) jwks: Option<PathBuf>,
    /// With `--offline`: the metadata's issuer (default: the authority's v2 issuer).
    #[arg(long, value_name = "ISSUER", requires = "offline")]
    pub(crate) issuer: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The client's configuration file (its `CallApi` section), as weather-client reads it.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    #[command(flatten)]
    pub(crate) settings: ApiSettings,
    /// A sample token to check against the fetched keys (`-`: standard input).
    #[arg(long, value_name = "JWT")]
    pub(crate) token: Option<String>,
}

/// The doctor could not run: the message, for standard error; exit code 2.
#[derive(Debug)]
pub(crate) struct Unusable(pub(crate) String);

impl<E: std::error::Error> From<E> for Unusable {
    fn from(error: E) -> Self {
        Self(tower_azure_auth::error::error_chain(&error))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let style = Style::detect(cli.json);
    let result = match cli.command {
        Command::Token(args) => token::run(args, style).await,
        Command::Client(args) => client::run(args, style).await,
        Command::Api(args) => api::run(args, style).await,
    };
    match result {
        Ok(report) => report.print(cli.json),
        Err(Unusable(message)) => {
            if cli.json {
                let error = serde_json::json!({"ok": false, "exit_code": 2, "error": message});
                write_out(&format!("{error}\n"));
            } else {
                // A closed standard error is no reason to panic.
                let _ = writeln!(std::io::stderr(), "entra-doctor: {message}");
            }
            ExitCode::from(2)
        }
    }
}

/// Writes to standard output; a closed pipe (`| head`) is no reason to panic.
fn write_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

impl Report {
    fn print(self, json: bool) -> ExitCode {
        if json {
            let mut value = self.json;
            if let Some(object) = value.as_object_mut() {
                object.insert("ok".into(), self.ok.into());
                object.insert("exit_code".into(), u8::from(!self.ok).into());
            }
            let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
            write_out(&format!("{text}\n"));
        } else {
            write_out(&self.text);
        }
        if self.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}
