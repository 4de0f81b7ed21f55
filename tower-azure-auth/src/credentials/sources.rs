//! Credentials from configuration ([`CredentialDescription`]s, Microsoft.Identity.Web's
//! `ClientCertificates` / `ClientCredentials`), tried in order.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{CallApiOptions, CredentialDescription, SourceType};
use crate::error::ConfigError;

use super::certificate::CertificateLoader;
use super::client::{
    BoxFuture, ClientCredential, ClientSecret, CredentialContext, CredentialSource,
};

/// The source types this build can load.
const SUPPORTED: &str = "Path, Base64Encoded, ClientSecret";

/// An ordered list of credential descriptions: the first that loads wins, skipped ones
/// (`Skip: true`) are ignored, and when none loads the error explains every failure.
///
/// `Path` (`.pfx`/`.p12` with `CertificatePassword`, or `.pem`), `Base64Encoded` (base64
/// PKCS#12) and `ClientSecret` are supported. `KeyVault`, `SignedAssertionFromManagedIdentity`
/// and `SignedAssertionFilePath` are recognised but not available in this build: they fail
/// with an error that says so (they can be added as [`CredentialSource`]s without changing
/// this API). Loaded again when the authority refuses the credential, so a replaced file is
/// picked up (rotation).
///
/// ```
/// use tower_azure_auth::config::{ConfigSource, CallApiOptions};
/// use tower_azure_auth::credentials::CredentialDescriptions;
///
/// let options: CallApiOptions = ConfigSource::from_json_str(r#"{"CallApi": {
///     "ClientCertificates": [{"SourceType": "KeyVault", "KeyVaultUrl": "https://v.vault.azure.net",
///                             "KeyVaultCertificateName": "c"}]}}"#)
///     .unwrap().section("CallApi").unwrap();
/// let error = CredentialDescriptions::from_call_api(&options).load_now().unwrap_err();
/// assert!(error.to_string().contains("`KeyVault` is not available in this build"), "{error}");
/// ```
#[derive(Debug, Clone)]
pub struct CredentialDescriptions {
    descriptions: Vec<CredentialDescription>,
    config_key: String,
    base_dir: Option<PathBuf>,
}

impl CredentialDescriptions {
    /// Descriptions tried in the given order; `config_key` (e.g.
    /// `CallApi:ClientCertificates`) names them in errors.
    pub fn new(descriptions: Vec<CredentialDescription>, config_key: impl Into<String>) -> Self {
        Self {
            descriptions,
            config_key: config_key.into(),
            base_dir: None,
        }
    }

    /// From the `CallApi` section: `ClientCertificates`, then `ClientCredentials`, then
    /// `ClientSecret` (Microsoft.Identity.Web's merge order).
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

    /// Relative `CertificateDiskPath`s are resolved against this directory (default: the
    /// working directory).
    #[must_use]
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// The descriptions.
    pub fn descriptions(&self) -> &[CredentialDescription] {
        &self.descriptions
    }

    /// Loads synchronously with the system clock (none of the supported sources needs I/O
    /// other than reading a file).
    ///
    /// # Errors
    ///
    /// When no description produced a credential; the message lists every failure.
    pub fn load_now(&self) -> Result<ClientCredential, ConfigError> {
        self.load_with(&CertificateLoader::new())
    }

    fn load_with(&self, loader: &CertificateLoader) -> Result<ClientCredential, ConfigError> {
        let candidates: Vec<(usize, &CredentialDescription)> = self
            .descriptions
            .iter()
            .enumerate()
            .filter(|(_, d)| d.skip != Some(true))
            .collect();
        if candidates.is_empty() {
            return Err(ConfigError::Invalid {
                key: self.config_key.clone(),
                reason: format!(
                    "no client credential is configured: add a ClientCertificates entry (SourceType {SUPPORTED}) or a ClientSecret"
                ),
            });
        }
        let mut failures = String::new();
        for (index, description) in candidates {
            match self.load_one(description, loader) {
                Ok(credential) => {
                    if !failures.is_empty() {
                        tracing::warn!(target: "tower_azure_auth::credentials",
                            "some client credentials could not be loaded:{failures}");
                    }
                    return Ok(credential);
                }
                Err(reason) => {
                    let _ = write!(failures, " [{index}] {reason};");
                }
            }
        }
        Err(ConfigError::Invalid {
            key: self.config_key.clone(),
            reason: format!(
                "no client credential could be loaded:{}",
                failures.trim_end_matches(';')
            ),
        })
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        match &self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// One description; the error is a sentence naming the source.
    fn load_one(
        &self,
        description: &CredentialDescription,
        loader: &CertificateLoader,
    ) -> Result<ClientCredential, String> {
        let password = description.certificate_password.as_deref();
        match description.source_type {
            SourceType::Path => {
                let path = description
                    .certificate_disk_path
                    .as_deref()
                    .filter(|p| !p.trim().is_empty())
                    .ok_or("SourceType Path needs CertificateDiskPath")?;
                let resolved = self.resolve(path);
                loader
                    .from_file(&resolved, password)
                    .map(ClientCredential::Certificate)
                    .map_err(|e| {
                        format!("certificate file `{}`: {}", resolved.display(), chain(&e))
                    })
            }
            SourceType::Base64Encoded => {
                let value = description
                    .base64_encoded_value
                    .as_deref()
                    .filter(|v| !v.trim().is_empty())
                    .ok_or("SourceType Base64Encoded needs Base64EncodedValue")?;
                loader
                    .from_base64_pkcs12(value, password)
                    .map(ClientCredential::Certificate)
                    .map_err(|e| format!("Base64EncodedValue: {}", chain(&e)))
            }
            SourceType::ClientSecret => description
                .client_secret
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| ClientCredential::Secret(ClientSecret::new(s)))
                .ok_or_else(|| "SourceType ClientSecret needs ClientSecret".to_owned()),
            SourceType::KeyVault => Err(unavailable("KeyVault")),
            SourceType::SignedAssertionFromManagedIdentity => {
                Err(unavailable("SignedAssertionFromManagedIdentity"))
            }
            SourceType::SignedAssertionFilePath => Err(unavailable("SignedAssertionFilePath")),
            _ => Err(format!(
                "this SourceType is not supported by tower-azure-auth (supported: {SUPPORTED})"
            )),
        }
    }
}

fn unavailable(source: &str) -> String {
    format!("SourceType `{source}` is not available in this build of tower-azure-auth (available: {SUPPORTED})")
}

/// An error and its sources, joined.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

impl CredentialSource for CredentialDescriptions {
    fn load<'a>(
        &'a self,
        context: &'a CredentialContext,
    ) -> BoxFuture<'a, Result<ClientCredential, ConfigError>> {
        Box::pin(async move {
            let loader = CertificateLoader::new().clock(context.clock.clone());
            self.load_with(&loader)
        })
    }
}
