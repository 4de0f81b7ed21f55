//! [`DevAuthorityBuilder`]: registrations, options and [`start`](DevAuthorityBuilder::start),
//! which checks them, generates the signing key, binds and serves.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::oneshot;
use tower_azure_auth::clock::{self, SharedClock};

use crate::error::DevAuthorityError;
use crate::options::AssertionReuse;
use crate::registration::{DevApi, DevApplication, RegistrationFile, Registry};
use crate::state::State;
use crate::TOKEN_EXCHANGE_APP_ID;
use crate::{key_vault, keys, managed_identity, server, DevAuthority, DevKeyVault, Inner};

/// Builds and starts a [`DevAuthority`].
#[derive(Debug)]
#[must_use]
pub struct DevAuthorityBuilder {
    tenant_id: Option<String>,
    apis: Vec<DevApi>,
    applications: Vec<DevApplication>,
    bind: SocketAddr,
    tls: Option<Tls>,
    clock: SharedClock,
    token_lifetime: Option<Duration>,
    token_extension: Option<Duration>,
    managed_identities: Vec<String>,
    key_vault: Option<DevKeyVault>,
    assertion_reuse: AssertionReuse,
}

#[derive(Clone)]
struct Tls {
    cert_pem: String,
    key_pem: String,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls { key: <redacted> }")
    }
}

impl DevAuthorityBuilder {
    /// No registrations, a fresh tenant id, listening on `127.0.0.1:0`.
    pub(crate) fn new() -> Self {
        Self {
            tenant_id: None,
            apis: Vec::new(),
            applications: Vec::new(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls: None,
            clock: clock::system(),
            token_lifetime: None,
            token_extension: None,
            managed_identities: Vec::new(),
            key_vault: None,
            assertion_reuse: AssertionReuse::default(),
        }
    }

    /// The tenant id (a GUID); a fresh one by default.
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// Registers an API.
    pub fn api(mut self, api: DevApi) -> Self {
        self.apis.push(api);
        self
    }

    /// Registers a client application.
    pub fn application(mut self, application: DevApplication) -> Self {
        self.applications.push(application);
        self
    }

    /// The address to listen on; `127.0.0.1:0` (any free port) by default.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Serve https with this certificate chain and private key (PEM; PKCS#8, PKCS#1 or
    /// SEC1). The certificate must name the host clients use (`127.0.0.1`); see
    /// [`generate_tls_certificate`](crate::generate_tls_certificate).
    pub fn tls(mut self, cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        self.tls = Some(Tls {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        });
        self
    }

    /// The clock for token times, assertion lifetimes and certificate validity; the system
    /// clock by default.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Registers a managed identity (its client id) served at the IMDS and App Service
    /// endpoints; the first registered answers requests that name no identity.
    pub fn managed_identity(mut self, client_id: impl Into<String>) -> Self {
        self.managed_identities.push(client_id.into());
        self
    }

    /// Serves a Key Vault at `{base}/vault` ([`DevAuthority::vault_url`]).
    pub fn key_vault(mut self, vault: DevKeyVault) -> Self {
        self.key_vault = Some(vault);
        self
    }

    /// A fixed access-token lifetime instead of Entra's random 60–90 minutes.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = Some(lifetime);
        self
    }

    /// An extended lifetime for issued tokens, as Entra's resilience feature: `expires_in`
    /// stays the lifetime clients should cache for, `ext_expires_in` is `expires_in +
    /// extension`, and the token's `exp` is at the end of the extended lifetime (so a resource
    /// keeps accepting it while the authority is down). Default none (`ext_expires_in` =
    /// `expires_in`, as Entra usually answers). Applies to the token and managed identity
    /// endpoints, not to [`DevAuthority::issue_token`](crate::DevAuthority::issue_token).
    pub fn extended_token_lifetime(mut self, extension: Duration) -> Self {
        self.token_extension = Some(extension);
        self
    }

    /// Whether a client assertion is accepted again within its lifetime
    /// ([`AssertionReuse::WithinLifetime`], the default, as Entra does and MSAL relies on)
    /// or refused as a replay ([`AssertionReuse::Refuse`]).
    ///
    /// ```
    /// use entra_dev_authority::{AssertionReuse, DevAuthority};
    ///
    /// let strict = DevAuthority::builder().assertion_reuse(AssertionReuse::Refuse);
    /// # let _ = strict;
    /// ```
    pub fn assertion_reuse(mut self, reuse: AssertionReuse) -> Self {
        self.assertion_reuse = reuse;
        self
    }

    /// Adds the registrations of a JSON file (see the [crate docs](crate#registration-file));
    /// its `tenantId`, `tokenLifetimeSeconds` and `assertionReuse`, when present, replace
    /// the builder's.
    ///
    /// # Errors
    ///
    /// When the file or a certificate file cannot be read or parsed.
    pub fn from_registration_file(
        mut self,
        path: impl AsRef<Path>,
    ) -> Result<Self, DevAuthorityError> {
        let path = path.as_ref();
        let file = RegistrationFile::load(path)?;
        if let Some(tenant_id) = &file.tenant_id {
            self.tenant_id = Some(tenant_id.clone());
        }
        if let Some(seconds) = file.token_lifetime_seconds {
            self.token_lifetime = Some(Duration::from_secs(seconds));
        }
        if let Some(reuse) = file.assertion_reuse {
            self.assertion_reuse = reuse.into();
        }
        let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
        let (apis, applications) = file.into_parts(base_dir)?;
        self.apis.extend(apis);
        self.applications.extend(applications);
        Ok(self)
    }

    /// Checks the registrations, generates the signing key, binds and starts serving on the
    /// current Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`DevAuthorityError::Invalid`] when an id is not a GUID, a grant names an unknown API or
    /// role, the TLS certificate or key is unusable, or the address cannot be bound.
    pub async fn start(self) -> Result<DevAuthority, DevAuthorityError> {
        let tenant_id = self
            .tenant_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().hyphenated().to_string());
        let mut apis = self.apis;
        if !self.managed_identities.is_empty() || self.key_vault.is_some() {
            // The resources managed identity tokens are usually for.
            for (client_id, uri) in [
                (key_vault::VAULT_APP_ID, key_vault::VAULT_RESOURCE),
                (TOKEN_EXCHANGE_APP_ID, "api://AzureADTokenExchange"),
            ] {
                if !apis
                    .iter()
                    .any(|a| a.is_named(uri) || a.is_named(client_id))
                {
                    apis.push(DevApi::new(client_id).app_id_uri(uri));
                }
            }
        }
        let registry = Registry::new(&tenant_id, apis, self.applications)?;
        let mut header = [0u8; 24];
        aws_lc_rs::rand::fill(&mut header).map_err(|_| DevAuthorityError::Generate {
            what: "the managed identity header",
            reason: "no randomness".into(),
        })?;
        let identities =
            managed_identity::Identities::new(self.managed_identities, keys::b64url(&header));
        let vault = key_vault::Vault::new(
            self.key_vault,
            i64::try_from(self.clock.unix_seconds()).unwrap_or(i64::MAX),
        )?;
        let acceptor = self.tls.as_ref().map(tls_acceptor).transpose()?;
        let listener = tokio::net::TcpListener::bind(self.bind)
            .await
            .map_err(|source| DevAuthorityError::Listen {
                addr: self.bind,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DevAuthorityError::Listen {
                addr: self.bind,
                source,
            })?;
        let host = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => Ipv4Addr::LOCALHOST.to_string(),
            ip if ip.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{host}:{}", addr.port());
        let state = Arc::new(
            State::new(
                base,
                registry,
                self.clock,
                self.token_lifetime,
                self.assertion_reuse,
                identities,
                vault,
            )?
            .with_token_extension(self.token_extension),
        );
        let app = server::router(state.clone());
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let signal = async move {
            let _ = shutdown_rx.await;
        };
        let task = match acceptor {
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(signal)
                    .await;
            }),
            Some(acceptor) => {
                let listener = server::TlsListener::new(listener, acceptor)
                    .map_err(|source| DevAuthorityError::Listen { addr, source })?;
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(signal)
                        .await;
                })
            }
        };
        tracing::debug!(target: "entra_dev_authority", base = %state.base, tenant = %state.registry.tenant_id, "dev authority started");
        Ok(DevAuthority {
            inner: Arc::new(Inner {
                state,
                addr,
                shutdown: Mutex::new(Some(shutdown_tx)),
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

fn tls_acceptor(tls: &Tls) -> Result<tokio_rustls::TlsAcceptor, DevAuthorityError> {
    use tokio_rustls::rustls;
    let invalid = |reason: String| DevAuthorityError::Invalid {
        key: "DevAuthority:Tls".into(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("cannot read the certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("the certificate PEM holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| invalid(format!("cannot read the private key PEM: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(format!("the certificate and key do not work together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
