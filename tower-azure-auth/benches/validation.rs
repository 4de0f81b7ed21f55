//! Inbound costs: raw RSA verification (the floor: a pre-parsed key, and a key parsed per
//! call for reference), full validation without and with the
//! verified-token cache, 1 and 2 threads on the cached path, and policy evaluation.
//!
//! Run: `cargo bench -p tower-azure-auth --bench validation`

#![allow(missing_docs)]

#[path = "../tests/it/support/mod.rs"]
mod support;

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use support::{TestIdp, TestKey};
use tower_azure_auth::authorization::{AuthorizationContext, Policies, Policy};
use tower_azure_auth::claims::ClientAuthentication;
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::{Authority, TokenValidator};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const CALLER: &str = "11111111-2222-3333-4444-555555555555";
const NOW: u64 = 1_800_000_000;

struct Setup {
    _runtime: tokio::runtime::Runtime,
    key: TestKey,
    idp: TestIdp,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = TestKey::generate("key-1");
    let idp = runtime.block_on(TestIdp::start(TENANT, &[&key]));
    Setup {
        _runtime: runtime,
        key,
        idp,
    }
}

/// A realistic Entra v2 app-only token: 15 claims.
fn claims(idp: &TestIdp, unique: u64) -> serde_json::Value {
    json!({
        "aud": API,
        "iss": idp.issuer_v2(),
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "aio": "E2ZgYJj+9y2fWnE7pd1GV3tbR8mKAQA=",
        "azp": CALLER,
        "azpacr": "2",
        "oid": "6e1b4f5c-31a8-4c7e-9a7e-2d1f9b8c0a11",
        "rh": "0.AXEAFVv5fyHcpku8koJIVlePwaXzeLGIdSpJkk9y14d-fkhxAAA.",
        "roles": ["service-api"],
        "sub": "6e1b4f5c-31a8-4c7e-9a7e-2d1f9b8c0a11",
        "tid": TENANT,
        "uti": format!("uti-{unique:016}"),
        "ver": "2.0",
    })
}

fn validator(setup: &Setup, cache: bool) -> TokenValidator {
    let _guard = setup._runtime.enter();
    let validator =
        TokenValidator::builder(Authority::entra(&setup.idp.instance(), TENANT).unwrap())
            .client_id(API)
            .clock(Arc::new(ManualClock::at_unix(NOW)))
            .verified_token_cache(if cache { 16 << 20 } else { 0 })
            .build()
            .unwrap();
    setup._runtime.block_on(validator.refresh()).unwrap();
    validator
}

fn inbound(c: &mut Criterion) {
    let setup = setup();
    let token = setup.key.token(&claims(&setup.idp, 0));
    let mut group = c.benchmark_group("inbound");
    group.throughput(Throughput::Elements(1));

    // The floors: one RS256 verification with the same backend (aws-lc-rs), the key parsed
    // once (what the validator does: the cheapest possible verification) and, for reference,
    // parsed from DER for every signature.
    let (message, signature) = token.rsplit_once('.').unwrap();
    let signature = support::b64_decode(signature);
    let public = setup.key.public_der();
    let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        &public,
    )
    .unwrap();
    group.bench_function("rsa_verify_parsed", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(message.as_bytes()), black_box(&signature))
                .unwrap();
        })
    });
    group.bench_function("rsa_verify_raw", |b| {
        b.iter(|| {
            let key = aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                &public,
            );
            key.verify(black_box(message.as_bytes()), black_box(&signature))
                .unwrap();
        })
    });

    let uncached = validator(&setup, false);
    group.bench_function("validate_uncached", |b| {
        b.iter(|| {
            uncached
                .validate_with_current_keys(black_box(&token))
                .unwrap()
        })
    });

    let cached = validator(&setup, true);
    cached.validate_with_current_keys(&token).unwrap();
    group.bench_function("validate_cached", |b| {
        b.iter(|| {
            cached
                .validate_with_current_keys(black_box(&token))
                .unwrap()
        })
    });

    // 1 and 2 threads on the same validator: the key set (an `ArcSwap`) and the
    // verified-token cache are read without a lock; uncached, both threads share one parsed
    // key (aws-lc takes a read lock on it to find its Montgomery context).
    for (name, validator) in [
        ("validate_cached", &cached),
        ("validate_uncached", &uncached),
    ] {
        for threads in [1usize, 2] {
            group.throughput(Throughput::Elements(threads as u64));
            group.bench_function(format!("{name}_{threads}_threads"), |b| {
                b.iter_custom(|iterations| {
                    common::on_threads(threads, iterations, || {
                        black_box(validator.validate_with_current_keys(&token).unwrap());
                    })
                })
            });
        }
    }
    group.finish();
}

/// The whole `ValidateAccessTokenLayer` on one request (bearer parsing, cache hit, claims into
/// the extensions) around a service that answers at once, against the bare service.
fn layer(c: &mut Criterion) {
    use tower::{Layer as _, Service as _};
    use tower_azure_auth::layers::ValidateAccessTokenLayer;

    let setup = setup();
    let token = setup.key.token(&claims(&setup.idp, 2));
    let validator = validator(&setup, true);
    validator.validate_with_current_keys(&token).unwrap();
    let header = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let request = || {
        let mut request = http::Request::new(());
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, header.clone());
        request
    };
    let bare = tower::service_fn(|request: http::Request<()>| async move {
        black_box(request.extensions().len());
        Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
    });
    let mut group = c.benchmark_group("layer");
    let mut service = bare;
    group.bench_function("bare_service", |b| {
        b.iter(|| futures_util::FutureExt::now_or_never(service.call(black_box(request()))))
    });
    let mut service = ValidateAccessTokenLayer::new(validator).layer(bare);
    group.bench_function("validate_access_token_cached", |b| {
        b.iter(|| futures_util::FutureExt::now_or_never(service.call(black_box(request()))))
    });
    group.finish();
}

fn policy(c: &mut Criterion) {
    let setup = setup();
    let validator = validator(&setup, true);
    let claims = validator
        .validate_with_current_keys(&setup.key.token(&claims(&setup.idp, 1)))
        .unwrap();
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
    let policy = policies.policy("ValidateAccessTokenPolicy").unwrap();
    c.bench_function("policy/seed_policy_sync", |b| {
        b.iter(|| {
            let ctx = AuthorizationContext::new(black_box(&claims));
            let result = policies.authorize_sync(&policy, &ctx);
            assert!(matches!(result, Some(Ok(()))));
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = inbound, layer, policy
}
criterion_main!(benches);
