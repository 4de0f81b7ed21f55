//! Interoperability with implementations we did not write (issue 8):
//!
//! * **oidc-provider** (panva's certified OpenID provider, Node.js): our `ConfidentialClient`
//!   gets tokens from it with a certificate (PEM and PKCS#12) through discovery, the weather
//!   API (a separate process, `AzureAd__Authority` pointing at it) accepts or refuses them,
//!   the `weather-client` binary reports an unregistered certificate, and the provider's
//!   signing key is rotated while the API runs.
//! * **MSAL for Python** (Microsoft's client library) against our `DevAuthority` over TLS:
//!   the three ways MSAL builds a certificate assertion (RS256 + `x5t`, PS256 + `x5t#S256`
//!   with and without `x5c`) are accepted, and the tokens validate and open the weather API.
//! * **MSAL for Node** (`@azure/msal-node`) against our `DevAuthority` over TLS: certificates
//!   by SHA-256 and SHA-1 thumbprint, tokens for two APIs in a row from one application (MSAL
//!   reuses its client assertion, which the dev authority accepts by default as Entra does, and
//!   refuses with AADSTS50027 under `AssertionReuse::Refuse`), a client secret, and an
//!   unregistered certificate.
//! * **grpcio** (gRPC's own Python implementation) calling the Rust `weather-grpc` service with
//!   tokens from the `DevAuthority`: `OK`, `UNAUTHENTICATED` (with the challenge metadata) and
//!   `PERMISSION_DENIED`, as grpcio decodes them.
//!
//! A custom harness (`harness = false`): every case is printed by name; arguments that do
//! not start with `-` filter cases by substring. Prerequisites (node + oidc-provider and
//! @azure/msal-node, the Python venv with msal and grpcio, the example binaries) come from
//! `scripts/interop-setup.sh`; when one is missing the suite FAILS, it is never skipped.

use std::process::ExitCode;
use std::sync::Arc;

#[path = "../interop/certs.rs"]
mod certs;
#[path = "../interop/grpcio.rs"]
mod grpcio;
#[path = "../interop/msal.rs"]
mod msal;
#[path = "../interop/msal_node.rs"]
mod msal_node;
#[path = "../interop/oidc_provider.rs"]
mod oidc_provider;
#[path = "../interop/oidc_suite.rs"]
mod oidc_suite;
#[path = "../interop/support.rs"]
mod support;

use support::{Filters, Suite};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // `cargo test -- --list`: the harness has one entry; cases are printed when run.
        println!("interop: test");
        return ExitCode::SUCCESS;
    }
    // libtest-style arguments: free words filter by substring; `--skip WORD` excludes; the
    // values of other libtest options are not filters.
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--skip" => skips.extend(args.next()),
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => {
                args.next();
            }
            "interop" => {}
            other if other.starts_with('-') => {}
            _ => filters.push(arg),
        }
    }
    let filters = Arc::new(Filters {
        include: filters,
        skip: skips,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("interop: cannot build a Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (oidc, msal, msal_node, grpcio) = runtime.block_on(async {
        let oidc = oidc_suite::run(Suite::new("oidc-provider", Arc::clone(&filters)));
        let msal = msal::run(Suite::new("msal-python", Arc::clone(&filters)));
        let msal_node = msal_node::run(Suite::new("msal-node", Arc::clone(&filters)));
        let grpcio = grpcio::run(Suite::new("grpcio", Arc::clone(&filters)));
        tokio::join!(oidc, msal, msal_node, grpcio)
    });
    let suites = [oidc, msal, msal_node, grpcio];
    let passed: usize = suites.iter().map(|s| s.passed).sum();
    let filtered: usize = suites.iter().map(|s| s.filtered_out).sum();
    let failed: Vec<String> = suites.into_iter().flat_map(|s| s.failed).collect();
    println!(
        "\ninterop result: {}. {passed} passed; {} failed; {filtered} filtered out",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if passed == 0 && failed.is_empty() {
        println!("interop: no case matched the filters");
    }
    for name in &failed {
        println!("    {name}");
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
