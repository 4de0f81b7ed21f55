//! `run` in-process against a small token endpoint and API on 127.0.0.1 (the full dev
//! authority lives elsewhere).
#![allow(missing_docs)]

use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use axum::extract::Form;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::CallApiOptions;

/// What the token endpoint and the API answer.
#[derive(Clone, Copy)]
enum Mode {
    Ok,
    CertificateNotRegistered,
    Forbidden,
}

async fn servers(mode: Mode) -> std::net::SocketAddr {
    let mode = Arc::new(Mutex::new(mode));
    let (m1, m2) = (Arc::clone(&mode), Arc::clone(&mode));
    let app = Router::new()
        .route(
            "/tenant-1/oauth2/v2.0/token",
            post(move |Form(form): Form<std::collections::HashMap<String, String>>| {
                let mode = *m1.lock().unwrap();
                async move {
                    let assertion_ok = form.get("client_assertion").is_some_and(|a| a.split('.').count() == 3)
                        && form.get("scope").map(String::as_str) == Some("api://weather/.default");
                    match mode {
                        Mode::CertificateNotRegistered => (
                            StatusCode::UNAUTHORIZED,
                            Json(json!({"error": "invalid_client", "error_description": "AADSTS700027: Client assertion failed signature validation.\r\nTrace ID: x", "error_codes": [700027]})),
                        )
                            .into_response(),
                        _ if !assertion_ok => (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_request"}))).into_response(),
                        _ => Json(json!({"token_type": "Bearer", "access_token": "app-token", "expires_in": 3599})).into_response(),
                    }
                }
            }),
        )
        .route(
            "/weatherforecast",
            get(move |headers: HeaderMap| {
                let mode = *m2.lock().unwrap();
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer app-token") {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    match mode {
                        Mode::Forbidden => (StatusCode::FORBIDDEN, Json(json!({"error": "role service-api is required"}))).into_response(),
                        _ => Json(json!([{"date": "2030-01-01", "temperatureC": 21, "summary": "Mild"}])).into_response(),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn certificate_file() -> std::path::PathBuf {
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8: Pkcs8V1Der<'_> = key.as_der().unwrap();
    let rc_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let cert = rcgen::CertificateParams::new(vec!["weather-client".into()])
        .unwrap()
        .self_signed(&rc_key)
        .unwrap();
    let path = std::env::temp_dir().join(format!(
        "weather-client-{}-{}.pem",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(&path, format!("{}{}", cert.pem(), rc_key.serialize_pem())).unwrap();
    path
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn options(addr: std::net::SocketAddr, credentials: &serde_json::Value) -> CallApiOptions {
    let json = json!({"CallApi": {
        "ScopeForAccessToken": "api://weather/.default",
        "ApiBaseAddress": format!("http://{addr}"),
        "Instance": format!("http://{addr}/"),
        "TenantId": "tenant-1",
        "ClientId": "client-1",
        "ClientCertificates": credentials,
    }});
    ConfigSource::from_json_str(&json.to_string())
        .unwrap()
        .section("CallApi")
        .unwrap()
}

#[tokio::test]
async fn run_prints_the_forecast_or_explains_the_failure() {
    struct Case {
        name: &'static str,
        mode: Mode,
        key_vault: bool,
        ok: bool,
        explanation: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "forecast",
            mode: Mode::Ok,
            key_vault: false,
            ok: true,
            explanation: &[],
        },
        Case {
            name: "certificate not registered",
            mode: Mode::CertificateNotRegistered,
            key_vault: false,
            ok: false,
            explanation: &[
                "the authority refused the client",
                "AADSTS700027",
                "registered",
                "thumbprint",
            ],
        },
        Case {
            name: "role missing",
            mode: Mode::Forbidden,
            key_vault: false,
            ok: false,
            explanation: &["HTTP 403", "app role"],
        },
        Case {
            name: "key vault over plain http is refused before any request",
            mode: Mode::Ok,
            key_vault: true,
            ok: false,
            explanation: &[
                "could not start",
                "`http://v.vault.azure.net/` must use https",
            ],
        },
    ];
    for case in cases {
        let addr = servers(case.mode).await;
        let file = certificate_file();
        let credentials = if case.key_vault {
            json!([{"SourceType": "KeyVault", "KeyVaultUrl": "http://v.vault.azure.net", "KeyVaultCertificateName": "c"}])
        } else {
            json!([{"SourceType": "Path", "CertificateDiskPath": file.display().to_string()}])
        };
        let result = weather_client::run(options(addr, &credentials)).await;
        std::fs::remove_file(&file).unwrap();
        match result {
            Ok(value) => {
                assert!(case.ok, "{}: unexpected success", case.name);
                assert_eq!(value[0]["summary"], "Mild", "{}", case.name);
            }
            Err(error) => {
                assert!(!case.ok, "{}: {}", case.name, error.explain());
                let text = error.explain();
                assert!(!text.contains('\n'), "{}: one paragraph: {text}", case.name);
                for needle in case.explanation {
                    assert!(
                        text.contains(needle),
                        "{}: {text:?} lacks {needle:?}",
                        case.name
                    );
                }
            }
        }
    }
}
