//! `entra-doctor token`: the token against the API's configuration, every check of the
//! library's validator ([`TokenValidator::diagnose`]) and of the named policy
//! ([`Policies::diagnose`]).

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Map, Value};
use tower_azure_auth::authorization::{AuthorizationContext, Policies, PolicyDiagnosis};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::config::{AuthorizationOptions, ConfigSource};
use tower_azure_auth::error::error_chain;
use tower_azure_auth::validation::{CheckOutcome, Diagnosis};
use tower_azure_auth::{Authority, AzureAdOptions, ConfigError, TokenValidator};

use crate::fixes;
use crate::output::{self, Report, Style, Text};
use crate::{ApiSettings, TokenArgs, Unusable};

/// The API's settings: the configuration file, the environment, then the flags.
pub(crate) struct Settings {
    pub(crate) source: ConfigSource,
    pub(crate) options: AzureAdOptions,
}

impl Settings {
    pub(crate) fn load(settings: &ApiSettings) -> Result<Self, Unusable> {
        let source = ConfigSource::load(settings.config.as_deref())?;
        let mut options: AzureAdOptions = source.section("AzureAd")?;
        let set = |slot: &mut Option<String>, value: &Option<String>| {
            if let Some(value) = value {
                *slot = Some(value.clone());
            }
        };
        set(&mut options.authority, &settings.authority);
        set(&mut options.instance, &settings.instance);
        set(&mut options.tenant_id, &settings.tenant_id);
        set(&mut options.client_id, &settings.client_id);
        if let Some((first, rest)) = settings.audience.split_first() {
            options.audience = Some(first.clone());
            options.audiences = rest.to_vec();
        }
        Ok(Self { source, options })
    }

    /// The `AzureAd` settings that decide validation, secrets as present/absent only.
    pub(crate) fn describe(&self, text: &mut Text) -> Value {
        let o = &self.options;
        let present = |v: bool| if v { "present" } else { "absent" };
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        let mut audiences: Vec<String> = o.audience.iter().cloned().collect();
        audiences.extend(o.audiences.iter().cloned());
        let rows = [
            (
                "Instance",
                o.instance.clone().unwrap_or_else(|| "none".into()),
            ),
            (
                "TenantId",
                o.tenant_id.clone().unwrap_or_else(|| "none".into()),
            ),
            (
                "Authority",
                o.authority.clone().unwrap_or_else(|| "none".into()),
            ),
            (
                "ClientId",
                o.client_id.clone().unwrap_or_else(|| "none".into()),
            ),
            ("Audience(s)", list(&audiences)),
            ("AllowedTenants", list(&o.allowed_tenants)),
            ("AllowedClientIds", list(&o.allowed_client_ids)),
            (
                "ValidAlgorithms",
                if o.valid_algorithms.is_empty() {
                    "RS256 (default)".into()
                } else {
                    o.valid_algorithms.join(", ")
                },
            ),
            (
                "ClockSkewSeconds",
                o.clock_skew_seconds
                    .map_or_else(|| "300 (default)".into(), |s| s.to_string()),
            ),
            (
                "ClientSecret",
                present(o.client_secret.is_some()).to_owned(),
            ),
            (
                "ClientCertificates",
                format!(
                    "{} description(s)",
                    o.client_certificates.len() + o.client_credentials.len()
                ),
            ),
        ];
        for (label, value) in &rows {
            text.field(2, label, value);
        }
        json!({
            "instance": o.instance, "tenant_id": o.tenant_id, "authority": o.authority,
            "client_id": o.client_id, "audiences": audiences,
            "allowed_tenants": o.allowed_tenants, "allowed_client_ids": o.allowed_client_ids,
            "valid_algorithms": o.valid_algorithms, "clock_skew_seconds": o.clock_skew_seconds,
            "client_secret": present(o.client_secret.is_some()),
        })
    }
}

/// The policy named by `--policy`: its diagnosis, or the names the configuration knows.
enum PolicyResult {
    Checked(PolicyDiagnosis, tower_azure_auth::Policy),
    Unknown { name: String, known: Vec<String> },
    NoClaims(String),
}

pub(crate) async fn run(args: TokenArgs, style: Style) -> Result<Report, Unusable> {
    let token = output::read_token(&args.token).await.map_err(Unusable)?;
    let settings = Settings::load(&args.settings)?;
    let at = match &args.at {
        Some(text) => output::parse_time(text).map_err(Unusable)?,
        None => SystemTime::now(),
    };
    let now = output::unix(at);
    let options = &settings.options;
    let mut builder =
        TokenValidator::from_options(options)?.clock(Arc::new(ManualClock::at_unix(now)));
    let key_source;
    if let Some(path) = &args.jwks {
        let jwks = std::fs::read(path)
            .map_err(|e| Unusable(format!("cannot read {}: {e}", path.display())))?;
        let authority = Authority::from_options(options)?;
        let issuer = args
            .issuer
            .clone()
            .unwrap_or_else(|| default_issuer(&authority));
        builder = builder.static_keys(&issuer, &jwks)?;
        key_source = format!("the file {}", path.display());
    } else {
        key_source = format!(
            "the keys of {} (its discovery document's jwks_uri)",
            Authority::from_options(options)?
        );
    }
    let validator = builder.build()?;
    let fetch_error = if args.offline {
        None
    } else {
        validator.refresh().await.err().map(|e| error_chain(&e))
    };
    let diagnosis = validator.diagnose(&token, at);

    let policy = match &args.policy {
        None => None,
        Some(name) => Some(check_policy(&settings.source, name, &diagnosis).await?),
    };

    let leeway = options.clock_skew_seconds.unwrap_or(300);
    let ctx = fixes::Context {
        key_source: &key_source,
        tenant: options.tenant_id.as_deref(),
        client_id: options.client_id.as_deref(),
        leeway,
        fetch_error: fetch_error.as_deref(),
        now,
    };
    Ok(render(
        &settings,
        &diagnosis,
        policy.as_ref(),
        &ctx,
        style,
        &token,
    ))
}

/// The v2 issuer of the configured authority (`{tenantid}` for a multi-tenant one).
fn default_issuer(authority: &Authority) -> String {
    let base = authority.to_string();
    if !authority.is_entra() {
        return base;
    }
    let base = match (authority.is_multi_tenant(), authority.tenant()) {
        (true, Some(tenant)) => base.replace(tenant, "{tenantid}"),
        _ => base,
    };
    format!("{}/v2.0", base.trim_end_matches('/'))
}

async fn check_policy(
    source: &ConfigSource,
    name: &str,
    diagnosis: &Diagnosis,
) -> Result<PolicyResult, Unusable> {
    let authorization: AuthorizationOptions = source.section("Authorization")?;
    let policies: Policies = authorization.policies()?.build();
    let policy = match policies.policy(name) {
        Ok(policy) => policy,
        Err(ConfigError::UnknownPolicy { .. }) => {
            return Ok(PolicyResult::Unknown {
                name: name.to_owned(),
                known: policies.names().map(str::to_owned).collect(),
            })
        }
        Err(other) => return Err(other.into()),
    };
    let Some(claims) = diagnosis.claims() else {
        return Ok(PolicyResult::NoClaims(name.to_owned()));
    };
    let result = policies
        .diagnose(&policy, &AuthorizationContext::new(claims))
        .await;
    Ok(PolicyResult::Checked(result, policy))
}

fn render(
    settings: &Settings,
    diagnosis: &Diagnosis,
    policy: Option<&PolicyResult>,
    ctx: &fixes::Context<'_>,
    style: Style,
    token: &str,
) -> Report {
    let mut text = Text::default();
    text.line(style.heading("API configuration"));
    let configuration = settings.describe(&mut text);
    text.line("");

    text.line(style.heading("Token"));
    let header = diagnosis.header().cloned().map(Value::Object);
    let claims = diagnosis.claims().map(|c| Value::Object(c.raw().clone()));
    match &header {
        Some(h) => text.field(2, "header", &h.to_string()),
        None => text.field(2, "header", "cannot be decoded"),
    }
    match diagnosis.claims() {
        Some(c) => {
            text.field(
                2,
                "claims",
                &serde_json::to_string_pretty(c.raw()).unwrap_or_default(),
            );
            for name in ["iat", "nbf", "exp"] {
                if let Some(t) = c.get(name).and_then(Value::as_u64) {
                    text.field(4, name, &output::rfc3339(t));
                }
            }
        }
        None => text.field(2, "claims", "cannot be decoded"),
    }
    text.field(2, "length", &format!("{} bytes", token.len()));
    text.line("");

    text.line(style.heading(&format!(
        "Checks (as the API runs them, at {}; keys: {})",
        output::rfc3339(ctx.now),
        ctx.key_source
    )));
    let mut checks = Vec::new();
    for check in diagnosis.checks() {
        let name = check.name.as_str();
        let fix = fixes::for_check(check, diagnosis.claims(), ctx);
        let (mark, summary, status, error) = match &check.outcome {
            CheckOutcome::Passed => (style.mark(true), String::new(), "passed", Value::Null),
            CheckOutcome::Failed(e) => (
                style.mark(false),
                format!(": {}", e.reason()),
                "failed",
                json!({"kind": e.kind().as_str(), "status": e.status().as_u16(), "reason": e.reason(), "detail": e.detail()}),
            ),
            CheckOutcome::NotRun(why) => (
                style.skipped(),
                format!(": not run ({why})"),
                "not_run",
                Value::Null,
            ),
            _ => (style.skipped(), String::new(), "not_run", Value::Null),
        };
        text.line(format!("  {mark} {name}{summary}"));
        if !check.actual.is_empty() {
            text.field(6, "expected", &check.expected);
            text.field(6, "actual  ", &check.actual);
        }
        if let Some(detail) = check.error().and_then(|e| e.detail()) {
            text.field(6, "detail  ", detail);
        }
        if let Some(fix) = &fix {
            text.field(6, "fix     ", fix);
        }
        checks.push(json!({
            "name": name, "outcome": status, "passed": check.passed(),
            "expected": check.expected, "actual": check.actual, "error": error, "fix": fix,
        }));
    }

    let mut policy_ok = true;
    let policy_json = match policy {
        None => Value::Null,
        Some(PolicyResult::Unknown { name, known }) => {
            policy_ok = false;
            let known = if known.is_empty() {
                "none (the configuration has no Authorization:Policies)".to_owned()
            } else {
                known.join(", ")
            };
            text.line("");
            text.line(style.heading("Policy"));
            text.line(format!(
                "  {} policy: no policy named `{name}`",
                style.mark(false)
            ));
            text.field(6, "fix     ", &format!("known policies: {known}; use one of them with --policy, or declare `{name}` under Authorization:Policies"));
            json!({"name": name, "found": false, "passed": false, "known": known})
        }
        Some(PolicyResult::NoClaims(name)) => {
            policy_ok = false;
            text.line("");
            text.line(style.heading(&format!("Policy {name}")));
            text.line(format!(
                "  {} not run: the token's claims cannot be decoded",
                style.skipped()
            ));
            json!({"name": name, "found": true, "passed": false, "requirements": []})
        }
        Some(PolicyResult::Checked(result, policy)) => {
            policy_ok = result.result.is_ok();
            text.line("");
            text.line(style.heading(&format!(
                "Policy {}",
                result.policy.as_deref().unwrap_or("(inline)")
            )));
            let mut requirements = Vec::new();
            for (check, requirement) in result.requirements.iter().zip(policy.requirements()) {
                let fix = match (&check.failure, diagnosis.claims()) {
                    (Some(_), Some(claims)) => Some(fixes::for_requirement(requirement, claims)),
                    _ => None,
                };
                match &check.failure {
                    None => text.line(format!("  {} {}", style.mark(true), check.description)),
                    Some(failure) => {
                        text.line(format!(
                            "  {} {}: {}",
                            style.mark(false),
                            check.description,
                            failure.reason()
                        ));
                        if let Some(fix) = &fix {
                            text.field(6, "fix     ", fix);
                        }
                    }
                }
                requirements.push(json!({
                    "description": check.description, "passed": check.passed(),
                    "reason": check.failure.as_ref().map(|f| f.reason()), "fix": fix,
                }));
            }
            json!({"name": result.policy, "found": true, "passed": policy_ok, "requirements": requirements})
        }
    };

    let accepted = diagnosis.is_accepted();
    let ok = accepted && policy_ok;
    text.line("");
    let verdict = match (diagnosis.first_error(), policy_ok) {
        (Some(e), _) => format!(
            "{} the API refuses this token: {} {} ({})",
            style.mark(false),
            e.status().as_u16(),
            e.kind().as_str(),
            e.reason()
        ),
        (None, false) => format!(
            "{} the token is valid, but the policy refuses it: 403 Forbidden",
            style.mark(false)
        ),
        (None, true) if policy.is_some() => format!(
            "{} the API accepts this token and the policy allows it",
            style.mark(true)
        ),
        (None, true) => format!(
            "{} the API accepts this token (no --policy checked)",
            style.mark(true)
        ),
    };
    text.line(format!("Verdict: {verdict}"));

    let mut report = Map::new();
    report.insert("command".into(), "token".into());
    report.insert("accepted".into(), accepted.into());
    report.insert("configuration".into(), configuration);
    report.insert("key_source".into(), ctx.key_source.into());
    report.insert("at".into(), output::rfc3339(ctx.now).into());
    report.insert("header".into(), header.unwrap_or(Value::Null));
    report.insert("claims".into(), claims.unwrap_or(Value::Null));
    report.insert("checks".into(), checks.into());
    report.insert("policy".into(), policy_json);
    report.insert(
        "error".into(),
        diagnosis.first_error().map_or(Value::Null, |e| {
            json!({"kind": e.kind().as_str(), "status": e.status().as_u16(), "reason": e.reason()})
        }),
    );
    Report {
        text: text.0,
        json: Value::Object(report),
        ok,
    }
}
