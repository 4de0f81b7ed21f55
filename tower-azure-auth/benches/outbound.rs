//! Outbound costs: a token-cache hit (1 and 2 threads), `AddAccessTokenLayer` in front of a
//! bare service on a cache hit, and the client assertion signing (PS256 and RS256). A
//! counting global allocator prints the allocations per hit and per layered request before
//! criterion runs (`allocations per …` lines).
//!
//! Run: `cargo bench -p tower-azure-auth --bench outbound`

#![allow(missing_docs)]

mod common;

use std::alloc::System;
use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use axum::routing::post;
use axum::{Json, Router};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::FutureExt;
use http::{Request, Response};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{Layer, Service};
use tower_azure_auth::credentials::{
    AssertionAlgorithm, AssertionRequest, ClientCertificate, ConfidentialClient,
};
use tower_azure_auth::layers::AddAccessTokenLayer;
use tower_azure_auth::Authority;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (count, bytes) per call of `op`, over `calls` calls after one warm-up call.
fn allocations_per_call(calls: u64, mut op: impl FnMut()) -> (f64, f64) {
    op();
    let region = Region::new(GLOBAL);
    for _ in 0..calls {
        op();
    }
    let stats = region.change();
    (
        stats.allocations as f64 / calls as f64,
        stats.bytes_allocated as f64 / calls as f64,
    )
}

/// A request to the API, built the same way for the bare and the layered service.
fn api_request() -> Request<String> {
    Request::get("http://127.0.0.1:1/weatherforecast")
        .body(String::new())
        .unwrap()
}

/// Calls `service` once; it completes on its first poll.
fn call_once<S>(service: &mut S)
where
    S: Service<Request<String>, Response = Response<String>>,
    S::Error: std::fmt::Debug,
{
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .now_or_never()
        .expect("ready at once")
        .unwrap();
    let response = service
        .call(api_request())
        .now_or_never()
        .expect("a cache hit never waits")
        .unwrap();
    black_box(response);
}

const CLIENT: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const SCOPE: &str = "api://b178f3a5-7588-492a-924f-72d7887b7e48/.default";

fn certificate() -> ClientCertificate {
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = key.as_der().unwrap();
    let key_pair = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
    let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let cert = params.self_signed(&key_pair).unwrap();
    let pem = format!("{}{}", cert.pem(), key_pair.serialize_pem());
    ClientCertificate::from_pem(pem.as_bytes()).unwrap()
}

fn outbound(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let base = runtime.block_on(async {
        let app = Router::new().route(
            "/{tenant}/oauth2/v2.0/token",
            post(|| async {
                Json(serde_json::json!({
                    "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                    "access_token": format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}.sig", "x".repeat(1200)),
                }))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/")
    });
    let certificate = certificate();
    let client = {
        let _guard = runtime.enter();
        ConfidentialClient::builder(CLIENT)
            .authority(Authority::entra(&base, "7ff95b15-dc21-4ba6-bc92-824856578fc1").unwrap())
            .certificate(certificate.clone())
            .build()
            .unwrap()
    };
    runtime
        .block_on(client.acquire_token_for_client(&[SCOPE]))
        .unwrap();

    let hit = || {
        let token = client
            .acquire_token_for_client(black_box(&[SCOPE]))
            .now_or_never()
            .expect("a cache hit never waits")
            .unwrap();
        black_box(token);
    };
    let (count, bytes) = allocations_per_call(100_000, hit);
    println!("outbound/cache_hit: allocations per hit: {count:.3} ({bytes:.1} bytes)");
    let bare = tower::service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    });
    let layer = AddAccessTokenLayer::new(client.clone(), [SCOPE], "http://127.0.0.1:1").unwrap();
    let mut layered = layer.layer(bare);
    let mut plain = bare;
    let (bare_count, bare_bytes) = allocations_per_call(100_000, || call_once(&mut plain));
    let (layer_count, layer_bytes) = allocations_per_call(100_000, || call_once(&mut layered));
    println!(
        "outbound/layer: allocations per request: bare service {bare_count:.3} ({bare_bytes:.1} bytes), \
         AddAccessTokenLayer on a cache hit {layer_count:.3} ({layer_bytes:.1} bytes): \
         {:.3} added by the layer",
        layer_count - bare_count
    );

    let mut group = c.benchmark_group("outbound");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_service", |b| b.iter(|| call_once(&mut plain)));
    group.bench_function("layer_cache_hit", |b| b.iter(|| call_once(&mut layered)));
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(format!("cache_hit_{threads}_threads"), |b| {
            b.iter_custom(|iterations| {
                common::on_threads(threads, iterations, || {
                    // A hit completes on its first poll: no I/O, no await.
                    let token = client
                        .acquire_token_for_client(black_box(&[SCOPE]))
                        .now_or_never()
                        .expect("a cache hit never waits")
                        .unwrap();
                    black_box(token);
                })
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    for (name, algorithm) in [
        ("assertion_ps256", AssertionAlgorithm::Ps256),
        ("assertion_rs256", AssertionAlgorithm::Rs256),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                certificate
                    .client_assertion(&AssertionRequest {
                        client_id: CLIENT,
                        audience: "https://login.microsoftonline.com/t/oauth2/v2.0/token",
                        algorithm,
                        send_x5c: false,
                        now: 1_800_000_000,
                    })
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = outbound
}
criterion_main!(benches);
