//! The Key Vault endpoints: `GET {base}/vault/certificates/{name}` and
//! `GET {base}/vault/secrets/{name}[/{version}]` (no version: the latest), `POST {base}/vault/keys/{name}/{version}/sign`
//! (api-version required), with Key Vault's
//! shapes (`CertificateBundle`, `SecretBundle`, `{"error":{"code","message"}}`). Bearer
//! tokens must be signed by this authority, unexpired, for `https://vault.azure.net`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State as Extract};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};
use tower_azure_auth::claims::TokenVersion;

use super::respond::{enter, json_response, LOG_TARGET};
use crate::key_vault::{Exportable, VAULT_APP_ID, VAULT_RESOURCE};
use crate::keys::thumbprint_sha1;
use crate::options::Endpoint;
use crate::state::State;

type Refusal = (StatusCode, Value, Option<String>);

fn kv_error(status: StatusCode, code: &str, message: &str) -> Refusal {
    (
        status,
        json!({"error": {"code": code, "message": message}}),
        None,
    )
}

/// Checks `api-version` and the bearer token; returns the caller's client id.
fn authorize(
    state: &State,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(String, String), Refusal> {
    if !query.contains_key("api-version") {
        return Err(kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI contains an invalid or missing api-version",
        ));
    }
    let challenge = format!(
        "Bearer authorization=\"{}/{}\", resource=\"{VAULT_RESOURCE}\"",
        state.base, state.registry.tenant_id
    );
    let unauthorized = |message: &str| {
        let (status, body, _) = kv_error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
        (status, body, Some(challenge.clone()))
    };
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or_else(|| unauthorized("AKV10000: Request is missing a Bearer or PoP token."))?;
    let claims = state
        .verify_own_token(token)
        .ok_or_else(|| unauthorized("AKV10032: Invalid issuer or signature."))?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss != state.issuer(TokenVersion::V1) && iss != state.issuer(TokenVersion::V2) {
        return Err(unauthorized("AKV10032: Invalid issuer."));
    }
    let aud = claims
        .get("aud")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if aud.trim_end_matches('/') != VAULT_RESOURCE && aud != VAULT_APP_ID {
        return Err(unauthorized(&format!(
            "AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {aud}."
        )));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= state.now() {
        return Err(unauthorized("AKV10012: Token has expired."));
    }
    let caller = claims
        .get("appid")
        .or_else(|| claims.get("azp"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let oid = claims
        .get("oid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if state.vault.lock().denied.contains(&caller) {
        let (status, body, _) = kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("The user, group or application 'appid={caller};oid={oid}' does not have secrets get permission on key vault 'dev-vault'."),
        );
        let mut body = body;
        if let Some(error) = body.get_mut("error").and_then(Value::as_object_mut) {
            error.insert("innererror".into(), json!({"code": "AccessDenied"}));
        }
        return Err((status, body, None));
    }
    Ok((caller, oid.to_owned()))
}

fn certificate_bundle(state: &State, name: &str) -> Result<Value, Refusal> {
    let inner = state.vault.lock();
    let Some((stored_name, versions)) = inner.certificates.get(&name.to_ascii_lowercase()) else {
        return Err(kv_error(
            StatusCode::NOT_FOUND,
            "CertificateNotFound",
            &format!("A certificate with (name/id) {name} was not found in this key vault. If you recently deleted this certificate you may be able to recover it using the correct recovery command."),
        ));
    };
    let Some(latest) = versions.last() else {
        return Err(kv_error(
            StatusCode::NOT_FOUND,
            "CertificateNotFound",
            "no version",
        ));
    };
    let vault = format!("{}/vault", state.base);
    Ok(json!({
        "id": format!("{vault}/certificates/{stored_name}/{}", latest.id),
        "kid": format!("{vault}/keys/{stored_name}/{}", latest.id),
        "sid": format!("{vault}/secrets/{stored_name}/{}", latest.id),
        "x5t": thumbprint_sha1(&latest.cert_der),
        "cer": STANDARD.encode(&latest.cert_der),
        "attributes": {
            "enabled": true,
            "nbf": latest.nbf,
            "exp": latest.exp,
            "created": latest.created,
            "updated": latest.created,
            "recoveryLevel": "Recoverable+Purgeable",
        },
        "policy": {
            "id": format!("{vault}/certificates/{stored_name}/policy"),
            "key_props": {"exportable": latest.exportable == Exportable::Yes, "kty": "RSA", "key_size": 2048, "reuse_key": false},
            "secret_props": {"contentType": latest.content_type.as_str()},
            "x509_props": {"validity_months": 12},
            "issuer": {"name": "Self"},
        },
    }))
}

fn secret_bundle(state: &State, name: &str, version: &str) -> Result<Value, Refusal> {
    let inner = state.vault.lock();
    let found =
        inner
            .certificates
            .get(&name.to_ascii_lowercase())
            .and_then(|(stored, versions)| {
                // No version: the latest, as `GET secrets/{name}` (and the SDKs' `{name}/`).
                if version.is_empty() {
                    versions.last()
                } else {
                    versions.iter().find(|v| v.id.eq_ignore_ascii_case(version))
                }
                .map(|v| (stored, v))
            });
    let Some((stored_name, v)) = found else {
        return Err(kv_error(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            &format!("A secret with (name/id) {name}/{version} was not found in this key vault."),
        ));
    };
    let vault = format!("{}/vault", state.base);
    Ok(json!({
        "value": v.value,
        "contentType": v.content_type.as_str(),
        "id": format!("{vault}/secrets/{stored_name}/{}", v.id),
        "kid": format!("{vault}/keys/{stored_name}/{}", v.id),
        "managed": true,
        "attributes": {
            "enabled": true,
            "nbf": v.nbf,
            "exp": v.exp,
            "created": v.created,
            "updated": v.created,
            "recoveryLevel": "Recoverable+Purgeable",
        },
    }))
}

fn respond(result: Result<Value, Refusal>) -> Response {
    match result {
        Ok(body) => json_response(StatusCode::OK, &body, "no-cache"),
        Err((status, body, challenge)) => {
            tracing::debug!(target: LOG_TARGET, %status, "key vault request refused");
            let mut response = json_response(status, &body, "no-cache");
            if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(WWW_AUTHENTICATE, value);
            }
            response
        }
    }
}

pub(crate) async fn get_certificate(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(fault) = enter(&state, Endpoint::KeyVault, &headers).await {
        return fault;
    }
    respond(authorize(&state, &query, &headers).and_then(|_| certificate_bundle(&state, &name)))
}

pub(crate) async fn get_secret(
    Extract(state): Extract<Arc<State>>,
    Path((name, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(fault) = enter(&state, Endpoint::KeyVault, &headers).await {
        return fault;
    }
    respond(
        authorize(&state, &query, &headers).and_then(|_| secret_bundle(&state, &name, &version)),
    )
}

/// `GET secrets/{name}` and `GET secrets/{name}/`: the latest version.
pub(crate) async fn get_latest_secret(
    state: Extract<Arc<State>>,
    Path(name): Path<String>,
    query: Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    get_secret(state, Path((name, String::new())), query, headers).await
}

/// `KeySignParameters`: `{"alg": "PS256", "value": "<base64url digest>"}`.
#[derive(serde::Deserialize)]
struct SignParameters {
    alg: Option<String>,
    value: Option<String>,
}

fn sign_with_key(
    state: &State,
    caller: &str,
    oid: &str,
    name: &str,
    version: &str,
    body: &[u8],
) -> Result<Value, Refusal> {
    let bad = |message: &str| kv_error(StatusCode::BAD_REQUEST, "BadParameter", message);
    let parameters: SignParameters = serde_json::from_slice(body)
        .map_err(|_| bad("The request body is not a valid KeySignParameters object."))?;
    let alg = parameters
        .alg
        .ok_or_else(|| bad("The parameter 'alg' is required."))?;
    let value = parameters
        .value
        .ok_or_else(|| bad("The parameter 'value' is required."))?;
    type Encoding = &'static dyn aws_lc_rs::signature::RsaEncoding;
    let (encoding, digest_algorithm): (Encoding, &'static aws_lc_rs::digest::Algorithm) =
        match alg.as_str() {
            "RS256" => (
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::digest::SHA256,
            ),
            "RS384" => (
                &aws_lc_rs::signature::RSA_PKCS1_SHA384,
                &aws_lc_rs::digest::SHA384,
            ),
            "RS512" => (
                &aws_lc_rs::signature::RSA_PKCS1_SHA512,
                &aws_lc_rs::digest::SHA512,
            ),
            "PS256" => (
                &aws_lc_rs::signature::RSA_PSS_SHA256,
                &aws_lc_rs::digest::SHA256,
            ),
            "PS384" => (
                &aws_lc_rs::signature::RSA_PSS_SHA384,
                &aws_lc_rs::digest::SHA384,
            ),
            "PS512" => (
                &aws_lc_rs::signature::RSA_PSS_SHA512,
                &aws_lc_rs::digest::SHA512,
            ),
            _ => return Err(bad(&format!("Invalid algorithm '{alg}' for an RSA key."))),
        };
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| bad("The parameter 'value' is not base64url."))?;
    if digest.len() != digest_algorithm.output_len() {
        return Err(bad(&format!(
            "Invalid digest length {} for {alg}: the value must be the {}-byte hash of the message.",
            digest.len(),
            digest_algorithm.output_len()
        )));
    }
    let mut inner = state.vault.lock();
    if inner.sign_denied.contains(caller) {
        let (status, mut body, _) = kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("The user, group or application 'appid={caller};oid={oid}' does not have keys sign permission on key vault 'dev-vault'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"),
        );
        if let Some(error) = body.get_mut("error").and_then(Value::as_object_mut) {
            error.insert("innererror".into(), json!({"code": "ForbiddenByPolicy"}));
        }
        return Err((status, body, None));
    }
    let found = inner
        .certificates
        .get_mut(&name.to_ascii_lowercase())
        .and_then(|(stored, versions)| {
            let stored = stored.clone();
            versions
                .iter_mut()
                .find(|v| v.id.eq_ignore_ascii_case(version))
                .map(|v| (stored, v))
        });
    let Some((stored_name, key)) = found else {
        return Err(kv_error(
            StatusCode::NOT_FOUND,
            "KeyNotFound",
            &format!("A key with (name/id) {name}/{version} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command."),
        ));
    };
    if !key.key_enabled {
        let (status, mut body, _) = kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation sign is not allowed on a disabled key.",
        );
        if let Some(error) = body.get_mut("error").and_then(Value::as_object_mut) {
            error.insert("innererror".into(), json!({"code": "KeyDisabled"}));
        }
        return Err((status, body, None));
    }
    let internal = || {
        kv_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "The key cannot sign.",
        )
    };
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&key.key_der).map_err(|_| internal())?;
    let digest = aws_lc_rs::digest::Digest::import_less_safe(&digest, digest_algorithm)
        .map_err(|_| internal())?;
    let mut signature = vec![0u8; pair.public_modulus_len()];
    pair.sign_digest(encoding, &digest, &mut signature)
        .map_err(|_| internal())?;
    key.signatures += 1;
    Ok(json!({
        "kid": format!("{}/vault/keys/{stored_name}/{}", state.base, key.id),
        "value": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature),
    }))
}

pub(crate) async fn sign(
    Extract(state): Extract<Arc<State>>,
    Path((name, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(fault) = enter(&state, Endpoint::KeyVault, &headers).await {
        return fault;
    }
    respond(
        authorize(&state, &query, &headers)
            .and_then(|(caller, oid)| sign_with_key(&state, &caller, &oid, &name, &version, &body)),
    )
}
