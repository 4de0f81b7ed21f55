//! Signed assertions from elsewhere: the federated token file of AKS workload identity
//! ([`FederatedTokenFile`], [`WorkloadIdentity`]) and a managed identity token used as the
//! assertion ([`ManagedIdentityAssertion`], federated identity credentials).

use std::path::{Path, PathBuf};

use crate::error::ConfigError;

use super::environment::Environment;
use super::managed_identity::ManagedIdentityCredential;
use crate::credentials::credential::{AssertionProvider, BoxFuture, CredentialContext};
use crate::credentials::token::{CredentialError, TokenError};

/// The largest assertion file read, in bytes (projected service account tokens are ~1 KiB).
const MAX_ASSERTION_FILE: u64 = 64 * 1024;

/// The default audience of federated tokens (`TokenExchangeUrl`).
pub const TOKEN_EXCHANGE_URL: &str = "api://AzureADTokenExchange";

/// Whether the assertion can go into a form field as it is: non-empty, visible ASCII without
/// `&` and `=`.
fn header_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'&' && b != b'=')
}

/// A file holding a signed assertion (AKS workload identity's projected service account
/// token, `AZURE_FEDERATED_TOKEN_FILE`), read again for every token request: the kubelet
/// rewrites it before it expires.
///
/// ```
/// use tower_azure_auth::credentials::{ClientCredential, FederatedTokenFile};
///
/// let file = FederatedTokenFile::new("/var/run/secrets/azure/tokens/azure-identity-token");
/// let credential = ClientCredential::assertion(file);
/// assert!(format!("{credential:?}").contains("azure-identity-token"));
/// ```
#[derive(Debug, Clone)]
pub struct FederatedTokenFile {
    path: PathBuf,
}

impl FederatedTokenFile {
    /// The file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the assertion now.
    ///
    /// # Errors
    ///
    /// [`CredentialError::Io`] when the file cannot be read, [`CredentialError::InvalidFile`]
    /// when it is too large, empty or not a compact JWT. The content is never in the message.
    pub fn read(&self) -> Result<String, CredentialError> {
        let io = |source| CredentialError::Io {
            path: self.path.clone(),
            source,
        };
        let invalid = |reason: String| CredentialError::InvalidFile {
            path: self.path.clone(),
            reason,
        };
        let metadata = std::fs::metadata(&self.path).map_err(io)?;
        if metadata.len() > MAX_ASSERTION_FILE {
            return Err(invalid(format!("larger than {MAX_ASSERTION_FILE} bytes")));
        }
        let text = std::fs::read_to_string(&self.path).map_err(io)?;
        let assertion = text.trim().to_owned();
        if assertion.split('.').count() != 3 || !header_safe(&assertion) {
            return Err(invalid(
                "not a compact JWT (SignedAssertionFileDiskPath, AZURE_FEDERATED_TOKEN_FILE)"
                    .into(),
            ));
        }
        Ok(assertion)
    }
}

impl AssertionProvider for FederatedTokenFile {
    fn assertion<'a>(
        &'a self,
        _context: &'a CredentialContext,
    ) -> BoxFuture<'a, Result<String, TokenError>> {
        Box::pin(async move {
            let file = self.clone();
            // A small file, but still a blocking read: off the async worker.
            match tokio::task::spawn_blocking(move || file.read()).await {
                Ok(result) => result.map_err(TokenError::Credential),
                Err(_) => Err(TokenError::Credential(CredentialError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::Interrupted,
                        "reading the assertion file was cancelled",
                    ),
                })),
            }
        })
    }
}

/// A managed identity token for `{TokenExchangeUrl}/.default` (default
/// `api://AzureADTokenExchange/.default`) used as the client assertion: an app registration
/// with a federated identity credential trusting the managed identity
/// (`SignedAssertionFromManagedIdentity`). The token comes from the managed identity's
/// cache, refreshed ahead of expiry.
///
/// ```
/// use tower_azure_auth::credentials::{Environment, ManagedIdentityAssertion, ManagedIdentityCredential};
///
/// let identity = ManagedIdentityCredential::builder()
///     .environment(Environment::from_pairs([("MSAL_MANAGED_IDENTITY_ENDPOINT", "http://127.0.0.1:9/token")]))
///     .build()?;
/// let assertion = ManagedIdentityAssertion::new(identity, None);
/// assert_eq!(assertion.scope(), "api://AzureADTokenExchange/.default");
/// # Ok::<(), tower_azure_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ManagedIdentityAssertion {
    identity: ManagedIdentityCredential,
    scope: String,
}

impl ManagedIdentityAssertion {
    /// Tokens from `identity` for `{token_exchange_url}/.default` (default
    /// [`TOKEN_EXCHANGE_URL`]).
    pub fn new(identity: ManagedIdentityCredential, token_exchange_url: Option<&str>) -> Self {
        let audience = token_exchange_url
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(TOKEN_EXCHANGE_URL)
            .trim_end_matches('/');
        let scope = if audience.ends_with("/.default") {
            audience.to_owned()
        } else {
            format!("{audience}/.default")
        };
        Self { identity, scope }
    }

    /// The scope asked of the managed identity.
    #[must_use]
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

impl AssertionProvider for ManagedIdentityAssertion {
    fn assertion<'a>(
        &'a self,
        _context: &'a CredentialContext,
    ) -> BoxFuture<'a, Result<String, TokenError>> {
        Box::pin(async move {
            let token = self.identity.get_token(&[&self.scope]).await?;
            Ok(token.secret().to_owned())
        })
    }
}

/// AKS workload identity from the variables its webhook injects: `AZURE_CLIENT_ID`,
/// `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and `AZURE_AUTHORITY_HOST` (default
/// `https://login.microsoftonline.com/`). The token request is an ordinary client
/// credentials request whose `client_assertion` is the file's content, read for every
/// request.
///
/// ```
/// use tower_azure_auth::credentials::{Environment, WorkloadIdentity};
///
/// let env = Environment::from_pairs([
///     ("AZURE_CLIENT_ID", "0b7c5d2e-0000-4000-8000-000000000002"),
///     ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
///     ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"),
/// ]);
/// let identity = WorkloadIdentity::from_environment(&env)?;
/// assert_eq!(identity.authority_host(), "https://login.microsoftonline.com/");
/// let client = identity.client_builder()?.build()?;
/// assert_eq!(client.client_id(), "0b7c5d2e-0000-4000-8000-000000000002");
///
/// let missing = WorkloadIdentity::from_environment(&Environment::from_pairs([("AZURE_CLIENT_ID", "x")]));
/// assert!(missing.unwrap_err().to_string().contains("AZURE_TENANT_ID"));
/// # Ok::<(), tower_azure_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct WorkloadIdentity {
    client_id: String,
    tenant_id: String,
    authority_host: String,
    token_file: PathBuf,
}

impl WorkloadIdentity {
    /// From the process environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] when a variable is missing.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_environment(&Environment::process())
    }

    /// From the given variables.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] when a variable is missing.
    pub fn from_environment(env: &Environment) -> Result<Self, ConfigError> {
        let client_id = env.get("AZURE_CLIENT_ID").ok_or(ConfigError::Missing {
            key: "AZURE_CLIENT_ID",
            hint: "the workload identity's client id (set by the AKS workload identity webhook)",
        })?;
        let tenant_id = env.get("AZURE_TENANT_ID").ok_or(ConfigError::Missing {
            key: "AZURE_TENANT_ID",
            hint: "the tenant id (set by the AKS workload identity webhook)",
        })?;
        let token_file = env
            .get("AZURE_FEDERATED_TOKEN_FILE")
            .ok_or(ConfigError::Missing {
                key: "AZURE_FEDERATED_TOKEN_FILE",
                hint: "the projected service account token file (set by the AKS workload identity webhook)",
            })?;
        let host = env
            .get("AZURE_AUTHORITY_HOST")
            .unwrap_or_else(|| "https://login.microsoftonline.com/".into());
        Ok(Self {
            client_id: client_id.trim().to_owned(),
            tenant_id: tenant_id.trim().to_owned(),
            authority_host: format!("{}/", host.trim().trim_end_matches('/')),
            token_file: PathBuf::from(token_file.trim()),
        })
    }

    /// The client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The tenant id.
    #[must_use]
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The authority host, with one trailing slash.
    #[must_use]
    pub fn authority_host(&self) -> &str {
        &self.authority_host
    }

    /// The federated token file.
    #[must_use]
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_exchange_scopes() {
        struct Case {
            name: &'static str,
            url: Option<&'static str>,
            expected: &'static str,
        }
        let cases = [
            Case {
                name: "default",
                url: None,
                expected: "api://AzureADTokenExchange/.default",
            },
            Case {
                name: "china",
                url: Some("api://AzureADTokenExchangeChina"),
                expected: "api://AzureADTokenExchangeChina/.default",
            },
            Case {
                name: "trailing slash",
                url: Some("api://AzureADTokenExchange/"),
                expected: "api://AzureADTokenExchange/.default",
            },
            Case {
                name: "already a scope",
                url: Some("api://AzureADTokenExchange/.default"),
                expected: "api://AzureADTokenExchange/.default",
            },
            Case {
                name: "empty",
                url: Some("  "),
                expected: "api://AzureADTokenExchange/.default",
            },
        ];
        let identity = ManagedIdentityCredential::builder()
            .environment(Environment::from_pairs([(
                "MSAL_MANAGED_IDENTITY_ENDPOINT",
                "http://127.0.0.1:9/token",
            )]))
            .build()
            .unwrap();
        for case in cases {
            let assertion = ManagedIdentityAssertion::new(identity.clone(), case.url);
            assert_eq!(assertion.scope(), case.expected, "{}", case.name);
        }
    }

    #[test]
    fn assertion_files() {
        struct Case {
            name: &'static str,
            content: &'static [u8],
            ok: bool,
        }
        let cases = [
            Case {
                name: "jwt with a trailing newline",
                content: b"eyJh.eyJi.c2ln\n",
                ok: true,
            },
            Case {
                name: "empty",
                content: b"",
                ok: false,
            },
            Case {
                name: "not a jwt",
                content: b"hello",
                ok: false,
            },
            Case {
                name: "form-breaking characters",
                content: b"a&b.c=d.e",
                ok: false,
            },
            Case {
                name: "inner whitespace",
                content: b"a b.c.d",
                ok: false,
            },
        ];
        let dir = std::env::temp_dir().join(format!("taa-wi-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, case) in cases.iter().enumerate() {
            let path = dir.join(format!("token-{i}"));
            std::fs::write(&path, case.content).unwrap();
            let result = FederatedTokenFile::new(&path).read();
            assert_eq!(result.is_ok(), case.ok, "{}: {result:?}", case.name);
            if let Err(e) = result {
                assert!(!e.to_string().contains("hello"), "{}: {e}", case.name);
            }
        }
        let missing = FederatedTokenFile::new(dir.join("missing")).read();
        assert!(
            matches!(missing, Err(CredentialError::Io { .. })),
            "missing file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
