//! Test support: RSA keys generated in the test, tokens signed by hand (so hostile headers can
//! be built), and an OpenID Connect metadata + JWKS server on 127.0.0.1 that can be taken down,
//! made to lie, and counts what it serves.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    missing_debug_implementations
)]

pub mod fixtures;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An RSA signing key generated for the test.
pub struct TestKey {
    pub kid: String,
    pair: KeyPair,
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            pair: KeyPair::generate(KeySize::Rsa2048).expect("generate RSA key"),
        }
    }

    pub fn jwk(&self) -> Value {
        use aws_lc_rs::signature::KeyPair as _;
        let public = self.pair.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// The public key as PKCS#1 DER (what an HS256 confusion attack uses as the secret).
    pub fn public_der(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair as _;
        self.pair.public_key().as_ref().to_vec()
    }

    /// Signs `header.claims` with RS256 (or PS256 when the header says so).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; self.pair.public_modulus_len()];
        let padding = if header["alg"] == "PS256" {
            &RSA_PSS_SHA256
        } else {
            &RSA_PKCS1_SHA256
        };
        self.pair
            .sign(
                padding,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .expect("sign");
        format!("{message}.{}", b64(&signature))
    }

    /// An RS256 token with this key's kid and `payload` as its claims, byte for byte (to
    /// send escapes, repeated members or invalid JSON).
    pub fn token_with_payload(&self, payload: impl AsRef<[u8]>) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.as_ref())
        );
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .expect("sign");
        format!("{message}.{}", b64(&signature))
    }

    /// A standard RS256 token with this key's kid.
    pub fn token(&self, claims: &Value) -> String {
        self.sign(
            &json!({"typ": "JWT", "alg": "RS256", "kid": self.kid}),
            claims,
        )
    }
}

#[derive(Default)]
struct IdpState {
    tenant: String,
    base: Mutex<String>,
    keys: Mutex<Vec<Value>>,
    down: AtomicBool,
    lie: Mutex<Option<(StatusCode, String)>>,
    metadata_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
}

/// An OIDC metadata + JWKS server shaped like Entra ID (`/{tenant}/v2.0/...`).
#[derive(Clone)]
pub struct TestIdp {
    pub addr: SocketAddr,
    state: Arc<IdpState>,
}

impl TestIdp {
    pub async fn start(tenant: &str, keys: &[&TestKey]) -> Self {
        let state = Arc::new(IdpState {
            tenant: tenant.to_owned(),
            keys: Mutex::new(keys.iter().map(|k| k.jwk()).collect()),
            ..IdpState::default()
        });
        let app = Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(metadata_v2),
            )
            .route(
                "/{tenant}/.well-known/openid-configuration",
                get(metadata_v1),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *state.base.lock().unwrap() = format!("http://{addr}");
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn instance(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn issuer_v2(&self) -> String {
        format!("http://{}/{}/v2.0", self.addr, self.state.tenant)
    }

    pub fn issuer_v1(&self) -> String {
        format!("http://{}/{}/", self.addr, self.state.tenant)
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Makes the JWKS endpoint answer this status and body instead of the keys.
    pub fn lie(&self, answer: Option<(StatusCode, String)>) {
        *self.state.lie.lock().unwrap() = answer;
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn metadata_hits(&self) -> usize {
        self.state.metadata_hits.load(Ordering::SeqCst)
    }
}

fn template(state: &IdpState, tenant: &str, v1: bool) -> String {
    let base = state.base.lock().unwrap().clone();
    let shown = if tenant == "common" || tenant == "organizations" {
        "{tenantid}"
    } else {
        tenant
    };
    if v1 {
        format!("{base}/{shown}/")
    } else {
        format!("{base}/{shown}/v2.0")
    }
}

async fn metadata(state: &IdpState, tenant: &str, v1: bool) -> Response {
    state.metadata_hits.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let base = state.base.lock().unwrap().clone();
    Json(json!({
        "issuer": template(state, tenant, v1),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn metadata_v2(State(state): State<Arc<IdpState>>, Path(tenant): Path<String>) -> Response {
    metadata(&state, &tenant, false).await
}

async fn metadata_v1(State(state): State<Arc<IdpState>>, Path(tenant): Path<String>) -> Response {
    metadata(&state, &tenant, true).await
}

async fn jwks(State(state): State<Arc<IdpState>>) -> Response {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if let Some((status, body)) = state.lie.lock().unwrap().clone() {
        return (status, body).into_response();
    }
    let keys = state.keys.lock().unwrap().clone();
    Json(json!({ "keys": keys })).into_response()
}

/// A server that only counts the requests it gets (the target of a `jku` header).
pub struct CountingServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl CountingServer {
    pub async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Json(json!({"keys": []}))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Serves `app` on 127.0.0.1:0 and returns its base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

pub fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}
