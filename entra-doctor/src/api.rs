//! `entra-doctor api`: the authority's discovery document and signing keys as the API's
//! validator fetches them (issuers, key ids, when fetched, the `x5c` certificates' validity),
//! and whether a sample token would pass.

use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tower_azure_auth::authority::OidcMetadata;
use tower_azure_auth::credentials::PublicCertificate;
use tower_azure_auth::error::error_chain;
use tower_azure_auth::{Authority, HttpClient, TokenValidator};

use crate::output::{self, Report, Style, Text};
use crate::token::Settings;
use crate::{ApiArgs, Unusable};

pub(crate) async fn run(args: ApiArgs, style: Style) -> Result<Report, Unusable> {
    let settings = Settings::load(&args.settings)?;
    let options = &settings.options;
    let authority = Authority::from_options(options)?;
    let mut text = Text::default();
    text.line(style.heading("API configuration"));
    let configuration = settings.describe(&mut text);
    text.line("");

    text.line(style.heading(&format!("Authority {authority}")));
    let http = HttpClient::new()?;
    let metadata_url = authority.metadata_url();
    let mut report = json!({"command": "api", "authority": authority.to_string(),
        "configuration": configuration, "metadata_url": metadata_url.as_str()});
    let metadata = match OidcMetadata::fetch(&http, &metadata_url).await {
        Ok(metadata) => metadata,
        Err(error) => {
            text.line(format!(
                "  {} discovery {metadata_url}: {}",
                style.mark(false),
                error_chain(&error)
            ));
            text.field(6, "fix     ", "check AzureAd:Instance and TenantId (or Authority), and that this machine reaches the authority (proxy, TLS)");
            report["metadata"] = json!({"fetched": false, "error": error_chain(&error)});
            return Ok(Report {
                text: text.0,
                json: report,
                ok: false,
            });
        }
    };
    text.line(format!("  {} discovery {metadata_url}", style.mark(true)));
    text.field(6, "issuer  ", &metadata.issuer);
    text.field(6, "jwks_uri", &metadata.jwks_uri);
    report["metadata"] =
        json!({"fetched": true, "issuer": metadata.issuer, "jwks_uri": metadata.jwks_uri});

    // What the validator itself holds after one refresh.
    let validator = TokenValidator::from_options(options)?.build()?;
    let refreshed = validator.refresh().await;
    let mut ok = refreshed.is_ok();
    if let Err(error) = &refreshed {
        text.line(format!(
            "  {} keys: {}",
            style.mark(false),
            error_chain(error)
        ));
    }
    let raw_keys = match url::Url::parse(&metadata.jwks_uri) {
        Ok(url) => http.get_json::<Value>(&url).await.ok(),
        Err(_) => None,
    };
    let mut keys = Vec::new();
    if let Some(report_keys) = validator.keys_report() {
        if let Some(v1) = &report_keys.v1_issuer {
            text.field(6, "v1 issuer", v1);
        }
        let fetched = report_keys.fetched_ago.map_or_else(
            || "not fetched".to_owned(),
            |d| format!("fetched {} ago", output::human(d)),
        );
        text.line(format!(
            "  {} {} signing key(s) the validator uses, {fetched}",
            style.mark(true),
            report_keys.keys.len()
        ));
        for key in &report_keys.keys {
            let kid = key.kid.as_deref().unwrap_or("(no kid)");
            let certificate = x5c_validity(raw_keys.as_ref(), kid);
            let mut line = format!("      kid {kid}");
            if let Some(alg) = key.alg {
                line.push_str(&format!(", alg {alg}"));
            }
            if let Some(issuer) = &key.issuer {
                line.push_str(&format!(", issuer {issuer}"));
            }
            if let Some((from, to)) = certificate {
                let age = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(from))
                    .map_or_else(
                        |_| "not yet valid".to_owned(),
                        |d| format!("{} old", output::human(d)),
                    );
                line.push_str(&format!(
                    ", x5c valid {} to {} ({age})",
                    output::rfc3339(from),
                    output::rfc3339(to)
                ));
            }
            text.line(line);
            keys.push(json!({"kid": key.kid, "alg": key.alg, "issuer": key.issuer,
                "x5c_not_before": certificate.map(|c| output::rfc3339(c.0)),
                "x5c_not_after": certificate.map(|c| output::rfc3339(c.1))}));
        }
        report["keys"] = json!({"count": report_keys.keys.len(), "v1_issuer": report_keys.v1_issuer,
            "fetched_seconds_ago": report_keys.fetched_ago.map(|d| d.as_secs()), "keys": keys});
    } else {
        ok = false;
        report["keys"] = Value::Null;
    }

    if let Some(argument) = &args.token {
        let token = output::read_token(argument).await.map_err(Unusable)?;
        text.line("");
        let diagnosis = validator.diagnose(&token, SystemTime::now());
        let accepted = diagnosis.is_accepted();
        match diagnosis.first_error() {
            None => text.line(format!("  {} the sample token passes every check", style.mark(true))),
            Some(e) => text.line(format!(
                "  {} the sample token is refused: {} ({}); run `entra-doctor token` for every check",
                style.mark(false),
                e.kind().as_str(),
                e.reason()
            )),
        }
        report["sample_token"] = json!({"accepted": accepted,
            "error": diagnosis.first_error().map(|e| json!({"kind": e.kind().as_str(), "reason": e.reason()}))});
        ok &= accepted;
    }
    Ok(Report {
        text: text.0,
        json: report,
        ok,
    })
}

/// The validity of the key's `x5c` certificate (Unix seconds), when the JWKS has one.
fn x5c_validity(jwks: Option<&Value>, kid: &str) -> Option<(u64, u64)> {
    let keys = jwks?.get("keys")?.as_array()?;
    let key = keys
        .iter()
        .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))?;
    let first = key.get("x5c")?.as_array()?.first()?.as_str()?;
    let der = STANDARD.decode(first).ok()?;
    let certificate = PublicCertificate::from_der_or_pem(&der).ok()?;
    Some((
        output::unix(certificate.not_before()),
        output::unix(certificate.not_after()),
    ))
}
