//! [`DevAuthority`]: a local Microsoft Entra ID for tests and local development (Microsoft
//! ships no emulator).
//!
//! It listens on `127.0.0.1` (plain http, or https with a certificate you give it, for MSAL
//! clients in other languages that refuse http) and serves, for its tenant:
//!
//! | path | what |
//! |---|---|
//! | `/{tenant}/v2.0/.well-known/openid-configuration` | v2 discovery (issuer `{base}/{tenant}/v2.0`) |
//! | `/{tenant}/.well-known/openid-configuration` | v1 discovery (issuer `{base}/{tenant}/`) |
//! | `/{tenant}/discovery/v2.0/keys`, `/{tenant}/discovery/keys` | signing keys (JWKS), as Entra publishes them |
//! | `POST /{tenant}/oauth2/v2.0/token` | client credentials (`scope={resource}/.default`) |
//! | `POST /{tenant}/oauth2/token` | the v1 equivalent (`resource={resource}`) |
//!
//! `{tenant}` is the tenant id; discovery and keys also answer for `common` and
//! `organizations`, with the `{tenantid}` template issuer.
//!
//! Optionally, for the credential sources (managed identity, Key Vault):
//!
//! | path | what |
//! |---|---|
//! | `GET /metadata/identity/oauth2/token` | IMDS-shaped managed identity endpoint (`Metadata: true`, `api-version=2018-02-01`, `resource`, optional `client_id`/`object_id`); numbers as strings |
//! | `GET /msi/token` | App Service-shaped (`X-IDENTITY-HEADER` = [`DevAuthority::identity_header`], `api-version=2019-08-01`) |
//! | `GET /vault/certificates/{name}`, `GET /vault/secrets/{name}/{version}` (or `{name}`, `{name}/`: the latest) | Key Vault ([`DevKeyVault`], `api-version` required): PKCS#12 or PEM secrets; 401 without a token signed by this authority for `https://vault.azure.net`, 403 for denied callers, 404 for unknown names |
//! | `POST /vault/keys/{name}/{version}/sign` | Key Vault `sign` (`RS256`/`PS256` over a SHA-256 digest) with the key of a certificate version, exportable or not ([`DevKeyVault::non_exportable_certificate`]: the secret then holds no private key); 403 `ForbiddenByPolicy` for callers without `keys/sign` ([`DevKeyVault::deny_sign`]), 403 `KeyDisabled` for a disabled key version |
//!
//! Managed identities are registered with [`DevAuthorityBuilder::managed_identity`] (the
//! first one answers requests that name none, like a system-assigned identity); their tokens
//! are v1 app tokens with `appid` = the identity's client id. Registering one, or a vault,
//! also registers the APIs `https://vault.azure.net` and `api://AzureADTokenExchange`.
//!
//! Clients authenticate with a **certificate** (an RFC 7523 client assertion: signature
//! checked against the registered certificate named by `x5t#S256`, `x5t` or `x5c`; RS256 or
//! PS256; `aud` = the token endpoint; `iss` = `sub` = client id; lifetime; `jti` present)
//! or a **client secret** (`client_secret`, or HTTP Basic). Assertions are parsed the
//! tolerant way Entra parses them, so what MSAL.NET, MSAL Python and MSAL Node send is
//! accepted: padded `x5t`, float or string `exp`/`nbf`, no `nbf`, `x5c` as a string or an
//! array, base64 with line breaks.
//!
//! Like Entra, an assertion may be used again until it expires: MSAL signs one and sends it
//! with every token request (for any scope) until it nears expiry. Tests of a client that
//! must send a fresh assertion each time turn on RFC 7523's replay check with
//! [`DevAuthorityBuilder::assertion_reuse`]`(`[`AssertionReuse::Refuse`]`)`: a second use of
//! a `jti` is then refused with AADSTS50027 until the assertion expires.
//!
//! Tokens carry Entra's app-only claim set: v2 `aud` (API client id), `iss`, `iat`, `nbf`,
//! `exp`, `aio`, `azp`, `azpacr` (`"2"` certificate, `"1"` secret), `oid`, `rh`, `roles`
//! (only when roles were granted, as Entra does), `sub`, `tid`, `uti`, `ver`; v1 `appid`,
//! `appidacr` and `idp` instead of `azp`/`azpacr`, and `aud` is the resource as requested.
//! Signed RS256 with `kid` (v1 also `x5t`), back-dated five minutes, valid 60 to 90 minutes
//! unless [`DevAuthorityBuilder::token_lifetime`] says otherwise. Like Entra, an API gets v1
//! tokens unless it asks for v2 ([`DevApi::token_version`]).
//!
//! Refusals use Entra's JSON shape (`error`, `error_description` starting `AADSTSnnnn: `,
//! `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`) and status:
//!
//! | code | error | status | when |
//! |---|---|---|---|
//! | 90002 | `invalid_request` | 400 | unknown tenant (also `common` on the token endpoint) |
//! | 900144 | `invalid_request` | 400 | `grant_type`, `scope`, `resource` or `client_id` missing |
//! | 70003 | `unsupported_grant_type` | 400 | a grant other than `client_credentials` |
//! | 1002012 | `invalid_scope` | 400 | scope without `/.default` |
//! | 70011 | `invalid_scope` | 400 | several resources, or none, in the scope |
//! | 700016 | `unauthorized_client` | 400 | unknown client id |
//! | 7000218 | `invalid_client` | 401 | neither `client_assertion` nor `client_secret` |
//! | 7000215 | `invalid_client` | 401 | wrong secret |
//! | 50027 | `invalid_request` | 400 | malformed assertion, wrong `client_assertion_type`, `jti` used before (only with [`AssertionReuse::Refuse`]) |
//! | 700027 | `invalid_client` | 401 | unknown certificate, bad signature, unsupported `alg`, expired certificate |
//! | 700023 | `invalid_client` | 401 | `aud` is not the token endpoint |
//! | 700021 | `invalid_client` | 401 | `iss` is not the `client_id` parameter |
//! | 50048 | `invalid_client` | 401 | `sub` differs from `iss` |
//! | 700024 | `invalid_client` | 401 | assertion expired, not yet valid, or valid for more than a day |
//! | 500011 | `invalid_resource` | 400 | the scope names no registered API |
//! | 90033 | `temporarily_unavailable` | 503 | [`AssertionReuse::Refuse`] only: 10 000 unexpired assertions are remembered, no room for a new one until the earliest expires |
//!
//! A role that was not granted is not an error: the token has no `roles` claim, as in Entra.
//!
//! For tests there is more: [`DevAuthority::issue_token`] mints a token without HTTP,
//! [`DevAuthority::rotate_signing_key`] publishes a new key, [`DevAuthority::request_count`]
//! counts requests per [`Endpoint`], and [`DevAuthority::inject_fault`] fails or delays the
//! next requests to one. Time comes from an injectable [`Clock`](tower_azure_auth::clock::Clock).
//!
//! # Example
//!
//! ```
//! use tower_azure_auth::claims::TokenVersion;
//! use entra_dev_authority::{DevApi, DevApplication, DevAuthority};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let authority = DevAuthority::builder()
//!     .api(
//!         DevApi::new("6f8a1c52-0000-4000-8000-000000000001")
//!             .app_id_uri("api://weather")
//!             .app_roles(["service-api"])
//!             .token_version(TokenVersion::V2),
//!     )
//!     .application(
//!         DevApplication::new("0b7c5d2e-0000-4000-8000-000000000002")
//!             .display_name("weather-client")
//!             .secret("dev-secret")
//!             .grant("api://weather", ["service-api"]),
//!     )
//!     .start()
//!     .await?;
//!
//! let http = reqwest::Client::new();
//! let form = |secret: &'static str| {
//!     [
//!         ("grant_type", "client_credentials"),
//!         ("client_id", "0b7c5d2e-0000-4000-8000-000000000002"),
//!         ("client_secret", secret),
//!         ("scope", "api://weather/.default"),
//!     ]
//! };
//! let ok = http.post(authority.token_endpoint()).form(&form("dev-secret")).send().await?;
//! assert_eq!(ok.status(), 200);
//! let body: serde_json::Value = ok.json().await?;
//! assert_eq!(body["token_type"], "Bearer");
//!
//! let refused = http.post(authority.token_endpoint()).form(&form("wrong")).send().await?;
//! assert_eq!(refused.status(), 401);
//! let error: serde_json::Value = refused.json().await?;
//! assert_eq!(error["error_codes"][0], 7000215);
//!
//! authority.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Registration file
//!
//! [`DevAuthorityBuilder::from_registration_file`] (and the `dev-authority` binary)
//! read registrations from JSON. Certificate files are PEM (only the `CERTIFICATE` block is
//! read, so a file holding the private key too is fine), relative to the JSON file's folder:
//!
//! ```json
//! {
//!   "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
//!   "tokenLifetimeSeconds": 3600,
//!   "assertionReuse": "withinLifetime",
//!   "apis": [
//!     {
//!       "clientId": "6f8a1c52-0000-4000-8000-000000000001",
//!       "displayName": "weather-api",
//!       "appIdUri": "api://weather",
//!       "appRoles": ["service-api", "weather.read"],
//!       "requestedAccessTokenVersion": 2
//!     }
//!   ],
//!   "applications": [
//!     {
//!       "clientId": "0b7c5d2e-0000-4000-8000-000000000002",
//!       "displayName": "weather-client",
//!       "certificateFiles": ["certs/weather-client.pem"],
//!       "certificatePems": [],
//!       "secrets": ["dev-secret"],
//!       "grants": { "api://weather": ["service-api"] }
//!     }
//!   ]
//! }
//! ```
//!
//! Every field but `clientId` is optional; `tenantId` defaults to a fresh GUID,
//! `requestedAccessTokenVersion` to 1 (as in Entra), `tokenLifetimeSeconds` to Entra's
//! random 60–90 minutes, `assertionReuse` to `"withinLifetime"` (`"refuse"` for
//! [`AssertionReuse::Refuse`]), `objectId` (per application) to a GUID derived from the tenant and
//! client ids. Unknown fields are refused, so typos surface.

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The floors, bottom first; a module uses only the ones below it, never one above, and no
// module uses this root: `options` (endpoint families, faults, key rollover, assertion reuse)
// and `entra_error`, `keys`; `registration`; `assertion`; the stores `key_vault` and
// `managed_identity`; `state`; `server` (the router, whose `respond` sits below its endpoint
// modules `key_vault` and `managed_identity`).
mod assertion;
mod builder;
mod claims;
mod entra_error;
mod error;
mod files;
mod key_vault;
mod keys;
mod managed_identity;
mod options;
mod registration;
mod server;
mod state;
mod testing;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use self::builder::DevAuthorityBuilder;
pub use self::claims::{insufficient_claims_challenge, CAE_LIFETIME};
pub use self::error::DevAuthorityError;
pub use self::key_vault::{ContentType, DevKeyVault, Exportable};
pub use self::keys::{
    generate_certificate, generate_certificate_valid, generate_tls_certificate,
    GeneratedCertificate,
};
pub use self::options::{AssertionReuse, Endpoint, Fault, KeepOld};
pub use self::registration::{DevApi, DevApplication};

/// Entry points for the cargo-fuzz targets in `fuzz/`; compiled only under `--cfg fuzzing`
/// (which cargo-fuzz sets), never part of the public API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use super::assertion::{verify, Expectations};
    use super::registration::Registry;
    use super::DevApplication;
    use crate::error::DevAuthorityError;

    /// The dev authority's client-assertion checks, with one registered application.
    #[derive(Debug)]
    pub struct AssertionChecker {
        registry: Registry,
    }

    impl AssertionChecker {
        /// Registers `client_id` (a GUID) with the certificate in `certificate_pem`.
        ///
        /// # Errors
        ///
        /// When the ids or the certificate are not usable.
        pub fn new(
            tenant_id: &str,
            client_id: &str,
            certificate_pem: &str,
        ) -> Result<Self, DevAuthorityError> {
            let app = DevApplication::new(client_id).certificate_pem(certificate_pem)?;
            Ok(Self {
                registry: Registry::new(tenant_id, Vec::new(), vec![app])?,
            })
        }

        /// Verifies an assertion posted to `token_endpoint` at `now` (Unix seconds); returns
        /// the client id on success.
        pub fn verify(
            &self,
            raw: &str,
            token_endpoint: &str,
            client_id: Option<&str>,
            now: i64,
        ) -> Option<String> {
            let expect = Expectations {
                token_endpoint,
                client_id,
                now,
                replaced: None,
            };
            match verify(raw, &expect, &self.registry) {
                Ok(verified) => Some(verified.client_id),
                Err(error) => {
                    let _ = format!("{error:?}");
                    None
                }
            }
        }
    }
}
use self::state::{Mint, State};
use tower_azure_auth::claims::{ClientAuthentication, TokenVersion};

/// The application id of the `api://AzureADTokenExchange` API registered with managed
/// identities (a fixed GUID of the dev authority).
const TOKEN_EXCHANGE_APP_ID: &str = "fb60f99c-7a34-4190-8149-302f77469936";

/// A token to mint with [`DevAuthority::issue_token`], without HTTP: for tests of token
/// validation and authorization.
///
/// By default the token is what the token endpoint would issue to `client_id` for `api`
/// (the roles granted, the API's token version, a certificate credential); each part can be
/// overridden, claims added, replaced or removed.
///
/// ```
/// use std::time::Duration;
/// use tower_azure_auth::claims::{ClientAuthentication, TokenVersion};
/// use entra_dev_authority::IssueToken;
///
/// let request = IssueToken::new("0b7c5d2e-0000-4000-8000-000000000002", "api://weather")
///     .roles(["weather.read"])
///     .version(TokenVersion::V1)
///     .client_authentication(ClientAuthentication::Secret)
///     .lifetime(Duration::from_secs(600))
///     .claim("idtyp", "app")
///     .without_claim("oid");
/// # let _ = request;
/// ```
#[derive(Debug, Clone)]
pub struct IssueToken {
    client_id: String,
    api: String,
    roles: Option<Vec<String>>,
    version: Option<TokenVersion>,
    lifetime: Option<Duration>,
    acr: ClientAuthentication,
    extra: Map<String, Value>,
    remove: Vec<String>,
}

impl IssueToken {
    /// A token for `client_id` to call `api` (its App ID URI or client id).
    pub fn new(client_id: impl Into<String>, api: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            api: api.into(),
            roles: None,
            version: None,
            lifetime: None,
            acr: ClientAuthentication::Certificate,
            extra: Map::new(),
            remove: Vec::new(),
        }
    }

    /// Exactly these roles (none: no `roles` claim), instead of the granted ones.
    #[must_use]
    pub fn roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }

    /// The token version, instead of the API's.
    #[must_use]
    pub fn version(mut self, version: TokenVersion) -> Self {
        self.version = Some(version);
        self
    }

    /// The lifetime from now, instead of the authority's.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// How the client authenticated (`azpacr` / `appidacr`); a certificate by default.
    #[must_use]
    pub fn client_authentication(mut self, acr: ClientAuthentication) -> Self {
        self.acr = acr;
        self
    }

    /// Adds or replaces a claim (`exp`, `iss`, `aud`… included).
    #[must_use]
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }

    /// Removes a claim.
    #[must_use]
    pub fn without_claim(mut self, name: impl Into<String>) -> Self {
        self.remove.push(name.into());
        self
    }
}

/// A running local Entra ID. Cheap to clone; stops when the last clone is dropped, or at
/// [`DevAuthority::shutdown`]. See the [module docs](self).
///
/// `Debug` shows the address, tenant and key ids, never keys or secrets.
#[derive(Clone)]
pub struct DevAuthority {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<State>,
    addr: SocketAddr,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let sender = self
            .shutdown
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

impl fmt::Debug for DevAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevAuthority")
            .field("base", &self.inner.state.base)
            .field("tenant_id", &self.tenant_id())
            .field("signing_keys", &self.signing_key_ids())
            .finish_non_exhaustive()
    }
}

impl DevAuthority {
    /// A builder with no registrations, a fresh tenant id, listening on `127.0.0.1:0`.
    pub fn builder() -> DevAuthorityBuilder {
        DevAuthorityBuilder::new()
    }

    fn state(&self) -> &State {
        &self.inner.state
    }

    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The instance URL, `http(s)://127.0.0.1:PORT/`: use it as `AzureAd:Instance`.
    #[must_use]
    pub fn instance(&self) -> String {
        format!("{}/", self.state().base)
    }

    /// The tenant id (lower-case GUID).
    #[must_use]
    pub fn tenant_id(&self) -> &str {
        &self.state().registry.tenant_id
    }

    /// The v2 authority, `{instance}{tenant}/v2.0`: use it as `AzureAd:Authority`.
    #[must_use]
    pub fn authority(&self) -> String {
        self.issuer(TokenVersion::V2)
    }

    /// The issuer of tokens of this version: `{instance}{tenant}/v2.0` or `{instance}{tenant}/`.
    #[must_use]
    pub fn issuer(&self, version: TokenVersion) -> String {
        self.state().issuer(version)
    }

    /// The v2 discovery document URL.
    #[must_use]
    pub fn metadata_url(&self) -> String {
        format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            self.state().base,
            self.tenant_id()
        )
    }

    /// The v1 discovery document URL.
    #[must_use]
    pub fn v1_metadata_url(&self) -> String {
        format!(
            "{}/{}/.well-known/openid-configuration",
            self.state().base,
            self.tenant_id()
        )
    }

    /// The v2 key set URL.
    #[must_use]
    pub fn jwks_uri(&self) -> String {
        format!(
            "{}/{}/discovery/v2.0/keys",
            self.state().base,
            self.tenant_id()
        )
    }

    /// The v2 token endpoint, `{instance}{tenant}/oauth2/v2.0/token`: the `aud` of client
    /// assertions.
    #[must_use]
    pub fn token_endpoint(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.state().base,
            self.tenant_id()
        )
    }

    /// The IMDS-shaped managed identity endpoint,
    /// `{base}/metadata/identity/oauth2/token`: use it as `MSAL_MANAGED_IDENTITY_ENDPOINT`
    /// or with `tower_azure_auth`'s `ManagedIdentityBuilder::imds_endpoint`.
    #[must_use]
    pub fn imds_endpoint(&self) -> String {
        format!("{}/metadata/identity/oauth2/token", self.state().base)
    }

    /// The App Service-shaped managed identity endpoint, `{base}/msi/token`: use it as
    /// `IDENTITY_ENDPOINT`, with [`identity_header`](Self::identity_header) as
    /// `IDENTITY_HEADER`.
    #[must_use]
    pub fn app_service_identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.state().base)
    }

    /// The secret the App Service-shaped endpoint expects in `X-IDENTITY-HEADER`.
    #[must_use]
    pub fn identity_header(&self) -> &str {
        self.state().identities.header()
    }

    /// Whether managed identities are registered.
    #[must_use]
    pub fn has_managed_identities(&self) -> bool {
        !self.state().identities.is_empty()
    }

    /// The Key Vault's base URL, `{base}/vault`: use it as `KeyVaultUrl`.
    #[must_use]
    pub fn vault_url(&self) -> String {
        format!("{}/vault", self.state().base)
    }

    /// Stores a new version of a certificate in the vault (it becomes the latest: rotation);
    /// returns the version id.
    ///
    /// # Errors
    ///
    /// When the name is not a Key Vault name or the certificate cannot be encoded.
    pub fn set_vault_certificate(
        &self,
        name: &str,
        certificate: &GeneratedCertificate,
        content_type: ContentType,
    ) -> Result<String, DevAuthorityError> {
        let state = self.state();
        state.vault.set(
            name,
            certificate,
            content_type,
            key_vault::Exportable::Yes,
            state.now(),
        )
    }

    /// Stores a new version of a certificate whose key is non-exportable (it becomes the
    /// latest: rotation of the key version); returns the version id. The key signs through
    /// `POST {vault}/keys/{name}/{version}/sign` and the secret holds only the certificate.
    ///
    /// # Errors
    ///
    /// When the name is not a Key Vault name or the key is not RSA.
    pub fn set_vault_non_exportable_certificate(
        &self,
        name: &str,
        certificate: &GeneratedCertificate,
    ) -> Result<String, DevAuthorityError> {
        let state = self.state();
        state.vault.set(
            name,
            certificate,
            ContentType::Pem,
            key_vault::Exportable::No,
            state.now(),
        )
    }

    /// Refuses (403 `ForbiddenByPolicy`: no `keys/sign` permission) or allows again the
    /// `sign` operation to callers with this client id.
    pub fn deny_vault_sign(&self, client_id: &str, denied: bool) {
        self.state().vault.deny_sign(client_id, denied);
    }

    /// Disables or enables the key of one certificate version (`sign` then answers 403
    /// `KeyDisabled`); false when there is no such version.
    #[must_use]
    pub fn set_vault_key_enabled(&self, name: &str, version: &str, enabled: bool) -> bool {
        self.state().vault.set_key_enabled(name, version, enabled)
    }

    /// How many `sign` operations each version of a vault certificate's key did,
    /// `(version, count)`, oldest version first.
    #[must_use]
    pub fn vault_signatures(&self, name: &str) -> Vec<(String, u64)> {
        self.state().vault.signatures(name)
    }

    /// Refuses (403) or allows again the vault's callers with this client id.
    pub fn deny_vault_access(&self, client_id: &str, denied: bool) {
        self.state().vault.deny(client_id, denied);
    }

    /// Replaces the certificates (PEM; the first `CERTIFICATE` block of each) an
    /// application's assertions are checked against, as when a certificate is rotated on
    /// the app registration: assertions signed with any other key are then refused with
    /// AADSTS700027.
    ///
    /// # Errors
    ///
    /// [`DevAuthorityError::Invalid`] when the client id is not registered or a PEM holds no
    /// certificate.
    pub fn set_application_certificates(
        &self,
        client_id: &str,
        pems: &[&str],
    ) -> Result<(), DevAuthorityError> {
        let state = self.state();
        if state.registry.application(client_id).is_none() {
            return Err(DevAuthorityError::Invalid {
                key: "DevAuthority:Applications".into(),
                reason: format!("`{client_id}` is not a registered application"),
            });
        }
        let certificates = pems
            .iter()
            .map(|pem| {
                registration::first_certificate_der(pem.as_bytes())
                    .and_then(|der| registration::RegisteredCertificate::from_der(&der))
            })
            .collect::<Result<Vec<_>, _>>()?;
        state.replace_certificates(client_id, certificates);
        Ok(())
    }

    /// Mints a token directly, signed with the current key, as the token endpoint would.
    ///
    /// # Errors
    ///
    /// [`DevAuthorityError::Invalid`] when `api` names no registered API.
    pub fn issue_token(&self, request: &IssueToken) -> Result<String, DevAuthorityError> {
        let state = self.state();
        let (index, api) =
            state
                .registry
                .api(&request.api)
                .ok_or_else(|| DevAuthorityError::Invalid {
                    key: "IssueToken:Api".into(),
                    reason: format!("`{}` is not a registered API", request.api),
                })?;
        let roles = match &request.roles {
            Some(roles) => roles.clone(),
            None => state
                .registry
                .application(&request.client_id)
                .map(|app| app.roles_on(index))
                .unwrap_or_default(),
        };
        let minted = state.mint(&Mint {
            client_id: &request.client_id,
            api,
            resource: request.api.trim_end_matches('/'),
            roles,
            version: request.version.unwrap_or(api.version),
            acr: request.acr,
            lifetime: request.lifetime,
            extra: &request.extra,
            remove: &request.remove,
        })?;
        Ok(minted.token)
    }

    /// Generates a new signing key and signs with it from now on; returns its `kid`. With
    /// [`KeepOld::Yes`] the previous keys stay published (as during Entra's rollover), with
    /// [`KeepOld::No`] only the new key is.
    ///
    /// # Errors
    ///
    /// When key generation fails.
    pub fn rotate_signing_key(&self, keep_old: KeepOld) -> Result<String, DevAuthorityError> {
        self.state().rotate(keep_old == KeepOld::Yes)
    }

    /// Whether a client assertion is accepted again within its lifetime or refused as a
    /// replay ([`DevAuthorityBuilder::assertion_reuse`]).
    #[must_use]
    pub fn assertion_reuse(&self) -> AssertionReuse {
        self.state().assertion_reuse()
    }

    /// The published key ids, the signing one first.
    #[must_use]
    pub fn signing_key_ids(&self) -> Vec<String> {
        self.state().kids()
    }

    /// Requests received by an endpoint family (failed and faulted ones included).
    #[must_use]
    pub fn request_count(&self, endpoint: Endpoint) -> u64 {
        self.state().count(endpoint)
    }

    /// Sets every request counter to zero.
    pub fn reset_request_counts(&self) {
        self.state().reset_counts();
    }

    /// Queues a fault for the next requests to an endpoint family (faults queue in order).
    pub fn inject_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.state().inject(endpoint, fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.state().clear_faults();
    }

    /// Stops accepting connections, lets in-flight requests finish and waits for the
    /// server to stop. Other clones see a stopped authority.
    pub async fn shutdown(&self) {
        let sender = self
            .inner
            .shutdown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
