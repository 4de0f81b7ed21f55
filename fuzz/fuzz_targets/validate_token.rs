//! `TokenValidator::validate_with_current_keys` with a fixed key set: shape, header, key
//! lookup, signature, claims, lifetime, issuer and audience checks, and the verified-token cache.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_azure_auth::AuthErrorKind;

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let validator = tower_azure_auth_fuzz::validator();
    match validator.validate_with_current_keys(&token) {
        Ok(claims) => {
            // Only a token signed with the fixture key can pass, and it names the fixture API.
            assert!(claims.audiences().any(|a| a == tower_azure_auth_fuzz::API));
            // A second look is a cache hit and must agree.
            assert!(validator.validate_with_current_keys(&token).is_ok());
        }
        Err(error) => {
            assert!(error.status() == 401 || error.status() == 503);
            assert_ne!(error.kind(), AuthErrorKind::KeysUnavailable);
            // Reasons never echo the token itself.
            if token.len() > 64 {
                assert!(!error.reason().contains(token.as_ref()));
            }
            let _ = error.www_authenticate();
        }
    }
});
