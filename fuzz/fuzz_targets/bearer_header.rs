//! `validation::bearer_token`: the `Authorization` header values of one request, one per line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_azure_auth::validation::bearer_token;

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|b| *b == b'\n').collect()
    };
    if let Ok(token) = bearer_token(values.iter().copied()) {
        // Whatever is accepted is one non-empty, visible-ASCII word taken from the only value.
        assert_eq!(values.len(), 1);
        assert!(!token.is_empty());
        assert!(token.bytes().all(|b| b.is_ascii_graphic()), "{token:?}");
        assert!(
            std::str::from_utf8(values[0]).is_ok_and(|v| v.contains(token)),
            "the token is a slice of the header"
        );
    }
});
