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
/// The time the fuzz targets run at: inside the seed token's and assertion's lifetimes.
pub const NOW: u64 = 1_700_000_100;
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

/// The validator with the seed key set, built once.
pub fn validator() -> &'static TokenValidator {
    static VALIDATOR: OnceLock<TokenValidator> = OnceLock::new();
    VALIDATOR.get_or_init(|| validator_with(JWKS).expect("the fixture key set is usable"))
}
