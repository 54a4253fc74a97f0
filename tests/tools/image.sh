#!/usr/bin/env bash
# Builds the container image offline (`just image`): tests/tools/image-rootfs.sh writes the
# image's file tree as a build context of its own, then the Containerfile's offline way
# (--target offline) builds from it with `podman build --network=none`, tagged
# localhost/multi-eni:<version>. Prints the image's size, then its ID last (the image test
# uses the ID, which another checkout building the same tag cannot move).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v podman >/dev/null || { echo "podman is not installed: \`just image-deps\` installs Debian's podman and runc" >&2; exit 1; }
work="${CARGO_TARGET_DIR:-$PWD/target}/image"
context="$work/rootfs"
rm -rf "$context"
tests/tools/image-rootfs.sh "$context"
version=$("$context/usr/local/bin/multi-eni" --version | awk '{ print $2 }')

previous=$(cat "$work/id" 2>/dev/null || true)
# --layers=false: no intermediate images left behind.
podman build --network=none --layers=false --target offline --iidfile "$work/id" \
  -t "localhost/multi-eni:$version" -f Containerfile "$context" >&2
id=$(cat "$work/id")
# The previous build of this target dir, once no tag names it any more.
if [[ -n $previous && $previous != "$id" ]] &&
  [[ $(podman image inspect --format '{{len .RepoTags}}' "$previous" 2>/dev/null) == 0 ]]; then
  podman rmi "$previous" >/dev/null || echo "could not remove the previous image $previous" >&2
fi

size=$(podman image inspect --format '{{.Size}}' "$id")
echo "localhost/multi-eni:$version: $(awk -v b="$size" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }')" >&2
echo "$id"
