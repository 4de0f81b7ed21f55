//! Credential sources that fail at run time give typed errors a caller can act on, over real
//! HTTP on 127.0.0.1: the dev authority's Key Vault refusing (403), a vault or a managed
//! identity endpoint that is down (a closed port), answering garbage or a non-certificate
//! secret (small servers written for the case), and a federated token file that is gone.
//! Each case checks the variant, [`CredentialError::is_transient`] and that it reaches the
//! caller of `ConfidentialClient` as `TokenError::Credential`.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use entra_dev_authority::{
    generate_certificate, ContentType, DevApi, DevApplication, DevAuthority, DevKeyVault,
};
use serde_json::json;
use tower_azure_auth::clock::{ManualClock, SharedClock};
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::credentials::{
    AccessToken, BoxFuture, ClientCredential, ConfidentialClient, CredentialContext,
    CredentialDescriptions, CredentialError, CredentialSource, FederatedTokenFile,
    KeyVaultCertificate, ManagedIdentityCredential, TokenError, TokenSource,
};
use tower_azure_auth::{Authority, ConfigError, FetchError, HttpClient};

use crate::support::serve;

const CLIENT: &str = "0b7c5d2e-0000-4000-8000-000000000002";
const API: &str = "6f8a1c52-0000-4000-8000-000000000001";
const IDENTITY: &str = "5a9f0c1e-0000-4000-8000-000000000009";
const SCOPE: &str = "api://weather/.default";
const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
const CERT_NAME: &str = "ServiceApiCert";

/// Always the same token: the vault servers written for a case check nothing.
#[derive(Debug)]
struct FixedToken;

impl TokenSource for FixedToken {
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        _force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            Ok(AccessToken::new(
                "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln",
                SystemTime::now() + Duration::from_secs(3600),
                scopes.to_vec(),
            ))
        })
    }
}

/// A loopback URL nothing listens on (a port bound, then released).
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A vault whose certificate bundle is fine and whose secret is `secret` with `status`.
async fn vault_answering(status: StatusCode, secret: &'static str) -> String {
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let sid_base = Arc::clone(&base);
    let app = Router::new()
        .route(
            &format!("/vault/certificates/{CERT_NAME}"),
            get(move || {
                let sid = format!(
                    "{}/vault/secrets/{CERT_NAME}/0123abcd",
                    sid_base.get().unwrap()
                );
                async move { Json(json!({"sid": sid, "attributes": {"enabled": true}})) }
            }),
        )
        .route(
            &format!("/vault/secrets/{CERT_NAME}/0123abcd"),
            get(move || async move { (status, secret) }),
        );
    let url = serve(app).await;
    base.set(url.clone()).unwrap();
    format!("{url}/vault")
}

fn context() -> CredentialContext {
    CredentialContext::new(
        HttpClient::new().unwrap(),
        Arc::new(ManualClock::now()) as SharedClock,
    )
}

fn identity(endpoint: &str) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .imds_endpoint(endpoint)
        .retry_delay(Duration::ZERO)
        .max_retries(0)
        .build()
        .unwrap()
}

#[tokio::test]
async fn credential_source_failures_are_typed_and_say_whether_to_retry() {
    let clock = ManualClock::now();
    let certificate = generate_certificate("CN=weather-client").unwrap();
    let authority = DevAuthority::builder()
        .clock(Arc::new(clock.clone()))
        .api(
            DevApi::new(API)
                .app_id_uri("api://weather")
                .app_roles(["service-api"]),
        )
        .application(
            DevApplication::new(CLIENT)
                .certificate_pem(&certificate.cert_pem)
                .unwrap()
                .grant("api://weather", ["service-api"]),
        )
        .managed_identity(IDENTITY)
        .key_vault(
            DevKeyVault::new()
                .certificate(CERT_NAME, &certificate, ContentType::Pkcs12)
                .deny(IDENTITY),
        )
        .start()
        .await
        .unwrap();
    let down = closed_port().await;
    let dev_identity = ManagedIdentityCredential::builder()
        .imds_endpoint(authority.imds_endpoint())
        .client_id(Some(IDENTITY))
        .retry_delay(Duration::ZERO)
        .build()
        .unwrap();
    let garbage_identity = serve(
        Router::new()
            .fallback(|| async { (StatusCode::OK, "<html><body>captive portal</body></html>") }),
    )
    .await;
    let failing_identity = serve(Router::new().fallback(|| async {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {"code": "Busy", "message": "try later"}})),
        )
    }))
    .await;

    struct Case {
        name: &'static str,
        source: KeyVaultCertificate,
        expected: fn(&CredentialError) -> bool,
        transient: bool,
        says: &'static [&'static str],
    }
    let vault = |url: &str, token: Arc<dyn TokenSource>| {
        KeyVaultCertificate::new(url, CERT_NAME, token).unwrap()
    };
    let cases = [
        Case {
            name: "the vault refuses the identity (403)",
            source: vault(&authority.vault_url(), Arc::new(dev_identity.clone())),
            expected: |e| matches!(e, CredentialError::Refused { status: 403, code: Some(code), .. } if code == "Forbidden"),
            transient: false,
            says: &["HTTP 403", "(Forbidden)", "no get permission", CERT_NAME],
        },
        Case {
            name: "the vault is down",
            source: vault(&format!("{down}/vault"), Arc::new(FixedToken)),
            expected: |e| {
                matches!(
                    e,
                    CredentialError::Unreachable {
                        source: FetchError::Transport { .. },
                        ..
                    }
                )
            },
            transient: true,
            says: &["cannot be reached", CERT_NAME],
        },
        Case {
            name: "the vault answers 503",
            source: vault(
                &vault_answering(StatusCode::SERVICE_UNAVAILABLE, "").await,
                Arc::new(FixedToken),
            ),
            expected: |e| {
                matches!(
                    e,
                    CredentialError::Refused {
                        status: 503,
                        code: None,
                        ..
                    }
                )
            },
            transient: true,
            says: &["HTTP 503", "no error code"],
        },
        Case {
            name: "the vault answers HTML with 200",
            source: vault(
                &vault_answering(StatusCode::OK, "<html>sign in</html>").await,
                Arc::new(FixedToken),
            ),
            expected: |e| matches!(e, CredentialError::InvalidResponse { .. }),
            transient: false,
            says: &["not a secret bundle"],
        },
        Case {
            name: "the secret is not a certificate",
            source: vault(
                &vault_answering(
                    StatusCode::OK,
                    r#"{"value":"hunter2","contentType":"text/plain"}"#,
                )
                .await,
                Arc::new(FixedToken),
            ),
            expected: |e| matches!(e, CredentialError::NotACertificate { .. }),
            transient: false,
            says: &["no usable client certificate", "text/plain"],
        },
        Case {
            name: "the managed identity endpoint is down",
            source: vault(&authority.vault_url(), Arc::new(identity(&down))),
            expected: |e| match e {
                CredentialError::NoToken { source, scope, .. } => {
                    scope == VAULT_SCOPE
                        && matches!(
                            source.as_ref(),
                            TokenError::Credential(CredentialError::Unreachable { .. })
                        )
                }
                _ => false,
            },
            transient: true,
            says: &[
                "no token for",
                "IMDS managed identity endpoint",
                "cannot be reached",
            ],
        },
        Case {
            name: "the managed identity endpoint answers garbage",
            source: vault(
                &authority.vault_url(),
                Arc::new(identity(&garbage_identity)),
            ),
            expected: |e| match e {
                CredentialError::NoToken { source, .. } => matches!(
                    source.as_ref(),
                    TokenError::Credential(CredentialError::InvalidResponse { .. })
                ),
                _ => false,
            },
            transient: false,
            says: &["unusable answer", "not JSON"],
        },
        Case {
            name: "the managed identity endpoint answers 503",
            source: vault(
                &authority.vault_url(),
                Arc::new(identity(&failing_identity)),
            ),
            expected: |e| match e {
                CredentialError::NoToken { source, .. } => matches!(
                    source.as_ref(),
                    TokenError::Credential(CredentialError::Refused { status: 503, code: Some(code), .. }) if code == "Busy"
                ),
                _ => false,
            },
            transient: true,
            says: &["HTTP 503 (Busy)", "try later"],
        },
    ];
    for case in cases {
        let error = case.source.load(&context()).await.unwrap_err();
        assert!((case.expected)(&error), "{}: {error:?}", case.name);
        assert_eq!(
            error.is_transient(),
            case.transient,
            "{}: {error:?}",
            case.name
        );
        let text = tower_azure_auth::error::error_chain(&error);
        for needle in case.says {
            assert!(
                text.contains(needle),
                "{}: {text:?} lacks {needle:?}",
                case.name
            );
        }
        assert!(
            !text.contains("hunter2"),
            "{}: the secret's value leaked",
            case.name
        );
        assert!(!text.contains("eyJ"), "{}: a token leaked", case.name);

        // The same failure reaches the client's caller, typed, with the same advice to retry.
        let client = ConfidentialClient::builder(CLIENT)
            .authority(Authority::entra(&authority.instance(), authority.tenant_id()).unwrap())
            .credential_source(Arc::new(case.source))
            .clock(Arc::new(clock.clone()))
            .retry_delay(Duration::ZERO)
            .build()
            .unwrap();
        let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
        match &error {
            TokenError::Credential(inner) => {
                assert!((case.expected)(inner), "{}: {inner:?}", case.name);
            }
            other => panic!(
                "{}: expected TokenError::Credential, got {other:?}",
                case.name
            ),
        }
        assert_eq!(error.is_transient(), case.transient, "{}", case.name);
        let again = client.load_credential().await.unwrap_err();
        assert!((case.expected)(&again), "{}: {again:?}", case.name);
    }
    authority.shutdown().await;
}

#[tokio::test]
async fn a_federated_token_file_that_is_gone_is_a_credential_error() {
    let authority = DevAuthority::builder()
        .api(
            DevApi::new(API)
                .app_id_uri("api://weather")
                .app_roles(["service-api"]),
        )
        .start()
        .await
        .unwrap();
    let path = std::env::temp_dir().join(format!("taa-gone-{}", uuid::Uuid::new_v4()));
    let client = ConfidentialClient::builder(CLIENT)
        .authority(Authority::entra(&authority.instance(), authority.tenant_id()).unwrap())
        .credential(ClientCredential::assertion(FederatedTokenFile::new(&path)))
        .build()
        .unwrap();
    let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
    assert!(
        matches!(&error, TokenError::Credential(CredentialError::Io { path: p, source }) if p == &path && source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
    assert!(!error.is_transient(), "{error:?}");

    // Written, but not a JWT: the content never appears in the message.
    std::fs::write(&path, "not-a-jwt-secret-value").unwrap();
    let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
    assert!(
        matches!(
            &error,
            TokenError::Credential(CredentialError::InvalidFile { .. })
        ),
        "{error:?}"
    );
    assert!(!error.to_string().contains("secret-value"), "{error}");
    std::fs::remove_file(&path).unwrap();
    authority.shutdown().await;
}

#[tokio::test]
async fn descriptions_keep_every_failure_typed_and_retry_if_any_may_pass() {
    let down = closed_port().await;
    let options = |json: String| {
        ConfigSource::from_json_str(&format!(
            r#"{{"CallApi": {{"ClientCertificates": {json}}}}}"#
        ))
        .unwrap()
        .section::<tower_azure_auth::CallApiOptions>("CallApi")
        .unwrap()
    };
    let vault = format!(
        r#"{{"SourceType": "KeyVault", "KeyVaultUrl": "{down}/vault", "KeyVaultCertificateName": "{CERT_NAME}"}}"#
    );
    let missing = r#"{"SourceType": "Path", "CertificateDiskPath": "/nonexistent/client.pfx"}"#;
    let unsupported = r#"{"SourceType": "StoreWithThumbprint"}"#;

    let descriptions = CredentialDescriptions::from_call_api(&options(format!(
        "[{vault}, {missing}, {unsupported}]"
    )))
    .vault_token_source(Arc::new(FixedToken));
    let error = descriptions.load(&context()).await.unwrap_err();
    let CredentialError::NoneLoaded { key, failures } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(key, "CallApi:ClientCertificates");
    assert!(
        matches!(
            failures.as_slice(),
            [
                (0, CredentialError::Unreachable { .. }),
                (1, CredentialError::Certificate { .. }),
                (
                    2,
                    CredentialError::Configuration(tower_azure_auth::ConfigError::Invalid { .. })
                ),
            ]
        ),
        "{failures:?}"
    );
    assert!(error.is_transient(), "the vault may come back: {error}");

    // Without the vault, nothing a retry would change.
    let error =
        CredentialDescriptions::from_call_api(&options(format!("[{missing}, {unsupported}]")))
            .load(&context())
            .await
            .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("[0] certificate file")
            && text.contains("[1] this SourceType is not supported"),
        "{text}"
    );
}

/// `is_transient` for every variant, alone and inside `TokenError::Credential`.
#[test]
fn credential_errors_say_whether_to_retry() {
    struct Case {
        name: &'static str,
        error: CredentialError,
        transient: bool,
    }
    let refused = |status| CredentialError::Refused {
        origin: "the vault".into(),
        status,
        code: None,
        message: "no details".into(),
    };
    let io = |kind| CredentialError::Io {
        path: "token".into(),
        source: std::io::Error::from(kind),
    };
    let redirected = || CredentialError::Unreachable {
        origin: "the vault".into(),
        source: FetchError::Redirected {
            url: "https://v".into(),
            status: 302,
            location: None,
        },
    };
    let cases = [
        Case {
            name: "403",
            error: refused(403),
            transient: false,
        },
        Case {
            name: "404",
            error: refused(404),
            transient: false,
        },
        Case {
            name: "408",
            error: refused(408),
            transient: true,
        },
        Case {
            name: "429",
            error: refused(429),
            transient: true,
        },
        Case {
            name: "503",
            error: refused(503),
            transient: true,
        },
        Case {
            name: "a redirect is never followed, nor retried",
            error: redirected(),
            transient: false,
        },
        Case {
            name: "file not found",
            error: io(std::io::ErrorKind::NotFound),
            transient: false,
        },
        Case {
            name: "read interrupted",
            error: io(std::io::ErrorKind::Interrupted),
            transient: true,
        },
        Case {
            name: "no token, transiently",
            error: CredentialError::NoToken {
                origin: "the vault".into(),
                scope: "s".into(),
                source: Box::new(TokenError::Throttled {
                    retry_after: Duration::from_secs(1),
                }),
            },
            transient: true,
        },
        Case {
            name: "no token: refused scope",
            error: CredentialError::NoToken {
                origin: "the vault".into(),
                scope: "s".into(),
                source: Box::new(TokenError::InvalidScope {
                    scope: "s".into(),
                    reason: "r",
                }),
            },
            transient: false,
        },
        Case {
            name: "none loaded, one may pass",
            error: CredentialError::NoneLoaded {
                key: "CallApi:ClientCertificates".into(),
                failures: vec![(0, refused(403)), (1, refused(503))],
            },
            transient: true,
        },
        Case {
            name: "none loaded, none may pass",
            error: CredentialError::NoneLoaded {
                key: "CallApi:ClientCertificates".into(),
                failures: vec![(0, refused(403)), (1, io(std::io::ErrorKind::NotFound))],
            },
            transient: false,
        },
        Case {
            name: "another library says so",
            error: CredentialError::External {
                transient: true,
                source: "down".into(),
            },
            transient: true,
        },
        Case {
            name: "a configuration mistake",
            error: CredentialError::Configuration(ConfigError::Missing {
                key: "k",
                hint: "h",
            }),
            transient: false,
        },
    ];
    for case in cases {
        assert_eq!(case.error.is_transient(), case.transient, "{}", case.name);
        let token = TokenError::Credential(case.error);
        assert_eq!(
            token.is_transient(),
            case.transient,
            "{}: through TokenError",
            case.name
        );
    }
}
