# multi-eni developer commands. `just` lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

cache := env_var_or_default("MULTI_ENI_CACHE", env_var("HOME") / ".cache/multi-eni")
export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", cache / "target")

# List the recipes
default:
    @just --list

# The local sandbox (root): the system on a real API server and node VMs, without AWS or a cluster; stays up until Ctrl-C (--exit to stop at the end)
demo *ARGS: vm-deps
    cargo build --bin multi-eni --example sandbox
    MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" MULTI_ENI_NODE_KERNEL="$(just node-kernel | tail -n1)" "$CARGO_TARGET_DIR/debug/examples/sandbox" {{ARGS}}

# Format and lint checks, the image, then every test (real kube-apiserver and etcd, the EC2 simulator, moto, boto3, the image under runc, node VMs, the sandbox), then the static binary
test: lint venv vm-deps
    image="$(just image | tail -n1)" && MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" MULTI_ENI_NODE_KERNEL="$(just node-kernel | tail -n1)" MULTI_ENI_IMAGE="$image" cargo test --all-targets
    just ec2-sim-check
    just e2e
    just static-binary

# rustfmt and clippy, warnings denied
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# Build (once) kube-apiserver, etcd, kubectl and helm for the tests; prints their directory last
testbins:
    tests/tools/testbins.sh

# Regenerate the checked-in CRD from the Rust types
crd:
    cargo run -q -- crd print > manifests/crd.yaml
    cp manifests/crd.yaml chart/crds/crds.yaml

# Regenerate manifests/multi-eni.yaml: the chart rendered with its default values
manifests:
    tests/tools/manifests.sh > manifests/multi-eni.yaml

# Build the static binary as the Containerfile does; fail unless it is static, runs and weighs at most 15 MB
static-binary:
    #!/usr/bin/env bash
    set -euo pipefail
    bin="$(tests/tools/static-build.sh | tail -n1)"
    echo "$bin: $(file -b "$bin")"
    file -b "$bin" | grep -Eq 'static(-pie)? linked' || { echo "not statically linked" >&2; exit 1; }
    ldd "$bin" 2>&1 | grep -Eq 'not a dynamic executable|statically linked' || { echo "ldd lists shared libraries" >&2; exit 1; }
    "$bin" --version
    "$bin" crd print | cmp -s - manifests/crd.yaml || { echo "crd print differs from manifests/crd.yaml" >&2; exit 1; }
    size=$(stat -c %s "$bin")
    echo "size: $(awk -v b="$size" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }')"
    (( size <= 15000000 )) || { echo "larger than 15 MB" >&2; exit 1; }

# The container image, built offline from the static binary (podman build --network=none); prints its size, then its ID last
image: image-deps
    tests/tools/image.sh

# The Containerfile's registry way, offline (its Rust stage's base a stand-in made of this machine's Debian and Rust), checked by the image's tests
image-registry-way: image-deps
    #!/usr/bin/env bash
    set -euo pipefail
    image="$(tests/tools/image-registry-way.sh | tail -n1)"
    trap 'podman rmi "$image" >/dev/null' EXIT
    MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" MULTI_ENI_IMAGE="$image" cargo test --test it image::

# What the image's build and test run besides the project: podman, runc and the CA certificates, from Debian
image-deps:
    command -v podman >/dev/null && command -v runc >/dev/null && dpkg-query -W -f '${Status}' ca-certificates 2>/dev/null | grep -q 'ok installed' || (apt-get update -qq && apt-get install -y -qq podman runc ca-certificates)

# The Python tools the tests use (moto's EC2 server, boto3), in a virtualenv under the cache
venv:
    test -x "{{cache}}/venv/bin/moto_server" || (python3 -m venv "{{cache}}/venv" && "{{cache}}/venv/bin/pip" install --quiet -r tests/tools/requirements.txt)

# The EC2 simulator on its own, serving on ADDR until Ctrl-C (control endpoint under /_sim/)
ec2-sim ADDR="127.0.0.1:4566":
    cargo build --example ec2-sim
    "$CARGO_TARGET_DIR/debug/examples/ec2-sim" {{ADDR}}

# Checks that an unmodified boto3 client works against the EC2 simulator
ec2-sim-check: venv
    cargo build --example ec2-sim
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"; \
    "$CARGO_TARGET_DIR/debug/examples/ec2-sim" "127.0.0.1:$port" & sim=$!; \
    trap 'kill $sim' EXIT; \
    for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done; \
    "{{cache}}/venv/bin/python" tests/tools/ec2_sim_boto3_check.py "http://127.0.0.1:$port"

# Benchmark of the controller: N simulated nodes (default 200) with AWS's throttling on, their agents' writes, and the objects' sizes; FLAGS: --addresses K (K pod addresses per ENI)
bench-controller N="200" *FLAGS:
    cargo build --release --bin multi-eni --example bench-controller
    MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" "$CARGO_TARGET_DIR/release/examples/bench-controller" {{N}} {{FLAGS}}

# The objects at N nodes (default 1000): sizes of the NodeENI and the ENINodes, one agent's watch traffic, API writes by kind (the simulator's throttling off)
bench-objects N="1000":
    cargo build --release --bin multi-eni --example bench-controller
    MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" "$CARGO_TARGET_DIR/release/examples/bench-controller" {{N}} --objects

# The EC2 simulator's own throughput with throttling off (calls per second on loopback)
bench-ec2 SECONDS="5":
    cargo build --release --example bench-ec2
    "$CARGO_TARGET_DIR/release/examples/bench-ec2" {{SECONDS}}

# Node agent benchmark (root): 200 links hot-plugged into a network namespace; latency, idle RSS and CPU
bench-manager:
    cargo build --release --bin multi-eni
    cargo build --example bench-manager
    MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" "$CARGO_TARGET_DIR/debug/examples/bench-manager" "$CARGO_TARGET_DIR/release/multi-eni"

# Node agent in a node VM (root): boot to agent ready, hot-plug to configured (20 PCI hot-plugs, timed in the VM), unplug
bench-vm: vm-deps
    cargo build --release --bin multi-eni
    cargo build --example bench-vm --example vm-probe
    MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" MULTI_ENI_NODE_KERNEL="$(just node-kernel | tail -n1)" "$CARGO_TARGET_DIR/debug/examples/bench-vm" "$CARGO_TARGET_DIR/release/multi-eni" "$CARGO_TARGET_DIR/debug/examples/vm-probe"

# The sandbox headless on node VMs: the whole flow asserted, from apply to removal (needs root)
e2e: vm-deps
    cargo build --bin multi-eni --example sandbox
    MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" MULTI_ENI_NODE_KERNEL="$(just node-kernel | tail -n1)" "$CARGO_TARGET_DIR/debug/examples/sandbox" --e2e

# What the sandbox runs on this machine besides the project, from Debian: iproute2 (ip: the VPC bridge and its taps), iptables (ebtables-nft: the VPC passes only assigned addresses)
sandbox-deps:
    command -v ip >/dev/null && command -v ebtables-nft >/dev/null || (apt-get update -qq && apt-get install -y -qq iproute2 iptables)

# What node VMs need, from Debian: QEMU, busybox-static, the CNI plugins, kmod, cpio, binutils (strip); then the node kernel
vm-deps: sandbox-deps
    command -v qemu-system-x86_64 >/dev/null && test -x /bin/busybox && test -x /usr/lib/cni/ipvlan && command -v cpio >/dev/null && command -v modprobe >/dev/null && command -v strip >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-system-x86 busybox-static containernetworking-plugins kmod cpio binutils)
    just node-kernel >/dev/null

# Debian's cloud kernel for the node VMs, fetched once with apt-get download into the cache; prints its directory last
node-kernel:
    tests/tools/node-kernel.sh
