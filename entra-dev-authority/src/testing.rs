//! One-call set-ups for tests of your own API and client against a running [`DevAuthority`]:
//! the `AzureAd` options (or the [`TokenValidator`]) of an API registered in it, and the
//! [`ConfidentialClient`] of an application registered in it.
//!
//! They live here, not in `tower-azure-auth`, because this crate already depends on the core
//! (for its vocabulary) while the core only dev-depends on this one: a test build holds one
//! copy of each.

use tower_azure_auth::credentials::{ClientCertificate, ConfidentialClient};
use tower_azure_auth::{Authority, AzureAdOptions, ConfigError, TokenValidator};

use crate::keys::GeneratedCertificate;
use crate::DevAuthority;

impl DevAuthority {
    /// The `AzureAd` section an API registered here as `api_client_id` would have in its
    /// `appsettings.json`: `Instance` (this authority), `TenantId`, `ClientId`, and as
    /// `Audiences` the client id and, when the API is registered with one, its App ID URI (the
    /// `aud` of its v2 and v1 tokens). Change fields (`allowed_client_ids`…) before building.
    ///
    /// ```
    /// use entra_dev_authority::{generate_certificate, DevApi, DevApplication, DevAuthority};
    /// use tower_azure_auth::claims::TokenVersion;
    ///
    /// const API: &str = "6f8a1c52-0000-4000-8000-000000000001";
    /// const CALLER: &str = "0b7c5d2e-0000-4000-8000-000000000002";
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let certificate = generate_certificate("CN=caller")?;
    /// let authority = DevAuthority::builder()
    ///     .api(DevApi::new(API).app_id_uri("api://weather").app_roles(["service-api"])
    ///         .token_version(TokenVersion::V2))
    ///     .application(DevApplication::new(CALLER).certificate_pem(&certificate.cert_pem)?
    ///         .grant("api://weather", ["service-api"]))
    ///     .start()
    ///     .await?;
    ///
    /// // Your API's validator and your caller's client, one call each.
    /// let validator = authority.api_validator(API)?;
    /// let client = authority.confidential_client(CALLER, &certificate)?;
    ///
    /// let token = client.acquire_token_for_client(&["api://weather/.default"]).await?;
    /// let claims = validator.validate(token.secret()).await?;
    /// assert_eq!(claims.client_id(), Some(CALLER));
    /// assert!(claims.roles().iter().any(|role| role == "service-api"));
    ///
    /// // The options themselves, to change before building.
    /// let options = authority.api_options(API);
    /// assert_eq!(options.client_id.as_deref(), Some(API));
    /// assert_eq!(options.audiences, [API, "api://weather"]);
    /// # authority.shutdown().await;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn api_options(&self, api_client_id: &str) -> AzureAdOptions {
        let mut options = AzureAdOptions::default();
        options.instance = Some(self.instance());
        options.tenant_id = Some(self.tenant_id().to_owned());
        options.client_id = Some(api_client_id.to_owned());
        options.audiences = vec![api_client_id.to_owned()];
        let app_id_uri = self
            .state()
            .registry
            .apis
            .iter()
            .find(|api| api.client_id.eq_ignore_ascii_case(api_client_id))
            .and_then(|api| api.app_id_uri.clone());
        options.audiences.extend(app_id_uri);
        options
    }

    /// A [`TokenValidator`] built from [`api_options`](Self::api_options), with the
    /// defaults (see there for an example).
    ///
    /// # Errors
    ///
    /// As [`TokenValidator::new`].
    pub fn api_validator(&self, api_client_id: &str) -> Result<TokenValidator, ConfigError> {
        TokenValidator::new(&self.api_options(api_client_id))
    }

    /// A [`ConfidentialClient`] for the application registered here as `client_id`, signing
    /// its assertions with `certificate` (its registered certificate for a token, another one
    /// for an AADSTS700027 refusal). See [`api_options`](Self::api_options) for an example.
    ///
    /// # Errors
    ///
    /// When the certificate cannot be loaded (expired, for example) or the client cannot be
    /// built.
    pub fn confidential_client(
        &self,
        client_id: &str,
        certificate: &GeneratedCertificate,
    ) -> Result<ConfidentialClient, ConfigError> {
        ConfidentialClient::builder(client_id)
            .authority(self.entra_authority()?)
            .certificate(ClientCertificate::from_pem(
                certificate.combined_pem().as_bytes(),
            )?)
            .build()
    }

    /// A [`ConfidentialClient`] for the application registered here as `client_id`,
    /// authenticating with one of its secrets (tokens then carry `azpacr` 1).
    ///
    /// # Errors
    ///
    /// When the client cannot be built.
    pub fn confidential_client_with_secret(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<ConfidentialClient, ConfigError> {
        ConfidentialClient::builder(client_id)
            .authority(self.entra_authority()?)
            .client_secret(secret)
            .build()
    }

    fn entra_authority(&self) -> Result<Authority, ConfigError> {
        Authority::entra(&self.instance(), self.tenant_id())
    }
}
