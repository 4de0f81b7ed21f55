//! The verified-token cache's memory budget against the real heap: a counting global
//! allocator measures the live bytes the cache holds once it is filled with realistic Entra
//! ID tokens (small app-only tokens, and tokens with many roles and groups), which must stay
//! within 10 % of the configured budget. A binary of its own: the allocator is global.

#[path = "it/support/mod.rs"]
mod support;

use std::alloc::System;
use std::sync::Arc;

use serde_json::{json, Value};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use support::TestKey;
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::{Authority, TokenValidator};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ISSUER: &str = "https://login.microsoftonline.com/7ff95b15-dc21-4ba6-bc92-824856578fc1/v2.0";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const NOW: u64 = 1_800_000_000;
/// The default budget of [`tower_azure_auth::TokenValidatorBuilder::verified_token_cache`].
const DEFAULT_BUDGET: usize = 16 * 1024 * 1024;

fn live_bytes() -> isize {
    let stats = GLOBAL.stats();
    // A growing `realloc` counts its difference in `bytes_allocated` already.
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

fn guid(seed: usize, i: usize) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        seed,
        i,
        i % 4096,
        seed % 4096,
        seed * 7919 + i
    )
}

/// An app-only v2 token's claims as Entra ID issues them, with `roles` and `groups` of the
/// given sizes (and the usual small claims, one of them nested).
fn claims(seed: usize, roles: usize, groups: usize) -> Value {
    let mut claims = json!({
        "aud": API,
        "iss": ISSUER,
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "aio": format!("E2RgYJg{seed}zfG7rXqS9bNl0dBGL2vAv+Vf3AA="),
        "azp": guid(seed, 1),
        "azpacr": "2",
        "idtyp": "app",
        "oid": guid(seed, 2),
        "rh": format!("1.AXEAFVv5fyHcpku8koJIVlZ4{seed}wQAAAAAAAAAwAAAAAAAAABxAAA."),
        "sub": guid(seed, 2),
        "tid": "7ff95b15-dc21-4ba6-bc92-824856578fc1",
        "uti": format!("aWb5kWh{seed}UGbzYmW-zB3AA"),
        "ver": "2.0",
        "xms_ftd": format!("Ee9bGx0{seed}ZUvj9F3QpkZpGWExb2dz"),
        "xms_idrel": "7 14",
        "xms_cc": ["CP1"],
        "xms_act_fct": {"k": "v", "n": seed},
    });
    let roles: Vec<String> = (0..roles.max(1))
        .map(|i| format!("Weather.Forecasts.Read.Region{i:03}"))
        .collect();
    claims["roles"] = json!(roles);
    if groups > 0 {
        let groups: Vec<String> = (0..groups).map(|i| guid(seed, 1000 + i)).collect();
        claims["groups"] = json!(groups);
    }
    claims
}

/// Sends `tokens` through a validator with a `budget`-byte cache (more than fit) and
/// returns the live heap the validator holds afterwards, in bytes.
fn heap_held(key: &TestKey, tokens: &[String], budget: usize) -> isize {
    let jwks = json!({"keys": [key.jwk()]}).to_string();
    let before = live_bytes();
    let validator = TokenValidator::builder(Authority::oidc(ISSUER).unwrap())
        .client_id(API)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .verified_token_cache(budget)
        .static_keys(ISSUER, jwks.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    for token in tokens {
        validator.validate_with_current_keys(token).unwrap();
    }
    assert!(
        validator.cached_tokens() < tokens.len(),
        "the budget is what limits the cache"
    );
    let held = live_bytes() - before;
    drop(validator);
    held
}

#[test]
fn the_verified_token_cache_holds_within_10_percent_of_its_budget() {
    let key = TestKey::generate("k1");
    // A mix by size: small app-only tokens, some roles, and many roles and groups.
    let shapes = [(1, 0), (5, 0), (20, 10), (60, 120)];
    let tokens: Vec<String> = (0..2600)
        .map(|seed| {
            let (roles, groups) = shapes[seed % shapes.len()];
            key.token(&claims(seed, roles, groups))
        })
        .collect();
    let text: usize = tokens.iter().map(String::len).sum();
    for budget in [DEFAULT_BUDGET, DEFAULT_BUDGET / 8] {
        let held = heap_held(&key, &tokens, budget);
        let ratio = held as f64 / budget as f64;
        println!("budget {budget} B: {held} B held ({ratio:.3} of the budget); {text} B of token text sent");
        assert!(
            ratio <= 1.10,
            "a {budget}-byte cache holds {held} bytes of heap ({ratio:.2} times its budget)"
        );
        assert!(
            ratio >= 0.80,
            "a {budget}-byte cache holds only {held} bytes of heap ({ratio:.2} of its budget): its weights overcount"
        );
    }
}
