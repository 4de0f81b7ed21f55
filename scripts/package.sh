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

cargo package --locked --no-verify "${packages[@]}"
cargo package --locked "${packages[@]}"
