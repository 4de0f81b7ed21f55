#!/usr/bin/env bash
# Runs the interop suite alone (oidc-provider, MSAL Python and MSAL Node, see tests/interop/README.md):
# installs its prerequisites, then `cargo test -p e2e-tests --all-features --test interop`.
# Extra arguments filter cases by substring, e.g. `scripts/interop.sh msal`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/interop-setup.sh
cargo test --locked -p e2e-tests --all-features --test interop -- "$@"
