//! [`KeyVaultCertificate`]: a client certificate (with its private key) from Azure Key Vault.
//!
//! Two REST calls, done by hand with the crate's [`HttpClient`](crate::HttpClient) (bounded
//! bodies, timeouts, no redirects): `GET {vault}/certificates/{name}?api-version=7.4` for the
//! certificate's metadata and secret id, then `GET {vault}/secrets/{name}/{version}` for the
//! certificate with its key. The official `azure_security_keyvault_*` crates are not used:
//! they bring a second HTTP and TLS stack and `azure_core`, and cannot be pointed at a
//! plain-http local server for tests.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use tracing::debug;
use url::Url;

use crate::authority::{is_loopback, require_secure};
use crate::error::ConfigError;

use crate::credentials::certificate::{CertificateLoader, ClientCertificate};
use crate::credentials::credential::{
    BoxFuture, ClientCredential, CredentialContext, CredentialSource,
};
use crate::credentials::token::CredentialError;
use crate::credentials::token_source::{bearer_header, TokenSource};

const TARGET: &str = "tower_azure_auth::credentials::key_vault";

/// The Key Vault REST API version used.
pub(crate) const KEY_VAULT_API_VERSION: &str = "7.4";

/// The scope of Key Vault tokens in the public cloud (resource `https://vault.azure.net`).
pub const KEY_VAULT_SCOPE: &str = "https://vault.azure.net/.default";

/// The DNS suffixes of Key Vault and Managed HSM in Azure's clouds (public, China, US
/// Government, Germany), the hosts [`KeyVaultCertificate`] sends the vault's token to (the
/// list Microsoft.Data.SqlClient's Key Vault provider trusts). Loopback hosts are accepted
/// too, for tests; any other host needs
/// [`KeyVaultCertificateBuilder::allow_any_host`].
pub const KEY_VAULT_DNS_SUFFIXES: &[&str] = &[
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
    ".managedhsm.azure.net",
    ".managedhsm.azure.cn",
    ".managedhsm.usgovcloudapi.net",
    ".managedhsm.microsoftazure.de",
];

/// The content type of a certificate secret held as PKCS#12 (base64, no password).
pub(crate) const CONTENT_TYPE_PKCS12: &str = "application/x-pkcs12";

/// The content type of a certificate secret held as PEM (private key and certificate).
pub(crate) const CONTENT_TYPE_PEM: &str = "application/x-pem-file";

/// A certificate in Azure Key Vault, loaded with its private key; a [`CredentialSource`]
/// for [`ConfidentialClient`](crate::credentials::ConfidentialClient) (`SourceType: KeyVault`).
///
/// The vault's token comes from any [`TokenSource`]: usually a
/// [`ManagedIdentityCredential`](crate::credentials::ManagedIdentityCredential), or another
/// [`ConfidentialClient`](crate::credentials::ConfidentialClient). The scope is
/// `https://vault.{suffix}/.default` for vaults named `*.vault.{suffix}` (public and
/// sovereign clouds), `https://vault.azure.net/.default` otherwise.
///
/// Loading checks, as Microsoft.Identity.Web does, that the certificate is enabled and
/// within its `nbf`/`exp` window and that its key is exportable (else the vault keeps the
/// private key and it cannot sign client assertions), then reads the secret version the
/// certificate names (`sid`, which must be on the same vault) as PKCS#12
/// (`application/x-pkcs12`) or PEM (`application/x-pem-file`). Key Vault errors
/// (`{"error":{"code","message"}}`) become a [`CredentialError::Refused`] naming the vault,
/// the certificate, the status and the code, with what to check. A 401 is retried once with
/// a fresh token.
///
/// The vault's token is sent only to a Key Vault host: a `KeyVaultUrl` whose host ends with
/// one of [`KEY_VAULT_DNS_SUFFIXES`] (`contoso.vault.azure.net`, …) or is a loopback
/// address (tests). A vault elsewhere (Azure Stack Hub, a private DNS name) is refused unless
/// [`KeyVaultCertificateBuilder::allow_any_host`] (or
/// [`CredentialDescriptions::allow_any_key_vault_host`](crate::credentials::CredentialDescriptions::allow_any_key_vault_host))
/// says so, because a managed identity's token for Key Vault opens every vault the identity
/// can read.
///
/// ```
/// use std::sync::Arc;
/// use tower_azure_auth::credentials::{Environment, KeyVaultCertificate, ManagedIdentityCredential};
///
/// let identity = ManagedIdentityCredential::builder().environment(Environment::from_pairs([
///     ("MSAL_MANAGED_IDENTITY_ENDPOINT", "http://127.0.0.1:9/token"),
/// ])).build()?;
/// let source = KeyVaultCertificate::new(
///     "https://contoso.vault.azure.net", "ServiceApiCert", Arc::new(identity.clone()))?;
/// assert_eq!(source.scope(), "https://vault.azure.net/.default");
///
/// // Only https (or loopback http, for tests).
/// let refused = KeyVaultCertificate::new("http://contoso.vault.azure.net", "c", Arc::new(identity.clone()));
/// assert!(refused.is_err());
///
/// // Only Key Vault hosts, unless allowed explicitly.
/// let elsewhere = KeyVaultCertificate::new("https://vault.contoso.com", "c", Arc::new(identity.clone()));
/// assert!(elsewhere.unwrap_err().to_string().contains("KeyVaultUrl"));
/// let stack_hub = KeyVaultCertificate::builder("https://contoso.vault.local.azurestack.external", "c", Arc::new(identity))
///     .allow_any_host(true)
///     .build()?;
/// # let _ = stack_hub;
/// # Ok::<(), tower_azure_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct KeyVaultCertificate {
    vault: Url,
    name: String,
    scope: String,
    token_source: Arc<dyn TokenSource>,
}

impl fmt::Debug for KeyVaultCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVaultCertificate")
            .field("vault", &self.vault.as_str())
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("token_source", &self.token_source)
            .finish()
    }
}

/// `https://vault.{suffix}/.default` for `{name}.vault.{suffix}`,
/// `https://managedhsm.{suffix}/.default` for `{name}.managedhsm.{suffix}`.
fn scope_for(vault: &Url) -> String {
    let host = vault.host_str().unwrap_or_default();
    if let Some((_, suffix)) = host.split_once(".vault.") {
        return format!("https://vault.{suffix}/.default");
    }
    if let Some((_, suffix)) = host.split_once(".managedhsm.") {
        return format!("https://managedhsm.{suffix}/.default");
    }
    KEY_VAULT_SCOPE.to_owned()
}

/// Whether the vault's token may go to `vault`'s host: a Key Vault suffix or loopback.
fn is_key_vault_host(vault: &Url) -> bool {
    if is_loopback(vault) {
        return true;
    }
    let Some(url::Host::Domain(host)) = vault.host() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    KEY_VAULT_DNS_SUFFIXES
        .iter()
        .any(|suffix| host.len() > suffix.len() && host.ends_with(suffix))
}

fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Builds a [`KeyVaultCertificate`]; from [`KeyVaultCertificate::builder`].
#[derive(Debug)]
#[must_use]
pub struct KeyVaultCertificateBuilder {
    vault_url: String,
    name: String,
    token_source: Arc<dyn TokenSource>,
    allow_any_host: bool,
}

impl KeyVaultCertificateBuilder {
    /// Sends the vault's token to a vault on any host (Azure Stack Hub, a private DNS name),
    /// not only to [`KEY_VAULT_DNS_SUFFIXES`] and loopback. Default false. https is still
    /// required (http only on loopback).
    pub fn allow_any_host(mut self, allow: bool) -> Self {
        self.allow_any_host = allow;
        self
    }

    /// Builds the source.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InsecureUrl`] for plain http other than loopback;
    /// [`ConfigError::Invalid`] naming `KeyVaultUrl` for a URL with a query or on a host that
    /// is not a Key Vault host (unless [`allow_any_host`](Self::allow_any_host)), naming
    /// `KeyVaultCertificateName` for a name that is not 1–127 letters, digits and dashes.
    pub fn build(self) -> Result<KeyVaultCertificate, ConfigError> {
        let Self {
            vault_url,
            name,
            token_source,
            allow_any_host,
        } = self;
        let vault_url = vault_url.as_str();
        let mut vault = Url::parse(vault_url.trim()).map_err(|e| ConfigError::Invalid {
            key: "KeyVaultUrl".into(),
            reason: format!("`{vault_url}` is not a URL: {e}"),
        })?;
        require_secure(&vault, "KeyVaultUrl")?;
        if vault.query().is_some() || vault.fragment().is_some() || vault.cannot_be_a_base() {
            return Err(ConfigError::Invalid {
                key: "KeyVaultUrl".into(),
                reason: format!("`{vault_url}` must be the vault's base URL, without a query"),
            });
        }
        if !allow_any_host && !is_key_vault_host(&vault) {
            return Err(ConfigError::Invalid {
                key: "KeyVaultUrl".into(),
                reason: format!(
                    "`{vault_url}` is not a Key Vault host (*{}); the vault's token is sent only to Key Vault (allow another host with allow_any_host / allow_any_key_vault_host)",
                    KEY_VAULT_DNS_SUFFIXES.join(", *")
                ),
            });
        }
        if !vault.path().ends_with('/') {
            let path = format!("{}/", vault.path());
            vault.set_path(&path);
        }
        let name = name.trim();
        if !valid_name(name) {
            return Err(ConfigError::Invalid {
                key: "KeyVaultCertificateName".into(),
                reason: format!(
                    "`{name}` is not a Key Vault certificate name (1 to 127 letters, digits and dashes)"
                ),
            });
        }
        Ok(KeyVaultCertificate {
            scope: scope_for(&vault),
            vault,
            name: name.to_owned(),
            token_source,
        })
    }
}

impl KeyVaultCertificate {
    /// The certificate `name` in the vault at `vault_url` (`https://{vault}.vault.azure.net`),
    /// with tokens from `token_source`; the vault must be on a Key Vault host (see
    /// [`KeyVaultCertificateBuilder::allow_any_host`] for others).
    ///
    /// # Errors
    ///
    /// As [`KeyVaultCertificateBuilder::build`].
    pub fn new(
        vault_url: &str,
        name: &str,
        token_source: Arc<dyn TokenSource>,
    ) -> Result<Self, ConfigError> {
        Self::builder(vault_url, name, token_source).build()
    }

    /// A builder, for a vault on a host other than Key Vault's.
    pub fn builder(
        vault_url: impl Into<String>,
        name: impl Into<String>,
        token_source: Arc<dyn TokenSource>,
    ) -> KeyVaultCertificateBuilder {
        KeyVaultCertificateBuilder {
            vault_url: vault_url.into(),
            name: name.into(),
            token_source,
            allow_any_host: false,
        }
    }

    /// Asks the token source for this scope instead of the derived one.
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The vault's base URL (with a trailing slash).
    #[must_use]
    pub fn vault(&self) -> &Url {
        &self.vault
    }

    /// The certificate name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scope of the vault's tokens.
    #[must_use]
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// What errors name: `the KeyVault certificate `{name}` in `{vault}``, with the
    /// `SourceType` spelling a configuration uses.
    pub(crate) fn origin(&self) -> String {
        format!(
            "the KeyVault certificate `{}` in `{}`",
            self.name,
            self.vault.as_str().trim_end_matches('/')
        )
    }

    fn invalid_response(&self, reason: impl fmt::Display) -> CredentialError {
        CredentialError::InvalidResponse {
            origin: self.origin(),
            reason: reason.to_string(),
        }
    }

    /// Loads the certificate with its private key, its validity checked against the
    /// context's clock.
    ///
    /// # Errors
    ///
    /// A [`CredentialError`] naming the vault and the certificate:
    /// [`NoToken`](CredentialError::NoToken) when the token source failed,
    /// [`Unreachable`](CredentialError::Unreachable) when the vault cannot be reached,
    /// [`Refused`](CredentialError::Refused) for an error status (403: no access; 404: no
    /// such certificate), [`InvalidResponse`](CredentialError::InvalidResponse) for an
    /// answer that is not Key Vault's,
    /// [`NotACertificate`](CredentialError::NotACertificate) when the certificate is
    /// disabled, outside its validity, not exportable or its secret is not PKCS#12 or PEM,
    /// [`Certificate`](CredentialError::Certificate) when the certificate itself cannot be
    /// used.
    pub async fn fetch(
        &self,
        context: &CredentialContext,
    ) -> Result<ClientCertificate, CredentialError> {
        let mut url = self
            .vault
            .join(&format!("certificates/{}", self.name))
            .map_err(|e| self.invalid_response(e))?;
        url.query_pairs_mut()
            .append_pair("api-version", KEY_VAULT_API_VERSION);
        let body = self.get(context, &url).await?;
        let bundle: CertificateBundle = serde_json::from_slice(&body)
            .map_err(|e| self.invalid_response(format!("not a certificate bundle: {e}")))?;
        let now = context.clock.unix_seconds();
        usable(&bundle, now).map_err(|reason| CredentialError::NotACertificate {
            origin: self.origin(),
            reason,
        })?;
        let mut secret_url = secret_url(&self.vault, &self.name, &bundle, now)
            .map_err(|reason| self.invalid_response(reason))?;
        secret_url
            .query_pairs_mut()
            .append_pair("api-version", KEY_VAULT_API_VERSION);
        let body = self.get(context, &secret_url).await?;
        let secret: SecretBundle = serde_json::from_slice(&body)
            .map_err(|e| self.invalid_response(format!("not a secret bundle: {e}")))?;
        let loader = CertificateLoader::new().clock(context.clock.clone());
        let certificate = load_secret(&loader, &secret, self.origin())?;
        debug!(target: TARGET, thumbprint = %certificate.thumbprints().sha1_hex(), "certificate loaded from Key Vault");
        Ok(certificate)
    }

    /// GET with a bearer token; a 401 is retried once with a fresh token.
    async fn get(&self, context: &CredentialContext, url: &Url) -> Result<Bytes, CredentialError> {
        match self.call(&context.http, url, None).await {
            Ok((status, body)) if (200..300).contains(&status) => Ok(body),
            Ok((status, body)) => Err(refused(self.origin(), status, &body)),
            Err(VaultCallError::Token(source) | VaultCallError::Header(source)) => {
                Err(CredentialError::NoToken {
                    origin: self.origin(),
                    scope: self.scope.clone(),
                    source: Box::new(source),
                })
            }
            Err(VaultCallError::Unreachable(source) | VaultCallError::Unreadable(source)) => {
                Err(CredentialError::Unreachable {
                    origin: self.origin(),
                    source,
                })
            }
        }
    }

    /// A request to the vault with a bearer token (GET, or POST with a JSON body); a 401 is
    /// retried once with a fresh token; the final status and body are returned.
    pub(crate) async fn call(
        &self,
        http: &crate::authority::HttpClient,
        url: &Url,
        json_body: Option<&[u8]>,
    ) -> Result<(u16, Bytes), VaultCallError> {
        let scopes = [self.scope.clone()];
        let mut force = false;
        loop {
            let token = self
                .token_source
                .token(&scopes, force)
                .await
                .map_err(VaultCallError::Token)?;
            let header = bearer_header(&token).map_err(VaultCallError::Header)?;
            let request = match json_body {
                Some(body) => http
                    .reqwest()
                    .post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body.to_vec()),
                None => http.reqwest().get(url.clone()),
            }
            .header(http::header::AUTHORIZATION, header)
            .header(http::header::ACCEPT, "application/json");
            let response = http
                .send(request, url.as_str())
                .await
                .map_err(VaultCallError::Unreachable)?;
            let status = response.status().as_u16();
            let body = http
                .read_body(response)
                .await
                .map_err(VaultCallError::Unreadable)?;
            if status == 401 && !force {
                debug!(target: TARGET, "the vault refused the token; retrying once with a fresh one");
                force = true;
                continue;
            }
            if status == 401 && !force {
                debug!(target: TARGET, "the vault refused the token; retrying once with a fresh one");
                force = true;
                continue;
            }
            return Ok((status, body));
        }
    }
}

/// Why a request to the vault got no answer.
#[derive(Debug)]
pub(crate) enum VaultCallError {
    /// No token for the vault.
    Token(crate::credentials::token::TokenError),
    /// The token cannot be sent as a header.
    Header(crate::credentials::token::TokenError),
    /// The vault cannot be reached.
    Unreachable(crate::authority::FetchError),
    /// The answer cannot be read.
    Unreadable(crate::authority::FetchError),
}

impl CredentialSource for KeyVaultCertificate {
    fn load<'a>(
        &'a self,
        context: &'a CredentialContext,
    ) -> BoxFuture<'a, Result<ClientCredential, CredentialError>> {
        Box::pin(async move { self.fetch(context).await.map(ClientCredential::Certificate) })
    }
}

#[derive(Deserialize)]
struct CertificateBundle {
    sid: Option<String>,
    #[serde(default)]
    attributes: Option<Attributes>,
    #[serde(default)]
    policy: Option<Policy>,
}

/// A certificate's `attributes` in Key Vault.
#[derive(Deserialize)]
pub(crate) struct Attributes {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

/// A certificate's `policy` in Key Vault (what this crate reads of it).
#[derive(Deserialize)]
pub(crate) struct Policy {
    pub(crate) key_props: Option<KeyProps>,
}

/// A certificate policy's `key_props`.
#[derive(Deserialize)]
pub(crate) struct KeyProps {
    pub(crate) exportable: Option<bool>,
    pub(crate) kty: Option<String>,
}

/// Refuses a certificate the vault marks disabled, not yet valid or expired; returns its
/// `exp` (unix seconds) when it has one.
pub(crate) fn check_attributes(
    attributes: Option<&Attributes>,
    now: u64,
) -> Result<Option<i64>, String> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let Some(attributes) = attributes else {
        return Ok(None);
    };
    if attributes.enabled == Some(false) {
        return Err("the certificate is disabled in the vault".into());
    }
    if let Some(nbf) = attributes.nbf {
        if now < nbf {
            return Err(format!(
                "the certificate is not valid before {nbf} (unix time)"
            ));
        }
    }
    if let Some(exp) = attributes.exp {
        if now >= exp {
            return Err(format!("the certificate expired at {exp} (unix time)"));
        }
    }
    Ok(attributes.exp)
}

/// The secret; no `Debug`: it holds the private key.
#[derive(Deserialize)]
struct SecretBundle {
    value: Option<String>,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

#[derive(Deserialize)]
pub(crate) struct ErrorDetail {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) innererror: Option<Box<Self>>,
}

/// A Key Vault error status as a [`CredentialError::Refused`]: the code and message of its
/// `{"error":{"code","message"}}`, and what the status means.
fn refused(origin: String, status: u16, body: &[u8]) -> CredentialError {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let code = detail.as_ref().and_then(|d| d.code.clone());
    let said = detail
        .and_then(|d| d.message)
        .map(|m| m.chars().take(300).collect::<String>().trim().to_owned())
        .filter(|m| !m.is_empty());
    let advice = match status {
        401 => "the vault did not accept the token (missing, expired, for another resource than the vault, or from another tenant)",
        403 => "the identity has no get permission on secrets and certificates in this vault (grant it the `Key Vault Secrets User` and `Key Vault Certificate User` roles, or an access policy with get on certificates and secrets), or the vault's firewall refuses this address",
        404 => "the vault has no such certificate (check KeyVaultCertificateName, and that it was not deleted)",
        429 => "the vault is throttling requests, try again later",
        _ => "",
    };
    let message = match (said, advice) {
        (Some(said), "") => said,
        (Some(said), advice) => format!("{said}; {advice}"),
        (None, "") => "no details".to_owned(),
        (None, advice) => advice.to_owned(),
    };
    CredentialError::Refused {
        origin,
        status,
        code,
        message,
    }
}

/// The secret to read: the certificate [`usable`], then `sid` checked (same vault,
/// `secrets/{name}/{version}`).
fn secret_url(
    vault: &Url,
    name: &str,
    bundle: &CertificateBundle,
    now: u64,
) -> Result<Url, String> {
    usable(bundle, now)?;
    let sid = bundle
        .sid
        .as_deref()
        .ok_or("the certificate bundle has no `sid` (secret id)")?;
    sid_url(vault, name, sid)
}

/// The certificate is enabled, within `nbf`/`exp`, with an exportable key.
fn usable(bundle: &CertificateBundle, now: u64) -> Result<(), String> {
    check_attributes(bundle.attributes.as_ref(), now)?;
    let exportable = bundle
        .policy
        .as_ref()
        .and_then(|p| p.key_props.as_ref())
        .and_then(|k| k.exportable);
    if exportable == Some(false) {
        return Err("its key is not exportable: the vault keeps the private key, so it cannot sign client assertions (create the certificate with an exportable key)".into());
    }
    Ok(())
}

/// Where [`secret_url`] finds the secret.
fn sid_url(vault: &Url, name: &str, sid: &str) -> Result<Url, String> {
    let sid_url = Url::parse(sid).map_err(|_| format!("the secret id `{sid}` is not a URL"))?;
    if sid_url.origin() != vault.origin() {
        // Never send the vault's token elsewhere.
        return Err(format!("the secret id `{sid}` is not on this vault"));
    }
    let relative = sid_url
        .path()
        .strip_prefix(vault.path())
        .ok_or_else(|| format!("the secret id `{sid}` is not on this vault"))?;
    let segments: Vec<&str> = relative.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        ["secrets", secret_name, version]
            if secret_name.eq_ignore_ascii_case(name)
                && !version.is_empty()
                && version.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            vault
                .join(&format!("secrets/{secret_name}/{version}"))
                .map_err(|e| e.to_string())
        }
        _ => Err(format!(
            "the secret id `{sid}` is not of the form {{vault}}/secrets/{name}/{{version}}"
        )),
    }
}

/// The certificate from the secret: base64 PKCS#12 or PEM, by content type (sniffed when
/// absent).
fn load_secret(
    loader: &CertificateLoader,
    secret: &SecretBundle,
    origin: String,
) -> Result<ClientCertificate, CredentialError> {
    let Some(value) = secret.value.as_deref().filter(|v| !v.trim().is_empty()) else {
        return Err(CredentialError::NotACertificate {
            origin,
            reason: "the secret has no value".into(),
        });
    };
    let content_type = secret.content_type.as_deref().map(str::trim);
    let pem = match content_type {
        Some(t) if t.eq_ignore_ascii_case(CONTENT_TYPE_PEM) => true,
        Some(t) if t.eq_ignore_ascii_case(CONTENT_TYPE_PKCS12) => false,
        None => value.trim_start().starts_with("-----BEGIN"),
        Some(other) => {
            return Err(CredentialError::NotACertificate {
                origin,
                reason: format!(
                    "the secret's content type is `{other}`; expected {CONTENT_TYPE_PKCS12} or {CONTENT_TYPE_PEM}"
                ),
            })
        }
    };
    let result = if pem {
        loader.from_pem(value.as_bytes())
    } else {
        loader.from_base64_pkcs12(value, None)
    };
    result.map_err(|source| CredentialError::Certificate {
        origin: format!("{origin}, a {} secret", if pem { "PEM" } else { "PKCS#12" }),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_ids() {
        struct Case {
            name: &'static str,
            vault: &'static str,
            bundle: &'static str,
            expected: Result<&'static str, &'static str>,
        }
        let now = 1_700_000_000;
        let cases = [
            Case {
                name: "azure shape",
                vault: "https://contoso.vault.azure.net/",
                bundle: r#"{"id":"https://contoso.vault.azure.net/certificates/cert/abc","sid":"https://contoso.vault.azure.net/secrets/cert/0123abcd","attributes":{"enabled":true,"nbf":1600000000,"exp":1800000000},"policy":{"key_props":{"exportable":true,"kty":"RSA"}}}"#,
                expected: Ok("https://contoso.vault.azure.net/secrets/cert/0123abcd"),
            },
            Case {
                name: "name case differs",
                vault: "https://contoso.vault.azure.net/",
                bundle: r#"{"sid":"https://contoso.vault.azure.net/secrets/CERT/01"}"#,
                expected: Ok("https://contoso.vault.azure.net/secrets/CERT/01"),
            },
            Case {
                name: "vault under a path (local test server)",
                vault: "http://127.0.0.1:8080/vault/",
                bundle: r#"{"sid":"http://127.0.0.1:8080/vault/secrets/cert/01"}"#,
                expected: Ok("http://127.0.0.1:8080/vault/secrets/cert/01"),
            },
            Case {
                name: "another host",
                vault: "https://contoso.vault.azure.net/",
                bundle: r#"{"sid":"https://evil.example/secrets/cert/01"}"#,
                expected: Err("not on this vault"),
            },
            Case {
                name: "another certificate",
                vault: "https://contoso.vault.azure.net/",
                bundle: r#"{"sid":"https://contoso.vault.azure.net/secrets/other/01"}"#,
                expected: Err("not of the form"),
            },
            Case {
                name: "no version",
                vault: "https://contoso.vault.azure.net/",
                bundle: r#"{"sid":"https://contoso.vault.azure.net/secrets/cert"}"#,
                expected: Err("not of the form"),
            },
            Case {
                name: "no sid",
                vault: "https://contoso.vault.azure.net/",
                bundle: r#"{"attributes":{"enabled":true}}"#,
                expected: Err("no `sid`"),
            },
            Case {
                name: "disabled",
                vault: "https://contoso.vault.azure.net/",
                bundle: r#"{"sid":"https://contoso.vault.azure.net/secrets/cert/01","attributes":{"enabled":false}}"#,
                expected: Err("disabled"),
            },
            Case {
                name: "expired",
                vault: "https://contoso.vault.azure.net/",
                bundle: r#"{"sid":"https://contoso.vault.azure.net/secrets/cert/01","attributes":{"exp":1600000000}}"#,
                expected: Err("expired"),
            },
            Case {
                name: "not yet valid",
                vault: "https://contoso.vault.azure.net/",
                bundle: r#"{"sid":"https://contoso.vault.azure.net/secrets/cert/01","attributes":{"nbf":1800000000}}"#,
                expected: Err("not valid before"),
            },
            Case {
                name: "not exportable",
                vault: "https://contoso.vault.azure.net/",
                bundle: r#"{"sid":"https://contoso.vault.azure.net/secrets/cert/01","policy":{"key_props":{"exportable":false}}}"#,
                expected: Err("not exportable"),
            },
        ];
        for case in cases {
            let vault = Url::parse(case.vault).unwrap();
            let bundle: CertificateBundle = serde_json::from_str(case.bundle).unwrap();
            let result = secret_url(&vault, "cert", &bundle, now);
            match (case.expected, result) {
                (Ok(url), Ok(found)) => assert_eq!(found.as_str(), url, "{}", case.name),
                (Err(needle), Err(reason)) => {
                    assert!(reason.contains(needle), "{}: {reason}", case.name)
                }
                (expected, found) => panic!("{}: expected {expected:?}, got {found:?}", case.name),
            }
        }
    }

    #[test]
    fn error_statuses_are_explained() {
        struct Case {
            name: &'static str,
            status: u16,
            body: &'static str,
            needles: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "403 access denied",
                status: 403,
                body: r#"{"error":{"code":"Forbidden","message":"The user, group or application does not have secrets get permission","innererror":{"code":"AccessDenied"}}}"#,
                needles: &[
                    "HTTP 403",
                    "(Forbidden)",
                    "secrets get permission",
                    "no get permission on secrets",
                ],
            },
            Case {
                name: "401",
                status: 401,
                body: r#"{"error":{"code":"Unauthorized","message":"AKV10022: Invalid audience."}}"#,
                needles: &[
                    "HTTP 401",
                    "(Unauthorized)",
                    "AKV10022",
                    "did not accept the token",
                ],
            },
            Case {
                name: "404",
                status: 404,
                body: r#"{"error":{"code":"CertificateNotFound","message":"A certificate with (name/id) x was not found in this key vault."}}"#,
                needles: &[
                    "HTTP 404",
                    "(CertificateNotFound)",
                    "KeyVaultCertificateName",
                ],
            },
            Case {
                name: "429",
                status: 429,
                body: r#"{"error":{"code":"Throttled","message":"Too many requests"}}"#,
                needles: &["HTTP 429", "throttling"],
            },
            Case {
                name: "no json",
                status: 502,
                body: "<html>bad gateway</html>",
                needles: &["HTTP 502", "no error code"],
            },
        ];
        for case in cases {
            let error = refused("the vault".into(), case.status, case.body.as_bytes());
            let text = error.to_string();
            for needle in case.needles {
                assert!(
                    text.contains(needle),
                    "{}: {text:?} lacks {needle:?}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn only_key_vault_hosts_get_the_vault_token() {
        struct Case {
            name: &'static str,
            url: &'static str,
            accepted: bool,
        }
        let cases = [
            Case {
                name: "public",
                url: "https://contoso.vault.azure.net",
                accepted: true,
            },
            Case {
                name: "china",
                url: "https://contoso.vault.azure.cn/",
                accepted: true,
            },
            Case {
                name: "us government",
                url: "https://c.vault.usgovcloudapi.net",
                accepted: true,
            },
            Case {
                name: "germany",
                url: "https://c.vault.microsoftazure.de",
                accepted: true,
            },
            Case {
                name: "managed hsm",
                url: "https://c.managedhsm.azure.net",
                accepted: true,
            },
            Case {
                name: "managed hsm china",
                url: "https://c.managedhsm.azure.cn",
                accepted: true,
            },
            Case {
                name: "managed hsm us gov",
                url: "https://c.managedhsm.usgovcloudapi.net",
                accepted: true,
            },
            Case {
                name: "upper case",
                url: "https://C.VAULT.AZURE.NET",
                accepted: true,
            },
            Case {
                name: "trailing dot",
                url: "https://c.vault.azure.net.",
                accepted: true,
            },
            Case {
                name: "loopback",
                url: "http://127.0.0.1:8080/vault",
                accepted: true,
            },
            Case {
                name: "localhost",
                url: "https://localhost:8443",
                accepted: true,
            },
            Case {
                name: "the suffix alone",
                url: "https://vault.azure.net",
                accepted: false,
            },
            Case {
                name: "no dot before the suffix",
                url: "https://evilvault.azure.net",
                accepted: false,
            },
            Case {
                name: "suffix inside the host",
                url: "https://c.vault.azure.net.evil.example",
                accepted: false,
            },
            Case {
                name: "another host",
                url: "https://vault.contoso.com",
                accepted: false,
            },
            Case {
                name: "an ip address",
                url: "https://10.0.0.4",
                accepted: false,
            },
        ];
        for case in cases {
            assert_eq!(
                is_key_vault_host(&Url::parse(case.url).unwrap()),
                case.accepted,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn scopes_follow_the_cloud() {
        struct Case {
            name: &'static str,
            vault: &'static str,
            scope: &'static str,
        }
        let cases = [
            Case {
                name: "public",
                vault: "https://contoso.vault.azure.net",
                scope: "https://vault.azure.net/.default",
            },
            Case {
                name: "china",
                vault: "https://contoso.vault.azure.cn/",
                scope: "https://vault.azure.cn/.default",
            },
            Case {
                name: "us government",
                vault: "https://contoso.vault.usgovcloudapi.net",
                scope: "https://vault.usgovcloudapi.net/.default",
            },
            Case {
                name: "managed hsm",
                vault: "https://contoso.managedhsm.azure.net",
                scope: "https://managedhsm.azure.net/.default",
            },
            Case {
                name: "local test server",
                vault: "http://127.0.0.1:8080/vault",
                scope: "https://vault.azure.net/.default",
            },
        ];
        for case in cases {
            assert_eq!(
                scope_for(&Url::parse(case.vault).unwrap()),
                case.scope,
                "{}",
                case.name
            );
        }
    }
}
