#!/usr/bin/env bash
# Writes the container image's file tree into DIR (created if missing), with its modes; the
# Containerfile copies the tree as it is, owned by root. Both of the Containerfile's ways to
# the tree run this script: its Rust stage (with registries) and `just image` (offline).
#
# - usr/local/bin/multi-eni: the static binary (tests/tools/static-build.sh).
# - etc/ssl/certs/ca-certificates.crt: the certificates of Debian's ca-certificates package,
#   in the order and form update-ca-certificates writes that file. The AWS SDK's HTTPS client
#   trusts the platform's roots: rustls-native-certs, through openssl-probe, reads this path
#   first on Linux. Built from the package's files rather than copied from /etc/ssl/certs, so
#   that a CA added to the building machine (/usr/local/share/ca-certificates) stays out.
# - etc/passwd, etc/group: root and the non-root user 65532, named nonroot as in distroless
#   (the image has no home directories).
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
out=$(realpath -m "$1")
cd "$(dirname "$0")/../.."
install -d -m 0755 "$out" "$out/etc" "$out/etc/ssl" "$out/etc/ssl/certs" "$out/usr" "$out/usr/local" "$out/usr/local/bin"

install -m 0755 "$(tests/tools/static-build.sh | tail -n1)" "$out/usr/local/bin/multi-eni"

mapfile -t certs < <(dpkg-query -L ca-certificates | grep -E '^/usr/share/ca-certificates/.+\.crt$' | LC_ALL=C sort)
(( ${#certs[@]} > 0 )) || { echo "no certificates from Debian's ca-certificates package" >&2; exit 1; }
# update-ca-certificates appends each certificate with `sed -e '$a\'` (a final newline added).
sed -e '$a\' "${certs[@]}" | install -m 0644 /dev/stdin "$out/etc/ssl/certs/ca-certificates.crt"

printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' |
  install -m 0644 /dev/stdin "$out/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' | install -m 0644 /dev/stdin "$out/etc/group"
