//! `ClientCertificate::from_pkcs12` and `from_base64_pkcs12`. The first byte picks the
//! password: none, empty, or the test data's `legacy-password`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_azure_auth::credentials::ClientCertificate;

fuzz_target!(|data: &[u8]| {
    let Some((selector, der)) = data.split_first() else {
        return;
    };
    let password = match selector % 3 {
        0 => None,
        1 => Some(""),
        _ => Some("legacy-password"),
    };
    if let Ok(certificate) = ClientCertificate::from_pkcs12(der, password) {
        assert!(certificate.key_bits() >= 2048);
        let _ = format!("{certificate:?}");
    }
    if let Ok(text) = std::str::from_utf8(der) {
        let _ = ClientCertificate::from_base64_pkcs12(text, password);
    }
});
