#!/usr/bin/env bash
# Builds and runs every cargo-fuzz (libFuzzer) target in fuzz/ for a bounded time each; fails
# when a target crashes (the reproducer is left in fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh [seconds-per-target]   (default 5)
#   FUZZ_TARGETS="jwks config" scripts/fuzz.sh 60   # a subset
#
# Toolchain: cargo-fuzz needs nightly-only rustc flags (-Z sanitizer, -C passes=sancov-module).
# This machine (and CI) has the stable toolchain only, so RUSTC_BOOTSTRAP=1 lets stable rustc
# accept them; that is its only use here, and it is scoped to this script. AddressSanitizer is
# used by default (its runtime ships with the stable standard library on x86_64 Linux); set
# FUZZ_SANITIZER=none where the runtime is missing.
#
# The fuzz crate is its own workspace (fuzz/Cargo.toml `[workspace]`, own Cargo.lock and
# target/), never a member of the root workspace. Seeds are committed in fuzz/seeds/<target>;
# the growing corpus goes to fuzz/corpus/<target> (ignored by git).
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-5}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

targets="${FUZZ_TARGETS:-$(cd fuzz && cargo fuzz list)}"

# cargo fuzz build has no --locked: fail here instead when fuzz/Cargo.lock is out of date.
(cd fuzz && cargo metadata --locked --format-version 1 >/dev/null)
# One build for all targets (dependencies are shared), release with debug assertions.
(cd fuzz && cargo fuzz build -s "$sanitizer" --debug-assertions)

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=()
for target in $targets; do
    mkdir -p "fuzz/corpus/$target"
    # -rss_limit_mb: a target that needs more than 2 GiB is a bug too; -timeout: so is one
    # input that takes more than 10 s.
    set +e
    (cd fuzz && cargo fuzz run -s "$sanitizer" --debug-assertions "$target" \
        "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1) \
        >"$logs/$target.log" 2>&1
    status=$?
    set -e
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -1)"
    rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$logs/$target.log" | tail -1)"
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        echo "fuzz.sh: $target FAILED (exit $status) after ${runs:-?} runs:" >&2
        grep -E -A30 "panicked|ERROR: |SUMMARY|Test unit written|error(\[|:)" "$logs/$target.log" | head -60 >&2 || tail -40 "$logs/$target.log" >&2
    else
        echo "fuzz.sh: $target ok: ${runs:-?} runs in ${seconds}s, peak RSS ${rss:-?} MB" >&2
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: all targets ran ${seconds}s without a crash" >&2
