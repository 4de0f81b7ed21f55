//! Shared by the benchmarks.

use std::time::{Duration, Instant};

/// Runs `op` `iterations` times on each of `threads` threads at once and returns the wall
/// time of the whole: with `Throughput::Elements(threads)`, criterion then reports the
/// combined rate.
pub(crate) fn on_threads(threads: usize, iterations: u64, op: impl Fn() + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..iterations {
                    op();
                }
            });
        }
    });
    start.elapsed()
}
