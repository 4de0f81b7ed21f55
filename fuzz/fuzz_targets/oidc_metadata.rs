//! The OpenID Connect discovery document: the fields the library reads, the `jwks_uri`
//! checks `OidcMetadata::fetch` applies, and authority parsing of the `issuer`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_azure_auth::authority::{require_secure, OidcMetadata};
use tower_azure_auth::Authority;

fuzz_target!(|data: &[u8]| {
    let Ok(metadata) = serde_json::from_slice::<OidcMetadata>(data) else {
        return;
    };
    if let Ok(jwks) = url::Url::parse(&metadata.jwks_uri) {
        let _ = require_secure(&jwks, "jwks_uri");
    }
    if let Ok(authority) = Authority::oidc(&metadata.issuer) {
        let _ = authority.metadata_url();
        let _ = authority.v1_metadata_url();
        let _ = authority.token_endpoint();
        let _ = authority.to_string();
    }
    if let Some(endpoint) = &metadata.token_endpoint {
        let _ = url::Url::parse(endpoint);
    }
});
