//! The token endpoint's answer: first line a `Retry-After` value, the rest the body (a
//! token response or an OAuth 2 error).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (retry_after, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let retry_after = String::from_utf8_lossy(retry_after);
    tower_azure_auth::credentials::fuzzing::token_endpoint_answer(&retry_after, body);
});
