#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration (real servers on 127.0.0.1), end-to-end
# and doc tests. This is the README's test command; .ci/run calls it too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-features "$@"
