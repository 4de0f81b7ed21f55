#!/usr/bin/env bash
# Load test of the inbound path: the same route with no authentication, with token validation
# (repeated token, cached), with a fresh token per request (20,000 distinct tokens cycled:
# more than the cache holds), with the cache turned off, and with validation + the seed's
# policy. Server pinned to CPU 0, wrk to CPU 1.
# Prints throughput, p50/p99 latency and the server's peak RSS, and each ratio to the
# no-authentication baseline. Installs wrk from Debian's packages if missing.
# The scenarios run in ROUNDS interleaved rounds (default 3), so that a slow moment of the
# machine does not land on one scenario only; the table gives each scenario's median round
# (by req/s) and the highest peak RSS.
# Each round also times RS256 verifications on the server's CPU (`weather-bench --mode
# rsa-verify`); from the median of those and the no-authentication throughput the script
# computes the fresh-token ceiling: one core doing the no-auth work plus one RSA verification
# per request, 1 / (1/noauth_rps + t_rsa), and prints each validation scenario against it.
#
# Run: [ROUNDS=3] scripts/load.sh [seconds per scenario, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS=32
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
cargo build --locked --release -q -p weather-bench
BIN=target/release/weather-bench
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat > "$WORK/tokens.lua" <<'LUA'
local tokens = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
end
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/weatherforecast", { ["Authorization"] = "Bearer " .. tokens[i] })
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_us=%d p99_us=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

run() { # name mode token-count
  local name=$1 mode=$2 count=$3 port=18080
  taskset -c 0 "$BIN" --mode "$mode" --listen 127.0.0.1:$port --tokens "$WORK/$name.tokens" --count "$count" > "$WORK/$name.server" &
  local pid=$!
  # Minting 20,000 tokens takes a while on a busy machine: wait up to 5 minutes.
  for _ in $(seq 3000); do grep -q listening "$WORK/$name.server" 2>/dev/null && break; sleep 0.1; done
  # Warm up (fills the verified-token cache for the repeated-token case).
  taskset -c 1 wrk -t1 -c$CONNECTIONS -d1s -s "$WORK/tokens.lua" "http://127.0.0.1:$port" -- "$WORK/$name.tokens" > /dev/null
  local result
  result=$(taskset -c 1 wrk -t1 -c$CONNECTIONS -d"${DURATION}s" -s "$WORK/tokens.lua" "http://127.0.0.1:$port" -- "$WORK/$name.tokens" | grep RESULT)
  local rss
  rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  kill $pid; wait $pid 2>/dev/null || true
  echo "$name $result peak_rss_kib=$rss"
}

for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  run no_auth none 1
  run validate_repeated validate 1
  run validate_fresh validate 20000
  run validate_no_cache validate-no-cache 1
  run validate_policy policy 1
  echo "rsa_verify $(taskset -c 0 "$BIN" --mode rsa-verify --count 20000 | sed -n 's/^RSA_VERIFY //p')"
done | tee "$WORK/results"

RSA_NS=$(sed -n 's/^rsa_verify ns=\([0-9]*\).*/\1/p' "$WORK/results" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')

# Per scenario: the median round by req/s (its latencies with it), the highest peak RSS.
grep -v '^rsa_verify' "$WORK/results" | sort -k1,1 -s | awk -v rsa_ns="$RSA_NS" '
  function flush() {
    if (cur == "") return
    # insertion sort of the rounds by rps
    for (i = 2; i <= m; i++) { for (j = i; j > 1 && rps[j - 1] > rps[j]; j--) {
      t = rps[j]; rps[j] = rps[j - 1]; rps[j - 1] = t
      t = p50[j]; p50[j] = p50[j - 1]; p50[j - 1] = t
      t = p99[j]; p99[j] = p99[j - 1]; p99[j - 1] = t } }
    k = int((m + 1) / 2)
    R[cur] = rps[k]; P50[cur] = p50[k]; P99[cur] = p99[k]; RSS[cur] = maxrss; ROUNDS[cur] = m
    m = 0; maxrss = 0
  }
  {
    if ($1 != cur) { flush(); cur = $1 }
    m++
    for (i = 2; i <= NF; i++) { split($i, kv, "=")
      if (kv[1] == "rps") rps[m] = kv[2] + 0
      if (kv[1] == "p50_us") p50[m] = kv[2] + 0
      if (kv[1] == "p99_us") p99[m] = kv[2] + 0
      if (kv[1] == "peak_rss_kib" && kv[2] + 0 > maxrss) maxrss = kv[2] + 0 }
  }
  END {
    flush()
    base = R["no_auth"]
    split("no_auth validate_repeated validate_policy validate_fresh validate_no_cache", order, " ")
    printf "\n%-20s %10s %8s %8s %8s %12s %7s\n", "scenario", "req/s", "ratio", "p50 µs", "p99 µs", "peak RSS KiB", "rounds"
    for (i = 1; i <= 5; i++) {
      s = order[i]
      printf "%-20s %10d %8.3f %8d %8d %12d %7d\n", s, R[s], R[s] / base, P50[s], P99[s], RSS[s], ROUNDS[s]
    }
    # The fresh-token ceiling: the no-auth work plus one RSA verification per request on one core.
    ceiling = 1 / (1 / base + rsa_ns / 1e9)
    printf "\nRS256 verification (median of %d rounds): %.1f µs\n", ROUNDS["no_auth"], rsa_ns / 1000
    printf "fresh-token ceiling 1 / (1/%d + %.1f µs) = %d req/s\n", base, rsa_ns / 1000, ceiling
    printf "validate_fresh    %.3f of the ceiling (target ≥ 0.90)\n", R["validate_fresh"] / ceiling
    printf "validate_no_cache %.3f of the ceiling\n", R["validate_no_cache"] / ceiling
    printf "validate_repeated %.3f of no auth, validate_policy %.3f (target ≥ 0.97)\n", R["validate_repeated"] / base, R["validate_policy"] / base
  }'
