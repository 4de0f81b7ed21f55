//! The JWKS parser (through `TokenValidatorBuilder::static_keys`), then the seed token against
//! whatever key set was accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_azure_auth_fuzz::SEED_TOKEN;

fuzz_target!(|data: &[u8]| {
    if let Some(validator) = tower_azure_auth_fuzz::validator_with(data) {
        assert!(validator.has_keys());
        let _ = validator.validate_with_current_keys(SEED_TOKEN.trim());
        let _ = format!("{validator:?}");
    }
});
