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
