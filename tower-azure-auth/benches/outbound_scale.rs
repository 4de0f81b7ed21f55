//! The outbound token cache at scale (issue 22, 4b): 10^6 entries, 10^4 authorities (tenants)
//! × 100 scopes, with realistic keys and 1,100-byte tokens. Prints, in one run:
//!
//! - the hit latency p50/p99/p99.9 (an HDR histogram of single hits timed one by one, keys
//!   drawn at random) at 10^6 entries, next to the same figures for a 100-entry cache
//!   (the baseline) and the timer's own cost;
//! - the mean hit in a tight loop (no per-hit timer) at both sizes;
//! - the live heap bytes per entry (a counting allocator), with and without the token bytes;
//! - the insert latency into the full cache (each insert evicts one entry): p50/p99/max,
//!   which stay flat because an insert is O(1) at any size.
//!
//! Run: `cargo bench -p tower-azure-auth --bench outbound_scale`
//! (`OUTBOUND_SCALE_TENANTS=…` changes the number of tenants, default 10,000.)

#![allow(missing_docs)]

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower_azure_auth::credentials::cache_bench::OutboundTokenCache;
use tower_azure_auth::credentials::AccessToken;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CLIENT: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const SCOPES_PER_TENANT: usize = 100;
const TOKEN_BYTES: usize = 1_100;
const SAMPLES: usize = 1_000_000;

fn authority(tenant: usize) -> String {
    format!("https://login.microsoftonline.com/{tenant:08x}-dc21-4ba6-bc92-{tenant:012x}/")
}

fn scope(index: usize) -> String {
    format!("api://{index:08x}-7588-492a-924f-{index:012x}/.default")
}

/// xorshift64*: keys drawn at random, reproducibly.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

struct Filled {
    cache: OutboundTokenCache,
    authorities: Vec<String>,
    scopes: Vec<[String; 1]>,
    live_bytes: i64,
    fill: Duration,
    capacity: usize,
}

fn fill(tenants: usize, now: SystemTime) -> Filled {
    let authorities: Vec<String> = (0..tenants).map(authority).collect();
    let scopes: Vec<[String; 1]> = (0..SCOPES_PER_TENANT).map(|i| [scope(i)]).collect();
    let entries = tenants * SCOPES_PER_TENANT;
    let expires = now + Duration::from_secs(3600);
    let region = Region::new(GLOBAL);
    let started = Instant::now();
    // Headroom over the entry count: quick_cache splits the capacity over its shards.
    let capacity = entries + entries / 8 + 16;
    let cache = OutboundTokenCache::new(capacity);
    for (t, authority) in authorities.iter().enumerate() {
        for (s, scope) in scopes.iter().enumerate() {
            let mut token = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{t:08x}{s:04x}.");
            token.extend(std::iter::repeat_n('x', TOKEN_BYTES - token.len()));
            let token = AccessToken::new(token, expires, scope.to_vec());
            cache.insert(authority, CLIENT, scope, token, now);
        }
    }
    let fill = started.elapsed();
    let stats = region.change();
    // A growing `realloc` counts its difference in `bytes_allocated` already.
    let live_bytes = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64;
    Filled {
        cache,
        authorities,
        scopes,
        live_bytes,
        fill,
        capacity,
    }
}

fn timer_overhead() -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let elapsed = started.elapsed();
        histogram.saturating_record(elapsed.as_nanos() as u64);
    }
    histogram
}

/// Single hits timed one by one (keys at random) and the mean of a tight loop.
fn hits(filled: &Filled, now: SystemTime) -> (Histogram<u64>, f64, usize) {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut misses = 0;
    for _ in 0..SAMPLES {
        let authority = &filled.authorities[rng.below(filled.authorities.len())];
        let scope = &filled.scopes[rng.below(filled.scopes.len())];
        let started = Instant::now();
        let token = filled.cache.get(authority, CLIENT, scope, now);
        let elapsed = started.elapsed();
        misses += usize::from(token.is_none());
        black_box(token);
        histogram.saturating_record(elapsed.as_nanos() as u64);
    }
    let keys: Vec<(usize, usize)> = (0..SAMPLES)
        .map(|_| {
            (
                rng.below(filled.authorities.len()),
                rng.below(filled.scopes.len()),
            )
        })
        .collect();
    let started = Instant::now();
    for &(a, s) in &keys {
        black_box(
            filled
                .cache
                .get(&filled.authorities[a], CLIENT, &filled.scopes[s], now),
        );
    }
    let mean = started.elapsed().as_nanos() as f64 / SAMPLES as f64;
    (histogram, mean, misses)
}

fn line(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<44} p50 {:>6} ns  p99 {:>6} ns  p99.9 {:>6} ns  max {:>8} ns",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let tenants: usize = std::env::var("OUTBOUND_SCALE_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let now = SystemTime::now();

    let small = fill(1, now);
    let large = fill(tenants, now);
    let entries = large.cache.len();
    println!(
        "outbound_scale: {entries} entries ({tenants} tenants × {SCOPES_PER_TENANT} scopes) filled in {:.2} s ({:.0} ns per insert)",
        large.fill.as_secs_f64(),
        large.fill.as_nanos() as f64 / entries as f64
    );
    let per_entry = large.live_bytes as f64 / entries as f64;
    println!(
        "outbound_scale: live heap {:.1} MiB: {per_entry:.0} bytes per entry, {:.0} without the {TOKEN_BYTES}-byte token",
        large.live_bytes as f64 / 1_048_576.0,
        per_entry - TOKEN_BYTES as f64
    );

    let timer = timer_overhead();
    let (small_hits, small_mean, small_misses) = hits(&small, now);
    let (large_hits, large_mean, large_misses) = hits(&large, now);
    line("timer alone (Instant::now + elapsed)", &timer);
    line(
        &format!("hit, {} entries (baseline)", small.cache.len()),
        &small_hits,
    );
    line(&format!("hit, {entries} entries"), &large_hits);
    println!(
        "outbound_scale: mean hit in a loop: {small_mean:.0} ns at {} entries, {large_mean:.0} ns at {entries} entries ({:.2}×); misses {small_misses} / {large_misses} of {SAMPLES}",
        small.cache.len(),
        large_mean / small_mean
    );

    // New keys until well past the capacity: the last ones each evict one entry.
    let mut inserts = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let mut evicting = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let expires = now + Duration::from_secs(3600);
    let extra = (large.capacity - entries) + entries / 10;
    for i in 0..extra {
        let authority = authority(tenants + i / SCOPES_PER_TENANT);
        let scope = [scope(i % SCOPES_PER_TENANT)];
        let token = AccessToken::new("x".repeat(TOKEN_BYTES), expires, scope.to_vec());
        let started = Instant::now();
        large.cache.insert(&authority, CLIENT, &scope, token, now);
        let elapsed = started.elapsed().as_nanos() as u64;
        inserts.saturating_record(elapsed);
        if i >= large.capacity - entries {
            evicting.saturating_record(elapsed);
        }
    }
    line(&format!("insert, all {extra} new keys"), &inserts);
    line(
        &format!("insert past the capacity ({} inserts)", evicting.len()),
        &evicting,
    );
    println!(
        "outbound_scale: {} entries held after {extra} more inserts (capacity {})",
        large.cache.len(),
        large.capacity
    );
}
