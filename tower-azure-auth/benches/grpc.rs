//! The layers' cost per call on a cached token, a gRPC unary call next to an HTTP request:
//! validation (bearer parsing, verified-token cache hit, claims into the extensions) plus the
//! seed's policy, around a service that answers at once. HTTP: `GET /weatherforecast` through
//! `ValidateAccessTokenLayer` + `RequirePolicyLayer`; gRPC: `POST
//! /weather.v1.WeatherForecasts/GetForecast` (`content-type: application/grpc`) through
//! `ValidateAccessTokenLayer::grpc()` + `GrpcAuthorizeLayer` (the per-method table). Also a
//! refused gRPC call (no token), which builds the trailers-only status.
//!
//! Run: `cargo bench -p tower-azure-auth --bench grpc`

#![allow(missing_docs)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use serde_json::json;
use support::TestIdp;
use tower::{Layer as _, Service as _};
use tower_azure_auth::authorization::{Policies, Policy};
use tower_azure_auth::claims::ClientAuthentication;
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::layers::{GrpcAuthorizeLayer, RequirePolicyLayer, ValidateAccessTokenLayer};
use tower_azure_auth::{Authority, TokenValidator};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const CALLER: &str = "11111111-2222-3333-4444-555555555555";
const NOW: u64 = 1_800_000_000;
const METHOD: &str = "/weather.v1.WeatherForecasts/GetForecast";

fn layers(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = support::TestKey::generate("key-1");
    let idp = runtime.block_on(TestIdp::start(TENANT, &[&key]));
    let token = key.token(&json!({
        "aud": API, "iss": idp.issuer_v2(), "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600,
        "aio": "E2ZgYJj+9y2fWnE7pd1GV3tbR8mKAQA=", "azp": CALLER, "azpacr": "2",
        "oid": "6e1b4f5c-31a8-4c7e-9a7e-2d1f9b8c0a11", "roles": ["service-api"],
        "sub": "6e1b4f5c-31a8-4c7e-9a7e-2d1f9b8c0a11", "tid": TENANT, "uti": "uti-grpc", "ver": "2.0",
    }));
    let validator = {
        let _guard = runtime.enter();
        TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
            .client_id(API)
            .clock(Arc::new(ManualClock::at_unix(NOW)))
            .build()
            .unwrap()
    };
    runtime.block_on(validator.refresh()).unwrap();
    // Cached from here on.
    validator.validate_with_current_keys(&token).unwrap();
    let policies = Policies::builder()
        .add_policy(
            "ValidateAccessTokenPolicy",
            Policy::builder()
                .require_role("service-api")
                .require_client_id(CALLER)
                .require_client_authentication(ClientAuthentication::Certificate)
                .build(),
        )
        .build();

    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let http_request = || {
        let mut request = Request::get("/weatherforecast").body(()).unwrap();
        request.headers_mut().insert(AUTHORIZATION, bearer.clone());
        request
    };
    let grpc_request = |authorized: bool| {
        let mut request = Request::post(METHOD).body(()).unwrap();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        if authorized {
            headers.insert(AUTHORIZATION, bearer.clone());
        }
        request
    };
    let bare = tower::service_fn(|request: Request<()>| async move {
        black_box(request.extensions().len());
        Ok::<_, std::convert::Infallible>(Response::new(axum::body::Body::empty()))
    });

    let mut group = c.benchmark_group("grpc");
    let mut service = bare;
    group.bench_function("bare_service", |b| {
        b.iter(|| service.call(black_box(grpc_request(true))).now_or_never())
    });
    let mut http = ValidateAccessTokenLayer::new(validator.clone()).layer(
        RequirePolicyLayer::named(&policies, "ValidateAccessTokenPolicy")
            .unwrap()
            .layer(bare),
    );
    group.bench_function("http_validate_and_policy_cached", |b| {
        b.iter(|| {
            let response = http.call(black_box(http_request())).now_or_never();
            assert_eq!(response.unwrap().unwrap().status(), 200);
        })
    });
    let mut grpc = ValidateAccessTokenLayer::new(validator).grpc().layer(
        GrpcAuthorizeLayer::new(&policies)
            .service("weather.v1.WeatherForecasts", "ValidateAccessTokenPolicy")
            .unwrap()
            .layer(bare),
    );
    group.bench_function("grpc_validate_and_policy_cached", |b| {
        b.iter(|| {
            let response = grpc.call(black_box(grpc_request(true))).now_or_never();
            let response = response.unwrap().unwrap();
            assert!(!response.headers().contains_key("grpc-status"));
        })
    });
    group.bench_function("grpc_refused_no_token", |b| {
        b.iter(|| {
            let response = grpc.call(black_box(grpc_request(false))).now_or_never();
            let response = response.unwrap().unwrap();
            assert_eq!(response.headers()["grpc-status"], "16");
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = layers
}
criterion_main!(benches);
