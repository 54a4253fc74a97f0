//! The local sandbox (`just demo`): multi-eni on one machine, without AWS or a cluster.
//!
//! Starts a real kube-apiserver and etcd, installs the NodeENI CRD the way a user would
//! (`multi-eni crd print | kubectl apply -f -`), applies the sample NodeENIs, shows one that
//! admission rejects, and keeps the control plane up until Ctrl-C (unless `--exit`).

#[path = "../support/mod.rs"]
mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::control_plane::ControlPlane;

#[tokio::main]
async fn main() {
    let exit = std::env::args().any(|arg| arg == "--exit");
    println!("==> starting etcd and kube-apiserver");
    let plane = ControlPlane::start().await;
    let kubeconfig = plane.kubeconfig.display().to_string();
    println!("    logs and certificates in {}", plane.dir().display());

    println!("==> multi-eni crd print | kubectl apply -f -");
    let crd = Command::new(multi_eni_binary())
        .args(["crd", "print"])
        .output()
        .expect("crd print");
    kubectl_stdin(&plane, &["apply", "-f", "-"], &crd.stdout);
    kubectl(
        &plane,
        &[
            "wait",
            "--for=condition=Established",
            "crd/nodeenis.networking.k8s.aws",
        ],
    );

    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nodeeni");
    println!("==> kubectl apply -f {}", samples.display());
    kubectl(&plane, &["apply", "-f", &samples.display().to_string()]);
    kubectl(&plane, &["get", "neni", "-o", "wide"]);

    println!(
        "==> a NodeENI that admission rejects (device index 0 is the primary ENI, MTU too small):"
    );
    let invalid = "apiVersion: networking.k8s.aws/v1alpha1
kind: NodeENI
metadata: {name: invalid}
spec:
  nodeSelector: {ng: multi-eni}
  subnetID: subnet-0f59b4f14737be9ad
  securityGroupIDs: [sg-05da196f3314d4af8]
  deviceIndex: 0
  mtu: 100
";
    kubectl_stdin(&plane, &["apply", "-f", "-"], invalid.as_bytes());

    if exit {
        return;
    }
    println!(
        "\nThe control plane stays up until Ctrl-C. In another shell:\n    export KUBECONFIG={kubeconfig}\n    kubectl get neni"
    );
    tokio::signal::ctrl_c().await.expect("wait for Ctrl-C");
    println!("==> stopping");
}

/// The `multi-eni` binary that cargo built beside this example (target/<profile>/).
fn multi_eni_binary() -> std::path::PathBuf {
    let example = std::env::current_exe().expect("own path");
    example
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/examples")
        .join("multi-eni")
}

fn kubectl(plane: &ControlPlane, args: &[&str]) {
    kubectl_stdin(plane, args, &[]);
}

/// Runs kubectl with `input` on stdin; its output goes to the terminal as it is.
fn kubectl_stdin(plane: &ControlPlane, args: &[&str], input: &[u8]) {
    let mut child = plane
        .kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to kubectl");
    child.wait().expect("wait for kubectl");
}
