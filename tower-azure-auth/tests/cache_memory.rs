//! The verified-token cache's memory budget against the real heap: a counting global
//! allocator measures the live bytes the cache holds once it is filled with realistic Entra
//! ID tokens (small app-only tokens, and tokens with many roles and groups), which must stay
//! within 10 % of the configured budget; and it counts the allocations of an outbound
//! token-cache hit, which must be none. A binary of its own: the allocator is global (its
//! tests run one at a time).

#[path = "it/support/mod.rs"]
mod support;

use std::alloc::System;
use std::sync::{Arc, Mutex};

use entra_dev_authority::{DevApi, DevApplication, DevAuthority, Endpoint};
use futures_util::FutureExt as _;

use serde_json::{json, Value};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use support::TestKey;
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::credentials::ConfidentialClient;
use tower_azure_auth::{Authority, TokenValidator};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ISSUER: &str = "https://login.microsoftonline.com/7ff95b15-dc21-4ba6-bc92-824856578fc1/v2.0";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const NOW: u64 = 1_800_000_000;
/// The default budget of [`tower_azure_auth::TokenValidatorBuilder::verified_token_cache`].
const DEFAULT_BUDGET: usize = 16 * 1024 * 1024;

/// The tests count the whole process's allocations: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

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
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
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

#[test]
fn an_outbound_token_cache_hit_allocates_nothing() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
    const CLIENT: &str = "9c2f1e7a-51a4-4d3b-8f0e-6a1b2c3d4e5f";
    // A runtime on this thread only: nothing runs while the hits are counted.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let uri = format!("api://{API}");
    let authority = runtime
        .block_on(
            DevAuthority::builder()
                .tenant_id(TENANT)
                .api(DevApi::new(API).app_id_uri(&uri).app_roles(["read"]))
                .application(
                    DevApplication::new(CLIENT)
                        .secret("hit-secret")
                        .grant(&uri, ["read"]),
                )
                .start(),
        )
        .unwrap();
    let client = {
        let _runtime = runtime.enter();
        ConfidentialClient::builder(CLIENT)
            .authority(Authority::entra(&authority.instance(), TENANT).unwrap())
            .client_secret("hit-secret")
            .build()
            .unwrap()
    };
    let scope = format!("{uri}/.default");
    let upper = scope.to_ascii_uppercase().replace("/.DEFAULT", "/.default");
    let first = runtime
        .block_on(client.acquire_token_for_client(&[scope.as_str()]))
        .unwrap();
    // The same entry asked for as written, in other case, and twice over.
    let asks: [&[&str]; 3] = [&[&scope], &[&upper], &[&scope, &upper]];
    let before = GLOBAL.stats();
    let mut hits = 0;
    for _ in 0..1_000 {
        for ask in asks {
            let token = client
                .acquire_token_for_client(ask)
                .now_or_never()
                .expect("a cache hit completes on its first poll")
                .unwrap();
            hits += usize::from(token.secret() == first.secret());
        }
    }
    let after = GLOBAL.stats();
    assert_eq!(hits, 3_000, "every call was answered with the cached token");
    assert_eq!(
        after.allocations - before.allocations,
        0,
        "allocations in 3,000 cache hits"
    );
    assert_eq!(
        authority.request_count(Endpoint::Token),
        1,
        "one token request for the one entry"
    );
}
