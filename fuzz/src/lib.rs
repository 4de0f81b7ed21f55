//! Shared fixtures of the fuzz targets: the validator every token target uses (static keys,
//! a fixed clock, Entra issuer rules), built once.

use std::sync::{Arc, OnceLock};

use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::{Authority, TokenValidator};

/// The tenant of the seed token.
pub const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
/// The API (audience) of the seed token.
pub const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
/// The client of the seed assertion.
pub const CLIENT: &str = "0a0a0a0a-1111-2222-3333-444444444444";
/// The time the token targets run at: inside the seed token's lifetime.
pub const NOW: u64 = 1_700_000_100;
/// The time the assertion target runs at: inside the seed assertions' lifetimes and the
/// fixture certificate's validity (from 2026-11-28 on).
pub const ASSERTION_NOW: i64 = 1_800_000_100;
/// The Entra v2 multi-tenant issuer template.
pub const ISSUER: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
/// The JWKS holding the key of the seed token (`tests/data/legacy.key`).
pub const JWKS: &[u8] = include_bytes!("../fixtures/validator-jwks.json");
/// The certificate of the seed assertions (`tests/data/legacy.crt`).
pub const CLIENT_CERT: &str = include_str!("../fixtures/client.crt");

/// An Entra validator for `TENANT`/`API` with the given key set, at `NOW`.
pub fn validator_with(jwks: &[u8]) -> Option<TokenValidator> {
    let authority = Authority::entra("https://login.microsoftonline.com/", TENANT).ok()?;
    TokenValidator::builder(authority)
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .verified_token_cache(1024 * 1024)
        .static_keys(ISSUER, jwks)
        .ok()?
        .build()
        .ok()
}

/// The seed token (signed with the fixture key, valid at `NOW`).
pub const SEED_TOKEN: &str = include_str!("../seeds/validate_token/entra-v2.txt");

/// The validator with the seed key set, built once. Checks that the seed token passes, so
/// that the fuzzer starts from an input that reaches every check.
pub fn validator() -> &'static TokenValidator {
    static VALIDATOR: OnceLock<TokenValidator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let validator = validator_with(JWKS).expect("the fixture key set is usable");
        if let Err(error) = validator.validate_with_current_keys(SEED_TOKEN.trim()) {
            panic!("the seed token must pass: {error}");
        }
        validator
    })
}
