//! [`KeyVaultSigning`]: client assertions signed by Azure Key Vault with the certificate's
//! key, which never leaves the vault (`SourceType: KeyVaultSigning`).
//!
//! Loading reads the certificate object (`GET certificates/{name}`: `cer`, `kid`,
//! `attributes`, `policy.key_props.kty`) and yields a [`KeyVaultSigner`] for that exact
//! version; each assertion's SHA-256 digest is signed with
//! `POST keys/{name}/{version}/sign` (`RS256` or `PS256`). A new certificate version (rotation)
//! is a new signer, picked up when the client reloads its source (on schedule, ahead of the
//! version's `exp`, or when the authority refuses the old certificate).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use tracing::debug;
use url::Url;

use super::key_vault::{
    check_attributes, Attributes, ErrorBody, KeyVaultCertificate, Policy, VaultCallError,
    KEY_VAULT_API_VERSION,
};
use crate::authority::HttpClient;
use crate::credentials::assertion::AssertionAlgorithm;
use crate::credentials::certificate::unix_to_system;
use crate::credentials::credential::{
    BoxFuture, ClientCredential, CredentialContext, CredentialSource,
};
use crate::credentials::signer::{PublicCertificate, Signer, SignerError};
use crate::credentials::token::CredentialError;
use crate::error::{error_chain, ConfigError};

const TARGET: &str = "tower_azure_auth::credentials::key_vault";
const BACKEND: &str = "key vault";

/// What a caller needs to sign with a vault's key, for error messages.
const SIGN_PERMISSION: &str = "the key permission `sign` (RBAC: the `Key Vault Crypto User` role, which grants Microsoft.KeyVault/vaults/keys/sign/action; access policies: Keys > Sign)";

/// A certificate in Azure Key Vault whose key signs client assertions inside the vault; a
/// [`CredentialSource`] for [`ConfidentialClient`](crate::credentials::ConfidentialClient)
/// (`SourceType: KeyVaultSigning`, an extension of Microsoft.Identity.Web's source types).
///
/// The vault, its host checks and its token come from a [`KeyVaultCertificate`] (managed
/// identity, workload identity, a `ConfidentialClient` or an `azure_core` credential, as for
/// `SourceType: KeyVault`). The identity needs `certificates/get` (e.g. the `Key Vault
/// Certificate User` role) to read the certificate and `keys/sign` (`Key Vault Crypto User`)
/// to sign; the key may (and should) be non-exportable. No private key is ever in the
/// process.
///
/// ```
/// use std::sync::Arc;
/// use tower_azure_auth::credentials::*;
///
/// let identity = ManagedIdentityCredential::builder().environment(Environment::from_pairs([
///     ("MSAL_MANAGED_IDENTITY_ENDPOINT", "http://127.0.0.1:9/token"),
/// ])).build()?;
/// let vault = KeyVaultCertificate::new("https://contoso.vault.azure.net", "ClientCert", Arc::new(identity))?;
/// let source = KeyVaultSigning::new(vault);
/// assert_eq!(source.certificate().name(), "ClientCert");
/// # Ok::<(), tower_azure_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct KeyVaultSigning {
    certificate: KeyVaultCertificate,
}

impl KeyVaultSigning {
    /// Signs with the key of this vault certificate.
    #[must_use]
    pub fn new(certificate: KeyVaultCertificate) -> Self {
        Self { certificate }
    }

    /// The vault certificate.
    #[must_use]
    pub fn certificate(&self) -> &KeyVaultCertificate {
        &self.certificate
    }

    fn invalid(&self, reason: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            key: "KeyVaultSigning".into(),
            reason: format!(
                "certificate `{}` in Key Vault `{}`: {reason}",
                self.certificate.name(),
                self.certificate.vault().as_str().trim_end_matches('/')
            ),
        }
    }

    /// Reads the certificate's current version and returns its signer.
    ///
    /// # Errors
    ///
    /// A [`CredentialError`] naming the vault and the certificate:
    /// [`NoToken`](CredentialError::NoToken) when the vault's token source failed,
    /// [`Unreachable`](CredentialError::Unreachable) when the vault cannot be reached,
    /// [`Refused`](CredentialError::Refused) for an error status (with the permission to
    /// grant), [`InvalidResponse`](CredentialError::InvalidResponse) for an answer that is not
    /// a certificate bundle, [`NotACertificate`](CredentialError::NotACertificate) when the
    /// certificate is disabled, outside its validity, or its key is not RSA.
    pub async fn fetch(
        &self,
        context: &CredentialContext,
    ) -> Result<KeyVaultSigner, CredentialError> {
        let vault = self.certificate.vault();
        let origin = || self.certificate.origin();
        let mut url = vault
            .join(&format!("certificates/{}", self.certificate.name()))
            .map_err(|e| self.invalid(e))?;
        url.query_pairs_mut()
            .append_pair("api-version", KEY_VAULT_API_VERSION);
        let (status, body) = self
            .certificate
            .call(&context.http, &url, None)
            .await
            .map_err(|e| match e {
                VaultCallError::Token(source) | VaultCallError::Header(source) => {
                    CredentialError::NoToken {
                        origin: origin(),
                        scope: self.certificate.scope().to_owned(),
                        source: Box::new(source),
                    }
                }
                VaultCallError::Unreachable(source) | VaultCallError::Unreadable(source) => {
                    CredentialError::Unreachable {
                        origin: origin(),
                        source,
                    }
                }
            })?;
        if !(200..300).contains(&status) {
            let code = serde_json::from_slice::<ErrorBody>(&body)
                .ok()
                .and_then(|b| b.error.code);
            return Err(CredentialError::Refused {
                origin: origin(),
                status,
                code,
                message: explain(status, &body, Operation::ReadCertificate),
            });
        }
        let bundle: Bundle =
            serde_json::from_slice(&body).map_err(|e| CredentialError::InvalidResponse {
                origin: origin(),
                reason: format!("the vault's answer is not a certificate bundle: {e}"),
            })?;
        let checked = check_bundle(
            vault,
            self.certificate.name(),
            &bundle,
            context.clock.unix_seconds(),
        )
        .map_err(|reason| CredentialError::NotACertificate {
            origin: origin(),
            reason,
        })?;
        debug!(target: TARGET, thumbprint = %checked.certificate.thumbprints().sha1_hex(),
            version = %checked.version, "Key Vault signing key selected");
        Ok(KeyVaultSigner {
            vault: self.certificate.clone(),
            http: context.http.clone(),
            sign_url: checked.sign_url,
            kid: checked.kid,
            version: checked.version,
            certificate: checked.certificate,
            expires_at: checked.exp.map(unix_to_system),
        })
    }
}

impl CredentialSource for KeyVaultSigning {
    fn load<'a>(
        &'a self,
        context: &'a CredentialContext,
    ) -> BoxFuture<'a, Result<ClientCredential, CredentialError>> {
        Box::pin(async move {
            let signer = self.fetch(context).await?;
            Ok(ClientCredential::Signer(Arc::new(signer)))
        })
    }
}

/// One version of a Key Vault certificate's key, signing through the vault's `sign`
/// operation. From [`KeyVaultSigning`].
#[derive(Clone)]
pub struct KeyVaultSigner {
    vault: KeyVaultCertificate,
    http: HttpClient,
    sign_url: Url,
    kid: String,
    version: String,
    certificate: PublicCertificate,
    expires_at: Option<SystemTime>,
}

impl fmt::Debug for KeyVaultSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVaultSigner")
            .field("kid", &self.kid)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl KeyVaultSigner {
    /// The key's id, `{vault}/keys/{name}/{version}`.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key (and certificate) version.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    async fn sign_digest(
        &self,
        algorithm: AssertionAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, SignerError> {
        let digest = digest::digest(&digest::SHA256, message);
        let body = serde_json::json!({
            "alg": algorithm.as_str(),
            "value": URL_SAFE_NO_PAD.encode(digest.as_ref()),
        });
        let body = body.to_string().into_bytes();
        let (status, answer) = self
            .vault
            .call(&self.http, &self.sign_url, Some(&body))
            .await
            .map_err(|e| {
                let reason = format!("key `{}`: {}", self.kid, call_error(&e, self.vault.scope()));
                match e {
                    VaultCallError::Token(t) if !t.is_transient() => SignerError::Refused {
                        backend: BACKEND,
                        reason,
                    },
                    VaultCallError::Header(_) => SignerError::Refused {
                        backend: BACKEND,
                        reason,
                    },
                    _ => SignerError::Unavailable {
                        backend: BACKEND,
                        reason,
                    },
                }
            })?;
        if !(200..300).contains(&status) {
            let reason = format!(
                "key `{}`: {}",
                self.kid,
                explain(status, &answer, Operation::Sign)
            );
            return Err(if status == 429 || status >= 500 {
                SignerError::Unavailable {
                    backend: BACKEND,
                    reason,
                }
            } else {
                SignerError::Refused {
                    backend: BACKEND,
                    reason,
                }
            });
        }
        let bad = |reason: String| SignerError::Unavailable {
            backend: BACKEND,
            reason: format!("key `{}`: {reason}", self.kid),
        };
        let result: SignResult = serde_json::from_slice(&answer)
            .map_err(|e| bad(format!("the vault's answer is not a sign result: {e}")))?;
        let signature = result
            .value
            .as_deref()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok())
            .ok_or_else(|| bad("the vault's sign result has no base64url `value`".into()))?;
        let expected = self.certificate.key_bits().div_ceil(8);
        if signature.len() != expected {
            return Err(bad(format!(
                "the vault's signature has {} bytes; the certificate's {}-bit key makes {expected}",
                signature.len(),
                self.certificate.key_bits()
            )));
        }
        Ok(signature)
    }
}

impl Signer for KeyVaultSigner {
    fn certificate(&self) -> PublicCertificate {
        self.certificate.clone()
    }

    fn sign<'a>(
        &'a self,
        algorithm: AssertionAlgorithm,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, SignerError>> {
        Box::pin(self.sign_digest(algorithm, message))
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn key_expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

#[derive(Deserialize)]
struct SignResult {
    value: Option<String>,
}

#[derive(Deserialize)]
struct Bundle {
    kid: Option<String>,
    cer: Option<String>,
    #[serde(default)]
    attributes: Option<Attributes>,
    #[serde(default)]
    policy: Option<Policy>,
}

/// What [`check_bundle`] found usable.
struct Checked {
    certificate: PublicCertificate,
    kid: String,
    version: String,
    sign_url: Url,
    exp: Option<i64>,
}

/// The certificate version to sign with: enabled, within `nbf`/`exp`, an RSA key, a `cer`
/// that is an RSA certificate of at least 2048 bits, a `kid` of the form
/// `{vault}/keys/{name}/{version}` on this vault.
fn check_bundle(vault: &Url, name: &str, bundle: &Bundle, now: u64) -> Result<Checked, String> {
    let exp = check_attributes(bundle.attributes.as_ref(), now)?;
    let kty = bundle
        .policy
        .as_ref()
        .and_then(|p| p.key_props.as_ref())
        .and_then(|k| k.kty.as_deref());
    if let Some(kty) = kty {
        if !matches!(kty, "RSA" | "RSA-HSM") {
            return Err(format!(
                "its key is of type {kty}, not RSA: client assertions are signed with RS256 or PS256 (create the certificate with an RSA key of at least 2048 bits)"
            ));
        }
    }
    let cer = bundle
        .cer
        .as_deref()
        .ok_or("the certificate bundle has no `cer` (the certificate)")?;
    let der = STANDARD
        .decode(cer.trim())
        .map_err(|_| "the certificate bundle's `cer` is not base64".to_owned())?;
    let certificate = PublicCertificate::from_der_or_pem(&der)
        .map_err(|e| format!("the certificate is not usable: {}", error_chain(&e)))?;
    certificate
        .check_validity(now)
        .map_err(|e| error_chain(&e))?;
    let kid = bundle
        .kid
        .as_deref()
        .ok_or("the certificate bundle has no `kid` (key id)")?;
    let kid_url = Url::parse(kid).map_err(|_| format!("the key id `{kid}` is not a URL"))?;
    if kid_url.origin() != vault.origin() {
        // Never send the vault's token elsewhere.
        return Err(format!("the key id `{kid}` is not on this vault"));
    }
    let relative = kid_url
        .path()
        .strip_prefix(vault.path())
        .ok_or_else(|| format!("the key id `{kid}` is not on this vault"))?;
    let segments: Vec<&str> = relative.trim_end_matches('/').split('/').collect();
    let (key_name, version) = match segments.as_slice() {
        ["keys", key_name, version]
            if key_name.eq_ignore_ascii_case(name)
                && !version.is_empty()
                && version.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            (*key_name, *version)
        }
        _ => {
            return Err(format!(
                "the key id `{kid}` is not of the form {{vault}}/keys/{name}/{{version}}"
            ))
        }
    };
    let mut sign_url = vault
        .join(&format!("keys/{key_name}/{version}/sign"))
        .map_err(|e| e.to_string())?;
    sign_url
        .query_pairs_mut()
        .append_pair("api-version", KEY_VAULT_API_VERSION);
    Ok(Checked {
        certificate,
        kid: kid.to_owned(),
        version: version.to_owned(),
        sign_url,
        exp,
    })
}

fn call_error(error: &VaultCallError, scope: &str) -> String {
    match error {
        VaultCallError::Token(e) => format!("no token for the vault ({scope}): {}", error_chain(e)),
        VaultCallError::Header(e) => error_chain(e),
        VaultCallError::Unreachable(e) => {
            format!("the vault cannot be reached: {}", error_chain(e))
        }
        VaultCallError::Unreadable(e) => {
            format!("the vault's answer cannot be read: {}", error_chain(e))
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operation {
    ReadCertificate,
    Sign,
}

/// What a Key Vault error status means for this operation.
fn explain(status: u16, body: &[u8], operation: Operation) -> String {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let code = detail.as_ref().and_then(|d| d.code.clone());
    let inner = detail
        .as_ref()
        .and_then(|d| d.innererror.as_ref())
        .and_then(|i| i.code.clone());
    let message = detail
        .as_ref()
        .and_then(|d| d.message.as_deref())
        .map(|m| m.chars().take(300).collect::<String>());
    let codes = match (&code, &inner) {
        (Some(c), Some(i)) => format!("{c}/{i}"),
        (Some(c), None) => c.clone(),
        _ => "no error code".into(),
    };
    let disabled = inner.as_deref() == Some("KeyDisabled")
        || message
            .as_deref()
            .is_some_and(|m| m.contains("disabled key"));
    let advice = match (status, operation) {
        (401, _) => "; the vault did not accept the token (missing, expired, for another resource than the vault, or from another tenant)".to_owned(),
        (403, Operation::Sign) if disabled => "; the key version is disabled in the vault: enable it, or create a new certificate version".to_owned(),
        (403, Operation::Sign) => format!("; the identity lacks {SIGN_PERMISSION} on this vault, or the vault's firewall refuses this address"),
        (403, Operation::ReadCertificate) => "; the identity cannot read the certificate (grant `certificates/get`: the `Key Vault Certificate User` role, or an access policy with Certificates > Get), or the vault's firewall refuses this address".to_owned(),
        (404, Operation::Sign) => "; the vault has no such key version (deleted?); the certificate is read again on the next reload".to_owned(),
        (404, Operation::ReadCertificate) => "; the vault has no such certificate (check KeyVaultCertificateName, and that it was not deleted)".to_owned(),
        (429, _) => "; the vault is throttling requests, try again later".to_owned(),
        _ => String::new(),
    };
    let message = message
        .map(|m| format!(": {}", m.trim()))
        .unwrap_or_default();
    format!("the vault answered HTTP {status} ({codes}){message}{advice}")
}

#[cfg(test)]
mod tests;
