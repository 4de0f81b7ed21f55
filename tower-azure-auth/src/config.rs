//! Configuration with Microsoft.Identity.Web's `appsettings.json` shape and key names, so a
//! .NET team can carry its settings over: an `AzureAd` section for the API ([`AzureAdOptions`])
//! and a `CallApi` section for the client ([`CallApiOptions`]).
//!
//! Settings come from a JSON file and from environment variables with `__` as the separator
//! (`AzureAd__ClientId`, `CallApi__ClientCertificates__0__SourceType`); the environment wins.
//! Keys are case-insensitive, as in .NET configuration; numbers and booleans may be given as
//! strings (environment variables always are).
//!
//! ```
//! use tower_azure_auth::config::{AzureAdOptions, ConfigSource};
//!
//! let json = r#"{
//!   "AzureAd": {
//!     "Instance": "https://login.microsoftonline.com/",
//!     "TenantId": "7ff95b15-dc21-4ba6-bc92-824856578fc1",
//!     "ClientId": "b178f3a5-7588-492a-924f-72d7887b7e48"
//!   }
//! }"#;
//! let env = [("AZUREAD__CLIENTID", "11111111-1111-1111-1111-111111111111")];
//! let options: AzureAdOptions = ConfigSource::from_json_str(json)
//!     .unwrap()
//!     .with_env(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
//!     .section("AzureAd")
//!     .unwrap();
//! assert_eq!(options.client_id.as_deref(), Some("11111111-1111-1111-1111-111111111111"));
//! assert_eq!(options.tenant_id.as_deref(), Some("7ff95b15-dc21-4ba6-bc92-824856578fc1"));
//! ```

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use crate::algorithm::SignatureAlgorithm;
use crate::error::ConfigError;

mod authorization;
mod inbound_fleet;
mod source;
mod token_cache;

pub use self::authorization::{AuthorizationOptions, ClaimOptions, PolicyOptions};
pub use self::inbound_fleet::{LastKnownGoodOptions, RedisSection, RevocationOptions};
pub use self::source::ConfigSource;
pub use self::token_cache::{RedisCacheOptions, TokenCacheOptions};

/// The `AzureAd` section: what a protected API needs to validate tokens (and, for a web API
/// that also calls others, its own credentials).
#[derive(Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct AzureAdOptions {
    /// `Instance`: the cloud instance, e.g. `https://login.microsoftonline.com/`, or a local
    /// dev authority such as `http://127.0.0.1:5100/`.
    #[serde(rename = "instance")]
    pub instance: Option<String>,
    /// `TenantId`: a tenant GUID or domain, or `common`/`organizations` for multi-tenant APIs.
    #[serde(rename = "tenantid")]
    pub tenant_id: Option<String>,
    /// `Domain`: the tenant's primary domain (informational).
    #[serde(rename = "domain")]
    pub domain: Option<String>,
    /// `ClientId`: this application's id. For an API, the default audience (v2 tokens); for a
    /// client application, the id it authenticates as.
    #[serde(rename = "clientid")]
    pub client_id: Option<String>,
    /// `Authority`: instead of `Instance` + `TenantId`, the authority URL; any OpenID Connect
    /// issuer is accepted (its metadata is read from `{Authority}/.well-known/openid-configuration`).
    #[serde(rename = "authority")]
    pub authority: Option<String>,
    /// `Audience`: the accepted audience, replacing the default (`ClientId`, and for v1
    /// tokens of an Entra authority also `api://{ClientId}`).
    #[serde(rename = "audience")]
    pub audience: Option<String>,
    /// `Audiences`: more accepted audiences.
    #[serde(rename = "audiences", default, deserialize_with = "de_string_list")]
    pub audiences: Vec<String>,
    /// `AllowedTenants`: for multi-tenant APIs, the tenants whose tokens are accepted
    /// (empty: any tenant that the issuer rules accept). Trimmed, compared ignoring case.
    #[serde(
        rename = "allowedtenants",
        default,
        deserialize_with = "de_string_list"
    )]
    pub allowed_tenants: Vec<String>,
    /// `AllowedClientIds`: the only calling applications (`azp` in v2 tokens, `appid` in v1
    /// tokens) whose tokens the validator accepts; any other caller gets 401 `invalid_token`
    /// ([`AuthErrorKind::ClientNotAllowed`](crate::AuthErrorKind::ClientNotAllowed)). Empty
    /// (the default): any caller. Trimmed, compared ignoring case. See
    /// [`TokenValidatorBuilder::allowed_client_ids`](crate::validation::TokenValidatorBuilder::allowed_client_ids).
    #[serde(
        rename = "allowedclientids",
        default,
        deserialize_with = "de_string_list"
    )]
    pub allowed_client_ids: Vec<String>,
    /// `ValidAlgorithms`: the signature algorithms accepted (default `RS256`). Only RSA
    /// algorithms (`RS256/384/512`, `PS256/384/512`) may be listed.
    #[serde(
        rename = "validalgorithms",
        default,
        deserialize_with = "de_string_list"
    )]
    pub valid_algorithms: Vec<String>,
    /// `ClockSkewSeconds`: leeway for `exp` and `nbf` (default 300).
    #[serde(rename = "clockskewseconds", default, deserialize_with = "de_opt_u64")]
    pub clock_skew_seconds: Option<u64>,
    /// `MaxTokenSize`: tokens longer than this many bytes are refused (default 16384).
    #[serde(rename = "maxtokensize", default, deserialize_with = "de_opt_u64")]
    pub max_token_size: Option<u64>,
    /// `AllowWebApiToBeAuthorizedByACL`: accept tokens that carry neither `scp` nor `roles`
    /// (default false, as in Microsoft.Identity.Web: such tokens are refused with 401).
    #[serde(
        rename = "allowwebapitobeauthorizedbyacl",
        default,
        deserialize_with = "de_opt_bool"
    )]
    pub allow_web_api_to_be_authorized_by_acl: Option<bool>,
    /// `ClientSecret`: a client secret, for an API that also calls others.
    #[serde(rename = "clientsecret")]
    pub client_secret: Option<String>,
    /// `ClientCertificates`: certificate descriptions (Microsoft.Identity.Web's legacy list).
    #[serde(rename = "clientcertificates", default)]
    pub client_certificates: Vec<CredentialDescription>,
    /// `ClientCredentials`: credential descriptions, tried in order.
    #[serde(rename = "clientcredentials", default)]
    pub client_credentials: Vec<CredentialDescription>,
    /// `SendX5C`: send the certificate chain in client assertions (subject name + issuer
    /// authentication). Default false.
    #[serde(rename = "sendx5c", default, deserialize_with = "de_opt_bool")]
    pub send_x5c: Option<bool>,
    /// `EnablePiiLogging`: log personal data (client ids, tenant ids, claims values) at debug,
    /// including the expected and actual values of a refused token. Tokens, assertions and
    /// keys are never logged. Default false.
    #[serde(rename = "enablepiilogging", default, deserialize_with = "de_opt_bool")]
    pub enable_pii_logging: Option<bool>,
    /// `DetailedErrors`: for development only, put the expected and actual values of a
    /// refused token (audience, issuer, tenant, client, key id) in the 401 response's
    /// `error_description` (and in the log); by default the response names the failed check
    /// only. Default false. See
    /// [`TokenValidatorBuilder::detailed_errors`](crate::validation::TokenValidatorBuilder::detailed_errors).
    #[serde(rename = "detailederrors", default, deserialize_with = "de_opt_bool")]
    pub detailed_errors: Option<bool>,
    /// `LastKnownGoodKeys`: keep fetched signing keys to start with while the authority is
    /// unreachable ([`LastKnownGoodOptions`]). Default: not kept.
    #[serde(rename = "lastknowngoodkeys")]
    pub last_known_good_keys: Option<LastKnownGoodOptions>,
    /// `Revocation`: share revocations with every replica ([`RevocationOptions`]). Default:
    /// revocations stay on the replica that made them.
    #[serde(rename = "revocation")]
    pub revocation: Option<RevocationOptions>,
}

/// The `CallApi` section of a client application's configuration: where to get a token and which API to call.
#[derive(Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct CallApiOptions {
    /// `ScopeForAccessToken`: e.g. `api://{api client id}/.default`.
    #[serde(rename = "scopeforaccesstoken")]
    pub scope_for_access_token: Option<String>,
    /// `ApiBaseAddress`: the API's base URL.
    #[serde(rename = "apibaseaddress")]
    pub api_base_address: Option<String>,
    /// `Instance`: e.g. `https://login.microsoftonline.com/`.
    #[serde(rename = "instance")]
    pub instance: Option<String>,
    /// `Domain`: the tenant's primary domain (informational).
    #[serde(rename = "domain")]
    pub domain: Option<String>,
    /// `TenantId`: the tenant the client belongs to.
    #[serde(rename = "tenantid")]
    pub tenant_id: Option<String>,
    /// `ClientId`: the calling application's id.
    #[serde(rename = "clientid")]
    pub client_id: Option<String>,
    /// `Authority`: instead of `Instance` + `TenantId`, any OpenID Connect authority.
    #[serde(rename = "authority")]
    pub authority: Option<String>,
    /// `ClientSecret`: a client secret (prefer certificates).
    #[serde(rename = "clientsecret")]
    pub client_secret: Option<String>,
    /// `ClientCertificates`: certificate descriptions, tried in order.
    #[serde(rename = "clientcertificates", default)]
    pub client_certificates: Vec<CredentialDescription>,
    /// `ClientCredentials`: credential descriptions, tried in order (after `ClientCertificates`).
    #[serde(rename = "clientcredentials", default)]
    pub client_credentials: Vec<CredentialDescription>,
    /// `SendX5C`: send the certificate in client assertions. Default false.
    #[serde(rename = "sendx5c", default, deserialize_with = "de_opt_bool")]
    pub send_x5c: Option<bool>,
    /// `EnablePiiLogging`: see [`AzureAdOptions::enable_pii_logging`].
    #[serde(rename = "enablepiilogging", default, deserialize_with = "de_opt_bool")]
    pub enable_pii_logging: Option<bool>,
    /// `TokenCache`: a token cache shared by the client's replicas (see [`TokenCacheOptions`]).
    #[serde(rename = "tokencache", default)]
    pub token_cache: TokenCacheOptions,
    /// `ClientCapabilities` (as Microsoft.Identity.Web names it): e.g. `["cp1"]` to declare
    /// continuous access evaluation (see
    /// [`ConfidentialClientBuilder::client_capabilities`](crate::credentials::ConfidentialClientBuilder::client_capabilities)).
    #[serde(rename = "clientcapabilities", default)]
    pub client_capabilities: Vec<String>,
}

/// Where a credential comes from (Microsoft.Identity.Web's `SourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceType {
    /// `KeyVault`: a certificate (with its private key) in Azure Key Vault.
    KeyVault,
    /// `Base64Encoded`: a base64 PKCS#12 in the configuration.
    Base64Encoded,
    /// `Path`: a PKCS#12 or PEM file on disk.
    Path,
    /// `ClientSecret`: a client secret.
    ClientSecret,
    /// `SignedAssertionFromManagedIdentity`: a managed-identity token used as the assertion.
    SignedAssertionFromManagedIdentity,
    /// `SignedAssertionFilePath`: a federated token file (AKS workload identity).
    SignedAssertionFilePath,
    /// `KeyVaultSigning` (an extension of Microsoft.Identity.Web's source types): a Key Vault
    /// certificate whose key signs client assertions inside the vault (`KeyVaultUrl`,
    /// `KeyVaultCertificateName`, optional `ManagedIdentityClientId`); the private key never
    /// leaves the vault.
    KeyVaultSigning,
    /// `Pkcs11` (an extension of Microsoft.Identity.Web's source types): a key in a PKCS#11
    /// token (an HSM) signs client assertions (`Pkcs11Module`, `Pkcs11TokenLabel`,
    /// `Pkcs11KeyLabel`, `Pkcs11PinFile`, optional `CertificateDiskPath`); needs the
    /// `pkcs11` feature.
    Pkcs11,
    /// Any other source type Microsoft.Identity.Web knows (certificate stores and others
    /// that have no meaning here); refused with a clear error when used.
    Unsupported,
}

impl SourceType {
    fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "keyvault" | "1" => Self::KeyVault,
            "base64encoded" | "2" => Self::Base64Encoded,
            "path" | "3" => Self::Path,
            "clientsecret" | "6" => Self::ClientSecret,
            "signedassertionfrommanagedidentity" | "7" => Self::SignedAssertionFromManagedIdentity,
            "signedassertionfilepath" | "8" => Self::SignedAssertionFilePath,
            "keyvaultsigning" => Self::KeyVaultSigning,
            "pkcs11" => Self::Pkcs11,
            _ => Self::Unsupported,
        }
    }
}

impl<'de> Deserialize<'de> for SourceType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self::parse(&s)),
            Value::Number(n) => Ok(Self::parse(&n.to_string())),
            other => Err(de::Error::custom(format!(
                "SourceType must be a string, not {other}"
            ))),
        }
    }
}

/// One credential (Microsoft.Identity.Web's `CredentialDescription` / `CertificateDescription`).
#[derive(Clone, Deserialize)]
#[non_exhaustive]
pub struct CredentialDescription {
    /// `SourceType`.
    #[serde(rename = "sourcetype")]
    pub source_type: SourceType,
    /// `KeyVaultUrl`: e.g. `https://myvault.vault.azure.net`.
    #[serde(rename = "keyvaulturl")]
    pub key_vault_url: Option<String>,
    /// `KeyVaultCertificateName`.
    #[serde(rename = "keyvaultcertificatename")]
    pub key_vault_certificate_name: Option<String>,
    /// `CertificateDiskPath`: a `.pfx`/`.p12` or `.pem` file.
    #[serde(rename = "certificatediskpath")]
    pub certificate_disk_path: Option<String>,
    /// `CertificatePassword`: the PKCS#12 password.
    #[serde(rename = "certificatepassword")]
    pub certificate_password: Option<String>,
    /// `Base64EncodedValue`: a base64 PKCS#12.
    #[serde(rename = "base64encodedvalue")]
    pub base64_encoded_value: Option<String>,
    /// `ClientSecret`.
    #[serde(rename = "clientsecret")]
    pub client_secret: Option<String>,
    /// `ManagedIdentityClientId`: a user-assigned managed identity's client id.
    #[serde(rename = "managedidentityclientid")]
    pub managed_identity_client_id: Option<String>,
    /// `SignedAssertionFileDiskPath`: the federated token file (default
    /// `AZURE_FEDERATED_TOKEN_FILE`).
    #[serde(rename = "signedassertionfilediskpath")]
    pub signed_assertion_file_disk_path: Option<String>,
    /// `TokenExchangeUrl`: the audience of the managed-identity token used as an assertion
    /// (default `api://AzureADTokenExchange`).
    #[serde(rename = "tokenexchangeurl")]
    pub token_exchange_url: Option<String>,
    /// `Pkcs11Module`: the path of the PKCS#11 module (`SourceType: Pkcs11`), e.g.
    /// `/usr/lib/softhsm/libsofthsm2.so`.
    #[serde(rename = "pkcs11module")]
    pub pkcs11_module: Option<String>,
    /// `Pkcs11TokenLabel`: the label of the token holding the key.
    #[serde(rename = "pkcs11tokenlabel")]
    pub pkcs11_token_label: Option<String>,
    /// `Pkcs11KeyLabel`: the label (`CKA_LABEL`) of the private key (and of the certificate
    /// when it is read from the token).
    #[serde(rename = "pkcs11keylabel")]
    pub pkcs11_key_label: Option<String>,
    /// `Pkcs11PinFile`: a file holding the user PIN (trailing newline ignored); the PIN is
    /// never logged.
    #[serde(rename = "pkcs11pinfile")]
    pub pkcs11_pin_file: Option<String>,
    /// `Skip`: ignore this description.
    #[serde(rename = "skip", default, deserialize_with = "de_opt_bool")]
    pub skip: Option<bool>,
}

impl CredentialDescription {
    /// A description of the given source type with no other field set.
    #[must_use]
    pub fn new(source_type: SourceType) -> Self {
        Self {
            source_type,
            key_vault_url: None,
            key_vault_certificate_name: None,
            certificate_disk_path: None,
            certificate_password: None,
            base64_encoded_value: None,
            client_secret: None,
            managed_identity_client_id: None,
            signed_assertion_file_disk_path: None,
            token_exchange_url: None,
            pkcs11_module: None,
            pkcs11_token_label: None,
            pkcs11_key_label: None,
            pkcs11_pin_file: None,
            skip: None,
        }
    }
}

fn redacted(value: Option<&String>) -> Option<&'static str> {
    value.as_ref().map(|_| "<redacted>")
}

impl fmt::Debug for CredentialDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialDescription")
            .field("source_type", &self.source_type)
            .field("key_vault_url", &self.key_vault_url)
            .field(
                "key_vault_certificate_name",
                &self.key_vault_certificate_name,
            )
            .field("certificate_disk_path", &self.certificate_disk_path)
            .field(
                "certificate_password",
                &redacted(self.certificate_password.as_ref()),
            )
            .field(
                "base64_encoded_value",
                &redacted(self.base64_encoded_value.as_ref()),
            )
            .field("client_secret", &redacted(self.client_secret.as_ref()))
            .field(
                "managed_identity_client_id",
                &self.managed_identity_client_id,
            )
            .field(
                "signed_assertion_file_disk_path",
                &self.signed_assertion_file_disk_path,
            )
            .field("pkcs11_module", &self.pkcs11_module)
            .field("pkcs11_token_label", &self.pkcs11_token_label)
            .field("pkcs11_key_label", &self.pkcs11_key_label)
            .field("pkcs11_pin_file", &self.pkcs11_pin_file)
            .field("skip", &self.skip)
            .finish()
    }
}

impl fmt::Debug for AzureAdOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureAdOptions")
            .field("instance", &self.instance)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .field("audience", &self.audience)
            .field("audiences", &self.audiences)
            .field("allowed_tenants", &self.allowed_tenants)
            .field("allowed_client_ids", &self.allowed_client_ids)
            .field("valid_algorithms", &self.valid_algorithms)
            .field("enable_pii_logging", &self.enable_pii_logging)
            .field("detailed_errors", &self.detailed_errors)
            .field("client_secret", &redacted(self.client_secret.as_ref()))
            .field("client_certificates", &self.client_certificates)
            .field("client_credentials", &self.client_credentials)
            .field("last_known_good_keys", &self.last_known_good_keys)
            .field("revocation", &self.revocation)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CallApiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallApiOptions")
            .field("scope_for_access_token", &self.scope_for_access_token)
            .field("api_base_address", &self.api_base_address)
            .field("instance", &self.instance)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .field("client_secret", &redacted(self.client_secret.as_ref()))
            .field("client_certificates", &self.client_certificates)
            .field("client_credentials", &self.client_credentials)
            .field("token_cache", &self.token_cache)
            .field("client_capabilities", &self.client_capabilities)
            .finish_non_exhaustive()
    }
}

impl AzureAdOptions {
    /// Loads the `AzureAd` section from an optional JSON file (with its environment's file
    /// beside it, see [`ConfigSource::load_file`]) and the process environment.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or parsed, or a value has the wrong shape.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        ConfigSource::load(file)?.section("AzureAd")
    }

    /// Loads the `AzureAd` section from `file`, the environment's file beside it
    /// (`appsettings.{Environment}.json`) and the process environment
    /// ([`ConfigSource::load_file`]).
    ///
    /// # Errors
    ///
    /// When a file cannot be read or parsed (the error names it), or a value has the wrong
    /// shape.
    pub fn load_file(file: impl AsRef<Path>) -> Result<Self, ConfigError> {
        ConfigSource::load_file(file)?.section("AzureAd")
    }

    /// `ValidAlgorithms` read as [`SignatureAlgorithm`]s: JOSE names (`RS256`, `PS256`…),
    /// trimmed, case ignored; empty when the setting is absent (the validator's default,
    /// RS256).
    ///
    /// ```
    /// use tower_azure_auth::{config::ConfigSource, AzureAdOptions, SignatureAlgorithm};
    ///
    /// let options: AzureAdOptions = ConfigSource::from_json_str(
    ///     r#"{"AzureAd": {"ValidAlgorithms": ["RS256", " ps256 "]}}"#,
    /// )?
    /// .section("AzureAd")?;
    /// assert_eq!(
    ///     options.signature_algorithms()?,
    ///     [SignatureAlgorithm::Rs256, SignatureAlgorithm::Ps256]
    /// );
    ///
    /// let hmac: AzureAdOptions =
    ///     ConfigSource::from_json_str(r#"{"AzureAd": {"ValidAlgorithms": ["HS256"]}}"#)?
    ///         .section("AzureAd")?;
    /// let error = hmac.signature_algorithms().unwrap_err();
    /// assert!(error.to_string().contains("AzureAd:ValidAlgorithms"), "{error}");
    /// # Ok::<(), tower_azure_auth::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `AzureAd:ValidAlgorithms` for a name that is not an
    /// RSA signature algorithm (`none` and HMAC are never accepted).
    pub fn signature_algorithms(&self) -> Result<Vec<SignatureAlgorithm>, ConfigError> {
        self.valid_algorithms
            .iter()
            .map(|name| parse_signature_algorithm(name, "AzureAd:ValidAlgorithms"))
            .collect()
    }
}

/// A JOSE algorithm name as a [`SignatureAlgorithm`]; the error names `key`.
fn parse_signature_algorithm(name: &str, key: &str) -> Result<SignatureAlgorithm, ConfigError> {
    let name = name.trim();
    SignatureAlgorithm::ALL
        .into_iter()
        .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(name))
        .ok_or_else(|| ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!(
                "`{name}` is not accepted: only RSA signature algorithms (RS256, RS384, RS512, PS256, PS384, PS512) can be verified with the authority's keys"
            ),
        })
}

impl CallApiOptions {
    /// Loads the `CallApi` section from an optional JSON file (with its environment's file
    /// beside it, see [`ConfigSource::load_file`]) and the process environment.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or parsed, or a value has the wrong shape.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        ConfigSource::load(file)?.section("CallApi")
    }

    /// Loads the `CallApi` section from `file`, the environment's file beside it and the
    /// process environment ([`ConfigSource::load_file`]).
    ///
    /// # Errors
    ///
    /// When a file cannot be read or parsed (the error names it), or a value has the wrong
    /// shape.
    pub fn load_file(file: impl AsRef<Path>) -> Result<Self, ConfigError> {
        ConfigSource::load_file(file)?.section("CallApi")
    }
}

fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            other => Err(de::Error::custom(format!(
                "expected true or false, not `{other}`"
            ))),
        },
        Some(other) => Err(de::Error::custom(format!(
            "expected true or false, not {other}"
        ))),
    }
}

fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("expected a whole number, not {n}"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected a whole number, not `{s}`"))),
        Some(other) => Err(de::Error::custom(format!(
            "expected a whole number, not {other}"
        ))),
    }
}

/// A list of strings: a JSON array, or one string (space, comma or semicolon separated, as
/// Microsoft.Identity.Web's `RequiredScopesConfigurationKey` values are).
fn de_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split([' ', ',', ';'])
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(de::Error::custom(format!("expected a string, not {other}"))),
            })
            .collect(),
        Some(other) => Err(de::Error::custom(format!(
            "expected a list of strings, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_the_file_case_insensitively() {
        struct Case {
            name: &'static str,
            json: &'static str,
            env: &'static [(&'static str, &'static str)],
            client_id: Option<&'static str>,
            certificates: usize,
            first_password: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "file only",
                json: r#"{"AzureAd":{"ClientId":"a","ClientCertificates":[{"SourceType":"Path","CertificateDiskPath":"c.pfx"}]}}"#,
                env: &[],
                client_id: Some("a"),
                certificates: 1,
                first_password: None,
            },
            Case {
                name: "env wins, any case",
                json: r#"{"AzureAd":{"ClientId":"a"}}"#,
                env: &[("azuread__CLIENTID", "b")],
                client_id: Some("b"),
                certificates: 0,
                first_password: None,
            },
            Case {
                name: "env adds to an array item",
                json: r#"{"AzureAd":{"ClientCertificates":[{"SourceType":"Path","CertificateDiskPath":"c.pfx"}]}}"#,
                env: &[("AzureAd__ClientCertificates__0__CertificatePassword", "pw")],
                client_id: None,
                certificates: 1,
                first_password: Some("pw"),
            },
            Case {
                name: "env alone builds an array",
                json: "{}",
                env: &[
                    (
                        "AzureAd__ClientCertificates__1__SourceType",
                        "Base64Encoded",
                    ),
                    ("AzureAd__ClientCertificates__0__SourceType", "Path"),
                    ("Unrelated", "x"),
                ],
                client_id: None,
                certificates: 2,
                first_password: None,
            },
        ];
        for case in cases {
            let options: AzureAdOptions = ConfigSource::from_json_str(case.json)
                .unwrap()
                .with_env(env(case.env))
                .section("AzureAd")
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(
                options.client_id.as_deref(),
                case.client_id,
                "{}",
                case.name
            );
            assert_eq!(
                options.client_certificates.len(),
                case.certificates,
                "{}",
                case.name
            );
            assert_eq!(
                options
                    .client_certificates
                    .first()
                    .and_then(|c| c.certificate_password.as_deref()),
                case.first_password,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn typed_values_from_strings() {
        let options: AzureAdOptions = ConfigSource::new()
            .with_env(env(&[
                ("AzureAd__ClockSkewSeconds", "60"),
                ("AzureAd__SendX5C", "true"),
                ("AzureAd__AllowedClientIds", "a, b"),
                ("AzureAd__Audiences__0", "x"),
            ]))
            .section("AzureAd")
            .unwrap();
        assert_eq!(options.clock_skew_seconds, Some(60));
        assert_eq!(options.send_x5c, Some(true));
        assert_eq!(options.allowed_client_ids, ["a", "b"]);
        assert_eq!(options.audiences, ["x"]);
    }

    #[test]
    fn bad_values_are_explained() {
        let error = ConfigSource::new()
            .with_env(env(&[("AzureAd__SendX5C", "maybe")]))
            .section::<AzureAdOptions>("AzureAd")
            .unwrap_err();
        assert!(
            error.to_string().contains("expected true or false"),
            "{error}"
        );
    }

    #[test]
    fn seed_call_api_section() {
        let json = r#"{"CallApi": {
            "ScopeForAccessToken": "api://b178f3a5-7588-492a-924f-72d7887b7e48/.default",
            "ApiBaseAddress": "https://localhost:44390",
            "Instance": "https://login.microsoftonline.com/",
            "Domain": "damienbodhotmail.onmicrosoft.com",
            "TenantId": "7ff95b15-dc21-4ba6-bc92-824856578fc1",
            "ClientId": "b178f3a5-7588-492a-924f-72d7887b7e48",
            "ClientCertificates": [{"SourceType": "KeyVault",
                "KeyVaultUrl": "https://damienbod.vault.azure.net",
                "KeyVaultCertificateName": "ServiceApiCert"}]}}"#;
        let options: CallApiOptions = ConfigSource::from_json_str(json)
            .unwrap()
            .section("CallApi")
            .unwrap();
        assert_eq!(
            options.client_certificates[0].source_type,
            SourceType::KeyVault
        );
        assert_eq!(
            options.client_certificates[0]
                .key_vault_certificate_name
                .as_deref(),
            Some("ServiceApiCert")
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let options: CallApiOptions = ConfigSource::new()
            .with_env(env(&[
                ("CallApi__ClientSecret", "s3cr3t-value"),
                (
                    "CallApi__ClientCertificates__0__SourceType",
                    "Base64Encoded",
                ),
                (
                    "CallApi__ClientCertificates__0__Base64EncodedValue",
                    "TUlJ-secret-blob",
                ),
            ]))
            .section("CallApi")
            .unwrap();
        let debug = format!("{options:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert!(!debug.contains("TUlJ-secret-blob"), "{debug}");
    }
}
