#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration (real servers on 127.0.0.1), end-to-end,
# interop (oidc-provider, MSAL Python and MSAL Node, see tests/interop/) and doc tests, then a short smoke
# run of every fuzz target. This is the README's test command; .ci/run calls it too. Extra
# arguments go to cargo test, e.g. `scripts/test.sh -p e2e-tests --test interop` runs the
# interop suite alone (and skips the fuzz smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/interop-setup.sh
cargo test --locked --workspace --all-features "$@"
if [ "$#" -eq 0 ]; then
    scripts/fuzz.sh 3
fi
