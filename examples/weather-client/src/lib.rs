//! The seed's client: loads a client certificate, gets an app token from Entra ID (client
//! credentials), calls `GET {ApiBaseAddress}/weatherforecast` with it and returns the JSON.
//!
//! [`run`] is the whole program minus the command line, so tests call it in-process.
//!
//! The certificate comes from `CallApi:ClientCertificates` (any `SourceType` of
//! [`CredentialDescriptions`](tower_azure_auth::credentials::CredentialDescriptions)); with
//! the seed's `{"SourceType": "KeyVault", "KeyVaultUrl", "KeyVaultCertificateName"}` (see
//! `appsettings.keyvault.json`) it is read from Azure Key Vault with a token from the
//! managed identity (IMDS, or `IDENTITY_ENDPOINT` on App Service; `MSAL_MANAGED_IDENTITY_ENDPOINT`
//! points it elsewhere, e.g. at a local test server). `{"SourceType": "KeyVaultSigning", …}`
//! keeps the key in the vault (Key Vault signs each assertion), and `{"SourceType":
//! "Pkcs11", "Pkcs11Module", "Pkcs11TokenLabel", "Pkcs11KeyLabel", "Pkcs11PinFile"}` signs
//! with a key in an HSM (the `pkcs11` feature, on by default in this example).
//!
//! Many replicas share their tokens through Redis with `CallApi:TokenCache`
//! (`Redis:ConnectionString`, `Redis:KeyPrefix`, `EncryptionKeys`; see
//! [`TokenCacheOptions`](tower_azure_auth::config::TokenCacheOptions)): one replica asks the
//! authority, the others take its sealed token from Redis.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weather_client::ClientError> {
//! let options = tower_azure_auth::CallApiOptions::load(None)?; // CallApi__… variables
//! let forecast = weather_client::run(options).await?;
//! println!("{forecast:#}");
//! # Ok(()) }
//! ```

use std::time::Duration;

use tower_azure_auth::authority::require_secure;
use tower_azure_auth::credentials::{
    ClientCredential, ConfidentialClient, CredentialError, TokenError,
};
use tower_azure_auth::error::error_chain;
use tower_azure_auth::middleware::AccessTokenMiddleware;
use tower_azure_auth::{CallApiOptions, ConfigError};
use url::Url;

/// Why the client failed; [`ClientError::explain`] gives the one-paragraph explanation the
/// binary prints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration (or the certificate it points to) is not usable.
    #[error("the configuration is not usable")]
    Config(#[from] ConfigError),
    /// The client credential could not be loaded at startup (a certificate file, Key Vault,
    /// a managed identity).
    #[error("the client credential could not be loaded")]
    Credential(#[from] CredentialError),
    /// No token could be obtained.
    #[error("no access token could be obtained")]
    Token {
        /// The cause.
        #[source]
        source: TokenError,
        /// The certificate in use (subject and thumbprint), if any.
        certificate: Option<String>,
    },
    /// The API could not be reached.
    #[error("the API could not be reached")]
    Request(#[source] reqwest_middleware::Error),
    /// The API answered with an error status.
    #[error("the API answered {status}")]
    Api {
        /// The status.
        status: u16,
        /// `WWW-Authenticate`, when present.
        www_authenticate: Option<String>,
        /// The start of the body.
        body: String,
    },
    /// The API's answer is not JSON.
    #[error("the API's answer is not JSON")]
    Json(#[source] reqwest::Error),
}

impl ClientError {
    /// One paragraph: what went wrong, the AADSTS code where there is one, and what to check.
    #[must_use]
    pub fn explain(&self) -> String {
        match self {
            Self::Config(e) => format!(
                "weather-client could not start: {}. Check the CallApi section of the configuration file and the CallApi__… environment variables.",
                error_chain(e)
            ),
            Self::Credential(e) if e.is_transient() => format!(
                "weather-client could not start: {}. The credential's service did not answer as it should; this may pass, try again later.",
                error_chain(e)
            ),
            Self::Credential(e) => format!(
                "weather-client could not start: {}. Check ClientCertificates in the CallApi section of the configuration file (and the CallApi__… environment variables), and the identity's access to the vault.",
                error_chain(e)
            ),
            Self::Token { source, certificate } => {
                let with = certificate
                    .as_deref()
                    .map(|c| format!(" (client certificate {c})"))
                    .unwrap_or_default();
                match source.authority_error() {
                    Some(authority) => format!(
                        "the authority refused the client{with}: {authority}."
                    ),
                    None => format!("no access token could be obtained{with}: {}.", error_chain(source)),
                }
            }
            Self::Request(e) => format!(
                "the access token was obtained but the API could not be reached: {}. Check ApiBaseAddress and that the API is running.",
                error_chain(e)
            ),
            Self::Api { status, www_authenticate, body } => {
                let mut text = format!("the API answered HTTP {status}");
                if let Some(challenge) = www_authenticate {
                    text.push_str(&format!(" with `WWW-Authenticate: {challenge}`"));
                }
                if !body.is_empty() {
                    text.push_str(&format!(" and `{body}`"));
                }
                text.push_str(match status {
                    401 => "; the API did not accept the token: check that ScopeForAccessToken names this API (api://{its client id}/.default) and that both use the same tenant.",
                    403 => "; the token was valid but not authorized: check that the app role (e.g. service-api) is granted to this client and that the API expects this client id.",
                    _ => ".",
                });
                text
            }
            Self::Json(e) => format!("the API answered but not with JSON: {}.", error_chain(e)),
        }
    }
}

fn required(
    value: Option<&String>,
    key: &'static str,
    hint: &'static str,
) -> Result<String, ConfigError> {
    value
        .cloned()
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError::Missing { key, hint })
}

/// Gets a token with the configured credentials and calls `GET {ApiBaseAddress}/weatherforecast`.
///
/// # Errors
///
/// See [`ClientError`].
pub async fn run(options: CallApiOptions) -> Result<serde_json::Value, ClientError> {
    let scope = required(
        options.scope_for_access_token.as_ref(),
        "CallApi:ScopeForAccessToken",
        "set the API's scope, e.g. api://{api client id}/.default",
    )?;
    let base = required(
        options.api_base_address.as_ref(),
        "CallApi:ApiBaseAddress",
        "set the API's base URL",
    )?;
    let mut base = Url::parse(&base).map_err(|e| ConfigError::Invalid {
        key: "CallApi:ApiBaseAddress".into(),
        reason: format!("`{base}` is not a URL: {e}"),
    })?;
    require_secure(&base, "CallApi:ApiBaseAddress")?;
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    let url = base
        .join("weatherforecast")
        .map_err(|e| ConfigError::Invalid {
            key: "CallApi:ApiBaseAddress".into(),
            reason: e.to_string(),
        })?;

    let client = ConfidentialClient::builder_from_options(&options)?.build()?;
    client.load_credential().await?;
    let certificate = match client.credential() {
        Some(ClientCredential::Certificate(c)) => Some(format!(
            "`{}`, thumbprint {}",
            c.subject(),
            c.thumbprints().sha1_hex()
        )),
        Some(ClientCredential::Signer(signer)) => {
            let c = signer.certificate();
            Some(format!(
                "`{}`, thumbprint {} (its key signs in {})",
                c.subject(),
                c.thumbprints().sha1_hex(),
                signer.backend()
            ))
        }
        _ => None,
    };
    // Get the token first so that token problems are reported as such.
    client
        .acquire_token_for_client(&[&scope])
        .await
        .map_err(|source| ClientError::Token {
            source,
            certificate: certificate.clone(),
        })?;

    let reqwest = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ClientError::Request(e.into()))?;
    let http = reqwest_middleware::ClientBuilder::new(reqwest)
        // The token goes to ApiBaseAddress's origin only.
        .with(AccessTokenMiddleware::new(client, [scope], base.as_str())?)
        .build();
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| match e {
            reqwest_middleware::Error::Middleware(inner) => match inner.downcast::<TokenError>() {
                Ok(source) => ClientError::Token {
                    source,
                    certificate,
                },
                Err(other) => ClientError::Request(reqwest_middleware::Error::Middleware(other)),
            },
            other @ reqwest_middleware::Error::Reqwest(_) => ClientError::Request(other),
        })?;
    let status = response.status();
    if !status.is_success() {
        let www_authenticate = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(300).collect();
        return Err(ClientError::Api {
            status: status.as_u16(),
            www_authenticate,
            body: body.trim().to_owned(),
        });
    }
    response.json().await.map_err(ClientError::Json)
}
