#!/usr/bin/env bash
# Installs what the interop suite (tests/tests/interop.rs) needs, idempotently:
#   - Node.js >= 20 and npm (from Debian's packages when missing and running as root), then
#     tests/interop/oidc-provider/node_modules and tests/interop/msal-node/node_modules
#     (@azure/msal-node) with `npm ci` from the committed lock files;
#   - Python 3 with venv (python3-venv from Debian when missing), then tests/interop/.venv with
#     the pinned msal and grpcio from tests/interop/requirements.txt;
#   - the servers the fleet, monitoring and HSM tests start themselves on 127.0.0.1:
#     redis-server, prometheus and SoftHSM2 (softhsm2-util), from Debian's packages;
#   - the example binaries the suite runs (cargo build --workspace --all-features --bins).
# Fails loudly (non-zero exit, a line saying what is missing) when something cannot be installed:
# the interop suite must never be skipped silently.
set -euo pipefail
cd "$(dirname "$0")/.."
INTEROP=tests/interop

fail() { echo "interop-setup: $*" >&2; exit 1; }

apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        fail "$1 is missing and cannot be installed here (needs root and apt-get); install: $2"
    fi
    echo "interop-setup: installing $2 from Debian's packages"
    if [ -z "${INTEROP_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || fail "apt-get update failed"
        INTEROP_APT_UPDATED=1
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $2 >/dev/null || fail "apt-get install $2 failed"
}

# Node.js, oidc-provider and @azure/msal-node.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install "node/npm" "nodejs npm"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "Node.js $(node --version) is too old: @azure/msal-node 7 needs >= 20 (oidc-provider 8: >= 18)"
for package in oidc-provider msal-node; do
    lock_hash=$(sha256sum "$INTEROP/$package/package-lock.json" | cut -d' ' -f1)
    stamp="$INTEROP/$package/node_modules/.interop-installed"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
        echo "interop-setup: npm ci in $INTEROP/$package"
        (cd "$INTEROP/$package" && npm ci --no-audit --no-fund --loglevel=error) \
            || fail "npm ci failed in $INTEROP/$package (is the npm registry reachable?)"
        echo "$lock_hash" > "$stamp"
    fi
done
msal_node_version=$(cd "$INTEROP/msal-node" && node -p 'require("@azure/msal-node/package.json").version') \
    || fail "@azure/msal-node does not load in $INTEROP/msal-node"

# The servers tests start on 127.0.0.1 with a free port (never a system service): Redis for the
# fleet cache and revocation, Prometheus for the monitoring end-to-end test, SoftHSM2 as the
# PKCS#11 module for HSM signing. One apt-get for all that are missing.
missing_packages=""
for pair in redis-server:redis-server prometheus:prometheus softhsm2-util:softhsm2; do
    command -v "${pair%%:*}" >/dev/null || missing_packages="$missing_packages ${pair#*:}"
done
if [ -n "$missing_packages" ]; then
    apt_install "${missing_packages# }" "${missing_packages# }"
fi

# Python, venv and msal.
if ! command -v python3 >/dev/null; then
    apt_install "python3" "python3 python3-venv"
fi
venv="$INTEROP/.venv"
if [ ! -x "$venv/bin/python" ]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        apt_install "python3 venv (ensurepip)" "python3-venv"
        python3 -m venv "$venv" || fail "python3 -m venv $venv failed"
    fi
fi
req_hash=$(sha256sum "$INTEROP/requirements.txt" | cut -d' ' -f1)
stamp="$venv/.interop-installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "$req_hash" ]; then
    echo "interop-setup: pip install -r $INTEROP/requirements.txt into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$INTEROP/requirements.txt" \
        || fail "pip install failed (is PyPI reachable?)"
    echo "$req_hash" > "$stamp"
fi
"$venv/bin/python" -c 'import msal' || fail "msal does not import in $venv"

# The binaries the suite starts (weather APIs, weather-client).
cargo build --locked --workspace --all-features --bins
echo "interop-setup: ready ($(redis-server --version | cut -d' ' -f1-3), prometheus $(prometheus --version 2>&1 | head -1 | cut -d' ' -f3), softhsm2 $(softhsm2-util --version), node $(node --version), @azure/msal-node $msal_node_version, $("$venv/bin/python" --version), msal $("$venv/bin/python" -c 'import msal; print(msal.__version__)'))"
