//! The dev authority's client-assertion checks (`testing/assertion.rs`): parsing as MSAL
//! sends them, certificate lookup by `x5t#S256`/`x5t`/`x5c`, signature, `aud`, lifetime.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tower_azure_auth::testing::fuzzing::AssertionChecker;
use tower_azure_auth_fuzz::{CLIENT, CLIENT_CERT, NOW, TENANT};

fn checker() -> &'static AssertionChecker {
    static CHECKER: OnceLock<AssertionChecker> = OnceLock::new();
    CHECKER.get_or_init(|| {
        AssertionChecker::new(TENANT, CLIENT, CLIENT_CERT).expect("the fixture registers")
    })
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let endpoint = format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
    let now = i64::try_from(NOW).unwrap_or_default();
    for client_id in [None, Some(CLIENT)] {
        if let Some(verified) = checker().verify(&raw, &endpoint, client_id, now) {
            assert_eq!(verified, CLIENT);
        }
    }
});
