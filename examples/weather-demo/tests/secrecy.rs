//! The whole demo at `RUST_LOG=trace`: no access token, client assertion, private key or client
//! secret may appear in anything it prints (its own output and every library's logs).
#![allow(missing_docs)]

#[test]
fn no_secret_in_trace_logs() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weather-demo"))
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed:\n{stdout}\n{stderr}"
    );
    let all = format!("{stdout}\n{stderr}");
    // The trace really is on: the libraries' trace lines are there.
    assert!(all.contains("TRACE"), "no trace output captured");
    let forbidden = [
        // A JWS (access token or client assertion) starts with the base64url of `{"`.
        ("a JWT (token or assertion)", "eyJ"),
        ("a private key", "PRIVATE KEY"),
        ("a client secret", weather_demo::SERVICE_SECRET),
        ("a client assertion form field", "client_assertion="),
        ("a bearer credential", "Bearer ey"),
    ];
    for (what, needle) in forbidden {
        if let Some(at) = all.find(needle) {
            let start = at.saturating_sub(200);
            let end = (at + 100).min(all.len());
            panic!("{what} appears in the output:\n…{}…", &all[start..end]);
        }
    }
}

/// `cargo run -p weather-demo` with no arguments narrates what it does and ends with where to
/// go next; `--help` says what it does without running it.
#[test]
fn narrates_its_steps_and_what_next_and_answers_help() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weather-demo"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let expected_in_order = [
        " 1. generated the certificate CN=weather-service (RSA 2048, self-signed): SHA-1 thumbprint ",
        "(as the Azure portal shows it), x5t#S256 ",
        "started the dev authority (a local Entra ID) at http://127.0.0.1:",
        "registered the application \"weather service\"",
        "started the weather API at http://127.0.0.1:",
        "acquired a token for api://b178f3a5-7588-492a-924f-72d7887b7e48/.default with the certificate: client assertion signed PS256 with x5t#S256",
        "the access token is signed RS256",
        "each call and the API's answer:",
        "[ok ] certificate client with the service-api role",
        "[ok ] no token",
        "the whole flow took ",
        "every call got the expected answer",
        "what next:",
        "  - protect your own API: examples/weather-api-axum",
        "  - call it: examples/weather-client",
        "  - test against the dev authority: entra_dev_authority::DevAuthority",
        "  - when a token is refused: entra-doctor token",
    ];
    let mut rest = &stdout[..];
    for needle in expected_in_order {
        let at = rest
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing (or out of order) in:\n{stdout}"));
        rest = &rest[at + needle.len()..];
    }
    // The thumbprint is 40 upper-case hex digits.
    let thumbprint: String = stdout
        .split("SHA-1 thumbprint ")
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(thumbprint.len(), 40, "{stdout}");
    assert_eq!(thumbprint, thumbprint.to_ascii_uppercase());

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_weather-demo"))
        .arg("--help")
        .output()
        .expect("run the demo with --help");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{text}");
    assert!(text.contains("Usage: weather-demo"), "{text}");
    assert!(text.contains("against a local Entra ID"), "{text}");
    assert!(
        !text.contains("what next:"),
        "--help must not run the demo:\n{text}"
    );
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_weather-demo"))
        .arg("--frobnicate")
        .output()
        .expect("run the demo with a wrong flag");
    assert!(!unknown.status.success());
}
