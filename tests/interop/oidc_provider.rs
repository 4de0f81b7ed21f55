//! oidc-provider (`tests/interop/oidc-provider/server.mjs`) as a child process.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::support::{node_with_oidc_provider, Context as _, Service, TempDir};

/// How a client registered with oidc-provider authenticates.
pub(crate) enum ClientAuth<'a> {
    /// `private_key_jwt` with the public key of this certificate (PEM file).
    PrivateKeyJwt(&'a Path),
    /// `private_key_jwt`, registered with `x5c`, and the assertion's `x5t` must name it.
    PrivateKeyJwtX5t(&'a Path),
    /// `client_secret_post` with this secret.
    Secret(&'a str),
}

/// One client registration.
pub(crate) struct Client<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) auth: ClientAuth<'a>,
    /// Application roles per resource indicator.
    pub(crate) roles: &'a [(&'a str, &'a [&'a str])],
}

/// A running oidc-provider.
pub(crate) struct OidcProvider {
    pub(crate) service: Service,
}

impl OidcProvider {
    /// Writes the configuration and starts `node server.mjs CONFIG` on a free port.
    pub(crate) fn start(
        dir: &TempDir,
        tenant_id: &str,
        apis: &[(&str, &str)],
        clients: &[Client<'_>],
    ) -> Result<Self, String> {
        let (node, server) = node_with_oidc_provider()?;
        let clients: Vec<Value> = clients
            .iter()
            .map(|c| {
                let roles: serde_json::Map<String, Value> = c
                    .roles
                    .iter()
                    .map(|(resource, roles)| ((*resource).to_owned(), json!(roles)))
                    .collect();
                let mut value = json!({ "clientId": c.client_id, "roles": roles });
                match &c.auth {
                    ClientAuth::PrivateKeyJwt(pem) | ClientAuth::PrivateKeyJwtX5t(pem) => {
                        value["auth"] = json!("private_key_jwt");
                        value["certificateFile"] = json!(pem);
                        value["matchX5t"] =
                            json!(matches!(c.auth, ClientAuth::PrivateKeyJwtX5t(_)));
                    }
                    ClientAuth::Secret(secret) => {
                        value["auth"] = json!("client_secret_post");
                        value["secret"] = json!(secret);
                    }
                }
                value
            })
            .collect();
        let apis: Vec<Value> = apis
            .iter()
            .map(|(resource, audience)| json!({ "resource": resource, "audience": audience }))
            .collect();
        let config = json!({ "port": 0, "tenantId": tenant_id, "apis": apis, "clients": clients });
        let config_file = dir.write("oidc-provider.json", config.to_string())?;
        let mut command = Command::new(node);
        command.arg(server).arg(config_file);
        Ok(Self {
            service: Service::spawn("oidc-provider", command)?,
        })
    }

    /// The issuer (`http://127.0.0.1:PORT`).
    pub(crate) fn issuer(&self) -> &str {
        &self.service.url
    }

    /// Makes a new key the signing key (the previous ones stay published); returns its kid.
    pub(crate) async fn rotate_signing_key(&self) -> Result<String, String> {
        let url = format!("{}/_interop/rotate-signing-key", self.issuer());
        let response = reqwest::Client::new()
            .post(&url)
            .send()
            .await
            .context("POST rotate-signing-key")?;
        let status = response.status();
        let body: Value = response.json().await.context("rotate-signing-key body")?;
        crate::support::ensure!(
            status.is_success(),
            "rotate-signing-key answered {status}: {body}"
        );
        body["kid"]
            .as_str()
            .map(str::to_owned)
            .context("the kid of the new signing key")
    }
}
