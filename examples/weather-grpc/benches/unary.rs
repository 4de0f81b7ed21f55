//! A real gRPC unary call over HTTP/2 on 127.0.0.1 (tonic client and server, one connection),
//! with the service's authentication and authorization (`ValidateAccessTokenLayer` +
//! `GrpcAuthorizeLayer`, cached token) against the same server with a stand-in that inserts
//! the claims without checking anything: the difference is what the layers cost a call.
//!
//! Run: `cargo bench -p weather-grpc --bench unary`

#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use entra_dev_authority::{DevApi, DevApplication, DevAuthority, IssueToken};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tower_azure_auth::claims::TokenVersion;
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::{AzureAdOptions, Claims};
use weather_grpc::pb::weather_forecasts_client::WeatherForecastsClient;
use weather_grpc::pb::weather_forecasts_server::WeatherForecastsServer;
use weather_grpc::pb::GetForecastRequest;
use weather_grpc::{Forecasts, WeatherGrpc};

const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";

fn unary(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (authority, token, protected, stand_in) = runtime.block_on(async {
        let authority = DevAuthority::builder()
            .api(
                DevApi::new(API)
                    .app_id_uri(format!("api://{API}"))
                    .app_roles(["service-api"])
                    .token_version(TokenVersion::V2),
            )
            .application(DevApplication::new(API).grant(format!("api://{API}"), ["service-api"]))
            .start()
            .await
            .unwrap();
        let token = authority
            .issue_token(&IssueToken::new(API, format!("api://{API}")).roles(["service-api"]))
            .unwrap();
        let options: AzureAdOptions = ConfigSource::new()
            .with_env([
                ("AzureAd__Instance".to_owned(), authority.instance()),
                (
                    "AzureAd__TenantId".to_owned(),
                    authority.tenant_id().to_owned(),
                ),
                ("AzureAd__ClientId".to_owned(), API.to_owned()),
            ])
            .section("AzureAd")
            .unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let protected = format!("http://{}", listener.local_addr().unwrap());
        let service = WeatherGrpc::from_options(&options).unwrap();
        tokio::spawn(async move { service.serve(listener).await.unwrap() });

        let claims =
            Claims::from_json(serde_json::json!({ "azp": API, "roles": ["service-api"] })).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stand_in = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            Server::builder()
                .layer(tower::util::MapRequestLayer::new(
                    move |mut request: http::Request<tonic::body::Body>| {
                        request.extensions_mut().insert(claims.clone());
                        request
                    },
                ))
                .add_service(WeatherForecastsServer::new(Forecasts))
                .serve_with_incoming(TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        (authority, token, protected, stand_in)
    });
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();

    let mut group = c.benchmark_group("grpc_unary_loopback");
    for (name, address) in [
        ("stand_in_claims", &stand_in),
        ("validate_and_policy_cached", &protected),
    ] {
        let mut client = runtime.block_on(async {
            let channel = Endpoint::from_shared(address.clone())
                .unwrap()
                .connect()
                .await
                .unwrap();
            WeatherForecastsClient::new(channel)
        });
        // The first call fetches the keys and fills the verified-token cache.
        let call = |client: &mut WeatherForecastsClient<_>| {
            let mut request = tonic::Request::new(GetForecastRequest {});
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            runtime.block_on(client.get_forecast(request)).unwrap()
        };
        assert_eq!(call(&mut client).into_inner().forecasts.len(), 5);
        group.bench_function(name, |b| b.iter(|| call(&mut client)));
    }
    group.finish();
    drop(authority);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = unary
}
criterion_main!(benches);
