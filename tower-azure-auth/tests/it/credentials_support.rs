//! Shared by `credentials` and `outbound`: generated keys and certificates,
//! PKCS#12 building, and a small token endpoint (axum on 127.0.0.1:0) that verifies client
//! assertions with `jsonwebtoken` and counts requests.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    missing_debug_implementations,
    clippy::must_use_candidate
)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::signature::KeyPair as _;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tower_azure_auth::clock::{Clock, ManualClock};

/// A generated RSA key with a self-signed certificate.
#[derive(Clone)]
pub struct TestCert {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pkcs8_der: Vec<u8>,
    pub key_pkcs8_pem: String,
    /// `RSAPublicKey` DER, for `DecodingKey::from_rsa_der`.
    pub public_pkcs1_der: Vec<u8>,
}

impl TestCert {
    /// Certificate + PKCS#8 key in one PEM text.
    pub fn combined_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pkcs8_pem)
    }

    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_rsa_der(&self.public_pkcs1_der)
    }
}

/// RSA 2048 (aws-lc-rs) + rcgen certificate valid from `not_before` to `not_after` (years).
pub fn rsa_cert_valid(cn: &str, not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> TestCert {
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8: Pkcs8V1Der<'_> = key.as_der().unwrap();
    let rc_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let mut params = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = params.self_signed(&rc_key).unwrap();
    TestCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pkcs8_der: pkcs8.as_ref().to_vec(),
        key_pkcs8_pem: rc_key.serialize_pem(),
        public_pkcs1_der: key.public_key().as_ref().to_vec(),
    }
}

/// Valid 2020–2100.
pub fn rsa_cert(cn: &str) -> TestCert {
    rsa_cert_valid(cn, (2020, 1, 1), (2100, 1, 1))
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (a minimal DER walk).
pub fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    fn header(data: &[u8]) -> (u8, usize, usize) {
        let tag = data[0];
        let first = data[1] as usize;
        if first < 0x80 {
            (tag, 2, first)
        } else {
            let n = first & 0x7f;
            let len = data[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (tag, 2 + n, len)
        }
    }
    let (_, hl, _) = header(pkcs8); // SEQUENCE
    let mut rest = &pkcs8[hl..];
    for _ in 0..2 {
        // INTEGER version, AlgorithmIdentifier
        let (_, h, l) = header(rest);
        rest = &rest[h + l..];
    }
    let (tag, h, l) = header(rest);
    assert_eq!(tag, 0x04, "OCTET STRING");
    rest[h..h + l].to_vec()
}

pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A PKCS#12 written by p12-keystore. `key_of` lets a test put a foreign key next to the cert.
pub fn pkcs12(
    cert_der: &[u8],
    key_pkcs8: Option<&[u8]>,
    password: &str,
    algorithm: p12_keystore::EncryptionAlgorithm,
) -> Vec<u8> {
    let mut store = p12_keystore::KeyStore::new();
    let cert = p12_keystore::Certificate::from_der(cert_der).unwrap();
    match key_pkcs8 {
        Some(key) => {
            let key = p12_keystore::PrivateKey::from_der(key).unwrap();
            let chain = p12_keystore::PrivateKeyChain::new(b"key-1".to_vec(), key, [cert]);
            store.add_entry(
                "client",
                p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
            );
        }
        None => store.add_entry("client", p12_keystore::KeyStoreEntry::Certificate(cert)),
    }
    store
        .writer(password)
        .encryption_algorithm(algorithm)
        .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
        .write()
        .unwrap()
}

/// What the token endpoint answers next.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A token (the default when the script is empty).
    Token {
        expires_in: Value,
        refresh_in: Option<u64>,
    },
    /// A status with a JSON body and optional `Retry-After`.
    Status {
        status: u16,
        body: Value,
        retry_after: Option<&'static str>,
    },
}

/// The test token endpoint.
pub struct TokenServer {
    pub addr: SocketAddr,
    pub state: Arc<ServerState>,
}

pub struct ServerState {
    pub requests: AtomicUsize,
    pub issued: AtomicUsize,
    /// Certificates accepted, by `x5t#S256` or `x5t`.
    pub accepted: Mutex<Vec<TestCert>>,
    pub client_id: String,
    pub expected_alg: Mutex<Algorithm>,
    /// The token endpoint URL the assertion's `aud` must equal.
    pub endpoint: Mutex<String>,
    pub script: Mutex<VecDeque<Reply>>,
    pub jtis: Mutex<HashSet<String>>,
    /// Requests wait for a permit when `gate` is on.
    pub gate_on: std::sync::atomic::AtomicBool,
    pub gate: Semaphore,
    pub clock: ManualClock,
    /// The last form received.
    pub last_form: Mutex<HashMap<String, String>>,
    pub last_capability: Mutex<Option<String>>,
    pub secret: Mutex<Option<String>>,
    /// Problems found in requests (a test asserts this is empty).
    pub problems: Mutex<Vec<String>>,
}

impl TokenServer {
    /// Serves `/{tenant}/oauth2/v2.0/token` and (for OIDC tests) `/oidc/.well-known/openid-configuration`
    /// + `/oidc/token`.
    pub async fn start(client_id: &str, cert: Option<TestCert>, clock: ManualClock) -> Self {
        let state = Arc::new(ServerState {
            requests: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
            accepted: Mutex::new(cert.into_iter().collect()),
            client_id: client_id.to_owned(),
            expected_alg: Mutex::new(Algorithm::PS256),
            endpoint: Mutex::new(String::new()),
            script: Mutex::new(VecDeque::new()),
            jtis: Mutex::new(HashSet::new()),
            gate_on: std::sync::atomic::AtomicBool::new(false),
            gate: Semaphore::new(0),
            clock,
            last_form: Mutex::new(HashMap::new()),
            last_capability: Mutex::new(None),
            secret: Mutex::new(None),
            problems: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *state.endpoint.lock().unwrap() = format!("http://{addr}/tenant-1/oauth2/v2.0/token");
        let app = Router::new()
            .route("/tenant-1/oauth2/v2.0/token", post(token))
            .route("/oidc/token", post(token))
            .route(
                "/oidc/.well-known/openid-configuration",
                get(move || async move {
                    Json(json!({
                        "issuer": format!("http://{addr}/oidc"),
                        "jwks_uri": format!("http://{addr}/oidc/keys"),
                        "token_endpoint": format!("http://{addr}/oidc/token"),
                    }))
                }),
            )
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn instance(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn push(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    pub fn problems(&self) -> Vec<String> {
        self.state.problems.lock().unwrap().clone()
    }
}

fn problem(state: &ServerState, text: String) -> Response {
    let body = Json(
        json!({"error": "invalid_client", "error_description": format!("AADSTS700027: {text}"), "error_codes": [700027]}),
    );
    state.problems.lock().unwrap().push(text);
    (StatusCode::UNAUTHORIZED, body).into_response()
}

/// Verifies the client authentication and answers from the script.
async fn token(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    *state.last_form.lock().unwrap() = form.clone();
    *state.last_capability.lock().unwrap() = headers
        .get("x-ms-lib-capability")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if state.gate_on.load(Ordering::SeqCst) {
        state.gate.acquire().await.unwrap().forget();
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return problem(&state, "grant_type is not client_credentials".into());
    }
    if form.get("client_id") != Some(&state.client_id) {
        return problem(&state, "wrong client_id".into());
    }
    if let Some(secret) = form.get("client_secret") {
        if Some(secret) != state.secret.lock().unwrap().as_ref() {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": [7000215]})),
            )
                .into_response();
        }
    } else {
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return problem(&state, "wrong client_assertion_type".into());
        }
        let Some(assertion) = form.get("client_assertion") else {
            return problem(&state, "no client_assertion".into());
        };
        if let Err(e) = verify_assertion(&state, assertion) {
            // Not a request problem when the certificate is merely unknown (rotation tests).
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid_client", "error_description": format!("AADSTS700027: {e}"), "error_codes": [700027]})),
            )
                .into_response();
        }
    }
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Token {
            expires_in: json!(3600),
            refresh_in: None,
        });
    match reply {
        Reply::Token {
            expires_in,
            refresh_in,
        } => {
            let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body = json!({
                "token_type": "Bearer",
                "access_token": format!("token-{n}"),
                "expires_in": expires_in,
                "ext_expires_in": 3600,
            });
            if let Some(refresh_in) = refresh_in {
                body["refresh_in"] = json!(refresh_in);
            }
            Json(body).into_response()
        }
        Reply::Status {
            status,
            body,
            retry_after,
        } => {
            let mut response = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_static(value));
            }
            response
        }
    }
}

fn verify_assertion(state: &ServerState, assertion: &str) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| format!("header: {e}"))?;
    let alg = *state.expected_alg.lock().unwrap();
    if header.alg != alg {
        return Err(format!("alg {:?}, expected {alg:?}", header.alg));
    }
    let accepted = state.accepted.lock().unwrap().clone();
    let cert = accepted
        .iter()
        .find(|c| {
            let t = tower_azure_auth::credentials::thumbprints(&c.cert_der).unwrap();
            match alg {
                Algorithm::PS256 => header.x5t_s256.as_deref() == Some(t.x5t_s256().as_str()),
                _ => header.x5t.as_deref() == Some(t.x5t().as_str()),
            }
        })
        .ok_or("no registered certificate has this thumbprint")?;
    let endpoint = state.endpoint.lock().unwrap().clone();
    let mut validation = Validation::new(alg);
    validation.set_audience(&[endpoint.as_str()]);
    validation.set_issuer(&[state.client_id.as_str()]);
    validation.sub = Some(state.client_id.clone());
    validation.validate_exp = false; // checked below against the test clock
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let data = jsonwebtoken::decode::<Value>(assertion, &cert.decoding_key(), &validation)
        .map_err(|e| format!("signature or claims: {e}"))?;
    let claims = data.claims;
    let now = state.clock.unix_seconds();
    let nbf = claims["nbf"].as_u64().ok_or("nbf is not an integer")?;
    let exp = claims["exp"].as_u64().ok_or("exp is not an integer")?;
    let iat = claims["iat"].as_u64().ok_or("iat is not an integer")?;
    if nbf > now + 300 || exp + 300 < now || exp - nbf != 600 || iat != nbf {
        return Err(format!("lifetime: nbf {nbf} iat {iat} exp {exp} now {now}"));
    }
    let jti = claims["jti"].as_str().ok_or("no jti")?;
    uuid_like(jti)?;
    if !state.jtis.lock().unwrap().insert(jti.to_owned()) {
        return Err("jti replayed".into());
    }
    Ok(())
}

fn uuid_like(jti: &str) -> Result<(), String> {
    let ok = jti.len() == 36
        && jti.chars().filter(|c| *c == '-').count() == 4
        && jti.as_bytes()[14] == b'4';
    ok.then_some(())
        .ok_or_else(|| format!("jti `{jti}` is not a UUID v4"))
}
