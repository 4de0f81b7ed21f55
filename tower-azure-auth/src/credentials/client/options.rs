//! [`AcquireTokenOptions`]: per-call options of
//! [`ConfidentialClient::acquire_token_for_client_with`](super::ConfidentialClient::acquire_token_for_client_with).

use url::Url;

use crate::authority::Authority;
use crate::credentials::claims::merged_claims;
use crate::credentials::token::TokenError;

/// Options of one acquisition (MSAL's `WithClaims`, `WithTenantId`, `WithForceRefresh`).
///
/// ```
/// use tower_azure_auth::credentials::AcquireTokenOptions;
///
/// let options = AcquireTokenOptions::new()
///     .tenant("72f988bf-86f1-41af-91ab-2d7cd011db47")
///     .claims(r#"{"access_token":{"acrs":{"essential":true,"value":"c25"}}}"#);
/// assert!(!options.is_force_refresh());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct AcquireTokenOptions {
    claims: Option<String>,
    tenant: Option<String>,
    force_refresh: bool,
}

impl AcquireTokenOptions {
    /// No claims, the configured tenant, the cache used.
    pub fn new() -> Self {
        Self::default()
    }

    /// A claims request (a JSON object, e.g. the decoded claims of a resource's
    /// `insufficient_claims` challenge), merged with the client capabilities and sent as the
    /// `claims` parameter. A request with claims skips the cached token and the token it
    /// gets replaces the cached one. A value that is not a JSON object is refused at the call
    /// ([`TokenError::InvalidClaims`]).
    pub fn claims(mut self, claims: impl Into<String>) -> Self {
        self.claims = Some(claims.into());
        self
    }

    /// The tenant to get the token from (MSAL's `WithTenantId`): for an Entra authority
    /// (a tenant, `organizations` or `common`) the tenant segment is replaced, the host kept,
    /// and tokens are cached per tenant. Refused at the call ([`TokenError::InvalidTenant`])
    /// when empty, `common`, `organizations` or `consumers`, or when the authority is not
    /// Entra (B2C, ADFS, another OpenID Connect issuer), as MSAL Go does.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Skips the cached token (MSAL's `WithForceRefresh`); default false.
    pub fn force_refresh(mut self, force: bool) -> Self {
        self.force_refresh = force;
        self
    }

    /// The claims request, if any.
    #[must_use]
    pub fn claims_request(&self) -> Option<&str> {
        self.claims.as_deref()
    }

    /// The tenant override, if any.
    #[must_use]
    pub fn tenant_override(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Whether the cached token is skipped.
    #[must_use]
    pub fn is_force_refresh(&self) -> bool {
        self.force_refresh
    }
}

/// The options resolved against the client: where the request goes, the cache entry's
/// authority and the `claims` parameter.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The token endpoint of a tenant override (`None`: the client's).
    pub(crate) endpoint: Option<Url>,
    /// The authority part of the cache key.
    pub(crate) authority_key: String,
    /// The `claims` parameter (capabilities merged with the claims request).
    pub(crate) claims: Option<String>,
    /// Whether a claims request was made (it skips the cache).
    pub(crate) has_claims: bool,
}

impl Target {
    /// Resolves `options` for a client on `authority` with `capabilities`.
    pub(crate) fn resolve(
        options: &AcquireTokenOptions,
        authority: &Authority,
        authority_key: &str,
        capabilities: &[String],
    ) -> Result<Self, TokenError> {
        let claims = merged_claims(capabilities, options.claims.as_deref())?;
        let has_claims = options
            .claims
            .as_deref()
            .is_some_and(|c| !c.trim().is_empty());
        let (endpoint, authority_key) = match options.tenant.as_deref() {
            None => (None, authority_key.to_owned()),
            Some(tenant) => {
                let tenanted = tenant_authority(authority, tenant)?;
                (tenanted.token_endpoint(), tenanted.to_string())
            }
        };
        Ok(Self {
            endpoint,
            authority_key,
            claims,
            has_claims,
        })
    }

    /// The same target for a background refresh: the tenant and capabilities, no claims
    /// request.
    pub(crate) fn without_claims_request(&self, capabilities: &[String]) -> Self {
        Self {
            endpoint: self.endpoint.clone(),
            authority_key: self.authority_key.clone(),
            // Capabilities alone always merge into a JSON object.
            claims: merged_claims(capabilities, None).unwrap_or_default(),
            has_claims: false,
        }
    }
}

/// `authority` with its tenant replaced by `tenant` (MSAL Go's `WithTenantID` rules).
fn tenant_authority(authority: &Authority, tenant: &str) -> Result<Authority, TokenError> {
    let invalid = |reason: &'static str| TokenError::InvalidTenant {
        tenant: tenant.to_owned(),
        reason,
    };
    let trimmed = tenant.trim();
    if trimmed.is_empty() {
        return Err(invalid("the tenant override is empty"));
    }
    if ["common", "organizations", "consumers"]
        .iter()
        .any(|m| trimmed.eq_ignore_ascii_case(m))
    {
        return Err(invalid(
            "the client credentials flow needs a specific tenant (a tenant id or domain)",
        ));
    }
    if authority
        .tenant()
        .is_some_and(|t| t.eq_ignore_ascii_case("consumers"))
    {
        return Err(invalid(
            "the client is configured on `consumers`, which has no tenants",
        ));
    }
    match authority.with_tenant(trimmed) {
        None => Err(invalid(
            "only Entra authorities take a tenant override (not B2C, ADFS or another OpenID Connect issuer)",
        )),
        Some(Err(_)) => Err(invalid("not a tenant id or domain")),
        Some(Ok(tenanted)) => Ok(tenanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(authority: &Authority, tenant: &str) -> Result<Target, TokenError> {
        Target::resolve(
            &AcquireTokenOptions::new().tenant(tenant),
            authority,
            &authority.to_string(),
            &[],
        )
    }

    #[test]
    fn tenant_overrides() {
        let organizations =
            Authority::entra("https://login.microsoftonline.com/", "organizations").unwrap();
        let target = resolve(&organizations, "contoso.onmicrosoft.com").unwrap();
        assert_eq!(
            target.endpoint.unwrap().as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(
            target.authority_key,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com"
        );
        let tenant = Authority::entra("https://login.microsoftonline.us/", "fabrikam.com").unwrap();
        let target = resolve(&tenant, "contoso.onmicrosoft.com").unwrap();
        assert_eq!(
            target.endpoint.unwrap().as_str(),
            "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token",
            "the host is kept"
        );
        for refused in ["", "  ", "common", "Organizations", "consumers", "a/b"] {
            let error = resolve(&organizations, refused).err().unwrap();
            assert!(
                matches!(error, TokenError::InvalidTenant { .. }),
                "{refused}: {error}"
            );
        }
        let consumers =
            Authority::entra("https://login.microsoftonline.com/", "consumers").unwrap();
        assert!(resolve(&consumers, "contoso.com").is_err());
        for other in [
            "https://contoso.b2clogin.com/tfp/contoso.onmicrosoft.com/B2C_1_signin/v2.0",
            "https://adfs.contoso.com/adfs",
            "https://idp.example.com/realms/x",
        ] {
            let error = resolve(&Authority::oidc(other).unwrap(), "contoso.com")
                .err()
                .unwrap();
            assert!(
                error.to_string().contains("only Entra authorities"),
                "{other}: {error}"
            );
        }
    }
}
