#!/usr/bin/env bash
# rustdoc with RUSTC_BOOTSTRAP=1 in its own environment only; used as RUSTDOC by
# scripts/docsrs.sh, which says why.
RUSTC_BOOTSTRAP=1 exec rustdoc "$@"
