//! `entra-doctor client`: the `CallApi` credentials loaded as weather-client loads them
//! ([`CredentialDescriptions`](tower_azure_auth::credentials::CredentialDescriptions) through
//! [`ConfidentialClient::builder_from_options`]), each certificate shown, a token request,
//! and the authority's answer with the library's explanation and where to look in the portal.

use serde_json::{json, Value};
use tower_azure_auth::credentials::{ClientCredential, ConfidentialClient, TokenError};
use tower_azure_auth::error::error_chain;
use tower_azure_auth::CallApiOptions;

use crate::output::{self, Report, Style, Text};
use crate::{ClientArgs, Unusable};

pub(crate) async fn run(args: ClientArgs, style: Style) -> Result<Report, Unusable> {
    let options = CallApiOptions::load(args.config.as_deref())?;
    let mut text = Text::default();
    text.line(style.heading("Client configuration (CallApi)"));
    let present = |v: bool| if v { "present" } else { "absent" };
    let none = || "none".to_owned();
    let client_id = options.client_id.clone().unwrap_or_else(none);
    text.field(2, "ClientId", &client_id);
    text.field(
        2,
        "Instance",
        &options.instance.clone().unwrap_or_else(none),
    );
    text.field(
        2,
        "TenantId",
        &options.tenant_id.clone().unwrap_or_else(none),
    );
    text.field(
        2,
        "Authority",
        &options.authority.clone().unwrap_or_else(none),
    );
    text.field(
        2,
        "ScopeForAccessToken",
        &options.scope_for_access_token.clone().unwrap_or_else(none),
    );
    text.field(2, "ClientSecret", present(options.client_secret.is_some()));
    let mut descriptions = Vec::new();
    for (i, d) in options
        .client_certificates
        .iter()
        .chain(&options.client_credentials)
        .enumerate()
    {
        let location = d
            .certificate_disk_path
            .clone()
            .or_else(|| {
                d.key_vault_url.as_ref().map(|u| {
                    format!(
                        "{u} {}",
                        d.key_vault_certificate_name.as_deref().unwrap_or("")
                    )
                })
            })
            .or_else(|| {
                d.base64_encoded_value
                    .as_ref()
                    .map(|_| "Base64EncodedValue (present)".to_owned())
            })
            .unwrap_or_default();
        let password = present(
            d.certificate_password
                .as_deref()
                .is_some_and(|p| !p.is_empty()),
        );
        text.field(
            2,
            &format!("credential {i}"),
            &format!(
                "{:?} {location} (password {password}, secret {})",
                d.source_type,
                present(d.client_secret.is_some())
            ),
        );
        descriptions.push(
            json!({"index": i, "source_type": format!("{:?}", d.source_type), "location": location,
            "password": password, "client_secret": present(d.client_secret.is_some())}),
        );
    }
    text.line("");

    let client = ConfidentialClient::builder_from_options(&options)?.build()?;
    let mut report = json!({"command": "client", "client_id": options.client_id,
        "scope": options.scope_for_access_token, "client_secret": present(options.client_secret.is_some()),
        "credentials": descriptions});
    text.line(style.heading("Credential"));
    if let Err(error) = client.load_credential().await {
        text.line(format!(
            "  {} credential: {}",
            style.mark(false),
            error_chain(&error)
        ));
        text.field(6, "fix     ", "check ClientCertificates/ClientCredentials in the CallApi section (file paths are relative to the working directory), the certificate password, and the identity's access to the vault");
        report["credential"] = json!({"loaded": false, "error": error_chain(&error)});
        report["token"] = Value::Null;
        return Ok(Report {
            text: text.0,
            json: report,
            ok: false,
        });
    }
    let mut thumbprint = None;
    let credential = match client.credential() {
        Some(ClientCredential::Certificate(c)) => {
            thumbprint = Some(c.thumbprints().sha1_hex());
            certificate(
                &mut text,
                style,
                c.subject(),
                c.not_before(),
                c.not_after(),
                c.thumbprints(),
                None,
            )
        }
        Some(ClientCredential::Signer(signer)) => {
            let c = signer.certificate();
            thumbprint = Some(c.thumbprints().sha1_hex());
            certificate(
                &mut text,
                style,
                c.subject(),
                c.not_before(),
                c.not_after(),
                c.thumbprints(),
                Some(signer.backend()),
            )
        }
        Some(ClientCredential::Secret(_)) => {
            text.line(format!("  {} a client secret (present; not shown). Tokens will carry azpacr 1: a policy that requires a certificate refuses them", style.mark(true)));
            json!({"kind": "client_secret"})
        }
        Some(_) => {
            text.line(format!(
                "  {} a signed assertion (federated credential)",
                style.mark(true)
            ));
            json!({"kind": "assertion"})
        }
        None => json!({"kind": "none"}),
    };
    report["credential"] = credential;
    text.line("");

    text.line(style.heading("Token request"));
    let Some(scope) = options.scope_for_access_token.clone() else {
        text.line(format!("  {} no CallApi:ScopeForAccessToken: set the API's scope, e.g. api://<api client id>/.default", style.mark(false)));
        report["token"] = json!({"acquired": false, "error": "no scope"});
        return Ok(Report {
            text: text.0,
            json: report,
            ok: false,
        });
    };
    let ok = match client.acquire_token_for_client(&[&scope]).await {
        Ok(token) => {
            let expires = output::rfc3339(output::unix(token.expires_on()));
            text.line(format!(
                "  {} token acquired for `{scope}` (not shown), expires {expires}",
                style.mark(true)
            ));
            report["token"] = json!({"acquired": true, "expires_on": expires});
            true
        }
        Err(error) => {
            let code = error.aadsts_code();
            text.line(format!(
                "  {} token: {}",
                style.mark(false),
                error_chain(&error)
            ));
            let portal = portal_hint(&error, &client_id, thumbprint.as_deref());
            text.field(6, "portal  ", &portal);
            report["token"] = json!({"acquired": false, "aadsts": code, "error": error_chain(&error), "portal": portal});
            false
        }
    };
    Ok(Report {
        text: text.0,
        json: report,
        ok,
    })
}

fn certificate(
    text: &mut Text,
    style: Style,
    subject: &str,
    not_before: std::time::SystemTime,
    not_after: std::time::SystemTime,
    thumbprints: &tower_azure_auth::credentials::Thumbprints,
    backend: Option<&str>,
) -> Value {
    let now = output::unix(std::time::SystemTime::now());
    let (from, to) = (output::unix(not_before), output::unix(not_after));
    let valid = from <= now && now <= to;
    text.line(format!("  {} certificate `{subject}`", style.mark(valid)));
    text.field(
        6,
        "valid   ",
        &format!(
            "{} to {}{}",
            output::rfc3339(from),
            output::rfc3339(to),
            if valid { "" } else { " — NOT valid now" }
        ),
    );
    text.field(
        6,
        "SHA-1   ",
        &format!(
            "{} (the thumbprint the Azure portal shows)",
            thumbprints.sha1_hex()
        ),
    );
    text.field(6, "SHA-256 ", &thumbprints.sha256_hex());
    text.field(6, "x5t     ", &thumbprints.x5t());
    if let Some(backend) = backend {
        text.field(6, "key in  ", backend);
    }
    json!({"kind": "certificate", "subject": subject, "not_before": output::rfc3339(from),
        "not_after": output::rfc3339(to), "valid_now": valid, "sha1": thumbprints.sha1_hex(),
        "sha256": thumbprints.sha256_hex(), "x5t": thumbprints.x5t(), "key_backend": backend})
}

/// Where to look in the Azure portal for the authority's answer (what is wrong is in the
/// library's explanation, printed above).
fn portal_hint(error: &TokenError, client_id: &str, thumbprint: Option<&str>) -> String {
    let app = format!("Microsoft Entra ID → App registrations → {client_id}");
    match error.aadsts_code() {
        Some(700027 | 700024 | 7000214 | 1000502 | 7000274 | 7000277) => format!(
            "{app} → Certificates & secrets → Certificates: one of the listed thumbprints must be {}",
            thumbprint.unwrap_or("the certificate's SHA-1")
        ),
        Some(7000215 | 7000222) => format!("{app} → Certificates & secrets → Client secrets"),
        Some(700016 | 90002) => "Microsoft Entra ID → Overview (Tenant ID) and App registrations → All applications (Application (client) ID)".to_owned(),
        Some(500011 | 1002012 | 70011) => "the API's app registration → Expose an API (Application ID URI) and the client's API permissions".to_owned(),
        _ => format!("{app}: Overview, Certificates & secrets, API permissions"),
    }
}
