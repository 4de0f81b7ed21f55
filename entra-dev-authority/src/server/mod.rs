//! HTTP: the axum router over [`State`], the Entra endpoints (metadata, keys, token), and
//! the TLS listener. The Key Vault and managed identity endpoints are the submodules; all
//! of them answer through [`respond`].

mod key_vault;
mod managed_identity;
mod respond;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State as Extract};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use http::{HeaderMap, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use self::respond::{enter, error_response, json_response, LOG_TARGET};
use crate::entra_error::EntraError;
use crate::options::Endpoint;
use crate::state::{State, TenantPath};

/// The largest token request body accepted, in bytes.
pub(crate) const MAX_BODY: usize = 64 * 1024;

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
        .route("/vault/secrets/{name}", get(key_vault::get_latest_secret))
        .route("/vault/secrets/{name}/", get(key_vault::get_latest_secret))
        .route("/vault/keys/{name}/{version}/sign", post(key_vault::sign))
        .with_state(state)
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
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return error_response(&state, &EntraError::too_large(MAX_BODY), &headers);
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // RSA verification and signing take about a millisecond: done inline.
    match state.token(
        &tenant,
        v1,
        &params,
        basic_credentials(&headers)
            .as_ref()
            .map(|(id, secret)| (id.as_str(), secret.as_str())),
    ) {
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
