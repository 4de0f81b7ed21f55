//! Fault injection: a hand-written HTTP/1.1 server on 127.0.0.1 plays the authority (metadata,
//! JWKS, token endpoint) and misbehaves on command — 50 MiB bodies streamed without a length,
//! never answering, closing the connection mid-body, malformed JSON, keys withdrawn while tokens
//! still name them. Each case checks what callers see (401/503 inbound, a typed `TokenError`
//! outbound), that nothing panics, and that everything recovers without a restart once the
//! fault ends.
//!
//! Covered elsewhere, not repeated here: JWKS 500, garbage, empty key set and a 2 MiB body with
//! a `Content-Length` after keys were fetched, and a flood of unknown kids
//! (`validation`); the authority down at start (`validation`); 429 with
//! `Retry-After`, 5xx retried once, connection refused (`outbound`).

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::TestKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_azure_auth::authority::FetchError;
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::credentials::{ConfidentialClient, TokenError};
use tower_azure_auth::{AuthErrorKind, Authority, HttpClient, TokenValidator};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const CLIENT: &str = "0a0a0a0a-1111-2222-3333-444444444444";
const START: u64 = 1_900_000_000;
const HUGE: u64 = 50 * 1024 * 1024;
/// The client's request timeout in these tests (the default is 10 s).
const TIMEOUT: Duration = Duration::from_millis(300);
/// Upper bound for anything that must finish; only guards against a hang.
const GUARD: Duration = Duration::from_secs(20);

/// What one endpoint does.
#[derive(Clone, Debug)]
enum Fault {
    /// Answers normally.
    Serve,
    /// Answers this status and body.
    Answer(u16, String),
    /// Streams 50 MiB of JSON-looking bytes with no `Content-Length`.
    Huge,
    /// Reads the request and never answers.
    Hang,
    /// Sends the headers (`Content-Length: 4096`) and 9 bytes of body, then closes.
    CloseMidBody,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Metadata,
    Jwks,
    Token,
}

struct State {
    base: Mutex<String>,
    keys: Mutex<Vec<Value>>,
    faults: Mutex<[Fault; 3]>,
    hits: [AtomicUsize; 3],
    tokens_issued: AtomicUsize,
    /// The most bytes of a huge body written on one connection.
    huge_written: AtomicU64,
    /// Huge bodies whose connection was closed by the client before the end.
    huge_cut: AtomicUsize,
    huge_finished: AtomicBool,
}

#[derive(Clone)]
struct FaultyAuthority {
    addr: SocketAddr,
    state: Arc<State>,
}

impl FaultyAuthority {
    async fn start(keys: &[&TestKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            base: Mutex::new(format!("http://{addr}")),
            keys: Mutex::new(keys.iter().map(|k| k.jwk()).collect()),
            faults: Mutex::new([Fault::Serve, Fault::Serve, Fault::Serve]),
            hits: Default::default(),
            tokens_issued: AtomicUsize::new(0),
            huge_written: AtomicU64::new(0),
            huge_cut: AtomicUsize::new(0),
            huge_finished: AtomicBool::new(false),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Self { addr, state }
    }

    fn instance(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn issuer(&self) -> String {
        format!("http://{}/{TENANT}/v2.0", self.addr)
    }

    fn set(&self, endpoint: Endpoint, fault: Fault) {
        self.state.faults.lock().unwrap()[endpoint as usize] = fault;
    }

    fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
    }

    fn hits(&self, endpoint: Endpoint) -> usize {
        self.state.hits[endpoint as usize].load(Ordering::SeqCst)
    }
}

/// Reads one request (head and `Content-Length` body), answers it, closes the connection.
async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if request.len() > 64 * 1024 {
            return;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while request.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let endpoint = if path.ends_with("/.well-known/openid-configuration") {
        Endpoint::Metadata
    } else if path.ends_with("/discovery/v2.0/keys") {
        Endpoint::Jwks
    } else if path.ends_with("/oauth2/v2.0/token") {
        Endpoint::Token
    } else {
        let _ = respond(&mut stream, 404, "").await;
        return;
    };
    state.hits[endpoint as usize].fetch_add(1, Ordering::SeqCst);
    let fault = state.faults.lock().unwrap()[endpoint as usize].clone();
    match fault {
        Fault::Serve => {
            let body = normal_body(&state, endpoint, &path);
            let _ = respond(&mut stream, 200, &body).await;
        }
        Fault::Answer(status, body) => {
            let _ = respond(&mut stream, status, &body).await;
        }
        Fault::Hang => {
            // Hold the connection open, answer nothing.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Fault::CloseMidBody => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n{\"keys\":[";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.flush().await;
            // Dropping the stream closes the connection with the body unfinished.
        }
        Fault::Huge => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 64 * 1024];
            let mut written = 0u64;
            let mut cut = false;
            while written < HUGE {
                if stream.write_all(&chunk).await.is_err() {
                    cut = true;
                    break;
                }
                written += chunk.len() as u64;
            }
            state.huge_written.fetch_max(written, Ordering::SeqCst);
            if cut {
                state.huge_cut.fetch_add(1, Ordering::SeqCst);
            }
            state.huge_finished.store(true, Ordering::SeqCst);
        }
    }
}

fn normal_body(state: &State, endpoint: Endpoint, path: &str) -> String {
    let base = state.base.lock().unwrap().clone();
    match endpoint {
        Endpoint::Metadata => {
            let issuer = if path.contains("/v2.0/") {
                format!("{base}/{TENANT}/v2.0")
            } else {
                format!("{base}/{TENANT}/")
            };
            json!({
                "issuer": issuer,
                "jwks_uri": format!("{base}/{TENANT}/discovery/v2.0/keys"),
                "token_endpoint": format!("{base}/{TENANT}/oauth2/v2.0/token"),
            })
            .to_string()
        }
        Endpoint::Jwks => json!({"keys": *state.keys.lock().unwrap()}).to_string(),
        Endpoint::Token => {
            let n = state.tokens_issued.fetch_add(1, Ordering::SeqCst);
            json!({
                "token_type": "Bearer",
                "access_token": format!("eyJ0eXAiOiJKV1QifQ.eyJuIjo{n}fQ.c2lnbmF0dXJl"),
                "expires_in": 3599,
                "ext_expires_in": 3599,
            })
            .to_string()
        }
    }
}

async fn respond(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

fn http_client() -> HttpClient {
    HttpClient::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()
        .unwrap()
}

/// A validator with the short timeout. Built outside a Tokio runtime so that no background
/// refresh runs: every fetch in these tests is one the test (or a request) caused, which keeps
/// the outcome of each step deterministic. Keys are then fetched on first use.
fn validator(authority: &FaultyAuthority, clock: &ManualClock) -> TokenValidator {
    let builder = TokenValidator::builder(Authority::entra(&authority.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(clock.clone()))
        .http_client(http_client());
    std::thread::spawn(move || builder.build())
        .join()
        .unwrap()
        .unwrap()
}

fn claims(authority: &FaultyAuthority) -> Value {
    json!({
        "iss": authority.issuer(),
        "aud": API,
        "tid": TENANT,
        "azp": CLIENT,
        "azpacr": "2",
        "roles": ["service-api"],
        "ver": "2.0",
        "iat": START,
        "nbf": START,
        "exp": START + 3600,
    })
}

async fn guarded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {GUARD:?}"))
}

fn is_timeout(error: &FetchError) -> bool {
    use std::error::Error as _;
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(reqwest) = cause.downcast_ref::<reqwest::Error>() {
            if reqwest.is_timeout() {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    guarded(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_50_mib_metadata_or_jwks_body_is_cut_at_the_1_mib_cap() {
    let key = TestKey::generate("k1");
    let authority = FaultyAuthority::start(&[&key]).await;
    let clock = ManualClock::at_unix(START);
    let validator = validator(&authority, &clock);
    let token = key.token(&claims(&authority));

    // The metadata endpoint streams 50 MiB before any key was fetched: 503, not a hang or OOM.
    authority.set(Endpoint::Metadata, Fault::Huge);
    let error = guarded("validate", validator.validate(&token))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::KeysUnavailable, "{error}");
    assert_eq!(error.status(), 503);
    wait_for("the huge metadata writer to stop", || {
        authority.state.huge_finished.load(Ordering::SeqCst)
    })
    .await;
    let written = authority.state.huge_written.load(Ordering::SeqCst);
    assert!(
        written < HUGE / 2,
        "the client read on past the cap: {written} bytes were sent"
    );
    assert_eq!(
        authority.state.huge_cut.load(Ordering::SeqCst),
        1,
        "the client closed the connection"
    );

    // The fault ends; after the retry interval the next request fetches the keys by itself.
    authority.set(Endpoint::Metadata, Fault::Serve);
    clock.advance(Duration::from_secs(11));
    let claims = guarded("validate", validator.validate(&token)).await;
    assert!(claims.is_ok(), "recovered: {claims:?}");

    // Now the JWKS endpoint streams 50 MiB: the refresh fails with TooLarge, the last known
    // good keys stay.
    authority.state.huge_finished.store(false, Ordering::SeqCst);
    authority.state.huge_written.store(0, Ordering::SeqCst);
    authority.set(Endpoint::Jwks, Fault::Huge);
    let error = guarded("refresh", validator.refresh()).await.unwrap_err();
    assert!(
        matches!(error, FetchError::TooLarge { limit, .. } if limit == 1024 * 1024),
        "{error:?}"
    );
    wait_for("the huge JWKS writer to stop", || {
        authority.state.huge_finished.load(Ordering::SeqCst)
    })
    .await;
    let written = authority.state.huge_written.load(Ordering::SeqCst);
    assert!(written < HUGE / 2, "{written} bytes were sent");
    assert_eq!(authority.state.huge_cut.load(Ordering::SeqCst), 2);
    assert!(validator.validate(&token).await.is_ok(), "last known good");

    authority.set(Endpoint::Jwks, Fault::Serve);
    assert!(guarded("refresh", validator.refresh()).await.is_ok());
}

#[tokio::test]
async fn an_authority_that_never_answers_costs_one_timeout_then_recovers() {
    let key = TestKey::generate("k1");
    let authority = FaultyAuthority::start(&[&key]).await;
    let clock = ManualClock::at_unix(START);
    let validator = validator(&authority, &clock);
    let token = key.token(&claims(&authority));

    struct Case {
        name: &'static str,
        endpoint: Endpoint,
    }
    let cases = [
        Case {
            name: "metadata hangs before any key was fetched",
            endpoint: Endpoint::Metadata,
        },
        Case {
            name: "JWKS hangs before any key was fetched",
            endpoint: Endpoint::Jwks,
        },
    ];
    for case in cases {
        authority.set(case.endpoint, Fault::Hang);
        clock.advance(Duration::from_secs(11));
        let error = guarded(case.name, validator.validate(&token))
            .await
            .unwrap_err();
        assert_eq!(error.status(), 503, "{}: {error}", case.name);
        assert_eq!(
            error.kind(),
            AuthErrorKind::KeysUnavailable,
            "{}",
            case.name
        );
        // The request path is not made to wait again until the retry interval has passed.
        let hits = authority.hits(case.endpoint);
        let error = guarded(case.name, validator.validate(&token))
            .await
            .unwrap_err();
        assert_eq!(error.status(), 503, "{}", case.name);
        assert_eq!(authority.hits(case.endpoint), hits, "{}", case.name);
        authority.set(case.endpoint, Fault::Serve);
    }

    // Recovery, on the request path, once the retry interval has passed.
    clock.advance(Duration::from_secs(11));
    assert!(guarded("validate", validator.validate(&token))
        .await
        .is_ok());

    // With keys held, a hanging JWKS endpoint fails the refresh by timeout; keys stay.
    authority.set(Endpoint::Jwks, Fault::Hang);
    let error = guarded("refresh", validator.refresh()).await.unwrap_err();
    assert!(is_timeout(&error), "{error:?}");
    assert!(validator.validate(&token).await.is_ok(), "last known good");
    authority.set(Endpoint::Jwks, Fault::Serve);
    assert!(guarded("refresh", validator.refresh()).await.is_ok());
}

#[tokio::test]
async fn a_connection_closed_mid_body_keeps_the_last_known_good_keys() {
    let key = TestKey::generate("k1");
    let authority = FaultyAuthority::start(&[&key]).await;
    let clock = ManualClock::at_unix(START);
    let validator = validator(&authority, &clock);
    let token = key.token(&claims(&authority));

    // Before any key: 503.
    authority.set(Endpoint::Jwks, Fault::CloseMidBody);
    let error = guarded("validate", validator.validate(&token))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 503, "{error}");

    authority.set(Endpoint::Jwks, Fault::Serve);
    assert!(guarded("refresh", validator.refresh()).await.is_ok());
    assert!(validator.validate(&token).await.is_ok());

    // With keys: the refresh fails as a transport error, tokens keep passing.
    authority.set(Endpoint::Jwks, Fault::CloseMidBody);
    let error = guarded("refresh", validator.refresh()).await.unwrap_err();
    assert!(matches!(error, FetchError::Transport { .. }), "{error:?}");
    assert!(validator.validate(&token).await.is_ok());
    authority.set(Endpoint::Metadata, Fault::CloseMidBody);
    authority.set(Endpoint::Jwks, Fault::Serve);
    assert!(guarded("refresh", validator.refresh()).await.is_err());
    assert!(validator.validate(&token).await.is_ok());
    authority.set(Endpoint::Metadata, Fault::Serve);
    assert!(guarded("refresh", validator.refresh()).await.is_ok());
}

#[tokio::test]
async fn an_empty_key_set_at_start_gives_503_then_recovers() {
    let key = TestKey::generate("k1");
    let authority = FaultyAuthority::start(&[]).await;
    let clock = ManualClock::at_unix(START);
    let validator = validator(&authority, &clock);
    let token = key.token(&claims(&authority));

    let error = guarded("validate", validator.validate(&token))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::KeysUnavailable, "{error}");
    assert_eq!(error.status(), 503);
    assert!(!validator.has_keys());

    authority.set_keys(&[&key]);
    clock.advance(Duration::from_secs(11));
    assert!(guarded("validate", validator.validate(&token))
        .await
        .is_ok());
}

#[tokio::test]
async fn keys_withdrawn_while_tokens_still_carry_them_are_refused_with_401() {
    let old = TestKey::generate("old");
    let new = TestKey::generate("new");
    let authority = FaultyAuthority::start(&[&old]).await;
    let clock = ManualClock::at_unix(START);
    let validator = validator(&authority, &clock);
    let old_token = old.token(&claims(&authority));
    let new_token = new.token(&claims(&authority));

    // The old token is accepted (and now sits in the verified-token cache).
    assert!(guarded("validate", validator.validate(&old_token))
        .await
        .is_ok());
    assert!(validator.cached_tokens() >= 1);

    // The authority withdraws the old key; a token with the new kid forces the refresh.
    authority.set_keys(&[&new]);
    clock.advance(Duration::from_secs(301));
    assert!(guarded("validate", validator.validate(&new_token))
        .await
        .is_ok());
    let fetches = validator.key_fetches();

    // Tokens that still name the withdrawn key: 401, even though one is cached, and a flood of
    // them causes no fetch inside the 5-minute window.
    for _ in 0..200 {
        let error = guarded("validate", validator.validate(&old_token))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::UnknownSigningKey, "{error}");
        assert_eq!(error.status(), 401);
    }
    assert_eq!(validator.key_fetches(), fetches);

    // The authority puts the old key back (a rolled-back rotation): picked up after the window.
    authority.set_keys(&[&old, &new]);
    clock.advance(Duration::from_secs(301));
    assert!(guarded("validate", validator.validate(&old_token))
        .await
        .is_ok());
    assert!(validator.validate(&new_token).await.is_ok());
}

/// A confidential client (secret credential: the fault server checks nothing) with the short
/// timeout.
fn client(authority: &FaultyAuthority, clock: &ManualClock) -> ConfidentialClient {
    ConfidentialClient::builder(CLIENT)
        .authority(Authority::entra(&authority.instance(), TENANT).unwrap())
        .client_secret("not-a-real-secret")
        .clock(Arc::new(clock.clone()))
        .http_client(http_client())
        .retry_delay(Duration::from_millis(1))
        .build()
        .unwrap()
}

#[tokio::test]
async fn token_endpoint_faults_are_typed_errors_and_recover() {
    let authority = FaultyAuthority::start(&[]).await;
    let clock = ManualClock::at_unix(START);
    let client = client(&authority, &clock);

    struct Case {
        name: &'static str,
        fault: Fault,
        /// Requests the client makes: 2 when the failure is worth one retry.
        requests: usize,
        expected: fn(&TokenError) -> bool,
    }
    let cases = [
        Case {
            name: "malformed JSON with 200",
            fault: Fault::Answer(200, r#"{"token_type":"Bearer","access_token":"#.into()),
            requests: 1,
            expected: |e| matches!(e, TokenError::BadResponse { .. }),
        },
        Case {
            name: "HTML with 200",
            fault: Fault::Answer(200, "<html><body>Sign in</body></html>".into()),
            requests: 1,
            expected: |e| matches!(e, TokenError::BadResponse { .. }),
        },
        Case {
            name: "malformed JSON with 400",
            fault: Fault::Answer(400, r#"{"error":"#.into()),
            requests: 1,
            expected: |e| matches!(e, TokenError::BadResponse { .. }),
        },
        Case {
            name: "connection closed mid-response",
            fault: Fault::CloseMidBody,
            requests: 2,
            expected: |e| matches!(e, TokenError::Transport(FetchError::Transport { .. })),
        },
        Case {
            name: "never answering",
            fault: Fault::Hang,
            requests: 2,
            expected: |e| matches!(e, TokenError::Transport(f) if is_timeout(f)),
        },
        Case {
            name: "50 MiB body",
            fault: Fault::Huge,
            requests: 2,
            expected: |e| matches!(e, TokenError::Transport(FetchError::TooLarge { .. })),
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        // A scope per case, so that the token cached by the previous recovery is not used.
        let scope = format!("api://case-{i}/.default");
        authority.set(Endpoint::Token, case.fault);
        let before = authority.hits(Endpoint::Token);
        let error = guarded(case.name, client.acquire_token_for_client(&[&scope]))
            .await
            .unwrap_err();
        assert!((case.expected)(&error), "{}: {error:?}", case.name);
        assert_eq!(
            authority.hits(Endpoint::Token) - before,
            case.requests,
            "{}",
            case.name
        );
        assert!(
            !error.to_string().contains("not-a-real-secret"),
            "{}",
            case.name
        );

        authority.set(Endpoint::Token, Fault::Serve);
        let token = guarded(case.name, client.acquire_token_for_client(&[&scope])).await;
        assert!(token.is_ok(), "{}: recovered: {token:?}", case.name);
    }
}

#[tokio::test]
async fn a_token_response_without_expires_in_gets_a_short_default_lifetime() {
    let authority = FaultyAuthority::start(&[]).await;
    let clock = ManualClock::at_unix(START);
    let client = client(&authority, &clock);
    authority.set(
        Endpoint::Token,
        Fault::Answer(
            200,
            r#"{"token_type":"Bearer","access_token":"eyJ0eXAiOiJKV1QifQ.e30.c2ln"}"#.into(),
        ),
    );
    let token = guarded(
        "acquire",
        client.acquire_token_for_client(&["api://x/.default"]),
    )
    .await
    .unwrap();
    let start = std::time::UNIX_EPOCH + Duration::from_secs(START);
    assert_eq!(token.expires_on(), start + Duration::from_secs(600));
    assert!(token.refresh_on() <= token.expires_on());

    // Served from the cache while more than 5 minutes are left, then requested again: a token
    // without a lifetime is never kept as if it lasted forever.
    let hits = authority.hits(Endpoint::Token);
    assert!(client
        .acquire_token_for_client(&["api://x/.default"])
        .await
        .is_ok());
    assert_eq!(authority.hits(Endpoint::Token), hits);
    clock.advance(Duration::from_secs(301));
    authority.set(Endpoint::Token, Fault::Serve);
    let fresh = guarded(
        "acquire",
        client.acquire_token_for_client(&["api://x/.default"]),
    )
    .await
    .unwrap();
    assert!(authority.hits(Endpoint::Token) > hits);
    assert!(fresh.expires_on() > token.expires_on());
}
