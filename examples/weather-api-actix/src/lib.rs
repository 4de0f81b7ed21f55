//! The seed's Service API on actix-web: `GET /weatherforecast` behind
//! `ValidateAccessTokenPolicy` (role `service-api`, `azp` = the configured client id or, with
//! `AzureAd:AllowedClientIds`, one of those, refused by the validator with 401, `azpacr` =
//! `2`), `GET /healthz` open. The same API, configuration and responses as
//! `weather-api-axum`, whose [`configure_policies`] (the seed's `Startup.ConfigureServices`),
//! [`forecasts`] and [`POLICY`] it reuses.
//!
//! Operations: `GET /readyz` is the readiness probe (503 until the signing keys are loaded;
//! `/healthz` is liveness); with [`WeatherApi::with_metrics`], `GET /metrics` serves the
//! OpenTelemetry metrics in Prometheus's text format (or they go by OTLP to a collector when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set: [`Metrics::from_env`]).
//!
//! [`start`] runs the API in-process on a listener of your choice (tests use `127.0.0.1:0`):
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use tower_azure_auth::AzureAdOptions;
//!
//! let options = AzureAdOptions::load(None)?; // AzureAd__Instance, AzureAd__TenantId, AzureAd__ClientId …
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let (handle, addr) = weather_api_actix::start(&options, listener).await?;
//! let health = reqwest::get(format!("http://{addr}/healthz")).await?.text().await?;
//! assert_eq!(health, "ok");
//! handle.stop(true).await;
//! # Ok(()) }
//! ```

use std::net::{SocketAddr, TcpListener};

use actix_azure_auth::{RequirePolicyLayer, ValidateAccessTokenLayer};
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header::ContentType;
use actix_web::{web, App, HttpResponse, HttpServer};
use tower_azure_auth::authorization::Policies;
use tower_azure_auth::{AzureAdOptions, ConfigError, TokenValidator};
pub use weather_api_axum::{configure_policies, forecasts, Metrics, WeatherForecast, POLICY};

/// The API's routes and middlewares, built once and cloned into each actix-web worker.
#[derive(Debug, Clone)]
pub struct WeatherApi {
    validator: TokenValidator,
    require: RequirePolicyLayer,
    metrics: Option<Metrics>,
}

impl WeatherApi {
    /// The API from the `AzureAd` section (`AddMicrosoftIdentityWebApiAuthentication` +
    /// `AddAuthorization`).
    ///
    /// # Errors
    ///
    /// When the configuration is incomplete or invalid.
    pub fn new(options: &AzureAdOptions) -> Result<Self, ConfigError> {
        let validator = TokenValidator::new(options)?;
        let policies = configure_policies(options)?;
        Self::from_parts(validator, &policies)
    }

    /// [`new`](Self::new), with the validator's and the policies' metrics recorded into
    /// `metrics` and, for Prometheus, served on `/metrics`.
    ///
    /// # Errors
    ///
    /// When the configuration is incomplete or invalid.
    pub fn with_metrics(options: &AzureAdOptions, metrics: &Metrics) -> Result<Self, ConfigError> {
        let validator = TokenValidator::from_options(options)?
            .meter(metrics.meter())
            .build()?;
        let policies = weather_api_axum::configure_policies_with_meter(options, metrics.meter())?;
        let mut api = Self::from_parts(validator, &policies)?;
        api.metrics = Some(metrics.clone());
        Ok(api)
    }

    /// The API with a given validator and policy registry.
    ///
    /// # Errors
    ///
    /// When [`POLICY`] is not registered in `policies`.
    pub fn from_parts(validator: TokenValidator, policies: &Policies) -> Result<Self, ConfigError> {
        Ok(Self {
            validator,
            require: RequirePolicyLayer::named(policies, POLICY)?,
            metrics: None,
        })
    }

    /// Registers the routes: `App::new().configure(|cfg| api.configure(cfg))`.
    ///
    /// `/weatherforecast` is wrapped in the policy, then the token validation (actix-web runs
    /// the last `wrap` first); `/healthz`, `/readyz` and `/metrics` are outside both (open:
    /// the metrics hold counts by reason, never a token or a client id).
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        if let Some(metrics) = self.metrics.clone().filter(Metrics::is_prometheus) {
            cfg.route(
                "/metrics",
                web::get().to(move || {
                    let text = metrics.render().unwrap_or_default();
                    async move {
                        HttpResponse::Ok()
                            .content_type(weather_api_axum::metrics::PROMETHEUS_CONTENT_TYPE)
                            .body(text)
                    }
                }),
            );
        }
        cfg.route("/healthz", web::get().to(healthz))
            .route(
                "/readyz",
                actix_azure_auth::readiness(self.validator.clone()),
            )
            .service(
                web::resource("/weatherforecast")
                    .route(web::get().to(weather_forecast))
                    .wrap(self.require.clone())
                    .wrap(ValidateAccessTokenLayer::new(self.validator.clone())),
            );
    }
}

async fn weather_forecast() -> HttpResponse {
    HttpResponse::Ok().json(forecasts())
}

async fn healthz() -> HttpResponse {
    // As axum's `&'static str` handler: `text/plain; charset=utf-8`.
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body("ok")
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is incomplete or invalid.
    #[error("configuration error")]
    Config(#[from] ConfigError),
    /// The listener cannot be used.
    #[error("cannot listen")]
    Listen(#[source] std::io::Error),
}

/// The actix-web server for `api` on `listener`, with `workers` worker threads (`None`: one
/// per CPU), stopping on SIGINT/SIGTERM. Await it (inside an actix or Tokio runtime) to run it.
///
/// # Errors
///
/// When the listener cannot be used.
pub fn server(
    api: WeatherApi,
    listener: TcpListener,
    workers: Option<usize>,
) -> Result<Server, StartError> {
    build(api, listener, workers, false)
}

fn build(
    api: WeatherApi,
    listener: TcpListener,
    workers: Option<usize>,
    in_process: bool,
) -> Result<Server, StartError> {
    let mut server = HttpServer::new(move || {
        let api = api.clone();
        App::new().configure(move |cfg| api.configure(cfg))
    });
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    if in_process {
        server = server.disable_signals().shutdown_timeout(1);
    }
    Ok(server.listen(listener).map_err(StartError::Listen)?.run())
}

/// Starts the API in-process on `listener` (e.g. bound to `127.0.0.1:0`), with one worker
/// thread and without signal handling, and returns its handle (to stop it) and address; the
/// same as `weather_api_axum::app(&options)` served on a listener.
///
/// The server's control future is spawned on the current Tokio runtime (`#[tokio::test]`,
/// `#[tokio::main]` and `#[actix_web::main]` all provide one); actix-web's worker runs on its
/// own thread with its own runtime.
///
/// # Errors
///
/// When the configuration is incomplete or invalid, or the listener cannot be used.
///
/// # Panics
///
/// When polled outside a Tokio runtime.
pub async fn start(
    options: &AzureAdOptions,
    listener: TcpListener,
) -> Result<(ServerHandle, SocketAddr), StartError> {
    start_api(WeatherApi::new(options)?, listener).await
}

/// [`start`] for a given [`WeatherApi`] (e.g. [`WeatherApi::with_metrics`]).
///
/// # Errors
///
/// When the listener cannot be used.
///
/// # Panics
///
/// When polled outside a Tokio runtime.
pub async fn start_api(
    api: WeatherApi,
    listener: TcpListener,
) -> Result<(ServerHandle, SocketAddr), StartError> {
    let addr = listener.local_addr().map_err(StartError::Listen)?;
    let server = build(api, listener, Some(1), true)?;
    let handle = server.handle();
    tokio::spawn(server);
    Ok((handle, addr))
}
