//! The shared (L2) token cache against a local `redis-server`: the in-memory hit with and
//! without a shared cache configured (it must not change), an L2 hit (a replica whose memory
//! is cold takes the token from Redis), a raw Redis `GET`, and the cold start of 8 replicas
//! (token requests and time to the token) with and without the shared cache.
//!
//! Run: `cargo bench -p tower-azure-auth --features redis --bench fleet` (needs
//! `redis-server` on the PATH: `scripts/interop-setup.sh` installs it).

#![allow(missing_docs)]

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use redis_server::Redis;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use axum::routing::post;
use axum::{Json, Router};
use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt;
use tower_azure_auth::credentials::{
    ClientCertificate, ConfidentialClient, EncryptionKeys, RedisTokenStore, SharedTokenCache,
    TokenCacheStore,
};
use tower_azure_auth::{Authority, HttpClient};

const CLIENT: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const SCOPE: &str = "api://b178f3a5-7588-492a-924f-72d7887b7e48/.default";
const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const REPLICAS: usize = 8;

fn certificate() -> ClientCertificate {
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = key.as_der().unwrap();
    let key_pair = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
    let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let cert = params.self_signed(&key_pair).unwrap();
    let pem = format!("{}{}", cert.pem(), key_pair.serialize_pem());
    ClientCertificate::from_pem(pem.as_bytes()).unwrap()
}

struct World {
    base: String,
    requests: Arc<AtomicU64>,
    http: HttpClient,
    certificate: ClientCertificate,
    redis: Redis,
    keys: EncryptionKeys,
}

impl World {
    fn client(&self, prefix: Option<&str>) -> ConfidentialClient {
        let builder = ConfidentialClient::builder(CLIENT)
            .authority(Authority::entra(&self.base, TENANT).unwrap())
            .certificate(self.certificate.clone())
            .http_client(self.http.clone());
        let builder = match prefix {
            Some(prefix) => builder.shared_token_cache(
                SharedTokenCache::new(
                    RedisTokenStore::new(&self.redis.url).unwrap(),
                    self.keys.clone(),
                )
                .key_prefix(prefix)
                .poll_interval(Duration::from_millis(5)),
            ),
            None => builder,
        };
        builder.build().unwrap()
    }
}

fn fleet(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    // Milliseconds the token endpoint takes to answer (0, or Entra-like).
    let delay = Arc::new(AtomicU64::new(0));
    let base = runtime.block_on({
        let requests = Arc::clone(&requests);
        let delay = Arc::clone(&delay);
        async move {
            let app = Router::new().route(
                "/{tenant}/oauth2/v2.0/token",
                post(move || {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let delay = Duration::from_millis(delay.load(Ordering::SeqCst));
                    async move {
                        tokio::time::sleep(delay).await;
                        Json(serde_json::json!({
                            "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                            "access_token": format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}.sig", "x".repeat(1200)),
                        }))
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}/")
        }
    });
    let _guard = runtime.enter();
    let world = World {
        base,
        requests,
        http: HttpClient::new().unwrap(),
        certificate: certificate(),
        redis: Redis::start(),
        keys: EncryptionKeys::new([[7; 32]]).unwrap(),
    };

    let mut group = c.benchmark_group("fleet");
    // The in-memory hit, without and with a shared cache behind it, in the same run.
    for (name, prefix) in [
        ("l1_hit_without_l2", None),
        ("l1_hit_with_l2", Some("bench-l1:")),
    ] {
        let client = world.client(prefix);
        runtime
            .block_on(client.acquire_token_for_client(&[SCOPE]))
            .unwrap();
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                common::on_threads(1, iterations, || {
                    let token = client
                        .acquire_token_for_client(black_box(&[SCOPE]))
                        .now_or_never()
                        .expect("a memory hit never waits")
                        .unwrap();
                    black_box(token);
                })
            })
        });
    }

    // A replica with a cold memory cache: building the client, then an L2 hit.
    runtime
        .block_on(
            world
                .client(Some("bench-l2:"))
                .acquire_token_for_client(&[SCOPE]),
        )
        .unwrap();
    let before = world.requests.load(Ordering::SeqCst);
    group.bench_function("build_client", |b| {
        b.iter(|| black_box(world.client(Some("bench-l2:"))))
    });
    group.bench_function("build_client_and_l2_hit", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let client = world.client(Some("bench-l2:"));
                black_box(client.acquire_token_for_client(&[SCOPE]).await.unwrap())
            })
        })
    });
    assert_eq!(
        world.requests.load(Ordering::SeqCst),
        before,
        "every L2 hit was served by Redis"
    );
    // The same, with the store (and its connection) shared by the clients of the process.
    let shared_store: Arc<dyn TokenCacheStore> =
        Arc::new(RedisTokenStore::new(&world.redis.url).unwrap());
    group.bench_function("l2_hit_warm_connection", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let client = ConfidentialClient::builder(CLIENT)
                    .authority(Authority::entra(&world.base, TENANT).unwrap())
                    .certificate(world.certificate.clone())
                    .http_client(world.http.clone())
                    .shared_token_cache(
                        SharedTokenCache::from_arc(Arc::clone(&shared_store), world.keys.clone())
                            .key_prefix("bench-l2:"),
                    )
                    .build()
                    .unwrap();
                black_box(client.acquire_token_for_client(&[SCOPE]).await.unwrap())
            })
        })
    });
    assert_eq!(world.requests.load(Ordering::SeqCst), before);
    let store = RedisTokenStore::new(&world.redis.url).unwrap();
    runtime
        .block_on(store.set("bench-raw", &[1u8; 1400], Duration::from_secs(600)))
        .unwrap();
    group.bench_function("redis_get_1400_bytes", |b| {
        b.iter(|| runtime.block_on(async { black_box(store.get("bench-raw").await.unwrap()) }))
    });

    // Cold start of 8 replicas at once (each its own memory cache and Redis connection).
    for (shared, endpoint_ms) in [(false, 0), (true, 0), (false, 100), (true, 100)] {
        let name = format!(
            "cold_start_8_replicas_{}_l2_endpoint_{endpoint_ms}ms",
            if shared { "with" } else { "without" }
        );
        delay.store(endpoint_ms, Ordering::SeqCst);
        if endpoint_ms > 0 {
            group.sample_size(10);
        }
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let runs = AtomicU64::new(0);
        let start_requests = world.requests.load(Ordering::SeqCst);
        group.bench_function(&name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let run = runs.fetch_add(1, Ordering::SeqCst);
                    let prefix = format!("bench-{name}-{run}:");
                    let clients: Vec<_> = (0..REPLICAS)
                        .map(|_| world.client(shared.then_some(prefix.as_str())))
                        .collect();
                    let started = Instant::now();
                    let each = runtime.block_on(async {
                        let tasks: Vec<_> = clients
                            .into_iter()
                            .map(|client| {
                                tokio::spawn(async move {
                                    let begin = Instant::now();
                                    client.acquire_token_for_client(&[SCOPE]).await.unwrap();
                                    begin.elapsed()
                                })
                            })
                            .collect();
                        let mut each = Vec::new();
                        for task in tasks {
                            each.push(task.await.unwrap());
                        }
                        each
                    });
                    total += started.elapsed();
                    latencies.lock().unwrap().extend(each);
                }
                total
            })
        });
        let runs = runs.load(Ordering::SeqCst).max(1);
        let made = world.requests.load(Ordering::SeqCst) - start_requests;
        let mut latencies = latencies.lock().unwrap().clone();
        latencies.sort();
        let median = latencies[latencies.len() / 2];
        let max = latencies[latencies.len() - 1];
        eprintln!(
            "{name}: {runs} cold starts, {:.2} token requests per start, time to the token per replica: median {median:?}, max {max:?}",
            made as f64 / runs as f64
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = fleet
}
criterion_main!(benches);
