#!/usr/bin/env bash
# The core crate (tower-azure-auth) is a library that goes into production services: its normal
# dependency tree must not carry the dev authority's server stack. Fails, naming the path by
# which the offending crate comes in, when
#   - with default features, or every feature but `axum`: hyper or hyper-util is built with
#     its `server` feature;
#   - with default features or all features: rcgen is in the tree, or tokio-rustls is a direct
#     dependency of the core (the TLS server of the dev authority; reqwest's TLS client reaches
#     tokio-rustls through hyper-rustls, which is fine).
# (With all features, the `axum` feature brings hyper's server legitimately: axum is a server.)
# Those belong to entra-dev-authority, which the core's tests take as a dev-dependency.
# .ci/run calls it; run it alone as `scripts/check-deps.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

core=tower-azure-auth
failed=0

# Every feature of the core but `axum` (an axum extractor brings axum, and axum is a server).
but_axum=$(cargo metadata --locked --no-deps --format-version 1 | python3 -c '
import json, sys
package = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == sys.argv[1])
print(",".join(sorted(f for f in package["features"] if f not in ("default", "axum"))))
' "$core")

fail() {
    echo "check-deps: $1" >&2
    failed=1
}

# How a package (or one of its features) gets into the core's tree, from the bottom up.
path_to() {
    local features=$1 package=$2 edges=$3
    # shellcheck disable=SC2086
    cargo tree --locked -p "$core" $features -e "$edges" -i "$package" >&2 || true
}

for features in "" "--all-features" "--features=$but_axum"; do
    label=${features:-"default features"}
    # shellcheck disable=SC2086
    tree=$(cargo tree --locked -p "$core" $features -e normal --prefix depth --format '{p}')
    # shellcheck disable=SC2086
    feature_tree=$(cargo tree --locked -p "$core" $features -e normal,features --prefix none)
    if grep -q '^[0-9]*rcgen v' <<<"$tree"; then
        fail "rcgen is in the normal dependency tree of $core ($label); it comes in by:"
        path_to "$features" rcgen normal
    fi
    if grep -q '^1tokio-rustls v' <<<"$tree"; then
        fail "tokio-rustls is a direct dependency of $core ($label); it comes in by:"
        path_to "$features" tokio-rustls normal
    fi
    if [ "$features" != "--all-features" ]; then
        for hyper in hyper hyper-util; do
            if grep -q "^$hyper feature \"server\"" <<<"$feature_tree"; then
                fail "$hyper is built with its \`server\` feature for $core ($label); it comes in by:"
                # Only the branch of the inverted tree under `$hyper feature "server"`.
                # shellcheck disable=SC2086
                cargo tree --locked -p "$core" $features -e normal,features -i "$hyper" |
                    awk -v node="$hyper feature \"server\"" '
                        depth && (match($0, /[^ │├└─]/) - 1) <= depth { exit }
                        depth { print; next }
                        index($0, node) { print; depth = match($0, /[^ │├└─]/) - 1 }
                    ' >&2 || true
            fi
        done
    fi
done

if [ "$failed" -ne 0 ]; then
    echo "check-deps: FAILED: the core's dependency tree carries a server stack (see above)" >&2
    exit 1
fi
echo "check-deps: $core's normal dependency tree has no hyper server, rcgen or direct tokio-rustls"
