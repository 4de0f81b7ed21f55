//! HTTP: the axum router over [`State`], and the TLS listener.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State as Extract};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::entra_error::EntraError;
use super::state::{State, TenantPath};
use super::Endpoint;
use super::{key_vault, managed_identity};

/// The largest token request body accepted, in bytes.
pub(crate) const MAX_BODY: usize = 64 * 1024;

const LOG_TARGET: &str = "tower_azure_auth::testing";

type Shared = Arc<State>;

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(metadata_v2),
        )
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(metadata_v1),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(jwks_v2))
        .route("/{tenant}/discovery/keys", get(jwks_v1))
        .route("/{tenant}/oauth2/v2.0/token", post(token_v2))
        .route("/{tenant}/oauth2/token", post(token_v1))
        .route(
            "/metadata/identity/oauth2/token",
            get(managed_identity::imds),
        )
        .route("/msi/token", get(managed_identity::app_service))
        .route(
            "/vault/certificates/{name}",
            get(key_vault::get_certificate),
        )
        .route(
            "/vault/secrets/{name}/{version}",
            get(key_vault::get_secret),
        )
        .with_state(state)
}

pub(crate) fn json_response(status: StatusCode, body: &Value, cache: &'static str) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
        .hyphenated()
        .to_string()
}

fn error_response(state: &State, error: &EntraError, headers: &HeaderMap) -> Response {
    let body = error.body(
        u64::try_from(state.now()).unwrap_or(0),
        &correlation_id(headers),
    );
    json_response(error.status, &body, "no-store, no-cache")
}

/// Counts the request and applies an injected fault (delay, then failure) if one is due.
pub(crate) async fn enter(
    state: &State,
    endpoint: Endpoint,
    headers: &HeaderMap,
) -> Option<Response> {
    let fault = state.enter(endpoint)?;
    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    let status = fault.status?;
    tracing::debug!(target: LOG_TARGET, ?endpoint, %status, "injected fault");
    let mut response = error_response(state, &EntraError::injected(status), headers);
    if let Some(seconds) = fault.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    Some(response)
}

async fn metadata(state: Shared, tenant: String, headers: HeaderMap, v2: bool) -> Response {
    if let Some(fault) = enter(&state, Endpoint::Metadata, &headers).await {
        return fault;
    }
    match state.tenant_path(&tenant) {
        Ok(path) => json_response(
            StatusCode::OK,
            &state.metadata(path, v2),
            "max-age=86400, private",
        ),
        Err(error) => error_response(&state, &error, &headers),
    }
}

async fn metadata_v2(
    Extract(state): Extract<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    metadata(state, tenant, headers, true).await
}

async fn metadata_v1(
    Extract(state): Extract<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    metadata(state, tenant, headers, false).await
}

async fn jwks(state: Shared, tenant: String, headers: HeaderMap, v2: bool) -> Response {
    if let Some(fault) = enter(&state, Endpoint::Jwks, &headers).await {
        return fault;
    }
    match state.tenant_path(&tenant) {
        Ok(TenantPath::Registered | TenantPath::Multi(_)) => {
            json_response(StatusCode::OK, &state.jwks(v2), "max-age=86400, private")
        }
        Err(error) => error_response(&state, &error, &headers),
    }
}

async fn jwks_v2(
    Extract(state): Extract<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    jwks(state, tenant, headers, true).await
}

async fn jwks_v1(
    Extract(state): Extract<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    jwks(state, tenant, headers, false).await
}

/// `Authorization: Basic base64(urlencode(client_id):urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

async fn token(
    state: Shared,
    tenant: String,
    headers: HeaderMap,
    body: Body,
    v1: bool,
) -> Response {
    if let Some(fault) = enter(&state, Endpoint::Token, &headers).await {
        return fault;
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) {
        return error_response(&state, &EntraError::too_large(MAX_BODY), &headers);
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return error_response(&state, &EntraError::too_large(MAX_BODY), &headers),
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // RSA verification and signing take about a millisecond: done inline.
    match state.token(&tenant, v1, &params, basic_credentials(&headers)) {
        Ok(body) => {
            tracing::debug!(target: LOG_TARGET, "token issued");
            json_response(StatusCode::OK, &body, "no-store, no-cache")
        }
        Err(error) => {
            tracing::debug!(
                target: LOG_TARGET,
                code = error.code,
                error = error.error,
                "token request refused: {}",
                error.message
            );
            error_response(&state, &error, &headers)
        }
    }
}

async fn token_v2(
    Extract(state): Extract<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    token(state, tenant, headers, body, false).await
}

async fn token_v1(
    Extract(state): Extract<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    token(state, tenant, headers, body, true).await
}

/// A listener that completes TLS handshakes off the accept path: a slow or broken client
/// cannot hold up the others.
pub(crate) struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor_task: JoinHandle<()>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish()
    }
}

impl TlsListener {
    pub(crate) fn new(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        let acceptor_task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(target: LOG_TARGET, %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(target: LOG_TARGET, %error, %peer, "TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(target: LOG_TARGET, %peer, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(Self {
            accepted,
            local,
            acceptor_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The acceptor is gone (only when shutting down): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
