//! Scale: (a) many distinct verified tokens in the verified-token cache — the heap each one
//! holds, counted two ways, and the hit latency; (c) uncached validation against a
//! multi-tenant authority (`organizations`, the `{tenantid}` issuer template) publishing 64
//! keys, with 1,000 allowed tenants, next to one RS256 verification measured in the same run.
//!
//! Not criterion: it measures percentiles of single calls and the heap a filled cache holds
//! (a counting global allocator, so a binary of its own). The signing of the tokens, the
//! slow part of the set-up, runs on every core.
//!
//! Run: `cargo bench -p tower-azure-auth --bench scale` (100,000 tokens);
//! `SCALE_TOKENS=1000000 cargo bench -p tower-azure-auth --bench scale` for a million
//! (about a million RSA signatures first: minutes per core).

#![allow(missing_docs)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use support::{TestIdp, TestKey};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::{Authority, TokenValidator};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const CALLER: &str = "11111111-2222-3333-4444-555555555555";
const NOW: u64 = 1_800_000_000;

fn live_bytes() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

/// The resident set, from `/proc/self/statm` (0 where there is none).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The validation bench's realistic Entra v2 app-only token (15 claims, 1,107 bytes).
fn claims(issuer: &str, tenant: &str, unique: u64) -> serde_json::Value {
    json!({
        "aud": API,
        "iss": issuer,
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
        "tid": tenant,
        "uti": format!("uti-{unique:016}"),
        "ver": "2.0",
    })
}

/// Signs `count` tokens on every core; `make(i)` gives the key and claims of token `i`.
fn sign_all(
    count: usize,
    make: impl Fn(usize) -> (usize, serde_json::Value) + Sync,
    keys: &[TestKey],
) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(threads).max(1);
    let mut tokens = vec![String::new(); count];
    std::thread::scope(|scope| {
        for (c, slots) in tokens.chunks_mut(chunk).enumerate() {
            let make = &make;
            scope.spawn(move || {
                for (j, slot) in slots.iter_mut().enumerate() {
                    let (key, claims) = make(c * chunk + j);
                    *slot = keys[key].token(&claims);
                }
            });
        }
    });
    tokens
}

/// A small xorshift: the bench's order of lookups, reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration, Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    (at(0.5), at(0.99), at(0.999), mean)
}

fn ns(d: Duration) -> String {
    let n = d.as_nanos();
    if n >= 10_000 {
        format!("{:.1} µs", n as f64 / 1000.0)
    } else {
        format!("{n} ns")
    }
}

fn main() {
    let count: usize = std::env::var("SCALE_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    cache_at_scale(&runtime, count);
    multi_tenant(&runtime);
}

/// (a) `count` distinct verified tokens in the cache.
fn cache_at_scale(runtime: &tokio::runtime::Runtime, count: usize) {
    let key = [TestKey::generate("key-1")];
    let idp = runtime.block_on(TestIdp::start(TENANT, &[&key[0]]));
    let issuer = idp.issuer_v2();
    let started = Instant::now();
    let tokens = sign_all(count, |i| (0, claims(&issuer, TENANT, i as u64)), &key);
    let token_len = tokens.iter().map(String::len).sum::<usize>() / count;
    println!(
        "scale/cache: {count} tokens of {token_len} bytes signed in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A budget that holds them all (the default is 16 MiB).
    let budget = count * 4096;
    let validator = TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .verified_token_cache(budget)
        .build()
        .unwrap();
    runtime.block_on(validator.refresh()).unwrap();
    let (heap_before, rss_before) = (live_bytes(), rss_bytes());
    let started = Instant::now();
    for token in &tokens {
        black_box(validator.validate_with_current_keys(token).unwrap());
    }
    let fill = started.elapsed();
    let (heap, rss) = (
        live_bytes() - heap_before,
        rss_bytes().saturating_sub(rss_before),
    );
    assert_eq!(validator.cached_tokens(), count, "every token is cached");
    println!(
        "scale/cache: filled in {:.1} s ({} per token, uncached); live heap {:.1} MiB = {} B per token; RSS +{:.1} MiB = {} B per token",
        fill.as_secs_f64(),
        ns(fill / count as u32),
        heap as f64 / 1048576.0,
        heap / count as isize,
        rss as f64 / 1048576.0,
        rss / count,
    );

    // Hits in random order: each one a token this thread has not seen last (the per-thread
    // front rarely holds it), so this is the shared cache's latency at this size.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let samples: Vec<Duration> = (0..200_000)
        .map(|_| {
            let token = &tokens[rng.below(count)];
            let started = Instant::now();
            black_box(
                validator
                    .validate_with_current_keys(black_box(token))
                    .unwrap(),
            );
            started.elapsed()
        })
        .collect();
    let (p50, p99, p999, mean) = percentiles(samples);
    println!(
        "scale/cache: hit, random token of {count}: p50 {} p99 {} p99.9 {} mean {} (each timed with Instant, ~20 ns of it the clock)",
        ns(p50),
        ns(p99),
        ns(p999),
        ns(mean)
    );
    let token = &tokens[0];
    let samples: Vec<Duration> = (0..200_000)
        .map(|_| {
            let started = Instant::now();
            black_box(
                validator
                    .validate_with_current_keys(black_box(token))
                    .unwrap(),
            );
            started.elapsed()
        })
        .collect();
    let (p50, p99, p999, mean) = percentiles(samples);
    println!(
        "scale/cache: hit, one token again: p50 {} p99 {} p99.9 {} mean {}",
        ns(p50),
        ns(p99),
        ns(p999),
        ns(mean)
    );
    allocations(&validator, token);
    drop(validator);
}

/// Allocations per call, counted by the global allocator: a repeated token, and the seed's
/// policy on its claims (asserted allocation-free).
fn allocations(validator: &TokenValidator, token: &str) {
    use tower_azure_auth::authorization::{AuthorizationContext, Policies, Policy};
    use tower_azure_auth::claims::ClientAuthentication;

    let count = |op: &dyn Fn()| {
        op();
        let before = GLOBAL.stats().allocations + GLOBAL.stats().reallocations;
        for _ in 0..1000 {
            op();
        }
        (GLOBAL.stats().allocations + GLOBAL.stats().reallocations - before) as f64 / 1000.0
    };
    let hit = count(&|| {
        black_box(validator.validate_with_current_keys(token).unwrap());
    });
    let claims = validator.validate_with_current_keys(token).unwrap();
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
    let seed = count(&|| {
        let ctx = AuthorizationContext::new(black_box(&claims));
        assert!(matches!(
            policies.authorize_sync(&policy, &ctx),
            Some(Ok(()))
        ));
    });
    println!(
        "scale/allocations: per repeated-token validation {hit}, per seed-policy evaluation {seed}"
    );
    assert_eq!(seed, 0.0, "the seed's policy allocates nothing");
}

/// (c) uncached validation: an `organizations` authority with 64 keys, tokens of 1,000
/// tenants (each its own issuer), 1,000 allowed tenants.
fn multi_tenant(runtime: &tokio::runtime::Runtime) {
    const KEYS: usize = 64;
    const TENANTS: usize = 1000;
    let keys: Vec<TestKey> = (0..KEYS)
        .map(|i| TestKey::generate(&format!("key-{i:02}")))
        .collect();
    let key_refs: Vec<&TestKey> = keys.iter().collect();
    let idp = runtime.block_on(TestIdp::start("organizations", &key_refs));
    let tenants: Vec<String> = (0..TENANTS)
        .map(|i| format!("{i:08x}-dc21-4ba6-bc92-{:012x}", i * 7919))
        .collect();
    let base = idp.instance();
    let tokens = sign_all(
        TENANTS,
        |i| {
            let issuer = format!("{base}{}/v2.0", tenants[i]);
            (i % KEYS, claims(&issuer, &tenants[i], i as u64))
        },
        &keys,
    );
    let validator = TokenValidator::builder(Authority::entra(&base, "organizations").unwrap())
        .client_id(API)
        .allowed_tenants(tenants.iter().cloned())
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .verified_token_cache(0)
        .build()
        .unwrap();
    runtime.block_on(validator.refresh()).unwrap();
    for token in &tokens {
        validator.validate_with_current_keys(token).unwrap();
    }

    // The floor in the same run: one RS256 verification with the key parsed once.
    let (message, signature) = tokens[0].rsplit_once('.').unwrap();
    let signature = support::b64_decode(signature);
    let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        keys[0].public_der(),
    )
    .unwrap();
    let rounds = 20;
    let mut floor = Vec::with_capacity(rounds * TENANTS);
    let mut validation = Vec::with_capacity(rounds * TENANTS);
    for _ in 0..rounds {
        for token in &tokens {
            let started = Instant::now();
            parsed
                .verify_sig(black_box(message.as_bytes()), black_box(&signature))
                .unwrap();
            floor.push(started.elapsed());
            let started = Instant::now();
            black_box(
                validator
                    .validate_with_current_keys(black_box(token))
                    .unwrap(),
            );
            validation.push(started.elapsed());
        }
    }
    let (f50, f99, _, fmean) = percentiles(floor);
    let (v50, v99, v999, vmean) = percentiles(validation);
    println!("scale/multi_tenant: {KEYS} keys published, {TENANTS} tenants allowed, {} validations, cache off, interleaved with the floor", rounds * TENANTS);
    println!(
        "scale/multi_tenant: rsa_verify_parsed p50 {} p99 {} mean {}",
        ns(f50),
        ns(f99),
        ns(fmean)
    );
    println!(
        "scale/multi_tenant: validate_uncached p50 {} p99 {} p99.9 {} mean {}: {:.3} of the floor (p50), {:.3} (mean)",
        ns(v50),
        ns(v99),
        ns(v999),
        ns(vmean),
        v50.as_secs_f64() / f50.as_secs_f64(),
        vmean.as_secs_f64() / fmean.as_secs_f64()
    );
}
