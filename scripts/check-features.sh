#!/usr/bin/env bash
# `cargo hack check --each-feature --no-dev-deps` on the library crates: each feature alone
# (and none, and all) compiles without the dev-dependencies that the tests add, so a feature
# that forgets to enable what it uses is found here, not by a user.
#
#   scripts/check-features.sh [CRATE...]   (default: tower-azure-auth actix-azure-auth)
#
# `--locked` cannot be passed through: `--no-dev-deps` removes the dev-dependencies from the
# manifests for the run, so cargo drops their entries from Cargo.lock (cargo-hack restores
# both afterwards). The lock is checked up to date before, and compared after, instead.
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

cargo metadata --locked --format-version 1 >/dev/null
saved="$(mktemp)"
trap 'rm -f "$saved"' EXIT
cp Cargo.lock "$saved"
cargo hack check --each-feature --no-dev-deps "${packages[@]}"
if ! cmp -s Cargo.lock "$saved"; then
    cp "$saved" Cargo.lock
    echo "check-features: cargo hack changed Cargo.lock (restored)" >&2
    exit 1
fi
