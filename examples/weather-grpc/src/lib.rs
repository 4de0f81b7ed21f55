//! The seed's weather service over gRPC (tonic): `weather.v1.WeatherForecasts/GetForecast`
//! returns five forecasts to callers that satisfy `ValidateAccessTokenPolicy` (role
//! `service-api`, `azp` = the configured client id, `azpacr` = `2`: the same
//! [`configure_policies`] as the HTTP weather APIs). gRPC server reflection is on and open.
//!
//! Refusals are gRPC statuses: `UNAUTHENTICATED` (no token, a refused token; the RFC 6750
//! challenge in the `www-authenticate` metadata), `PERMISSION_DENIED` (the policy),
//! `UNAVAILABLE` (the authority's keys could not be fetched yet).
//!
//! [`call`] is the client mode: a certificate-acquired token from the `CallApi` section, sent
//! by [`AddAccessTokenLayer`] in front of a tonic `Channel`.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tower::ServiceBuilder;
use tower_azure_auth::authorization::Policies;
use tower_azure_auth::credentials::{ConfidentialClient, CredentialError, TokenError};
use tower_azure_auth::error::error_chain;
use tower_azure_auth::layers::{
    AddAccessToken, AddAccessTokenLayer, GrpcAuthorizeLayer, GrpcRefusal, ValidateAccessTokenLayer,
};
use tower_azure_auth::{AzureAdOptions, CallApiOptions, ConfigError, TokenValidator};
pub use weather_api_axum::{configure_policies, POLICY};

/// The code generated from `proto/weather.proto` (package `weather.v1`).
pub mod pb {
    #![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    tonic::include_proto!("weather.v1");

    /// The encoded file descriptor set, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("weather_descriptor");
}

use pb::weather_forecasts_client::WeatherForecastsClient;
use pb::weather_forecasts_server::{WeatherForecasts, WeatherForecastsServer};
use pb::{GetForecastRequest, GetForecastResponse, WeatherForecast};

/// The service's full name.
pub const SERVICE: &str = "weather.v1.WeatherForecasts";
/// The method's path.
pub const GET_FORECAST: &str = "/weather.v1.WeatherForecasts/GetForecast";

/// The handler: five forecasts; it reads the caller from the claims the validation put in
/// the request extensions.
#[derive(Debug, Default, Clone, Copy)]
pub struct Forecasts;

#[tonic::async_trait]
impl WeatherForecasts for Forecasts {
    async fn get_forecast(
        &self,
        request: Request<GetForecastRequest>,
    ) -> Result<Response<GetForecastResponse>, Status> {
        let caller = tower_azure_auth::tonic::claims(&request)?;
        tracing::info!(
            client_id = caller.client_id().unwrap_or("unknown"),
            "GetForecast"
        );
        let forecasts = weather_api_axum::forecasts()
            .into_iter()
            .map(|f| WeatherForecast {
                date: f.date,
                temperature_c: f.temperature_c,
                temperature_f: f.temperature_f,
                summary: f.summary,
            })
            .collect();
        Ok(Response::new(GetForecastResponse { forecasts }))
    }
}

/// The server's authentication and authorization: validation (deferring its refusals so that
/// reflection stays open), then per-method authorization (`WeatherForecasts` behind
/// [`POLICY`], reflection anonymous).
#[derive(Debug, Clone)]
pub struct WeatherGrpc {
    validate: ValidateAccessTokenLayer<GrpcRefusal>,
    authorize: GrpcAuthorizeLayer,
}

impl WeatherGrpc {
    /// The layers for `validator` and `policies` (which must register [`POLICY`]).
    ///
    /// # Errors
    ///
    /// When the policy is not registered.
    pub fn new(validator: TokenValidator, policies: &Policies) -> Result<Self, ConfigError> {
        let authorize = GrpcAuthorizeLayer::new(policies)
            .service(SERVICE, POLICY)?
            // Reflection describes the API, not its data: open, as the HTTP APIs' health check.
            .anonymous_service("grpc.reflection.v1.ServerReflection")
            .anonymous_service("grpc.reflection.v1alpha.ServerReflection");
        Ok(Self {
            validate: ValidateAccessTokenLayer::new(validator)
                .defer_refusals()
                .grpc(),
            authorize,
        })
    }

    /// The whole service from the `AzureAd` section, as the HTTP weather APIs build theirs.
    ///
    /// # Errors
    ///
    /// When the configuration is incomplete or invalid.
    pub fn from_options(options: &AzureAdOptions) -> Result<Self, ConfigError> {
        let validator = TokenValidator::new(options)?;
        let policies = configure_policies(options)?;
        Self::new(validator, &policies)
    }

    /// Serves `WeatherForecasts` and reflection on `listener` (HTTP/2 cleartext), behind the
    /// layers, until the future is dropped.
    ///
    /// # Errors
    ///
    /// The transport's error, or reflection that cannot be built.
    pub async fn serve(self, listener: TcpListener) -> Result<(), ServeError> {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServeError(e.to_string()))?;
        Server::builder()
            // `layer(a).layer(b)`: `a` runs first.
            .layer(self.validate)
            .layer(self.authorize)
            .add_service(WeatherForecastsServer::new(Forecasts))
            .add_service(reflection)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .map_err(|e| ServeError(error_chain(&e)))
    }
}

/// The server failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServeError(String);

/// Why the client mode failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration (or the certificate) is not usable.
    #[error("the configuration is not usable: {}", error_chain(.0))]
    Config(#[from] ConfigError),
    /// The client credential (a certificate, a Key Vault, a managed identity) could not be
    /// loaded.
    #[error("the client credential could not be loaded: {}", error_chain(.0))]
    Credential(#[from] CredentialError),
    /// No token could be obtained.
    #[error("no access token could be obtained: {}", error_chain(.0))]
    Token(#[from] TokenError),
    /// The service could not be reached.
    #[error("the service at {address} could not be reached: {}", error_chain(.source))]
    Connect {
        /// `CallApi:ApiBaseAddress`.
        address: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The service answered with a gRPC status other than `OK`.
    #[error("the service answered {}: {}", .0.code(), .0.message())]
    Status(Box<Status>),
}

/// A `WeatherForecasts` client whose calls carry a token from `client` for `scope`, sent to
/// `address` (`http://127.0.0.1:5001`) only.
///
/// # Errors
///
/// When `address` is not a usable origin or cannot be reached.
pub async fn client(
    client: ConfidentialClient,
    scope: &str,
    address: &str,
) -> Result<WeatherForecastsClient<AddAccessToken<Channel>>, ClientError> {
    let connect = |source| ClientError::Connect {
        address: address.to_owned(),
        source,
    };
    let endpoint = Endpoint::from_shared(address.to_owned()).map_err(connect)?;
    let channel = endpoint.connect().await.map_err(connect)?;
    let layer = AddAccessTokenLayer::new(client, [scope], address)?;
    let origin = address
        .parse()
        .map_err(|e: http::uri::InvalidUri| ConfigError::Invalid {
            key: "CallApi:ApiBaseAddress".into(),
            reason: e.to_string(),
        })?;
    // `with_origin`: requests carry the absolute URI the layer's origin check needs.
    Ok(WeatherForecastsClient::with_origin(
        ServiceBuilder::new().layer(layer).service(channel),
        origin,
    ))
}

/// The client mode: a token with the `CallApi` section's certificate, then `GetForecast`.
///
/// # Errors
///
/// See [`ClientError`].
pub async fn call(options: &CallApiOptions) -> Result<Vec<WeatherForecast>, ClientError> {
    let scope = required(
        options.scope_for_access_token.as_ref(),
        "CallApi:ScopeForAccessToken",
    )?;
    let address = required(options.api_base_address.as_ref(), "CallApi:ApiBaseAddress")?;
    let confidential = ConfidentialClient::builder_from_options(options)?.build()?;
    confidential.load_credential().await?;
    // The token first, so that a token problem is reported as one.
    confidential.acquire_token_for_client(&[&scope]).await?;
    let mut client = client(confidential, &scope, address.trim_end_matches('/')).await?;
    let response = client
        .get_forecast(GetForecastRequest {})
        .await
        .map_err(|status| ClientError::Status(Box::new(status)))?;
    Ok(response.into_inner().forecasts)
}

fn required(value: Option<&String>, key: &'static str) -> Result<String, ConfigError> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing {
            key,
            hint: "set it in the CallApi section or as CallApi__… environment variable",
        })
}

/// The forecasts as the HTTP API's JSON.
#[must_use]
pub fn to_json(forecasts: &[WeatherForecast]) -> String {
    let items: Vec<String> = forecasts
        .iter()
        .map(|f| {
            format!(
                "{{\"date\":{:?},\"temperatureC\":{},\"temperatureF\":{},\"summary\":{:?}}}",
                f.date, f.temperature_c, f.temperature_f, f.summary
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Binds `addr` and returns the listener with its address.
///
/// # Errors
///
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
