//! App registrations: the APIs (resources with app roles) and the client applications (with
//! certificates, secrets and granted app roles) the dev authority knows, from code or JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use serde::Deserialize;

use crate::error::DevAuthorityError;
use crate::keys::{thumbprint_sha1, thumbprint_sha256};
use crate::options::AssertionReuse;
use tower_azure_auth::claims::TokenVersion;

/// An API (a resource application) registered in the dev authority: its client id, App ID
/// URI, the app roles it defines, and the access-token version it asks for.
///
/// Like Entra (`requestedAccessTokenVersion: null` in the manifest), an API gets **v1**
/// tokens unless it asks for v2.
///
/// ```
/// use tower_azure_auth::claims::TokenVersion;
/// use entra_dev_authority::DevApi;
///
/// let api = DevApi::new("6f8a1c52-0000-4000-8000-000000000001")
///     .app_id_uri("api://weather")
///     .app_roles(["service-api"])
///     .token_version(TokenVersion::V2);
/// assert_eq!(api.client_id(), "6f8a1c52-0000-4000-8000-000000000001");
/// ```
#[derive(Debug, Clone)]
pub struct DevApi {
    pub(crate) client_id: String,
    pub(crate) app_id_uri: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) app_roles: Vec<String>,
    pub(crate) version: TokenVersion,
}

impl DevApi {
    /// An API with this client (application) id, a GUID.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            app_id_uri: None,
            display_name: None,
            app_roles: Vec::new(),
            version: TokenVersion::V1,
        }
    }

    /// The App ID URI (`identifierUris`), e.g. `api://weather`. Clients may ask for
    /// `{app id uri}/.default` or `{client id}/.default`.
    #[must_use]
    pub fn app_id_uri(mut self, uri: impl Into<String>) -> Self {
        self.app_id_uri = Some(uri.into());
        self
    }

    /// A display name (shown in errors).
    #[must_use]
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// The app roles (application permissions) the API defines.
    #[must_use]
    pub fn app_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.app_roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// The access-token version (`requestedAccessTokenVersion`); v1 by default, as in Entra.
    #[must_use]
    pub fn token_version(mut self, version: TokenVersion) -> Self {
        self.version = version;
        self
    }

    /// The client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether `resource` (from a scope, without `/.default`) names this API.
    pub(crate) fn is_named(&self, resource: &str) -> bool {
        let resource = resource.trim_end_matches('/');
        resource.eq_ignore_ascii_case(&self.client_id)
            || self
                .app_id_uri
                .as_deref()
                .is_some_and(|uri| uri.trim_end_matches('/').eq_ignore_ascii_case(resource))
    }

    fn name(&self) -> &str {
        self.app_id_uri
            .as_deref()
            .or(self.display_name.as_deref())
            .unwrap_or(&self.client_id)
    }
}

/// A client application registered in the dev authority: certificates and secrets it can
/// authenticate with, and the app roles it was granted on APIs (admin consent).
///
/// `Debug` never shows secrets.
///
/// ```
/// use entra_dev_authority::{generate_certificate, DevApplication};
///
/// let cert = generate_certificate("CN=weather-client").unwrap();
/// let app = DevApplication::new("0b7c5d2e-0000-4000-8000-000000000002")
///     .display_name("weather-client")
///     .certificate_pem(&cert.cert_pem)
///     .unwrap()
///     .secret("dev-secret")
///     .grant("api://weather", ["service-api"]);
/// assert!(!format!("{app:?}").contains("dev-secret"));
/// ```
#[derive(Clone)]
pub struct DevApplication {
    pub(crate) client_id: String,
    pub(crate) display_name: Option<String>,
    pub(crate) object_id: Option<String>,
    pub(crate) certificates: Vec<RegisteredCertificate>,
    pub(crate) secrets: Vec<String>,
    pub(crate) grants: Vec<(String, Vec<String>)>,
}

impl fmt::Debug for DevApplication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevApplication")
            .field("client_id", &self.client_id)
            .field("display_name", &self.display_name)
            .field("certificates", &self.certificates)
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field("grants", &self.grants)
            .finish()
    }
}

impl DevApplication {
    /// An application with this client (application) id, a GUID.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            display_name: None,
            object_id: None,
            certificates: Vec::new(),
            secrets: Vec::new(),
            grants: Vec::new(),
        }
    }

    /// A display name.
    #[must_use]
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// The object id of the application's service principal (`oid` and `sub` in its tokens).
    /// Derived from the tenant and client id when not set, so it is stable across runs.
    #[must_use]
    pub fn object_id(mut self, oid: impl Into<String>) -> Self {
        self.object_id = Some(oid.into());
        self
    }

    /// Registers a certificate (public part) from PEM; the first `CERTIFICATE` block is used,
    /// anything else in the text (such as the private key) is ignored.
    ///
    /// # Errors
    ///
    /// [`DevAuthorityError::Invalid`] when the text holds no certificate or it is not an RSA
    /// certificate.
    pub fn certificate_pem(self, pem: &str) -> Result<Self, DevAuthorityError> {
        let der = first_certificate_der(pem.as_bytes())?;
        self.certificate_der(&der)
    }

    /// Registers a certificate (public part) from DER.
    ///
    /// # Errors
    ///
    /// [`DevAuthorityError::Invalid`] when it is not an X.509 certificate with an RSA key.
    pub fn certificate_der(mut self, der: &[u8]) -> Result<Self, DevAuthorityError> {
        self.certificates
            .push(RegisteredCertificate::from_der(der)?);
        Ok(self)
    }

    /// Registers a client secret.
    #[must_use]
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Grants app roles of an API (named by App ID URI or client id) to this application,
    /// as an admin consenting to application permissions would. Roles must be defined by the
    /// API ([`DevApi::app_roles`]); this is checked when the authority starts.
    #[must_use]
    pub fn grant<I, S>(mut self, api: impl Into<String>, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.grants
            .push((api.into(), roles.into_iter().map(Into::into).collect()));
        self
    }

    /// The client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

/// A certificate registered on an application: what the token endpoint matches assertions
/// against.
#[derive(Clone)]
pub(crate) struct RegisteredCertificate {
    pub(crate) der: Vec<u8>,
    pub(crate) x5t: String,
    pub(crate) x5t_s256: String,
    /// PKCS#1 `RSAPublicKey` DER, from the certificate's SPKI.
    pub(crate) rsa_public_key: Vec<u8>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
}

impl fmt::Debug for RegisteredCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredCertificate")
            .field("x5t", &self.x5t)
            .finish()
    }
}

impl RegisteredCertificate {
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, DevAuthorityError> {
        let invalid = |reason: String| DevAuthorityError::Invalid {
            key: "certificate".into(),
            reason,
        };
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
        let spki = cert.public_key();
        if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
            return Err(invalid(
                "only RSA certificates can be used as client credentials".into(),
            ));
        }
        Ok(Self {
            der: der.to_vec(),
            x5t: thumbprint_sha1(der),
            x5t_s256: thumbprint_sha256(der),
            rsa_public_key: spki.subject_public_key.data.to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

pub(crate) fn first_certificate_der(pem: &[u8]) -> Result<Vec<u8>, DevAuthorityError> {
    for item in x509_parser::pem::Pem::iter_from_buffer(pem) {
        match item {
            Ok(item) if item.label == "CERTIFICATE" => return Ok(item.contents),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Err(DevAuthorityError::Invalid {
        key: "certificate".into(),
        reason: "no `-----BEGIN CERTIFICATE-----` block found".into(),
    })
}

/// The registrations, checked and indexed; shared by the server.
#[derive(Debug)]
pub(crate) struct Registry {
    pub(crate) tenant_id: String,
    pub(crate) apis: Vec<DevApi>,
    pub(crate) applications: Vec<Application>,
}

/// A checked application: object id resolved, grants resolved to API indexes.
#[derive(Debug)]
pub(crate) struct Application {
    pub(crate) registration: DevApplication,
    pub(crate) object_id: String,
    /// (index into `Registry::apis`, roles)
    pub(crate) grants: Vec<(usize, Vec<String>)>,
}

impl Registry {
    pub(crate) fn new(
        tenant_id: &str,
        apis: Vec<DevApi>,
        applications: Vec<DevApplication>,
    ) -> Result<Self, DevAuthorityError> {
        let tenant_id = guid(tenant_id, "DevAuthority:TenantId")?;
        let mut checked_apis: Vec<DevApi> = Vec::with_capacity(apis.len());
        for mut api in apis {
            api.client_id = guid(&api.client_id, "DevApi:ClientId")?;
            let clash = checked_apis.iter().any(|other| {
                other.is_named(&api.client_id)
                    || api
                        .app_id_uri
                        .as_deref()
                        .is_some_and(|uri| other.is_named(uri))
            });
            if clash {
                return Err(DevAuthorityError::Invalid {
                    key: "DevApi".into(),
                    reason: format!("API `{}` is registered twice", api.name()),
                });
            }
            checked_apis.push(api);
        }
        let mut checked_apps: Vec<Application> = Vec::with_capacity(applications.len());
        for mut app in applications {
            app.client_id = guid(&app.client_id, "DevApplication:ClientId")?;
            if checked_apps
                .iter()
                .any(|other| other.registration.client_id == app.client_id)
            {
                return Err(DevAuthorityError::Invalid {
                    key: "DevApplication".into(),
                    reason: format!("application `{}` is registered twice", app.client_id),
                });
            }
            let mut grants: Vec<(usize, Vec<String>)> = Vec::new();
            for (api_name, roles) in &app.grants {
                let index = checked_apis
                    .iter()
                    .position(|api| api.is_named(api_name))
                    .ok_or_else(|| DevAuthorityError::Invalid {
                        key: "DevApplication:Grants".into(),
                        reason: format!(
                            "application `{}` is granted roles on `{api_name}`, which is not a registered API",
                            app.client_id
                        ),
                    })?;
                let api = &checked_apis[index];
                if let Some(role) = roles.iter().find(|r| !api.app_roles.contains(r)) {
                    return Err(DevAuthorityError::Invalid {
                        key: "DevApplication:Grants".into(),
                        reason: format!(
                            "API `{}` defines no app role `{role}` (it defines: {})",
                            api.name(),
                            api.app_roles.join(", ")
                        ),
                    });
                }
                match grants.iter_mut().find(|(i, _)| *i == index) {
                    Some((_, existing)) => {
                        for role in roles {
                            if !existing.contains(role) {
                                existing.push(role.clone());
                            }
                        }
                    }
                    None => grants.push((index, roles.clone())),
                }
            }
            let object_id = match &app.object_id {
                Some(oid) => guid(oid, "DevApplication:ObjectId")?,
                None => derived_guid(&tenant_id, &app.client_id),
            };
            checked_apps.push(Application {
                registration: app,
                object_id,
                grants,
            });
        }
        Ok(Self {
            tenant_id,
            apis: checked_apis,
            applications: checked_apps,
        })
    }

    pub(crate) fn application(&self, client_id: &str) -> Option<&Application> {
        self.applications
            .iter()
            .find(|app| app.registration.client_id.eq_ignore_ascii_case(client_id))
    }

    pub(crate) fn api(&self, resource: &str) -> Option<(usize, &DevApi)> {
        self.apis
            .iter()
            .enumerate()
            .find(|(_, api)| api.is_named(resource))
    }

    /// The object id for a client id, registered or not (for directly minted tokens).
    pub(crate) fn object_id_for(&self, client_id: &str) -> String {
        self.application(client_id)
            .map(|app| app.object_id.clone())
            .unwrap_or_else(|| derived_guid(&self.tenant_id, client_id))
    }
}

impl Application {
    /// The roles granted on the API at `api_index`, in grant order.
    pub(crate) fn roles_on(&self, api_index: usize) -> Vec<String> {
        self.grants
            .iter()
            .filter(|(i, _)| *i == api_index)
            .flat_map(|(_, roles)| roles.iter().cloned())
            .collect()
    }
}

fn guid(value: &str, key: &str) -> Result<String, DevAuthorityError> {
    uuid::Uuid::parse_str(value.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| DevAuthorityError::Invalid {
            key: key.into(),
            reason: format!("`{value}` is not a GUID (Entra ids are GUIDs)"),
        })
}

/// A stable GUID derived from two strings (SHA-256, shaped as a v4 UUID).
fn derived_guid(a: &str, b: &str) -> String {
    let hash = digest::digest(&digest::SHA256, format!("{a}\n{b}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_ref()[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The registration file (JSON). See the [module docs](super#registration-file) for the
/// format.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RegistrationFile {
    #[serde(default)]
    pub(crate) tenant_id: Option<String>,
    #[serde(default)]
    pub(crate) token_lifetime_seconds: Option<u64>,
    #[serde(default)]
    pub(crate) assertion_reuse: Option<AssertionReuseEntry>,
    #[serde(default)]
    pub(crate) apis: Vec<ApiEntry>,
    #[serde(default)]
    pub(crate) applications: Vec<ApplicationEntry>,
}

/// `assertionReuse`: `"withinLifetime"` or `"refuse"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum AssertionReuseEntry {
    WithinLifetime,
    Refuse,
}

impl From<AssertionReuseEntry> for AssertionReuse {
    fn from(entry: AssertionReuseEntry) -> Self {
        match entry {
            AssertionReuseEntry::WithinLifetime => Self::WithinLifetime,
            AssertionReuseEntry::Refuse => Self::Refuse,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ApiEntry {
    client_id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    app_id_uri: Option<String>,
    #[serde(default)]
    app_roles: Vec<String>,
    #[serde(default, alias = "accessTokenVersion")]
    requested_access_token_version: Option<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ApplicationEntry {
    client_id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    object_id: Option<String>,
    #[serde(default)]
    certificate_files: Vec<PathBuf>,
    #[serde(default)]
    certificate_pems: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    grants: BTreeMap<String, Vec<String>>,
}

impl fmt::Debug for ApplicationEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationEntry")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl RegistrationFile {
    pub(crate) fn load(path: &Path) -> Result<Self, DevAuthorityError> {
        let text = std::fs::read(path).map_err(|source| DevAuthorityError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| DevAuthorityError::Json {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// The APIs and applications; certificate files are read relative to `base_dir`.
    pub(crate) fn into_parts(
        self,
        base_dir: &Path,
    ) -> Result<(Vec<DevApi>, Vec<DevApplication>), DevAuthorityError> {
        let mut apis = Vec::new();
        for entry in self.apis {
            let version = match entry.requested_access_token_version {
                None | Some(1) => TokenVersion::V1,
                Some(2) => TokenVersion::V2,
                Some(other) => {
                    return Err(DevAuthorityError::Invalid {
                        key: "apis[].requestedAccessTokenVersion".into(),
                        reason: format!("`{other}` is not 1 or 2"),
                    })
                }
            };
            let mut api = DevApi::new(entry.client_id)
                .app_roles(entry.app_roles)
                .token_version(version);
            api.app_id_uri = entry.app_id_uri;
            api.display_name = entry.display_name;
            apis.push(api);
        }
        let mut applications = Vec::new();
        for entry in self.applications {
            let mut app = DevApplication::new(entry.client_id);
            app.display_name = entry.display_name;
            app.object_id = entry.object_id;
            for file in entry.certificate_files {
                let path = base_dir.join(&file);
                let pem =
                    std::fs::read(&path).map_err(|source| DevAuthorityError::CertificateFile {
                        path: path.clone(),
                        source,
                    })?;
                let der = first_certificate_der(&pem).map_err(|e| DevAuthorityError::Invalid {
                    key: "applications[].certificateFiles".into(),
                    reason: format!("{}: {e}", path.display()),
                })?;
                app = app.certificate_der(&der)?;
            }
            for pem in entry.certificate_pems {
                app = app.certificate_pem(&pem)?;
            }
            for secret in entry.secrets {
                app = app.secret(secret);
            }
            for (api, roles) in entry.grants {
                app = app.grant(api, roles);
            }
            applications.push(app);
        }
        Ok((apis, applications))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const API: &str = "6f8a1c52-0000-4000-8000-000000000001";
    const APP: &str = "0b7c5d2e-0000-4000-8000-000000000002";

    #[test]
    fn registry_checks() {
        struct Case {
            name: &'static str,
            tenant: &'static str,
            apis: Vec<DevApi>,
            apps: Vec<DevApplication>,
            error: Option<&'static str>,
        }
        let api = || {
            DevApi::new(API)
                .app_id_uri("api://weather")
                .app_roles(["service-api"])
        };
        let cases = [
            Case {
                name: "valid",
                tenant: TENANT,
                apis: vec![api()],
                apps: vec![DevApplication::new(APP).grant("api://weather", ["service-api"])],
                error: None,
            },
            Case {
                name: "grant by client id",
                tenant: TENANT,
                apis: vec![api()],
                apps: vec![DevApplication::new(APP).grant(API, ["service-api"])],
                error: None,
            },
            Case {
                name: "tenant not a guid",
                tenant: "contoso",
                apis: vec![],
                apps: vec![],
                error: Some("not a GUID"),
            },
            Case {
                name: "client id not a guid",
                tenant: TENANT,
                apis: vec![],
                apps: vec![DevApplication::new("weather-client")],
                error: Some("not a GUID"),
            },
            Case {
                name: "grant on unknown api",
                tenant: TENANT,
                apis: vec![api()],
                apps: vec![DevApplication::new(APP).grant("api://other", ["service-api"])],
                error: Some("not a registered API"),
            },
            Case {
                name: "grant of undefined role",
                tenant: TENANT,
                apis: vec![api()],
                apps: vec![DevApplication::new(APP).grant("api://weather", ["admin"])],
                error: Some("defines no app role `admin`"),
            },
            Case {
                name: "duplicate application",
                tenant: TENANT,
                apis: vec![],
                apps: vec![DevApplication::new(APP), DevApplication::new(APP)],
                error: Some("registered twice"),
            },
            Case {
                name: "duplicate api uri",
                tenant: TENANT,
                apis: vec![api(), DevApi::new(APP).app_id_uri("api://weather")],
                apps: vec![],
                error: Some("registered twice"),
            },
        ];
        for case in cases {
            let result = Registry::new(case.tenant, case.apis, case.apps);
            match (result, case.error) {
                (Ok(_), None) => {}
                (Err(e), Some(expected)) => assert!(
                    e.to_string().contains(expected),
                    "{}: `{e}` should contain `{expected}`",
                    case.name
                ),
                (Ok(_), Some(expected)) => panic!("{}: expected an error `{expected}`", case.name),
                (Err(e), None) => panic!("{}: unexpected error {e}", case.name),
            }
        }
    }

    #[test]
    fn object_ids_are_stable_and_overridable() {
        let registry = Registry::new(TENANT, vec![], vec![DevApplication::new(APP)]).unwrap();
        let again = Registry::new(TENANT, vec![], vec![DevApplication::new(APP)]).unwrap();
        assert_eq!(
            registry.object_id_for(APP),
            again.object_id_for(APP),
            "derived object ids are stable"
        );
        assert!(uuid::Uuid::parse_str(&registry.object_id_for(APP)).is_ok());
        let set = Registry::new(
            TENANT,
            vec![],
            vec![DevApplication::new(APP).object_id("11111111-2222-3333-4444-555555555555")],
        )
        .unwrap();
        assert_eq!(
            set.object_id_for(APP),
            "11111111-2222-3333-4444-555555555555"
        );
    }
}
