//! The dev authority's Key Vault: `GET {base}/vault/certificates/{name}` and
//! `GET {base}/vault/secrets/{name}/{version}` (api-version required), with Key Vault's
//! shapes (`CertificateBundle`, `SecretBundle`, `{"error":{"code","message"}}`). Bearer
//! tokens must be signed by this authority, unexpired, for `https://vault.azure.net`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, Query, State as Extract};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::keys::{thumbprint_sha1, GeneratedCertificate};
use super::server::{enter, json_response};
use super::state::State;
use super::Endpoint;
use crate::claims::TokenVersion;
use crate::error::ConfigError;

/// The resource (v1 `aud`) of Key Vault tokens.
pub(crate) const VAULT_RESOURCE: &str = "https://vault.azure.net";

/// Azure Key Vault's application id (the v2 `aud` of its tokens).
pub(crate) const VAULT_APP_ID: &str = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093";

/// How the vault holds a certificate's secret (its `contentType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentType {
    /// `application/x-pkcs12`: base64 PKCS#12 without a password.
    Pkcs12,
    /// `application/x-pem-file`: the private key and the certificate as PEM.
    Pem,
}

impl ContentType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pkcs12 => "application/x-pkcs12",
            Self::Pem => "application/x-pem-file",
        }
    }
}

/// A Key Vault for [`DevAuthorityBuilder::key_vault`](super::DevAuthorityBuilder::key_vault):
/// certificates with their private keys, and callers refused with 403.
///
/// ```
/// use tower_azure_auth::testing::{generate_certificate, ContentType, DevKeyVault};
///
/// let certificate = generate_certificate("CN=weather-client")?;
/// let vault = DevKeyVault::new()
///     .certificate("ServiceApiCert", &certificate, ContentType::Pkcs12)
///     .deny("5a9f0c1e-0000-4000-8000-000000000009");
/// assert!(!format!("{vault:?}").contains("PRIVATE KEY"));
/// # Ok::<(), tower_azure_auth::ConfigError>(())
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct DevKeyVault {
    certificates: Vec<(String, GeneratedCertificate, ContentType)>,
    denied: Vec<String>,
}

impl fmt::Debug for DevKeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKeyVault")
            .field(
                "certificates",
                &self
                    .certificates
                    .iter()
                    .map(|(name, _, t)| (name, t))
                    .collect::<Vec<_>>(),
            )
            .field("denied", &self.denied)
            .finish()
    }
}

impl DevKeyVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a certificate with its private key under `name`.
    pub fn certificate(
        mut self,
        name: impl Into<String>,
        certificate: &GeneratedCertificate,
        content_type: ContentType,
    ) -> Self {
        self.certificates
            .push((name.into(), certificate.clone(), content_type));
        self
    }

    /// Refuses (403) tokens whose `appid`/`azp` is this client id.
    pub fn deny(mut self, client_id: impl Into<String>) -> Self {
        self.denied.push(client_id.into());
        self
    }
}

struct Version {
    id: String,
    cert_der: Vec<u8>,
    value: String,
    content_type: ContentType,
    nbf: i64,
    exp: i64,
    created: i64,
}

#[derive(Default)]
struct Inner {
    /// Lower-case name → (name as stored, versions oldest first).
    certificates: HashMap<String, (String, Vec<Version>)>,
    denied: HashSet<String>,
}

/// The vault's state in the authority.
pub(crate) struct Vault {
    inner: Mutex<Inner>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault { .. }")
    }
}

fn invalid(reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: "DevKeyVault".into(),
        reason: reason.into(),
    }
}

fn pkcs12(certificate: &GeneratedCertificate) -> Result<Vec<u8>, ConfigError> {
    let cert = p12_keystore::Certificate::from_der(&certificate.cert_der)
        .map_err(|e| invalid(format!("certificate: {e:?}")))?;
    let key = p12_keystore::PrivateKey::from_der(&certificate.key_der)
        .map_err(|e| invalid(format!("private key: {e:?}")))?;
    let chain = p12_keystore::PrivateKeyChain::new(b"kv-1".to_vec(), key, [cert]);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        &certificate.subject,
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store
        .writer("")
        .write()
        .map_err(|e| invalid(format!("cannot write PKCS#12: {e:?}")))
}

impl Vault {
    pub(crate) fn new(config: Option<DevKeyVault>, now: i64) -> Result<Self, ConfigError> {
        let vault = Self {
            inner: Mutex::new(Inner::default()),
        };
        if let Some(config) = config {
            for (name, certificate, content_type) in &config.certificates {
                vault.set(name, certificate, *content_type, now)?;
            }
            let mut inner = vault.lock();
            for id in config.denied {
                inner.denied.insert(id.trim().to_ascii_lowercase());
            }
        }
        Ok(vault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a new version (the latest) of certificate `name`; returns its version id.
    pub(crate) fn set(
        &self,
        name: &str,
        certificate: &GeneratedCertificate,
        content_type: ContentType,
        now: i64,
    ) -> Result<String, ConfigError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid(format!("`{name}` is not a Key Vault name")));
        }
        let (_, parsed) = X509Certificate::from_der(&certificate.cert_der)
            .map_err(|e| invalid(format!("certificate: {e}")))?;
        let value = match content_type {
            ContentType::Pkcs12 => STANDARD.encode(pkcs12(certificate)?),
            ContentType::Pem => format!("{}{}", certificate.key_pem, certificate.cert_pem),
        };
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| invalid("no randomness"))?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let version = Version {
            id: id.clone(),
            cert_der: certificate.cert_der.clone(),
            value,
            content_type,
            nbf: parsed.validity().not_before.timestamp(),
            exp: parsed.validity().not_after.timestamp(),
            created: now,
        };
        let mut inner = self.lock();
        inner
            .certificates
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| (name.to_owned(), Vec::new()))
            .1
            .push(version);
        Ok(id)
    }

    pub(crate) fn deny(&self, client_id: &str, denied: bool) {
        let id = client_id.trim().to_ascii_lowercase();
        let mut inner = self.lock();
        if denied {
            inner.denied.insert(id);
        } else {
            inner.denied.remove(&id);
        }
    }
}

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
) -> Result<String, Refusal> {
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
    Ok(caller)
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
            "key_props": {"exportable": true, "kty": "RSA", "key_size": 2048, "reuse_key": false},
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
                versions
                    .iter()
                    .find(|v| v.id.eq_ignore_ascii_case(version))
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
            tracing::debug!(target: "tower_azure_auth::testing", %status, "key vault request refused");
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
