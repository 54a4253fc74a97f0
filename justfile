# multi-eni developer commands. `just` lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

cache := env_var_or_default("MULTI_ENI_CACHE", env_var("HOME") / ".cache/multi-eni")
export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", cache / "target")

# List the recipes
default:
    @just --list

# The local sandbox: the system on a real API server, without AWS or a cluster (--exit to stop at the end)
demo *ARGS:
    cargo build --bin multi-eni --example sandbox
    MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" "$CARGO_TARGET_DIR/debug/examples/sandbox" {{ARGS}}

# Node agent benchmark (root): 200 links hot-plugged into a network namespace; latency, idle RSS and CPU
bench-manager:
    cargo build --release --bin multi-eni
    cargo build --example bench-manager
    MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" "$CARGO_TARGET_DIR/debug/examples/bench-manager" "$CARGO_TARGET_DIR/release/multi-eni"

# Format and lint checks, then every test (against real kube-apiserver and etcd)
test: lint
    MULTI_ENI_TESTBINS="$(just testbins | tail -n1)" cargo test --all-targets

# rustfmt and clippy, warnings denied
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# Build (once) kube-apiserver, etcd and kubectl for the tests; prints their directory last
testbins:
    tests/tools/testbins.sh

# Regenerate the checked-in CRD from the Rust types
crd:
    cargo run -q -- crd print > manifests/crd.yaml
    cp manifests/crd.yaml chart/crds/nodeeni.yaml
