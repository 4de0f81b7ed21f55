#!/usr/bin/env bash
# Builds each published crate's documentation the way docs.rs does: alone, with
# `[package.metadata.docs.rs]`'s `all-features = true`, and `--cfg docsrs`, so that
# `#![cfg_attr(docsrs, feature(doc_cfg))]` is compiled and feature-gated items are labelled.
# Warnings (broken intra-doc links among them) are errors.
#
#   scripts/docsrs.sh [CRATE...]   (default: tower-azure-auth actix-azure-auth)
#
# `feature(doc_cfg)` is a nightly feature and CI has the stable toolchain only: RUSTC_BOOTSTRAP=1
# lets stable rustdoc accept it. It is set for the rustdoc processes alone (through
# scripts/rustdoc-bootstrap.sh as RUSTDOC), never in cargo's environment: build scripts that
# watch RUSTC_BOOTSTRAP (proc-macro2, thiserror, anyhow) would otherwise rerun, and every crate
# above them would be rebuilt here and again by the next ordinary build.
set -euo pipefail
cd "$(dirname "$0")/.."

crates=("$@")
if [ "${#crates[@]}" -eq 0 ]; then
    crates=(tower-azure-auth actix-azure-auth)
fi

export RUSTDOC="$PWD/scripts/rustdoc-bootstrap.sh"
export RUSTDOCFLAGS="--cfg docsrs -D warnings"
for crate in "${crates[@]}"; do
    cargo doc --locked --no-deps --all-features -p "$crate"
done
