#!/usr/bin/env bash
# Packages the published crates as `cargo publish` would, and builds each from its .crate:
# the manifest is complete, every file the crate needs (README, licences, doc includes) is in
# the package, and the package compiles on its own against crates.io-style dependencies
# (the crates of this list that depend on each other are resolved among themselves).
#
#   scripts/package.sh [CRATE...]   (default: tower-azure-auth actix-azure-auth)
#
# First without verification (fast: the file list and the manifest), then with it.
set -euo pipefail
cd "$(dirname "$0")/.."

crates=("$@")
if [ "${#crates[@]}" -eq 0 ]; then
    crates=(tower-azure-auth actix-azure-auth)
fi
packages=()
for crate in "${crates[@]}"; do
    packages+=(-p "$crate")
done

# The verification resolves these crates among themselves through a local registry overlay,
# which cargo extracts to $CARGO_HOME/registry/src/-HASH/NAME-VERSION (HASH: the workspace's
# path) and reuses when that NAME-VERSION is already there: a clone at a path an earlier run
# used would compile that run's stale copy instead of this one. Remove those copies first.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
for crate in "${crates[@]}"; do
    rm -rf "$cargo_home"/registry/src/-*/"$crate"-[0-9]* \
        "$cargo_home"/registry/cache/-*/"$crate"-[0-9]*.crate
done

cargo package --locked --no-verify "${packages[@]}"
cargo package --locked "${packages[@]}"
