//! The dev authority's client-assertion checks (`entra-dev-authority/src/assertion.rs`): parsing as MSAL
//! sends them, certificate lookup by `x5t#S256`/`x5t`/`x5c`, signature, `aud`, lifetime.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use entra_dev_authority::fuzzing::AssertionChecker;
use tower_azure_auth_fuzz::{ASSERTION_NOW, CLIENT, CLIENT_CERT, TENANT};

fn checker() -> &'static AssertionChecker {
    static CHECKER: OnceLock<AssertionChecker> = OnceLock::new();
    CHECKER.get_or_init(|| {
        let checker =
            AssertionChecker::new(TENANT, CLIENT, CLIENT_CERT).expect("the fixture registers");
        // The seeds (MSAL.NET- and MSAL Python-shaped) must pass, so that the fuzzer starts
        // from inputs that reach every check.
        for seed in [SEED_NET, SEED_PYTHON] {
            let accepted = checker.verify(seed.trim(), &endpoint(), None, now());
            assert_eq!(accepted.as_deref(), Some(CLIENT), "seed assertion refused");
        }
        checker
    })
}

const SEED_NET: &str = include_str!("../seeds/client_assertion/msal-net-ps256.txt");
const SEED_PYTHON: &str = include_str!("../seeds/client_assertion/msal-python-rs256.txt");

fn endpoint() -> String {
    format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token")
}

fn now() -> i64 {
    ASSERTION_NOW
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let (endpoint, now) = (endpoint(), now());
    for client_id in [None, Some(CLIENT)] {
        if let Some(verified) = checker().verify(&raw, &endpoint, client_id, now) {
            assert_eq!(verified, CLIENT);
        }
    }
});
