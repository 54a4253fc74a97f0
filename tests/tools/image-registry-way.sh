#!/usr/bin/env bash
# Builds the image the Containerfile's registry way (its last stage, as `podman build -f
# Containerfile .` does from the repository), offline. The Rust stage's base image cannot be
# pulled here: a stand-in takes its place, this machine's Debian bookworm and Rust toolchain
# bound in at build time (/usr, the dpkg database and alternatives read-only; rustup's
# toolchains read-only; cargo's home for the crates, already downloaded) with a copy of the
# dist build (warm). Everything else is the Containerfile's own. Prints the image's ID last;
# the image is untagged (`podman rmi` it when done).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v podman >/dev/null || { echo "podman is not installed: \`just image-deps\` installs Debian's podman and runc" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
work=$(mktemp -d)
standin="localhost/multi-eni-rust-standin:$(basename "$work")"
trap 'rm -rf "$work"; podman rmi "$standin" >/dev/null 2>&1 || true' EXIT

mkdir -p "$work/standin/"{tmp,usr,etc,root,var/lib/dpkg} "$work/target"
chmod 1777 "$work/standin/tmp"
for dir in bin lib lib64 sbin; do ln -s "usr/$dir" "$work/standin/$dir"; done
tar -C "$work/standin" -c . | podman import \
  --change "ENV PATH=$cargo_home/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV HOME=/root" --change "ENV CARGO_HOME=$cargo_home" --change "ENV RUSTUP_HOME=$rustup_home" \
  --change "ENV CARGO_NET_OFFLINE=true" - "$standin" >/dev/null
for dir in dist "$(uname -m)-unknown-linux-gnu"; do
  if [[ -d $target/$dir ]]; then cp -a "$target/$dir" "$work/target/"; fi
done

podman build --network=none --layers=false --build-arg RUST_IMAGE="$standin" --iidfile "$work/id" \
  -v /usr:/usr:ro -v /etc/alternatives:/etc/alternatives:ro -v /etc/ld.so.cache:/etc/ld.so.cache:ro \
  -v /etc/dpkg:/etc/dpkg:ro -v /var/lib/dpkg:/var/lib/dpkg:ro \
  -v "$rustup_home:$rustup_home:ro" -v "$cargo_home:$cargo_home" -v "$work/target:/src/target" \
  -f Containerfile . >&2
cat "$work/id"
echo
