//! `ClientCertificate::from_pem` (certificate + PKCS#1/PKCS#8 key, encrypted keys refused),
//! `thumbprints` on the same bytes as DER, and an assertion with what was loaded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_azure_auth::credentials::{
    thumbprints, AssertionAlgorithm, AssertionRequest, ClientCertificate,
};

fuzz_target!(|data: &[u8]| {
    let _ = thumbprints(data);
    if let Ok(certificate) = ClientCertificate::from_pem(data) {
        assert!(certificate.key_bits() >= 2048);
        let _ = format!("{certificate:?}");
        let assertion = certificate.client_assertion(&AssertionRequest {
            client_id: tower_azure_auth_fuzz::CLIENT,
            audience: "https://login.microsoftonline.com/t/oauth2/v2.0/token",
            algorithm: AssertionAlgorithm::Ps256,
            send_x5c: true,
            now: 1_700_000_000,
        });
        assert!(
            assertion.is_ok(),
            "a loaded certificate can sign: {assertion:?}"
        );
    }
});
