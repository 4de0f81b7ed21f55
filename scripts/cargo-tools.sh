#!/usr/bin/env bash
# Installs the cargo subcommands that .ci/run's checks use, when missing or at another version,
# from crates.io with `cargo install --locked` (their own lock files): the versions are pinned
# here so that a cold machine and a warm one run the same checks.
#
#   scripts/cargo-tools.sh            # cargo-hack and cargo-deny
#   scripts/cargo-tools.sh cargo-hack # one of them
#
# Cold, on 2 cores: cargo-hack about 45 s, cargo-deny about 4-5 min; warm: nothing to do.
set -euo pipefail

declare -A VERSIONS=(
    [cargo-hack]=0.6.46
    [cargo-deny]=0.20.2
)

tools=("$@")
if [ "${#tools[@]}" -eq 0 ]; then
    tools=(cargo-hack cargo-deny)
fi

for tool in "${tools[@]}"; do
    version="${VERSIONS[$tool]:-}"
    if [ -z "$version" ]; then
        echo "cargo-tools: no pinned version for $tool" >&2
        exit 1
    fi
    # `cargo hack --version` prints "cargo-hack 0.6.46", `cargo deny --version` "cargo-deny 0.20.2".
    installed="$(cargo "${tool#cargo-}" --version 2>/dev/null | awk '{print $2}' || true)"
    if [ "$installed" = "$version" ]; then
        continue
    fi
    echo "cargo-tools: installing $tool $version (found: ${installed:-none})" >&2
    start=$SECONDS
    cargo install --locked "$tool" --version "$version"
    echo "cargo-tools: $tool $version installed in $((SECONDS - start)) s" >&2
done
