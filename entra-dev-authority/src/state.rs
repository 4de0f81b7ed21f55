//! The authority's shared state and its decisions: metadata documents, key sets, the token
//! endpoint's rules, token minting, counters and injected faults. HTTP lives in `server`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Map, Value};

use crate::assertion::{self, Expectations, Remembered, ReplayCache};
use crate::entra_error::EntraError;
use crate::error::DevAuthorityError;
use crate::key_vault::Vault;
use crate::keys::{b64url, SigningKey};
use crate::managed_identity::Identities;
use crate::options::{AssertionReuse, Endpoint, Fault};
use crate::registration::{DevApi, RegisteredCertificate, Registry};
use tower_azure_auth::claims::{ClientAuthentication, TokenVersion};
use tower_azure_auth::clock::SharedClock;

pub(crate) const CLIENT_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Tokens are back-dated like Entra's: `iat` = `nbf` = now - 5 min.
const BACKDATE: i64 = 300;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which tenant a metadata path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TenantPath<'a> {
    /// The registered tenant.
    Registered,
    /// `common` or `organizations` (metadata with the `{tenantid}` template issuer).
    Multi(&'a str),
}

#[derive(Debug)]
pub(crate) struct State {
    /// `http(s)://127.0.0.1:PORT`, no trailing slash.
    pub(crate) base: String,
    pub(crate) registry: Registry,
    keys: Mutex<Vec<Arc<SigningKey>>>,
    /// Whether an accepted assertion may be used again within its lifetime.
    assertion_reuse: AssertionReuse,
    /// The `jti`s of accepted assertions, with [`AssertionReuse::Refuse`].
    replay: Mutex<ReplayCache>,
    clock: SharedClock,
    token_lifetime: Option<Duration>,
    /// Added to `exp` and `ext_expires_in` of tokens with the default lifetime.
    token_extension: Option<Duration>,
    counters: [AtomicU64; 5],
    faults: Mutex<[VecDeque<Fault>; 5]>,
    /// The managed identities served at the IMDS / App Service endpoints.
    pub(crate) identities: Identities,
    /// The Key Vault.
    pub(crate) vault: Vault,
    /// Certificates replacing applications' registered ones (lower-case client id).
    replaced_certificates: Mutex<HashMap<String, Vec<RegisteredCertificate>>>,
}

/// What a token is minted for.
#[derive(Debug)]
pub(crate) struct Mint<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) api: &'a DevApi,
    /// The resource as the client named it (v1 `aud`).
    pub(crate) resource: &'a str,
    pub(crate) roles: Vec<String>,
    pub(crate) version: TokenVersion,
    pub(crate) acr: ClientAuthentication,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) extra: &'a Map<String, Value>,
    pub(crate) remove: &'a [String],
}

/// A minted token and its lifetime from now.
#[derive(Debug)]
pub(crate) struct Minted {
    pub(crate) token: String,
    pub(crate) expires_in: u64,
    /// `ext_expires_in`: `expires_in`, plus the extension when one is configured.
    pub(crate) ext_expires_in: u64,
    pub(crate) now: i64,
}

fn index(endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::Metadata => 0,
        Endpoint::Jwks => 1,
        Endpoint::Token => 2,
        Endpoint::ManagedIdentity => 3,
        Endpoint::KeyVault => 4,
    }
}

impl State {
    pub(crate) fn new(
        base: String,
        registry: Registry,
        clock: SharedClock,
        token_lifetime: Option<Duration>,
        assertion_reuse: AssertionReuse,
        identities: Identities,
        vault: Vault,
    ) -> Result<Self, DevAuthorityError> {
        Ok(Self {
            base,
            registry,
            keys: Mutex::new(vec![Arc::new(SigningKey::generate()?)]),
            assertion_reuse,
            replay: Mutex::new(ReplayCache::default()),
            clock,
            token_lifetime,
            token_extension: None,
            counters: Default::default(),
            faults: Mutex::new(Default::default()),
            identities,
            vault,
            replaced_certificates: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn with_token_extension(mut self, extension: Option<Duration>) -> Self {
        self.token_extension = extension;
        self
    }

    pub(crate) fn assertion_reuse(&self) -> AssertionReuse {
        self.assertion_reuse
    }

    pub(crate) fn now(&self) -> i64 {
        i64::try_from(self.clock.unix_seconds()).unwrap_or(i64::MAX)
    }

    pub(crate) fn tenant_path<'a>(&self, tenant: &'a str) -> Result<TenantPath<'a>, EntraError> {
        if tenant.eq_ignore_ascii_case(&self.registry.tenant_id) {
            Ok(TenantPath::Registered)
        } else if tenant.eq_ignore_ascii_case("common")
            || tenant.eq_ignore_ascii_case("organizations")
        {
            Ok(TenantPath::Multi(tenant))
        } else {
            Err(EntraError::unknown_tenant(tenant))
        }
    }

    pub(crate) fn issuer(&self, version: TokenVersion) -> String {
        match version {
            TokenVersion::V2 => format!("{}/{}/v2.0", self.base, self.registry.tenant_id),
            TokenVersion::V1 => format!("{}/{}/", self.base, self.registry.tenant_id),
        }
    }

    // ---- counters and faults ----

    /// Counts the request and takes the next injected fault for the endpoint, if any.
    pub(crate) fn enter(&self, endpoint: Endpoint) -> Option<Fault> {
        self.counters[index(endpoint)].fetch_add(1, Ordering::SeqCst);
        let mut faults = lock(&self.faults);
        let queue = &mut faults[index(endpoint)];
        let front = queue.front_mut()?;
        let fault = front.clone();
        front.times = front.times.saturating_sub(1);
        if front.times == 0 {
            queue.pop_front();
        }
        Some(fault)
    }

    pub(crate) fn count(&self, endpoint: Endpoint) -> u64 {
        self.counters[index(endpoint)].load(Ordering::SeqCst)
    }

    pub(crate) fn reset_counts(&self) {
        for counter in &self.counters {
            counter.store(0, Ordering::SeqCst);
        }
    }

    pub(crate) fn inject(&self, endpoint: Endpoint, fault: Fault) {
        if fault.times > 0 {
            lock(&self.faults)[index(endpoint)].push_back(fault);
        }
    }

    pub(crate) fn clear_faults(&self) {
        for queue in lock(&self.faults).iter_mut() {
            queue.clear();
        }
    }

    // ---- keys ----

    pub(crate) fn rotate(&self, keep_old: bool) -> Result<String, DevAuthorityError> {
        let key = Arc::new(SigningKey::generate()?);
        let kid = key.kid().to_owned();
        let mut keys = lock(&self.keys);
        if !keep_old {
            keys.clear();
        }
        keys.push(key);
        Ok(kid)
    }

    /// Key ids, the active (newest) first.
    pub(crate) fn kids(&self) -> Vec<String> {
        lock(&self.keys)
            .iter()
            .rev()
            .map(|k| k.kid().to_owned())
            .collect()
    }

    fn active_key(&self) -> Option<Arc<SigningKey>> {
        lock(&self.keys).last().cloned()
    }

    /// Whether one of the published keys signed `token` (RS256, by `kid`); the claims when so.
    pub(crate) fn verify_own_token(&self, token: &str) -> Option<Map<String, Value>> {
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let decode = |part: &str| {
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).ok()
        };
        let header: Map<String, Value> = serde_json::from_slice(&decode(header)?).ok()?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return None;
        }
        let kid = header.get("kid").and_then(Value::as_str)?;
        let key = lock(&self.keys).iter().find(|k| k.kid() == kid).cloned()?;
        let signing_input_len = token.len() - signature.len() - 1;
        let signing_input = token.get(..signing_input_len)?;
        if !key.verifies(signing_input.as_bytes(), &decode(signature)?) {
            return None;
        }
        serde_json::from_slice(&decode(claims)?).ok()
    }

    /// Replaces the certificates an application is known by.
    pub(crate) fn replace_certificates(
        &self,
        client_id: &str,
        certificates: Vec<RegisteredCertificate>,
    ) {
        lock(&self.replaced_certificates).insert(client_id.to_ascii_lowercase(), certificates);
    }

    // ---- documents ----

    pub(crate) fn jwks(&self, v2: bool) -> Value {
        let issuer = format!("{}/{{tenantid}}/v2.0", self.base);
        let keys: Vec<Value> = lock(&self.keys)
            .iter()
            .rev()
            .map(|k| k.jwk(v2.then_some(issuer.as_str())))
            .collect();
        json!({ "keys": keys })
    }

    pub(crate) fn metadata(&self, tenant: TenantPath<'_>, v2: bool) -> Value {
        let base = &self.base;
        let (path, issuer_tenant) = match tenant {
            TenantPath::Registered => (
                self.registry.tenant_id.clone(),
                self.registry.tenant_id.clone(),
            ),
            TenantPath::Multi(name) => (name.to_ascii_lowercase(), "{tenantid}".to_owned()),
        };
        let auth_methods = json!([
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic"
        ]);
        if v2 {
            json!({
                "token_endpoint": format!("{base}/{path}/oauth2/v2.0/token"),
                "token_endpoint_auth_methods_supported": auth_methods,
                "jwks_uri": format!("{base}/{path}/discovery/v2.0/keys"),
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": format!("{base}/{issuer_tenant}/v2.0"),
                "request_uri_parameter_supported": false,
                "authorization_endpoint": format!("{base}/{path}/oauth2/v2.0/authorize"),
                "end_session_endpoint": format!("{base}/{path}/oauth2/v2.0/logout"),
                "http_logout_supported": true,
                "frontchannel_logout_supported": true,
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
                "tenant_region_scope": null,
            })
        } else {
            json!({
                "token_endpoint": format!("{base}/{path}/oauth2/token"),
                "token_endpoint_auth_methods_supported": auth_methods,
                "jwks_uri": format!("{base}/{path}/discovery/keys"),
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
                "scopes_supported": ["openid"],
                "issuer": format!("{base}/{issuer_tenant}/"),
                "microsoft_multi_refresh_token": true,
                "authorization_endpoint": format!("{base}/{path}/oauth2/authorize"),
                "end_session_endpoint": format!("{base}/{path}/oauth2/logout"),
                "http_logout_supported": true,
                "frontchannel_logout_supported": true,
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"],
                "tenant_region_scope": null,
            })
        }
    }

    // ---- tokens ----

    fn default_lifetime(&self) -> u64 {
        if let Some(lifetime) = self.token_lifetime {
            return lifetime.as_secs().max(1);
        }
        // Entra: a random lifetime between 60 and 90 minutes.
        let mut byte = [0u8; 2];
        let extra = match SystemRandom::new().fill(&mut byte) {
            Ok(()) => u64::from(u16::from_le_bytes(byte)) % 1801,
            Err(_) => 900,
        };
        3600 + extra
    }

    pub(crate) fn mint(&self, mint: &Mint<'_>) -> Result<Minted, DevAuthorityError> {
        let key = self
            .active_key()
            .ok_or_else(|| DevAuthorityError::Invalid {
                key: "signing key".into(),
                reason: "the authority has no signing key".into(),
            })?;
        let now = self.now();
        let lifetime = mint
            .lifetime
            .map(|d| d.as_secs())
            .unwrap_or_else(|| self.default_lifetime());
        let extension = match (mint.lifetime, self.token_extension) {
            (None, Some(extension)) => extension.as_secs(),
            _ => 0,
        };
        let ext_lifetime = lifetime.saturating_add(extension);
        let exp = now.saturating_add(i64::try_from(ext_lifetime).unwrap_or(i64::MAX / 2));
        let tid = &self.registry.tenant_id;
        let oid = self.registry.object_id_for(mint.client_id);
        let acr = mint.acr.as_claim_value();
        let mut claims = Map::new();
        let mut put = |name: &str, value: Value| {
            claims.insert(name.to_owned(), value);
        };
        match mint.version {
            TokenVersion::V2 => {
                put("aud", mint.api.client_id.clone().into());
                put("iss", self.issuer(TokenVersion::V2).into());
                put("iat", now.saturating_sub(BACKDATE).into());
                put("nbf", now.saturating_sub(BACKDATE).into());
                put("exp", exp.into());
                put("aio", random_b64(42).into());
                put("azp", mint.client_id.into());
                put("azpacr", acr.into());
                put("oid", oid.clone().into());
                put("rh", format!("1.{}.", random_b64(48)).into());
                if !mint.roles.is_empty() {
                    put("roles", mint.roles.clone().into());
                }
                put("sub", oid.into());
                put("tid", tid.clone().into());
                put("uti", random_b64(16).into());
                put("ver", "2.0".into());
            }
            TokenVersion::V1 => {
                let iss = self.issuer(TokenVersion::V1);
                put("aud", mint.resource.into());
                put("iss", iss.clone().into());
                put("iat", now.saturating_sub(BACKDATE).into());
                put("nbf", now.saturating_sub(BACKDATE).into());
                put("exp", exp.into());
                put("aio", random_b64(42).into());
                put("appid", mint.client_id.into());
                put("appidacr", acr.into());
                put("idp", iss.into());
                put("oid", oid.clone().into());
                put("rh", format!("0.{}.", random_b64(48)).into());
                if !mint.roles.is_empty() {
                    put("roles", mint.roles.clone().into());
                }
                put("sub", oid.into());
                put("tid", tid.clone().into());
                put("uti", random_b64(16).into());
                put("ver", "1.0".into());
            }
        }
        for (name, value) in mint.extra {
            claims.insert(name.clone(), value.clone());
        }
        for name in mint.remove {
            claims.remove(name);
        }
        let header = match mint.version {
            TokenVersion::V2 => json!({"typ": "JWT", "alg": "RS256", "kid": key.kid()}),
            TokenVersion::V1 => {
                json!({"typ": "JWT", "alg": "RS256", "x5t": key.kid(), "kid": key.kid()})
            }
        };
        Ok(Minted {
            token: key.sign_jwt(&header, &Value::Object(claims))?,
            expires_in: lifetime,
            ext_expires_in: ext_lifetime,
            now,
        })
    }

    /// The token endpoint (`v1` = `/oauth2/token` with `resource`, else `/oauth2/v2.0/token`
    /// with `scope`). `params` are the form fields, first occurrence wins; `basic` is the
    /// `Authorization: Basic` client id and secret.
    pub(crate) fn token(
        &self,
        tenant: &str,
        v1: bool,
        params: &[(String, String)],
        basic: Option<(&str, &str)>,
    ) -> Result<Value, EntraError> {
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let tenant_path = self.tenant_path(tenant)?;
        if tenant_path != TenantPath::Registered {
            return Err(EntraError::tenant_required(tenant));
        }
        let grant_type =
            param("grant_type").ok_or_else(|| EntraError::missing_parameter("grant_type"))?;
        if grant_type != "client_credentials" {
            return Err(EntraError::unsupported_grant_type(grant_type));
        }
        let resource = if v1 {
            param("resource").ok_or_else(|| EntraError::missing_parameter("resource"))?
        } else {
            let scope = param("scope").ok_or_else(|| EntraError::missing_parameter("scope"))?;
            resource_from_scope(scope)?
        };

        let (basic_id, basic_secret) =
            basic.map_or((None, None), |(id, secret)| (Some(id), Some(secret)));
        let client_id_param = param("client_id").or(basic_id);
        let secret = param("client_secret").or(basic_secret);
        let now = self.now();
        let (client_id, acr) = if let Some(raw) = param("client_assertion") {
            match param("client_assertion_type") {
                Some(CLIENT_ASSERTION_TYPE) => {}
                Some(_) | None => {
                    return Err(EntraError::malformed_assertion(&format!(
                        "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
                    )))
                }
            }
            let token_endpoint = if v1 {
                format!("{}/{tenant}/oauth2/token", self.base)
            } else {
                format!("{}/{tenant}/oauth2/v2.0/token", self.base)
            };
            let replaced = lock(&self.replaced_certificates);
            let expect = Expectations {
                token_endpoint: &token_endpoint,
                client_id: client_id_param,
                now,
                replaced: Some(&replaced),
            };
            let verified = assertion::verify(raw, &expect, &self.registry)?;
            drop(replaced);
            if self.assertion_reuse == AssertionReuse::Refuse {
                let mut replay = lock(&self.replay);
                match replay.remember(&verified.client_id, &verified.jti, verified.exp, now) {
                    Remembered::New => {}
                    Remembered::Replayed => {
                        return Err(EntraError::replayed_assertion(&verified.jti))
                    }
                    Remembered::Full { earliest_expiry } => {
                        return Err(EntraError::replay_cache_full(
                            replay.capacity(),
                            earliest_expiry,
                        ))
                    }
                }
            }
            (verified.client_id, ClientAuthentication::Certificate)
        } else {
            let client_id =
                client_id_param.ok_or_else(|| EntraError::missing_parameter("client_id"))?;
            let app = self
                .registry
                .application(client_id)
                .ok_or_else(|| EntraError::unknown_client(client_id, &self.registry.tenant_id))?;
            let Some(secret) = secret else {
                return Err(EntraError::missing_credential());
            };
            let matches = app.registration.secrets.iter().any(|registered| {
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    registered.as_bytes(),
                    secret.as_bytes(),
                )
                .is_ok()
            });
            if !matches {
                return Err(EntraError::invalid_secret(client_id));
            }
            (
                app.registration.client_id.clone(),
                ClientAuthentication::Secret,
            )
        };

        let (api_index, api) = self
            .registry
            .api(resource)
            .ok_or_else(|| EntraError::unknown_resource(resource, &self.registry.tenant_id))?;
        let roles = self
            .registry
            .application(&client_id)
            .map(|app| app.roles_on(api_index))
            .unwrap_or_default();
        let mut requested = crate::claims::parse_claims(param("claims"))?;
        if let Some(not_before) = requested.not_before {
            // Issued at the time asked for or later, never in the future.
            let issued = self
                .now()
                .saturating_sub(BACKDATE)
                .max(not_before.min(self.now()));
            requested.extra.insert("iat".into(), issued.into());
            requested.extra.insert("nbf".into(), issued.into());
        }
        let minted = self
            .mint(&Mint {
                client_id: &client_id,
                api,
                resource: resource.trim_end_matches('/'),
                roles,
                version: api.version,
                acr,
                lifetime: requested.cae.then_some(crate::claims::CAE_LIFETIME),
                extra: &requested.extra,
                remove: &[],
            })
            .map_err(|_| EntraError::internal())?;
        let expires_in = minted.expires_in;
        let ext_expires_in = minted.ext_expires_in;
        Ok(if v1 {
            let expires_on = u64::try_from(minted.now)
                .unwrap_or(0)
                .saturating_add(expires_in);
            let not_before = minted.now.saturating_sub(BACKDATE);
            json!({
                "token_type": "Bearer",
                "expires_in": expires_in.to_string(),
                "ext_expires_in": ext_expires_in.to_string(),
                "expires_on": expires_on.to_string(),
                "not_before": not_before.to_string(),
                "resource": resource,
                "access_token": minted.token,
            })
        } else {
            json!({
                "token_type": "Bearer",
                "expires_in": expires_in,
                "ext_expires_in": ext_expires_in,
                "access_token": minted.token,
            })
        })
    }
}

/// `{resource}/.default` → `resource`. OpenID scopes (`openid`, `profile`, `offline_access`,
/// `email`) are ignored, as Entra ignores them for app-only tokens.
pub(crate) fn resource_from_scope(scope: &str) -> Result<&str, EntraError> {
    let scopes: Vec<&str> = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .filter(|s| !matches!(*s, "openid" | "profile" | "offline_access" | "email"))
        .collect();
    match scopes.as_slice() {
        [single] => match single.strip_suffix("/.default") {
            Some(resource) if !resource.is_empty() => Ok(resource),
            Some(_) => Err(EntraError::invalid_scope(scope)),
            None => Err(EntraError::scope_without_default(scope)),
        },
        _ => Err(EntraError::invalid_scope(scope)),
    }
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The values are opaque identifiers; should the RNG fail, zeros are still well formed.
    let _ = SystemRandom::new().fill(&mut buf);
    b64url(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        struct Case {
            name: &'static str,
            scope: &'static str,
            result: Result<&'static str, u32>,
        }
        let cases = [
            Case {
                name: "app id uri",
                scope: "api://weather/.default",
                result: Ok("api://weather"),
            },
            Case {
                name: "client id",
                scope: "6f8a1c52-0000-4000-8000-000000000001/.default",
                result: Ok("6f8a1c52-0000-4000-8000-000000000001"),
            },
            Case {
                name: "openid scopes ignored",
                scope: "openid api://weather/.default offline_access",
                result: Ok("api://weather"),
            },
            Case {
                name: "no /.default",
                scope: "api://weather/read",
                result: Err(1002012),
            },
            Case {
                name: "two resources",
                scope: "api://a/.default api://b/.default",
                result: Err(70011),
            },
            Case {
                name: "resourceless",
                scope: "/.default",
                result: Err(70011),
            },
        ];
        for case in cases {
            assert_eq!(
                resource_from_scope(case.scope).map_err(|e| e.code),
                case.result,
                "{}",
                case.name
            );
        }
    }
}
