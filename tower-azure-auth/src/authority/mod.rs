//! Authorities (Entra ID `Instance` + `TenantId`, or any OpenID Connect issuer), their
//! discovery documents, and the bounded HTTP client every fetch goes through.
//!
//! ```
//! use tower_azure_auth::authority::Authority;
//!
//! let entra = Authority::entra("https://login.microsoftonline.com/", "contoso.onmicrosoft.com").unwrap();
//! assert_eq!(
//!     entra.token_endpoint().unwrap().as_str(),
//!     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
//! );
//! assert_eq!(
//!     entra.metadata_url().as_str(),
//!     "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"
//! );
//! // Plain http is refused except on loopback.
//! assert!(Authority::oidc("http://idp.example.com").is_err());
//! assert!(Authority::oidc("http://127.0.0.1:8080/realm").is_ok());
//! ```

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;
use url::Url;

use crate::config::AzureAdOptions;
use crate::error::ConfigError;

mod http;

pub use self::http::{FetchError, HttpClient, HttpClientBuilder};

/// Hosts of Entra ID's clouds (MSAL.NET's `AzureCloudInstance` and known aliases): an
/// `Authority` on one of these is treated as Entra. Entra External ID (`{tenant}.ciamlogin.com`)
/// is recognised by its suffix ([`is_ciam_host`]).
const ENTRA_HOSTS: &[&str] = &[
    // Public.
    "login.microsoftonline.com",
    "login.microsoft.com",
    "login.windows.net",
    // US Government.
    "login.microsoftonline.us",
    "login.usgovcloudapi.net",
    // China (21Vianet).
    "login.partner.microsoftonline.cn",
    "login.chinacloudapi.cn",
    // Bleu (French sovereign cloud).
    "login.sovcloud-identity.fr",
    // Delos (German sovereign cloud).
    "login.sovcloud-identity.de",
    // GovSG (Singapore government cloud).
    "login.sovcloud-identity.sg",
];

/// The host suffix of Entra External ID (CIAM) authorities.
const CIAM_SUFFIX: &str = ".ciamlogin.com";

/// Whether `host` (lower case) is an Entra External ID host, `{subdomain}.ciamlogin.com`.
fn is_ciam_host(host: &str) -> bool {
    host.strip_suffix(CIAM_SUFFIX)
        .is_some_and(|sub| !sub.is_empty() && !sub.contains('.'))
}

/// Whether `host` (lower case) is one of Entra ID's: a cloud's login host or External ID.
fn is_entra_host(host: &str) -> bool {
    ENTRA_HOSTS.contains(&host) || is_ciam_host(host)
}

/// Where tokens come from.
#[derive(Clone, PartialEq, Eq)]
pub struct Authority {
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    /// Entra-shaped: `{instance}{tenant}` with v1 and v2 endpoints below it.
    Entra { instance: Url, tenant: String },
    /// Any OpenID Connect issuer.
    Oidc { url: Url },
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Entra { instance, tenant } => f
                .debug_struct("Authority::Entra")
                .field("instance", &instance.as_str())
                .field("tenant", tenant)
                .finish(),
            Kind::Oidc { url } => f
                .debug_struct("Authority::Oidc")
                .field("url", &url.as_str())
                .finish(),
        }
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Entra { instance, tenant } => write!(f, "{instance}{tenant}"),
            Kind::Oidc { url } => f.write_str(url.as_str().trim_end_matches('/')),
        }
    }
}

/// Checks that `url` is https, or http on a loopback host.
///
/// # Errors
///
/// [`ConfigError::InsecureUrl`] for plain http elsewhere, [`ConfigError::Invalid`] for other
/// schemes.
pub fn require_secure(url: &Url, key: &str) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(ConfigError::InsecureUrl {
            url: url.to_string(),
        }),
        other => Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("unsupported URL scheme `{other}` in `{url}`"),
        }),
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn parse_url(value: &str, key: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim()).map_err(|e| ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("`{value}` is not a URL: {e}"),
    })?;
    require_secure(&url, key)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("`{value}` must not have a query or fragment"),
        });
    }
    Ok(url)
}

fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 256
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

impl Authority {
    /// An Entra ID authority from `Instance` (e.g. `https://login.microsoftonline.com/`) and
    /// `TenantId` (GUID, domain, `common` or `organizations`). Any instance URL is accepted
    /// (a local dev authority too) as long as it is https or loopback http.
    ///
    /// # Errors
    ///
    /// When the instance is not a usable URL or the tenant is not a plain name.
    pub fn entra(instance: &str, tenant: &str) -> Result<Self, ConfigError> {
        let mut instance = parse_url(instance, "AzureAd:Instance")?;
        if !instance.path().ends_with('/') {
            let path = format!("{}/", instance.path());
            instance.set_path(&path);
        }
        let tenant = tenant.trim();
        if !valid_tenant(tenant) {
            return Err(ConfigError::Invalid {
                key: "AzureAd:TenantId".into(),
                reason: format!("`{tenant}` is not a tenant id or domain"),
            });
        }
        Ok(Self {
            kind: Kind::Entra {
                instance,
                tenant: tenant.to_owned(),
            },
        })
    }

    /// An authority from an `Authority` URL. On an Entra host the tenant is read from the
    /// path (`/{tenant}` or `/{tenant}/v2.0`) and Entra's rules apply; any other URL is an
    /// OpenID Connect issuer. Entra hosts: the public cloud (`login.microsoftonline.com`,
    /// `login.microsoft.com`, `login.windows.net`), US Government
    /// (`login.microsoftonline.us`, `login.usgovcloudapi.net`), China
    /// (`login.partner.microsoftonline.cn`, `login.chinacloudapi.cn`), Bleu
    /// (`login.sovcloud-identity.fr`), Delos (`login.sovcloud-identity.de`), GovSG
    /// (`login.sovcloud-identity.sg`) and Entra External ID (`{subdomain}.ciamlogin.com`,
    /// issuer `https://{subdomain}.ciamlogin.com/{tenant id}/v2.0`). As in MSAL.NET, an External
    /// ID authority without a path, `https://contoso.ciamlogin.com/`, means the tenant
    /// `contoso.onmicrosoft.com`.
    ///
    /// ```
    /// use tower_azure_auth::Authority;
    ///
    /// let ciam = Authority::oidc("https://contoso.ciamlogin.com/")?;
    /// assert_eq!(ciam.tenant(), Some("contoso.onmicrosoft.com"));
    /// assert_eq!(
    ///     ciam.token_endpoint().unwrap().as_str(),
    ///     "https://contoso.ciamlogin.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    /// );
    /// let bleu = Authority::oidc("https://login.sovcloud-identity.fr/contoso.fr/v2.0")?;
    /// assert!(bleu.is_entra());
    /// # Ok::<(), tower_azure_auth::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the URL is not usable.
    pub fn oidc(authority: &str) -> Result<Self, ConfigError> {
        let url = parse_url(authority, "AzureAd:Authority")?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if is_entra_host(&host) {
            let segments: Vec<&str> = url
                .path_segments()
                .map(|s| s.filter(|p| !p.is_empty()).collect())
                .unwrap_or_default();
            let instance = format!("{}://{}/", url.scheme(), host);
            if segments.is_empty() && is_ciam_host(&host) {
                // MSAL.NET's `CiamAuthority`: "needed only until ESTS is updated to support the
                // north star format".
                let sub = host.trim_end_matches(CIAM_SUFFIX);
                return Self::entra(&instance, &format!("{sub}.onmicrosoft.com"));
            }
            return match segments.as_slice() {
                [tenant] | [tenant, "v2.0"] => Self::entra(&instance, tenant),
                _ => Err(ConfigError::Invalid {
                    key: "AzureAd:Authority".into(),
                    reason: format!(
                        "`{authority}` should be https://{host}/{{tenant}} or https://{host}/{{tenant}}/v2.0"
                    ),
                }),
            };
        }
        Ok(Self {
            kind: Kind::Oidc { url },
        })
    }

    /// From options: `Authority` if set, else `Instance` + `TenantId`.
    ///
    /// # Errors
    ///
    /// When neither is set, or the values are not usable.
    pub fn from_parts(
        authority: Option<&str>,
        instance: Option<&str>,
        tenant: Option<&str>,
    ) -> Result<Self, ConfigError> {
        if let Some(authority) = authority.filter(|a| !a.trim().is_empty()) {
            return Self::oidc(authority);
        }
        let instance = instance
            .filter(|s| !s.trim().is_empty())
            .unwrap_or("https://login.microsoftonline.com/");
        match tenant.filter(|s| !s.trim().is_empty()) {
            Some(tenant) => Self::entra(instance, tenant),
            None => Err(ConfigError::Missing {
                key: "AzureAd:TenantId",
                hint: "set TenantId (with Instance) or Authority",
            }),
        }
    }

    /// From the `AzureAd` section.
    ///
    /// # Errors
    ///
    /// See [`Authority::from_parts`].
    pub fn from_options(options: &AzureAdOptions) -> Result<Self, ConfigError> {
        Self::from_parts(
            options.authority.as_deref(),
            options.instance.as_deref(),
            options.tenant_id.as_deref(),
        )
    }

    /// The same instance with `tenant` as its tenant (Entra only; `None` for other issuers).
    pub(crate) fn with_tenant(&self, tenant: &str) -> Option<Result<Self, ConfigError>> {
        match &self.kind {
            Kind::Entra { instance, .. } => Some(Self::entra(instance.as_str(), tenant)),
            Kind::Oidc { .. } => None,
        }
    }

    /// Whether Entra's rules (v1 + v2 issuers, tenant templates, PS256 assertions) apply.
    #[must_use]
    pub fn is_entra(&self) -> bool {
        matches!(self.kind, Kind::Entra { .. })
    }

    /// The tenant, for Entra authorities.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        match &self.kind {
            Kind::Entra { tenant, .. } => Some(tenant),
            Kind::Oidc { .. } => None,
        }
    }

    /// Whether the tenant is `common`, `organizations` or `consumers` (multi-tenant).
    #[must_use]
    pub fn is_multi_tenant(&self) -> bool {
        self.tenant().is_some_and(|t| {
            ["common", "organizations", "consumers"]
                .iter()
                .any(|m| t.eq_ignore_ascii_case(m))
        })
    }

    fn join(base: &Url, path: &str) -> Url {
        // `base` ends with '/', `path` is relative: join cannot fail.
        base.join(path).unwrap_or_else(|_| base.clone())
    }

    fn with_trailing_slash(url: &Url) -> Url {
        let mut url = url.clone();
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        url
    }

    /// The discovery document (v2 for Entra).
    #[must_use]
    pub fn metadata_url(&self) -> Url {
        match &self.kind {
            Kind::Entra { instance, tenant } => Self::join(
                instance,
                &format!("{tenant}/v2.0/.well-known/openid-configuration"),
            ),
            Kind::Oidc { url } => Self::join(
                &Self::with_trailing_slash(url),
                ".well-known/openid-configuration",
            ),
        }
    }

    /// The v1 discovery document (Entra only): its `issuer` is the v1 issuer
    /// (`https://sts.windows.net/{tenantid}/` on the public cloud).
    #[must_use]
    pub fn v1_metadata_url(&self) -> Option<Url> {
        match &self.kind {
            Kind::Entra { instance, tenant } => Some(Self::join(
                instance,
                &format!("{tenant}/.well-known/openid-configuration"),
            )),
            Kind::Oidc { .. } => None,
        }
    }

    /// The v2 token endpoint for Entra authorities; `None` for other issuers (read it from
    /// the discovery document).
    #[must_use]
    pub fn token_endpoint(&self) -> Option<Url> {
        match &self.kind {
            Kind::Entra { instance, tenant } => {
                Some(Self::join(instance, &format!("{tenant}/oauth2/v2.0/token")))
            }
            Kind::Oidc { .. } => None,
        }
    }
}

/// The parts of an OpenID Connect discovery document this library reads.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct OidcMetadata {
    /// `issuer`; for Entra's multi-tenant metadata a template with `{tenantid}`.
    pub issuer: String,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// `token_endpoint`.
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

impl OidcMetadata {
    /// Fetches and parses a discovery document.
    ///
    /// # Errors
    ///
    /// See [`FetchError`].
    pub async fn fetch(client: &HttpClient, url: &Url) -> Result<Self, FetchError> {
        let metadata: Self = client.get_json(url).await?;
        let jwks = Url::parse(&metadata.jwks_uri).map_err(|e| FetchError::Invalid {
            url: url.to_string(),
            reason: format!("jwks_uri `{}` is not a URL: {e}", metadata.jwks_uri),
        })?;
        require_secure(&jwks, "jwks_uri").map_err(|e| FetchError::Invalid {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_proxy_credentials() {
        let builder = HttpClient::builder().proxy("http://alice:s3cret@proxy.contoso.com:3128");
        let debug = format!("{builder:?}");
        assert!(
            debug.contains("Url(http://proxy.contoso.com:3128)"),
            "{debug}"
        );
        assert!(
            !debug.contains("s3cret") && !debug.contains("alice"),
            "{debug}"
        );
        let client = builder.build().unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn every_cloud_is_entra_with_its_token_endpoint() {
        struct Case {
            name: &'static str,
            authority: &'static str,
            tenant: &'static str,
            token_endpoint: &'static str,
        }
        const T: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
        let cases = [
            Case {
                name: "public",
                authority: "https://login.microsoftonline.com/7ff95b15-dc21-4ba6-bc92-824856578fc1/v2.0",
                tenant: T,
                token_endpoint: "https://login.microsoftonline.com/7ff95b15-dc21-4ba6-bc92-824856578fc1/oauth2/v2.0/token",
            },
            Case {
                name: "US Government",
                authority: "https://login.microsoftonline.us/contoso.onmicrosoft.us",
                tenant: "contoso.onmicrosoft.us",
                token_endpoint: "https://login.microsoftonline.us/contoso.onmicrosoft.us/oauth2/v2.0/token",
            },
            Case {
                name: "China",
                authority: "https://login.partner.microsoftonline.cn/contoso.partner.onmschina.cn",
                tenant: "contoso.partner.onmschina.cn",
                token_endpoint: "https://login.partner.microsoftonline.cn/contoso.partner.onmschina.cn/oauth2/v2.0/token",
            },
            Case {
                name: "Bleu",
                authority: "https://login.sovcloud-identity.fr/7ff95b15-dc21-4ba6-bc92-824856578fc1",
                tenant: T,
                token_endpoint: "https://login.sovcloud-identity.fr/7ff95b15-dc21-4ba6-bc92-824856578fc1/oauth2/v2.0/token",
            },
            Case {
                name: "Delos",
                authority: "https://LOGIN.sovcloud-identity.de/contoso.de/v2.0",
                tenant: "contoso.de",
                token_endpoint: "https://login.sovcloud-identity.de/contoso.de/oauth2/v2.0/token",
            },
            Case {
                name: "GovSG",
                authority: "https://login.sovcloud-identity.sg/organizations",
                tenant: "organizations",
                token_endpoint: "https://login.sovcloud-identity.sg/organizations/oauth2/v2.0/token",
            },
            Case {
                name: "External ID with a tenant id",
                authority: "https://contoso.ciamlogin.com/7ff95b15-dc21-4ba6-bc92-824856578fc1/v2.0",
                tenant: T,
                token_endpoint: "https://contoso.ciamlogin.com/7ff95b15-dc21-4ba6-bc92-824856578fc1/oauth2/v2.0/token",
            },
            Case {
                name: "External ID without a path (MSAL.NET's rewrite)",
                authority: "https://contoso.ciamlogin.com/",
                tenant: "contoso.onmicrosoft.com",
                token_endpoint: "https://contoso.ciamlogin.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
            },
            Case {
                name: "External ID with a domain",
                authority: "https://contoso.ciamlogin.com/contoso.onmicrosoft.com",
                tenant: "contoso.onmicrosoft.com",
                token_endpoint: "https://contoso.ciamlogin.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
            },
        ];
        for case in cases {
            let authority = Authority::oidc(case.authority).expect(case.name);
            assert!(authority.is_entra(), "{}", case.name);
            assert_eq!(authority.tenant(), Some(case.tenant), "{}", case.name);
            assert_eq!(
                authority.token_endpoint().unwrap().as_str(),
                case.token_endpoint,
                "{}",
                case.name
            );
            assert_eq!(
                authority.metadata_url().as_str(),
                case.token_endpoint
                    .replace("oauth2/v2.0/token", "v2.0/.well-known/openid-configuration"),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn look_alike_hosts_are_not_entra() {
        for authority in [
            "https://ciamlogin.com/tenant",
            "https://a.b.ciamlogin.com/tenant",
            "https://contoso.ciamlogin.com.evil.example/tenant",
            "https://login.sovcloud-identity.fr.evil.example/tenant",
            "https://evilciamlogin.com/tenant",
        ] {
            let parsed = Authority::oidc(authority).expect(authority);
            assert!(!parsed.is_entra(), "{authority}");
        }
        // Entra hosts need a tenant in the path (External ID aside).
        assert!(Authority::oidc("https://login.sovcloud-identity.sg/").is_err());
    }

    #[test]
    fn authority_forms() {
        struct Case {
            name: &'static str,
            authority: Option<&'static str>,
            instance: Option<&'static str>,
            tenant: Option<&'static str>,
            metadata: Result<&'static str, &'static str>,
        }
        let cases = [
            Case {
                name: "instance + tenant",
                authority: None,
                instance: Some("https://login.microsoftonline.com/"),
                tenant: Some("t1"),
                metadata: Ok(
                    "https://login.microsoftonline.com/t1/v2.0/.well-known/openid-configuration",
                ),
            },
            Case {
                name: "instance without trailing slash",
                authority: None,
                instance: Some("http://127.0.0.1:5100"),
                tenant: Some("t1"),
                metadata: Ok("http://127.0.0.1:5100/t1/v2.0/.well-known/openid-configuration"),
            },
            Case {
                name: "entra authority with v2.0",
                authority: Some("https://login.microsoftonline.com/t2/v2.0"),
                instance: None,
                tenant: None,
                metadata: Ok(
                    "https://login.microsoftonline.com/t2/v2.0/.well-known/openid-configuration",
                ),
            },
            Case {
                name: "generic issuer",
                authority: Some("https://idp.example.com/realms/x"),
                instance: None,
                tenant: None,
                metadata: Ok("https://idp.example.com/realms/x/.well-known/openid-configuration"),
            },
            Case {
                name: "http elsewhere than loopback",
                authority: Some("http://idp.example.com"),
                instance: None,
                tenant: None,
                metadata: Err("must use https"),
            },
            Case {
                name: "no tenant",
                authority: None,
                instance: None,
                tenant: None,
                metadata: Err("TenantId"),
            },
            Case {
                name: "tenant with a slash",
                authority: None,
                instance: None,
                tenant: Some("a/b"),
                metadata: Err("not a tenant"),
            },
        ];
        for case in cases {
            let result = Authority::from_parts(case.authority, case.instance, case.tenant);
            match (result, case.metadata) {
                (Ok(a), Ok(expected)) => {
                    assert_eq!(a.metadata_url().as_str(), expected, "{}", case.name)
                }
                (Err(e), Err(expected)) => {
                    assert!(e.to_string().contains(expected), "{}: {e}", case.name)
                }
                (result, expected) => panic!("{}: {result:?} vs {expected:?}", case.name),
            }
        }
    }
}
