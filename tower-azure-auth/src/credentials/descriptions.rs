//! Credentials from configuration ([`CredentialDescription`]s, Microsoft.Identity.Web's
//! `ClientCertificates` / `ClientCredentials`), tried in order, and the constructors driven
//! by configuration: [`ConfidentialClient::builder_from_options`] (the `CallApi` section) and
//! [`WorkloadIdentity::client_builder`] (the AKS workload identity environment). They stand
//! above both the engine ([`ConfidentialClient`]) and the [`sources`](super::sources) they
//! choose between.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::{CallApiOptions, CredentialDescription, SourceType};
use crate::error::{error_chain, ConfigError};

use super::token::CredentialError;

use crate::authority::Authority;

use super::certificate::CertificateLoader;
use super::client::{ConfidentialClient, ConfidentialClientBuilder};
use super::credential::{
    AssertionProvider, BoxFuture, ClientCredential, ClientSecret, CredentialContext,
    CredentialSource,
};
use super::shared_cache::SharedTokenCache;
use super::sources::environment::Environment;
use super::sources::key_vault::KeyVaultCertificate;
use super::sources::key_vault_signing::KeyVaultSigning;
use super::sources::managed_identity::ManagedIdentityCredential;
use super::sources::workload_identity::{
    FederatedTokenFile, ManagedIdentityAssertion, WorkloadIdentity,
};
use super::token_source::TokenSource;

impl ConfidentialClient {
    /// A builder from a Microsoft.Identity.Web-style `CallApi` section: `ClientId`, `Authority` or `Instance` +
    /// `TenantId`, `SendX5C`, `EnablePiiLogging`, the credentials (`ClientCertificates`,
    /// `ClientCredentials`, then `ClientSecret`) as a [`CredentialDescriptions`] source,
    /// loaded on first use or by [`ConfidentialClient::load_credential`], and the shared
    /// token cache (`TokenCache`, see [`SharedTokenCache::from_options`]).
    ///
    /// # Errors
    ///
    /// When `ClientId` or the authority is missing or unusable, or `TokenCache` is.
    pub fn builder_from_options(
        options: &CallApiOptions,
    ) -> Result<ConfidentialClientBuilder, ConfigError> {
        let client_id = options
            .client_id
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or(ConfigError::Missing {
                key: "CallApi:ClientId",
                hint: "set the client (application) id of the calling app",
            })?;
        let authority = Authority::from_parts(
            options.authority.as_deref(),
            options.instance.as_deref(),
            options.tenant_id.as_deref(),
        )?;
        let builder = Self::builder(client_id)
            .authority(authority)
            .send_x5c(options.send_x5c.unwrap_or(false))
            .enable_pii_logging(options.enable_pii_logging.unwrap_or(false))
            .client_capabilities(options.client_capabilities.iter().cloned())
            .credential_source(Arc::new(CredentialDescriptions::from_call_api(options)));
        Ok(
            match SharedTokenCache::from_options(&options.token_cache)? {
                Some(shared) => builder.shared_token_cache(shared),
                None => builder,
            },
        )
    }
}

impl WorkloadIdentity {
    /// A [`ConfidentialClient`] builder with the authority `{host}{tenant}` and the file as
    /// its credential.
    ///
    /// # Errors
    ///
    /// When the authority host or tenant is unusable (plain http other than loopback…).
    pub fn client_builder(&self) -> Result<ConfidentialClientBuilder, ConfigError> {
        let authority = Authority::entra(self.authority_host(), self.tenant_id())?;
        Ok(ConfidentialClient::builder(self.client_id())
            .authority(authority)
            .credential(ClientCredential::Assertion(Arc::new(
                FederatedTokenFile::new(self.token_file()),
            ))))
    }
}

/// The source types this build can load.
const SUPPORTED: &str = "KeyVault, KeyVaultSigning, Pkcs11, Path, Base64Encoded, ClientSecret, SignedAssertionFilePath, SignedAssertionFromManagedIdentity";

/// An ordered list of credential descriptions (Microsoft.Identity.Web's `ClientCertificates`
/// / `ClientCredentials`): the first that loads wins, skipped ones (`Skip: true`) are
/// ignored, and when none loads the error explains every failure.
///
/// | `SourceType` | fields | loads |
/// |---|---|---|
/// | `KeyVault` | `KeyVaultUrl`, `KeyVaultCertificateName`, `ManagedIdentityClientId` | the certificate and key from Azure Key Vault ([`KeyVaultCertificate`]); the vault's token from the managed identity (`ManagedIdentityClientId`, else `AZURE_CLIENT_ID`, else system-assigned) or from [`vault_token_source`](Self::vault_token_source) (any `azure_core` `TokenCredential` with the `azure-core` feature) |
/// | `Path` | `CertificateDiskPath`, `CertificatePassword` | a `.pfx`/`.p12` or `.pem` file |
/// | `Base64Encoded` | `Base64EncodedValue`, `CertificatePassword` | a base64 PKCS#12 |
/// | `ClientSecret` | `ClientSecret` | a client secret |
/// | `SignedAssertionFilePath` | `SignedAssertionFileDiskPath` (default `AZURE_FEDERATED_TOKEN_FILE`, then `AZURE_ACCESS_TOKEN_FILE`) | a federated token file, read for every token request ([`FederatedTokenFile`]) |
/// | `SignedAssertionFromManagedIdentity` | `ManagedIdentityClientId`, `TokenExchangeUrl` (default `api://AzureADTokenExchange`) | a managed identity token used as the assertion ([`ManagedIdentityAssertion`]) |
///
/// Other source types (certificate stores…) are refused with an error that says so.
/// `KeyVault` and `SignedAssertionFromManagedIdentity` need the network: they load through
/// [`CredentialSource::load`] (what [`ConfidentialClient`] calls),
/// not [`load_now`](Self::load_now). Loaded again on the client's reload interval and when
/// the authority refuses the credential, so a certificate replaced in the vault or on disk
/// is picked up (rotation). Managed identities are built once per client id and keep their
/// token cache across reloads.
///
/// ```
/// use tower_azure_auth::config::{ConfigSource, CallApiOptions};
/// use tower_azure_auth::credentials::{ClientCredential, CredentialDescriptions};
///
/// let options: CallApiOptions = ConfigSource::from_json_str(r#"{"CallApi": {
///     "ClientCertificates": [
///         {"SourceType": "StoreWithThumbprint", "CertificateStorePath": "CurrentUser/My"},
///         {"SourceType": "Path", "CertificateDiskPath": "missing.pfx"},
///         {"SourceType": "ClientSecret", "ClientSecret": "dev-secret"}]}}"#)
///     .unwrap().section("CallApi").unwrap();
/// let credential = CredentialDescriptions::from_call_api(&options).load_now()?;
/// assert!(matches!(credential, ClientCredential::Secret(_)));
///
/// let none: CallApiOptions = ConfigSource::from_json_str(r#"{"CallApi": {
///     "ClientCertificates": [{"SourceType": "Path", "CertificateDiskPath": "missing.pfx"}]}}"#)
///     .unwrap().section("CallApi").unwrap();
/// let error = CredentialDescriptions::from_call_api(&none).load_now().unwrap_err();
/// assert!(error.to_string().contains("missing.pfx"), "{error}");
/// assert!(!error.is_transient(), "a missing file needs a change, not a retry");
/// # Ok::<(), tower_azure_auth::CredentialError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CredentialDescriptions {
    descriptions: Vec<CredentialDescription>,
    config_key: String,
    base_dir: Option<PathBuf>,
    environment: Environment,
    vault_token_source: Option<Arc<dyn TokenSource>>,
    allow_any_key_vault_host: bool,
    /// Managed identities by client id (`""`: system-assigned), built on first use.
    identities: Arc<Mutex<HashMap<String, ManagedIdentityCredential>>>,
}

/// What loading one description without I/O gave.
enum Local {
    Done(Result<ClientCredential, CredentialError>),
    /// Needs the network (Key Vault, managed identity).
    Remote,
}

impl CredentialDescriptions {
    /// Descriptions tried in the given order; `config_key` (e.g.
    /// `CallApi:ClientCertificates`) names them in errors.
    pub fn new(descriptions: Vec<CredentialDescription>, config_key: impl Into<String>) -> Self {
        Self {
            descriptions,
            config_key: config_key.into(),
            base_dir: None,
            environment: Environment::process(),
            vault_token_source: None,
            allow_any_key_vault_host: false,
            identities: Arc::default(),
        }
    }

    /// From the `CallApi` section: `ClientCertificates`, then `ClientCredentials`, then
    /// `ClientSecret` (Microsoft.Identity.Web's merge order).
    #[must_use]
    pub fn from_call_api(options: &CallApiOptions) -> Self {
        let mut descriptions = options.client_certificates.clone();
        descriptions.extend(options.client_credentials.iter().cloned());
        if let Some(secret) = options.client_secret.as_ref().filter(|s| !s.is_empty()) {
            let mut description = CredentialDescription::new(SourceType::ClientSecret);
            description.client_secret = Some(secret.clone());
            descriptions.push(description);
        }
        Self::new(descriptions, "CallApi:ClientCertificates")
    }

    /// Relative `CertificateDiskPath`s and `SignedAssertionFileDiskPath`s are resolved
    /// against this directory (default: the working directory).
    #[must_use]
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// Where `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID` and the managed identity
    /// endpoint variables (`IDENTITY_ENDPOINT`, `MSAL_MANAGED_IDENTITY_ENDPOINT`…) are read
    /// (default: the process environment).
    #[must_use]
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// Gets Key Vault tokens from this source (e.g. a [`ConfidentialClient`]
    /// of another app) instead of the managed identity.
    #[must_use]
    pub fn vault_token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.vault_token_source = Some(source);
        self
    }

    /// Lets a `KeyVaultUrl` be on any host, not only a Key Vault one
    /// ([`KEY_VAULT_DNS_SUFFIXES`](super::sources::key_vault::KEY_VAULT_DNS_SUFFIXES) or loopback): for Azure
    /// Stack Hub or a private DNS name. Default false: the vault's token goes only to Key
    /// Vault. See [`KeyVaultCertificateBuilder::allow_any_host`](super::sources::key_vault::KeyVaultCertificateBuilder::allow_any_host).
    #[must_use]
    pub fn allow_any_key_vault_host(mut self, allow: bool) -> Self {
        self.allow_any_key_vault_host = allow;
        self
    }

    /// Gets Key Vault tokens from a credential of the official Azure SDK (e.g.
    /// `azure_identity`'s `ManagedIdentityCredential` or `DeveloperToolsCredential`) instead
    /// of this crate's managed identity: [`vault_token_source`](Self::vault_token_source) with
    /// an [`AzureCoreCredential`](super::sources::azure_credential::AzureCoreCredential).
    #[cfg(feature = "azure-core")]
    #[must_use]
    pub fn vault_credential(
        self,
        credential: Arc<dyn azure_core::credentials::TokenCredential>,
    ) -> Self {
        self.vault_token_source(Arc::new(
            super::sources::azure_credential::AzureCoreCredential::new(credential),
        ))
    }

    /// The descriptions.
    #[must_use]
    pub fn descriptions(&self) -> &[CredentialDescription] {
        &self.descriptions
    }

    /// Loads synchronously with the system clock: `Path`, `Base64Encoded`, `ClientSecret`
    /// and `SignedAssertionFilePath` only (they read at most a file); `KeyVault` and
    /// `SignedAssertionFromManagedIdentity` count as failures here (use
    /// [`CredentialSource::load`]).
    ///
    /// # Errors
    ///
    /// [`CredentialError::NoneLoaded`] when no description produced a credential, with every
    /// failure; [`CredentialError::Configuration`] when none is configured.
    pub fn load_now(&self) -> Result<ClientCredential, CredentialError> {
        let loader = CertificateLoader::new();
        let mut failures = Failures::default();
        for (index, description) in self.candidates()? {
            let result = match self.load_local(description, &loader) {
                Local::Done(result) => result,
                Local::Remote => Err(self.mistake(format!(
                    "SourceType {:?} needs network access: load it asynchronously (CredentialSource::load, or let the ConfidentialClient load it)",
                    description.source_type
                ))),
            };
            match result {
                Ok(credential) => return Ok(failures.success(credential)),
                Err(error) => failures.0.push((index, error)),
            }
        }
        Err(failures.into_error(&self.config_key))
    }

    /// A mistake in one description: [`ConfigError::Invalid`] under the list's key.
    fn mistake(&self, reason: impl Into<String>) -> CredentialError {
        CredentialError::Configuration(ConfigError::Invalid {
            key: self.config_key.clone(),
            reason: reason.into(),
        })
    }

    /// Loads with the context's HTTP client and clock (Key Vault, managed identity).
    async fn load_async(
        &self,
        context: &CredentialContext,
    ) -> Result<ClientCredential, CredentialError> {
        let loader = CertificateLoader::new().clock(context.clock.clone());
        let mut failures = Failures::default();
        for (index, description) in self.candidates()? {
            let result = match self.load_local(description, &loader) {
                Local::Done(result) => result,
                Local::Remote => self.load_remote(description, context).await,
            };
            match result {
                Ok(credential) => return Ok(failures.success(credential)),
                Err(error) => failures.0.push((index, error)),
            }
        }
        Err(failures.into_error(&self.config_key))
    }

    fn candidates(&self) -> Result<Vec<(usize, &CredentialDescription)>, CredentialError> {
        let candidates: Vec<(usize, &CredentialDescription)> = self
            .descriptions
            .iter()
            .enumerate()
            .filter(|(_, d)| d.skip != Some(true))
            .collect();
        if candidates.is_empty() {
            return Err(self.mistake(format!(
                "no client credential is configured: add a ClientCertificates entry (SourceType {SUPPORTED}) or a ClientSecret"
            )));
        }
        Ok(candidates)
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        match &self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// One description without network I/O.
    fn load_local(&self, description: &CredentialDescription, loader: &CertificateLoader) -> Local {
        let password = description.certificate_password.as_deref();
        Local::Done(match description.source_type {
            SourceType::Path => (|| {
                let path = description
                    .certificate_disk_path
                    .as_deref()
                    .filter(|p| !p.trim().is_empty())
                    .ok_or_else(|| self.mistake("SourceType Path needs CertificateDiskPath"))?;
                let resolved = self.resolve(path);
                loader
                    .from_file(&resolved, password)
                    .map(ClientCredential::Certificate)
                    .map_err(|source| CredentialError::Certificate {
                        origin: format!("certificate file `{}`", resolved.display()),
                        source,
                    })
            })(),
            SourceType::Base64Encoded => (|| {
                let value = description
                    .base64_encoded_value
                    .as_deref()
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| {
                        self.mistake("SourceType Base64Encoded needs Base64EncodedValue")
                    })?;
                loader
                    .from_base64_pkcs12(value, password)
                    .map(ClientCredential::Certificate)
                    .map_err(|source| CredentialError::Certificate {
                        origin: "Base64EncodedValue".into(),
                        source,
                    })
            })(),
            SourceType::ClientSecret => description
                .client_secret
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| ClientCredential::Secret(ClientSecret::new(s)))
                .ok_or_else(|| self.mistake("SourceType ClientSecret needs ClientSecret")),
            SourceType::SignedAssertionFilePath => (|| {
                let path = description
                    .signed_assertion_file_disk_path
                    .clone()
                    .filter(|p| !p.trim().is_empty())
                    .or_else(|| self.environment.get("AZURE_FEDERATED_TOKEN_FILE"))
                    .or_else(|| self.environment.get("AZURE_ACCESS_TOKEN_FILE"))
                    .ok_or_else(|| self.mistake("SourceType SignedAssertionFilePath needs SignedAssertionFileDiskPath or the AZURE_FEDERATED_TOKEN_FILE variable"))?;
                let file = FederatedTokenFile::new(self.resolve(path.trim()));
                file.read()?;
                Ok(ClientCredential::Assertion(Arc::new(file)))
            })(),
            SourceType::KeyVault
            | SourceType::KeyVaultSigning
            | SourceType::Pkcs11
            | SourceType::SignedAssertionFromManagedIdentity => return Local::Remote,
            _ => Err(self.mistake(format!(
                "this SourceType is not supported by tower-azure-auth (supported: {SUPPORTED})"
            ))),
        })
    }

    /// Key Vault and managed identity.
    async fn load_remote(
        &self,
        description: &CredentialDescription,
        context: &CredentialContext,
    ) -> Result<ClientCredential, CredentialError> {
        let mi_client_id = description
            .managed_identity_client_id
            .clone()
            .filter(|c| !c.trim().is_empty());
        match description.source_type {
            SourceType::KeyVault => {
                let vault =
                    self.vault_certificate(description, mi_client_id, context, "KeyVault")?;
                vault
                    .fetch(context)
                    .await
                    .map(ClientCredential::Certificate)
            }
            SourceType::KeyVaultSigning => {
                let vault =
                    self.vault_certificate(description, mi_client_id, context, "KeyVaultSigning")?;
                Ok(KeyVaultSigning::new(vault).load(context).await?)
            }
            SourceType::Pkcs11 => self
                .load_pkcs11(description, context)
                .await
                .map_err(|reason| self.mistake(reason)),
            SourceType::SignedAssertionFromManagedIdentity => {
                let identity = self.identity(mi_client_id, context)?;
                let assertion = ManagedIdentityAssertion::new(
                    identity,
                    description.token_exchange_url.as_deref(),
                );
                // Fail now rather than at the first token request; the token is cached.
                assertion
                    .assertion(context)
                    .await
                    .map_err(|e| CredentialError::NoToken {
                        origin: "the managed identity (SignedAssertionFromManagedIdentity)".into(),
                        scope: assertion.scope().to_owned(),
                        source: Box::new(e),
                    })?;
                Ok(ClientCredential::Assertion(Arc::new(assertion)))
            }
            _ => Err(self.mistake("not a remote source")),
        }
    }

    /// The managed identity for `client_id` (`None`: system-assigned), built once.
    fn identity(
        &self,
        client_id: Option<String>,
        context: &CredentialContext,
    ) -> Result<ManagedIdentityCredential, ConfigError> {
        let key = client_id.clone().unwrap_or_default();
        let mut identities = self
            .identities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(identity) = identities.get(&key) {
            return Ok(identity.clone());
        }
        let identity = ManagedIdentityCredential::builder()
            .client_id(client_id)
            .environment(self.environment.clone())
            .http_client(context.http.clone())
            .clock(context.clock.clone())
            .build()?;
        identities.insert(key, identity.clone());
        Ok(identity)
    }

    /// The vault certificate of a `KeyVault` / `KeyVaultSigning` description, with the
    /// vault's token from [`vault_token_source`](Self::vault_token_source), else the managed
    /// identity (`ManagedIdentityClientId`, else `AZURE_CLIENT_ID`, else system-assigned).
    fn vault_certificate(
        &self,
        description: &CredentialDescription,
        mi_client_id: Option<String>,
        context: &CredentialContext,
        source_type: &str,
    ) -> Result<KeyVaultCertificate, CredentialError> {
        let url = description
            .key_vault_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| self.mistake(format!("SourceType {source_type} needs KeyVaultUrl")))?;
        let name = description
            .key_vault_certificate_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| {
                self.mistake(format!(
                    "SourceType {source_type} needs KeyVaultCertificateName"
                ))
            })?;
        let token_source: Arc<dyn TokenSource> = if let Some(source) = &self.vault_token_source {
            Arc::clone(source)
        } else {
            let client_id = mi_client_id.or_else(|| self.environment.get("AZURE_CLIENT_ID"));
            Arc::new(self.identity(client_id, context)?)
        };
        Ok(KeyVaultCertificate::builder(url, name, token_source)
            .allow_any_host(self.allow_any_key_vault_host)
            .build()?)
    }

    #[cfg(feature = "pkcs11")]
    async fn load_pkcs11(
        &self,
        description: &CredentialDescription,
        context: &CredentialContext,
    ) -> Result<ClientCredential, String> {
        let required = |value: &Option<String>, key: &str| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("SourceType Pkcs11 needs {key}"))
        };
        let module = self.resolve(&required(&description.pkcs11_module, "Pkcs11Module")?);
        let token = required(&description.pkcs11_token_label, "Pkcs11TokenLabel")?;
        let key = required(&description.pkcs11_key_label, "Pkcs11KeyLabel")?;
        let pin_file = self.resolve(&required(&description.pkcs11_pin_file, "Pkcs11PinFile")?);
        let mut source = super::sources::pkcs11::Pkcs11Source::new(module, token, key, pin_file);
        if let Some(path) = description
            .certificate_disk_path
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        {
            source = source.certificate_path(self.resolve(path));
        }
        source.load(context).await.map_err(|e| error_chain(&e))
    }

    #[cfg(not(feature = "pkcs11"))]
    #[allow(clippy::unused_async)]
    async fn load_pkcs11(
        &self,
        _description: &CredentialDescription,
        _context: &CredentialContext,
    ) -> Result<ClientCredential, String> {
        Err("SourceType Pkcs11 needs tower-azure-auth's `pkcs11` feature".into())
    }
}

/// The failures so far, for the final error.
#[derive(Default)]
struct Failures(Vec<(usize, CredentialError)>);

impl Failures {
    fn success(self, credential: ClientCredential) -> ClientCredential {
        for (index, error) in &self.0 {
            tracing::warn!(target: "tower_azure_auth::credentials", index,
                error = %error_chain(error), "a client credential could not be loaded; the next one was tried");
        }
        credential
    }

    fn into_error(self, key: &str) -> CredentialError {
        CredentialError::NoneLoaded {
            key: key.to_owned(),
            failures: self.0,
        }
    }
}

impl CredentialSource for CredentialDescriptions {
    fn load<'a>(
        &'a self,
        context: &'a CredentialContext,
    ) -> BoxFuture<'a, Result<ClientCredential, CredentialError>> {
        Box::pin(self.load_async(context))
    }
}
