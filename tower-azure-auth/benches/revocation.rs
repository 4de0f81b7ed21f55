//! Revocation costs: the cached hot path with no revocation, with 1 000 revocations that do
//! not match the token (by client, object id, tenant and token id), and the refusal of a
//! revoked token; and the time a revocation published on one replica takes to reach another
//! through a local `redis-server` (started here on a free port).
//!
//! Run: `cargo bench -p tower-azure-auth --features redis --bench revocation`

#![allow(missing_docs)]

#[path = "common/redis_server.rs"]
mod redis_server;
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redis_server::Redis;
use serde_json::json;
use support::{TestIdp, TestKey};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::validation::fleet::RedisRevocations;
use tower_azure_auth::validation::revocation::Revocation;
use tower_azure_auth::validation::TokenValidatorBuilder;
use tower_azure_auth::{Authority, TokenValidator};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const CALLER: &str = "11111111-2222-3333-4444-555555555555";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(idp: &TestIdp, now: u64) -> serde_json::Value {
    json!({
        "aud": API, "iss": idp.issuer_v2(), "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "azp": CALLER, "azpacr": "2", "oid": "6e1b4f5c-31a8-4c7e-9a7e-2d1f9b8c0a11",
        "roles": ["service-api"], "sub": "6e1b4f5c-31a8-4c7e-9a7e-2d1f9b8c0a11",
        "tid": TENANT, "uti": "uti-0000000000000000", "ver": "2.0",
    })
}

fn builder(idp: &TestIdp) -> TokenValidatorBuilder {
    TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap()).client_id(API)
}

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let key = TestKey::generate("key-1");
    let idp = runtime.block_on(TestIdp::start(TENANT, &[&key]));
    let now = now();
    let token = key.token(&claims(&idp, now));
    let validator = |_| {
        let validator = builder(&idp)
            .clock(Arc::new(ManualClock::at_unix(now)))
            .build()
            .unwrap();
        runtime.block_on(validator.refresh()).unwrap();
        validator.validate_with_current_keys(&token).unwrap();
        validator
    };
    let mut group = c.benchmark_group("revocation");
    group.throughput(Throughput::Elements(1));

    let none = validator(());
    group.bench_function("validate_cached_no_revocations", |b| {
        b.iter(|| none.validate_with_current_keys(black_box(&token)).unwrap())
    });

    let many = validator(());
    runtime.block_on(async {
        for i in 0..250 {
            for revocation in [
                Revocation::client(format!("00000000-0000-4000-8000-{i:012}")),
                Revocation::object(format!("00000000-0000-4000-9000-{i:012}")),
                Revocation::tenant(format!("00000000-0000-4000-a000-{i:012}")),
                Revocation::token_id(format!("uti-{i:016}-x")),
            ] {
                many.revoke(revocation).await.unwrap();
            }
        }
    });
    assert_eq!(many.revocations(), 1000);
    // The entries were evicted from the cache only if they matched: this token is still cached.
    group.bench_function("validate_cached_1000_revocations", |b| {
        b.iter(|| many.validate_with_current_keys(black_box(&token)).unwrap())
    });

    let revoked = validator(());
    runtime
        .block_on(revoked.revoke(Revocation::client(CALLER)))
        .unwrap();
    group.bench_function("validate_revoked_refused", |b| {
        b.iter(|| {
            revoked
                .validate_with_current_keys(black_box(&token))
                .unwrap_err()
        })
    });
    group.finish();
}

fn propagation(c: &mut Criterion) {
    let redis = Redis::start();
    let url = redis.url.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let key = TestKey::generate("key-1");
    let idp = runtime.block_on(TestIdp::start(TENANT, &[&key]));
    let replica = || {
        builder(&idp)
            .revocation_channel(
                RedisRevocations::new(&url)
                    .unwrap()
                    .key_prefix("bench:")
                    .resync_interval(Duration::from_secs(3600)),
            )
            .build()
            .unwrap()
    };
    let (a, b) = (replica(), replica());
    // Both subscribed: a first revocation reaches B.
    runtime.block_on(async {
        a.revoke(Revocation::token_id("warm-up")).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while b.revocations() < 1 {
            assert!(Instant::now() < deadline, "B never received the warm-up");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let mut group = c.benchmark_group("revocation");
    let mut n = 1;
    group.bench_function("propagation_redis_a_to_b", |bencher| {
        bencher.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    n += 1;
                    let start = Instant::now();
                    a.revoke(Revocation::token_id(format!("t-{n}")))
                        .await
                        .unwrap();
                    while b.revocations() < n {
                        tokio::task::yield_now().await;
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = hot_path, propagation
}
criterion_main!(benches);
