//! The seed's Service API on axum: `GET /weatherforecast` behind `ValidateAccessTokenPolicy`
//! (role `service-api`, `azp` = the configured client id, `azpacr` = `2`), `GET /healthz` open.
//! With `AzureAd:AllowedClientIds` set, the validator accepts only those callers (401 for
//! others) and the policy keeps the role and certificate requirements.
//!
//! `POST /admin/revocations` ([`admin`]) lets an operator with the `Revocations.Admin` role
//! revoke tokens across the fleet.
//!
//! [`configure_policies`] is the Rust reading of the seed's `Startup.ConfigureServices`; it
//! does not depend on axum, and the actix example uses it too.
//!
//! Operations: `GET /readyz` is the readiness probe (503 until the signing keys are loaded;
//! `/healthz` is liveness), and with [`app_with_metrics`] `GET /metrics` serves the
//! OpenTelemetry metrics in Prometheus's text format ([`metrics`]; or they go by OTLP to a
//! collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set).

pub mod metrics;

pub mod admin;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::metrics::Metrics;

use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_azure_auth::authorization::{
    AuthorizationContext, AuthorizationHandler, ClientIdRequirement, HandlerOutcome, Policies,
    Policy, Requirement,
};
use tower_azure_auth::claims::ClientAuthentication;
use tower_azure_auth::layers::{RequirePolicyLayer, ValidateAccessTokenLayer};
use tower_azure_auth::{AzureAdOptions, ConfigError, TokenValidator};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The policy name the seed's controller uses: `[Authorize(Policy = "ValidateAccessTokenPolicy")]`.
pub const POLICY: &str = "ValidateAccessTokenPolicy";

/// The seed's `HasServiceApiRoleRequirement`.
#[derive(Debug)]
pub struct HasServiceApiRoleRequirement;

impl Requirement for HasServiceApiRoleRequirement {
    fn description(&self) -> std::borrow::Cow<'_, str> {
        "the caller must have the `service-api` application role".into()
    }
}

/// The seed's `HasServiceApiRoleHandler`: succeeds when a `roles` claim is `service-api`.
#[derive(Debug)]
pub struct HasServiceApiRoleHandler;

impl AuthorizationHandler for HasServiceApiRoleHandler {
    type Requirement = HasServiceApiRoleRequirement;

    async fn handle(
        &self,
        ctx: &AuthorizationContext<'_>,
        _requirement: &HasServiceApiRoleRequirement,
    ) -> HandlerOutcome {
        HandlerOutcome::from(ctx.claims().has_role("service-api"))
    }

    fn handle_sync(
        &self,
        ctx: &AuthorizationContext<'_>,
        _requirement: &HasServiceApiRoleRequirement,
    ) -> Option<HandlerOutcome> {
        Some(HandlerOutcome::from(ctx.claims().has_role("service-api")))
    }
}

/// The seed's `services.AddAuthorization(...)`, line for line.
///
/// The expected caller is `AzureAd:ClientId`, as in the seed (`azp` == `ClientId`, a 403 from
/// the policy otherwise). When `AzureAd:AllowedClientIds` is set, the library's validator
/// enforces that list instead ([`TokenValidator::from_options`]: other callers get 401
/// `invalid_token` before any policy runs), and the policy has no client requirement of its
/// own. Client id and authentication are read from `azp`/`azpacr` (v2 tokens) or
/// `appid`/`appidacr` (v1 tokens).
///
/// # Errors
///
/// When neither `ClientId` nor `AllowedClientIds` is configured.
pub fn configure_policies(options: &AzureAdOptions) -> Result<Policies, ConfigError> {
    configure_policies_with(options, Policies::builder())
}

/// [`configure_policies`], with the decisions recorded by `meter`.
///
/// # Errors
///
/// As [`configure_policies`].
pub fn configure_policies_with_meter(
    options: &AzureAdOptions,
    meter: opentelemetry::metrics::Meter,
) -> Result<Policies, ConfigError> {
    configure_policies_with(options, Policies::builder().meter(meter))
}

fn configure_policies_with(
    options: &AzureAdOptions,
    builder: tower_azure_auth::authorization::PoliciesBuilder,
) -> Result<Policies, ConfigError> {
    let mut policy = Policy::builder().requirement(HasServiceApiRoleRequirement);
    if options
        .allowed_client_ids
        .iter()
        .all(|c| c.trim().is_empty())
    {
        let client_id = options
            .client_id
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or(ConfigError::Missing {
                key: "AzureAd:ClientId",
                hint: "the policy accepts tokens whose azp is this client id",
            })?;
        // Validate ClientId from token
        policy = policy.requirement(ClientIdRequirement::new([client_id.to_owned()]));
    }
    Ok(builder
        .add_handler(HasServiceApiRoleHandler)
        .add_policy(
            POLICY,
            policy
                // only allow tokens which used "Private key JWT Client authentication"
                // (azpacr 2: a client certificate; 1 would be a client secret)
                .require_client_authentication(ClientAuthentication::Certificate)
                .build(),
        )
        .build())
}

/// One forecast, with the ASP.NET template's JSON names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeatherForecast {
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// Celsius.
    pub temperature_c: i32,
    /// Fahrenheit, as the template computes it.
    pub temperature_f: i32,
    /// A word.
    pub summary: String,
}

const SUMMARIES: [&str; 10] = [
    "Freezing",
    "Bracing",
    "Chilly",
    "Cool",
    "Mild",
    "Warm",
    "Balmy",
    "Hot",
    "Sweltering",
    "Scorching",
];

/// Five forecasts from tomorrow on, like the ASP.NET template's controller.
#[must_use]
pub fn forecasts() -> Vec<WeatherForecast> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut seed = (nanos as u64) | 1;
    let mut next = move |bound: u64| {
        // xorshift64*: enough for sample data.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % bound
    };
    let today = time::OffsetDateTime::now_utc().date();
    (1..=5)
        .map(|day| {
            let temperature_c = next(75) as i32 - 20;
            WeatherForecast {
                date: (today + time::Duration::days(day)).to_string(),
                temperature_c,
                temperature_f: 32 + (f64::from(temperature_c) / 0.5556) as i32,
                summary: SUMMARIES[next(SUMMARIES.len() as u64) as usize].to_owned(),
            }
        })
        .collect()
}

async fn weather_forecast() -> Json<Vec<WeatherForecast>> {
    Json(forecasts())
}

async fn healthz() -> &'static str {
    "ok"
}

/// How long a request may take, key refresh included, before the service answers `503`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The router: `/weatherforecast` behind the policy and token validation, `/healthz` open,
/// inside tower-http's production layers.
///
/// Layer order, from the outside in (in axum, a later `.layer()` wraps what is above it, so the
/// code lists them from the inside out):
///
/// 1. [`SetSensitiveRequestHeadersLayer`] for `Authorization`: outermost, so that the token is
///    marked sensitive before anything can log the request (`Debug` of a sensitive header
///    prints `Sensitive`). The validation marks it again for stacks without this layer.
/// 2. [`TraceLayer`]: a span and a log line for every request, refused ones included, so that a
///    `401`/`403` shows with its latency (the refusal's reason is logged at debug under
///    `tower_azure_auth::*`).
/// 3. [`TimeoutLayer`]: bounds the whole request, including a validation that waits for a key
///    refresh on an unknown `kid`; a request over [`REQUEST_TIMEOUT`] gets `503`. Inside the
///    trace layer, so the timeout is traced.
/// 4. [`ValidateAccessTokenLayer`]: authenticates and puts the claims into the extensions.
/// 5. [`RequirePolicyLayer`] (per route, inside the validation it reads the claims of):
///    `ValidateAccessTokenPolicy`; `POST /admin/revocations` ([`admin`]) has the role
///    `Revocations.Admin` and a certificate-authenticated token instead.
///
/// `/healthz` (liveness) and `/readyz` (readiness: 503 until the validator's signing keys are
/// loaded) have only the tower-http layers: they are open.
///
/// # Errors
///
/// When the policy is not registered.
pub fn router(validator: TokenValidator, policies: &Policies) -> Result<Router, ConfigError> {
    router_with(validator, policies, None)
}

/// [`router`], and `GET /metrics` with the Prometheus text of `metrics` (not with OTLP,
/// which pushes). Open like `/healthz`: it holds counts and durations by reason, never a
/// token or a client id; keep the port internal, as usual for Prometheus targets.
///
/// # Errors
///
/// When the policy is not registered.
pub fn router_with_metrics(
    validator: TokenValidator,
    policies: &Policies,
    metrics: &Metrics,
) -> Result<Router, ConfigError> {
    router_with(validator, policies, Some(metrics))
}

fn router_with(
    validator: TokenValidator,
    policies: &Policies,
    metrics: Option<&Metrics>,
) -> Result<Router, ConfigError> {
    let readyz = tower_azure_auth::axum::readiness(validator.clone());
    let protected = Router::new()
        .route("/weatherforecast", get(weather_forecast))
        .layer(RequirePolicyLayer::named(policies, POLICY)?)
        .layer(ValidateAccessTokenLayer::new(validator.clone()));
    let mut open = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", readyz);
    if let Some(metrics) = metrics.filter(|m| m.is_prometheus()).cloned() {
        open = open.route(
            "/metrics",
            get(move || {
                let text = metrics.render().unwrap_or_default();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            metrics::PROMETHEUS_CONTENT_TYPE,
                        )],
                        text,
                    )
                }
            }),
        );
    }
    Ok(open
        .merge(protected)
        .merge(admin::router(validator))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION])))
}

/// The whole app from the `AzureAd` section (`AddMicrosoftIdentityWebApiAuthentication` +
/// `AddAuthorization` + the routes).
///
/// # Errors
///
/// When the configuration is incomplete or invalid.
pub fn app(options: &AzureAdOptions) -> Result<Router, ConfigError> {
    let validator = TokenValidator::new(options)?;
    let policies = configure_policies(options)?;
    router(validator, &policies)
}

/// [`app`], with the validator's and the policies' metrics recorded into `metrics` and, for
/// Prometheus, served on `/metrics`.
///
/// # Errors
///
/// When the configuration is incomplete or invalid.
pub fn app_with_metrics(
    options: &AzureAdOptions,
    metrics: &Metrics,
) -> Result<Router, ConfigError> {
    let validator = TokenValidator::from_options(options)?
        .meter(metrics.meter())
        .build()?;
    let policies = configure_policies_with_meter(options, metrics.meter())?;
    router_with_metrics(validator, &policies, metrics)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    use tower_azure_auth::Authority;

    use super::*;

    /// Through the whole stack (tower-http's layers around ours): `/healthz` is open,
    /// `/weatherforecast` refuses a request without a token with the RFC 6750 challenge.
    #[tokio::test]
    async fn the_stack_answers_as_the_layers_do() {
        let validator = TokenValidator::builder(
            Authority::entra(
                "https://login.microsoftonline.com/",
                "contoso.onmicrosoft.com",
            )
            .unwrap(),
        )
        .client_id("b178f3a5-7588-492a-924f-72d7887b7e48")
        .build()
        .unwrap();
        let policies = Policies::builder()
            .add_policy(POLICY, Policy::authenticated())
            .build();
        let app = router(validator, &policies).unwrap();
        struct Case {
            name: &'static str,
            path: &'static str,
            status: StatusCode,
            challenge: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "open",
                path: "/healthz",
                status: StatusCode::OK,
                challenge: None,
            },
            Case {
                name: "no token",
                path: "/weatherforecast",
                status: StatusCode::UNAUTHORIZED,
                challenge: Some("Bearer"),
            },
        ];
        for case in cases {
            let request = Request::get(case.path).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), case.status, "{}", case.name);
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap());
            assert_eq!(challenge, case.challenge, "{}", case.name);
        }
    }
}
