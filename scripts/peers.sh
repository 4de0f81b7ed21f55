#!/usr/bin/env bash
# Side by side with the peer: the weather route (same path, handler, body and token) with no
# authentication, behind jwt-authorizer 0.15 (benches/peers/jwt-authorizer, axum 0.7), and
# behind our ValidateAccessTokenLayer with the verified-token cache on and off, in one run.
# Server pinned to CPU 0, wrk (1 thread, 32 connections) to CPU 1; ROUNDS interleaved rounds
# (default 3), each scenario's median round reported, then the ratios.
# Every server is first checked to answer 200 with the token and 401 without it, and a
# scenario with any non-2xx answer under load fails the run.
# jwt-authorizer fetches its keys from the JWKS of a dev authority (weather-bench --mode none,
# idle, on CPU 1), which minted the token it is sent.
#
# Run: [ROUNDS=3] scripts/peers.sh [seconds per scenario, default 10]
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
cargo build --locked --release -q --manifest-path benches/peers/jwt-authorizer/Cargo.toml \
  --target-dir target/peers
BIN=target/release/weather-bench
PEER=target/peers/release/peer-jwt-authorizer
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat > "$WORK/token.lua" <<'LUA'
local token
init = function(args)
  for line in io.lines(args[1]) do token = line end
end
request = function()
  return wrk.format("GET", "/weatherforecast", { ["Authorization"] = "Bearer " .. token })
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_us=%d p99_us=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

wait_for() { # file pattern pids-to-stop-on-failure...
  local file=$1 pattern=$2
  shift 2
  for _ in $(seq 600); do grep -q "$pattern" "$file" 2>/dev/null && return 0; sleep 0.1; done
  echo "peers.sh: no '$pattern' in $file" >&2; cat "$file" >&2; kill "$@" 2>/dev/null; exit 1
}

status() { # port [token]
  if [ -n "${2:-}" ]; then
    curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $2" "http://127.0.0.1:$1/weatherforecast"
  else
    curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/weatherforecast"
  fi
}

measure() { # name port tokens-file expect-401-without-token pids...
  local name=$1 port=$2 tokens=$3 guarded=$4
  shift 4
  local token
  token=$(tail -1 "$tokens")
  [ "$(status "$port" "$token")" = 200 ] || { echo "peers.sh: $name refused the token" >&2; kill "$@"; exit 1; }
  if [ "$guarded" = yes ]; then
    [ "$(status "$port")" = 401 ] || { echo "peers.sh: $name let a request without a token in" >&2; kill "$@"; exit 1; }
  fi
  taskset -c 1 wrk -t1 -c$CONNECTIONS -d1s -s "$WORK/token.lua" "http://127.0.0.1:$port" -- "$tokens" > /dev/null
  local result
  result=$(taskset -c 1 wrk -t1 -c$CONNECTIONS -d"${DURATION}s" -s "$WORK/token.lua" "http://127.0.0.1:$port" -- "$tokens" | grep RESULT)
  kill "$@"; wait "$@" 2>/dev/null || true
  case "$result" in
    *errors=0) ;;
    *) echo "peers.sh: $name answered errors under load: $result" >&2; exit 1 ;;
  esac
  echo "$name $result"
}

ours() { # name mode guarded
  local port=18080
  taskset -c 0 "$BIN" --mode "$2" --listen 127.0.0.1:$port --tokens "$WORK/$1.tokens" > "$WORK/$1.server" &
  local pid=$!
  wait_for "$WORK/$1.server" listening $pid
  measure "$1" $port "$WORK/$1.tokens" "$3" $pid
}

peer() {
  local port=18081 idp_port=18090
  # The dev authority that mints the token and serves the JWKS (idle during the run).
  taskset -c 1 "$BIN" --mode none --listen 127.0.0.1:$idp_port --tokens "$WORK/peer.tokens" > "$WORK/idp.server" &
  local idp=$!
  wait_for "$WORK/idp.server" '^jwks ' $idp
  local jwks issuer audience
  read -r _ jwks _ issuer _ audience < <(grep '^jwks ' "$WORK/idp.server")
  # A v2 token's `aud` is the API's client id (our layer accepts it and `api://{client id}`).
  audience=${audience#api://}
  taskset -c 0 "$PEER" --listen 127.0.0.1:$port --jwks-url "$jwks" --issuer "$issuer" --audience "$audience" > "$WORK/peer.server" 2>&1 &
  local pid=$!
  wait_for "$WORK/peer.server" listening $pid $idp
  measure jwt_authorizer $port "$WORK/peer.tokens" yes $pid $idp
}

for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  ours no_auth none no
  peer
  ours ours_cache_on validate yes
  ours ours_cache_off validate-no-cache yes
done | tee "$WORK/results"

sort -k1,1 -s "$WORK/results" | awk '
  function flush() {
    if (cur == "") return
    for (i = 2; i <= m; i++) { for (j = i; j > 1 && rps[j - 1] > rps[j]; j--) {
      t = rps[j]; rps[j] = rps[j - 1]; rps[j - 1] = t
      t = p50[j]; p50[j] = p50[j - 1]; p50[j - 1] = t
      t = p99[j]; p99[j] = p99[j - 1]; p99[j - 1] = t } }
    k = int((m + 1) / 2)
    R[cur] = rps[k]; P50[cur] = p50[k]; P99[cur] = p99[k]; N[cur] = m
    m = 0
  }
  {
    if ($1 != cur) { flush(); cur = $1 }
    m++
    for (i = 2; i <= NF; i++) { split($i, kv, "=")
      if (kv[1] == "rps") rps[m] = kv[2] + 0
      if (kv[1] == "p50_us") p50[m] = kv[2] + 0
      if (kv[1] == "p99_us") p99[m] = kv[2] + 0 }
  }
  END {
    flush()
    base = R["no_auth"]
    split("no_auth jwt_authorizer ours_cache_on ours_cache_off", order, " ")
    printf "\n%-16s %10s %12s %8s %8s %7s\n", "scenario", "req/s", "ratio", "p50 µs", "p99 µs", "rounds"
    for (i = 1; i <= 4; i++) {
      s = order[i]
      printf "%-16s %10d %12.3f %8d %8d %7d\n", s, R[s], R[s] / base, P50[s], P99[s], N[s]
    }
    printf "\nours, cache on / jwt-authorizer:  %.2f×\n", R["ours_cache_on"] / R["jwt_authorizer"]
    printf "ours, cache off / jwt-authorizer: %.2f×\n", R["ours_cache_off"] / R["jwt_authorizer"]
  }'
