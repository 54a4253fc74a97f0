#!/usr/bin/env bash
# Builds the container image's multi-eni binary, statically linked (profile dist): the
# Containerfile and the `just static-binary` check both run this, so that they cannot differ.
# glibc linked statically, as a static PIE: glibc 2.34 and later resolve names from files and
# DNS without loading NSS modules. Prints the binary's path last.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="$(uname -m)-unknown-linux-gnu"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --profile dist --locked --target "$target" --bin multi-eni >&2
echo "${CARGO_TARGET_DIR:-$PWD/target}/$target/dist/multi-eni"
