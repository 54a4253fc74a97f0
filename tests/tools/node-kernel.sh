#!/usr/bin/env bash
# The node VMs' kernel: Debian bookworm's cloud kernel, fetched once with `apt-get download`
# and unpacked with `dpkg-deb -x` into $MULTI_ENI_CACHE (default ~/.cache/multi-eni), never
# installed into this machine. `depmod` writes the modules.dep that the package's postinst
# would, so that `modprobe --show-depends -d <dir>` resolves the modules a node needs.
# The last line printed is the absolute path of the directory holding boot/ and lib/modules/.
set -euo pipefail

# The one place the kernel version is pinned. When Debian's archive drops it (a newer ABI
# replaces it), pick the current one: apt-cache search 'linux-image-.*-cloud-amd64$'
KERNEL_ABI=${KERNEL_ABI:-6.1.0-57-cloud-amd64}
CACHE=${MULTI_ENI_CACHE:-$HOME/.cache/multi-eni}
DIR="$CACHE/node-kernel/$KERNEL_ABI"

if [[ -f $DIR/boot/vmlinuz-$KERNEL_ABI && -f $DIR/lib/modules/$KERNEL_ABI/modules.dep ]]; then
  echo "$DIR"
  exit 0
fi
for tool in apt-get dpkg-deb depmod; do
  command -v "$tool" >/dev/null || { echo "node-kernel.sh: $tool is missing (Debian: apt-get install kmod dpkg apt)" >&2; exit 1; }
done

work=$(mktemp -d "$CACHE/node-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
package="linux-image-$KERNEL_ABI"
echo "fetching $package from Debian (once)" >&2
# apt-get download needs the package lists; a fresh machine may not have them yet.
if ! (cd "$work" && apt-get download -q "$package" >&2); then
  apt-get update -qq >&2
  (cd "$work" && apt-get download -q "$package" >&2) || {
    echo "node-kernel.sh: Debian has no $package any more: set KERNEL_ABI in tests/tools/node-kernel.sh to a current one (apt-cache search 'linux-image-.*-cloud-amd64\$')" >&2
    exit 1
  }
fi
dpkg-deb -x "$work"/"$package"_*.deb "$work/root"
depmod -b "$work/root" "$KERNEL_ABI"
rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
mv "$work/root" "$DIR"
echo "$DIR"
