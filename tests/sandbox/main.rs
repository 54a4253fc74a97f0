//! The local sandbox (`just demo`, `just e2e`): the whole system on one machine, without AWS
//! or a cluster. A real kube-apiserver and etcd; the EC2 simulator with AWS's throttling;
//! three simulated nodes, each a Node object, an instance and a network namespace; the
//! controller; and a node agent per node, inside its node's namespace. ENIs the simulator
//! attaches appear as links with the ENI's MAC in the node's namespace.
//!
//! Without flags it stays up after the demonstration until Ctrl-C; `--exit` stops there
//! instead; `--e2e` runs it headless and asserts the whole flow, including the removal.

#[path = "../support/mod.rs"]
mod support;

mod fabric;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fabric::Fabric;
use multi_eni::api::NodeENI;
use support::ec2sim::{AttachmentEventKind, SimConfig};
use support::process::Process;
use support::sim_cluster::{SimCluster, ZONES, multi_eni_binary};

const NODES: [&str; 3] = ["node-a1", "node-a2", "node-b1"];

#[tokio::main]
async fn main() {
    let (mut e2e, mut stay) = (false, true);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--e2e" => e2e = true,
            "--exit" => stay = false,
            other => {
                eprintln!("unknown argument {other}; usage: sandbox [--exit | --e2e]");
                std::process::exit(2);
            }
        }
    }
    let code = run(e2e, stay).await;
    std::process::exit(code);
}

/// `stay`: wait for Ctrl-C after the demonstration (with the cluster up to explore).
async fn run(e2e: bool, stay: bool) -> i32 {
    println!("==> starting kube-apiserver, etcd and the EC2 simulator (AWS throttling on)");
    let config = SimConfig {
        attach_latency_ms: 1000,
        detach_latency_ms: 2000,
        ..SimConfig::default()
    };
    let mut cluster = SimCluster::start(config).await;
    let kubeconfig = cluster.plane.kubeconfig.display().to_string();
    println!("    export KUBECONFIG={kubeconfig}");

    let names: Vec<String> = NODES.iter().map(|n| (*n).to_owned()).collect();
    let fabric = Arc::new(Fabric::new(
        &format!("me{}", std::process::id() % 10_000),
        &names,
    ));
    let mut instances = std::collections::BTreeMap::new();
    for (node, zone) in NODES.iter().zip([ZONES[0], ZONES[0], ZONES[1]]) {
        let instance = cluster
            .add_node(node, zone, "m5.xlarge", &[("ng", "multi-eni")])
            .await;
        println!(
            "    node {node}: {instance} in {zone}, namespace {}",
            fabric.namespace(node)
        );
        instances.insert(instance, (*node).to_owned());
    }
    let hook_fabric = Arc::clone(&fabric);
    cluster.sim.on_attachment(Box::new(move |event| {
        let Some(node) = instances.get(&event.instance_id) else {
            return;
        };
        match event.kind {
            AttachmentEventKind::Attached => {
                hook_fabric.plug(node, &event.mac_address, event.device_index);
            }
            AttachmentEventKind::Detached => hook_fabric.unplug(&event.mac_address),
        }
    }));

    println!("==> starting the controller and a node agent in each node's namespace");
    cluster.start_controller(&["--transition-poll", "1s"]);
    let _agents: Vec<Process> = NODES
        .iter()
        .map(|node| start_agent(&cluster, &fabric, node))
        .collect();

    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sandbox/nodeeni.yaml");
    let spec = std::fs::read_to_string(&sample).expect("the sample NodeENI");
    let spec = spec
        .replace("SUBNET_A", &cluster.subnets[ZONES[0]])
        .replace("SUBNET_B", &cluster.subnets[ZONES[1]]);
    println!(
        "==> kubectl apply -f {} (subnets filled in)",
        sample.display()
    );
    kubectl_stdin(&cluster, &["apply", "-f", "-"], &spec);

    let ready = watch_progress(&cluster).await;
    show(&cluster, &fabric).await;
    let mut failures = Vec::new();
    if !ready {
        failures
            .push("the NodeENI did not become Ready with every interface configured".to_owned());
    }
    failures.extend(ping_over_ipvlan(&fabric));
    if e2e {
        failures.extend(remove_and_check(&mut cluster, &fabric).await);
    } else if failures.is_empty() && stay {
        println!(
            "\nThe sandbox stays up until Ctrl-C (`just demo --exit` stops here). In another shell:"
        );
        println!("    export KUBECONFIG={kubeconfig}; kubectl get neni -o wide");
        println!("    ip netns exec {} ip link", fabric.namespace(NODES[0]));
        let _ = tokio::signal::ctrl_c().await;
    }
    println!("==> cleaning up");
    cluster.kill_controller();
    if failures.is_empty() {
        println!("sandbox: 1 passed, 0 failed");
        0
    } else {
        for failure in &failures {
            println!("FAILED: {failure}");
        }
        println!("sandbox: 0 passed, 1 failed");
        1
    }
}

fn start_agent(cluster: &SimCluster, fabric: &Fabric, node: &str) -> Process {
    let dir = cluster.plane.dir().join(node);
    std::fs::create_dir_all(&dir).expect("agent dir");
    let mut command = Command::new(multi_eni_binary());
    command
        .args([
            "manager",
            "--node-name",
            node,
            "--netns",
            &fabric.namespace_path(node),
        ])
        .arg("--sriov-config")
        .arg(dir.join("pcidp.json"))
        .arg("--state-file")
        .arg(dir.join("state.json"))
        .args(["--imds-endpoint", "none"])
        .env("KUBECONFIG", &cluster.plane.kubeconfig)
        .env("RUST_LOG", "multi_eni=debug,info");
    Process::spawn(&format!("agent-{node}"), &mut command, cluster.plane.dir())
}

/// Prints each node's state as it changes, until Ready with every interface configured.
async fn watch_progress(cluster: &SimCluster) -> bool {
    println!("==> converging (per node: state, interface)");
    let deadline = Instant::now() + Duration::from_mins(2);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(nodeeni) = cluster.nodeenis().get("multus").await {
            let line = progress_line(&nodeeni);
            if line != last {
                println!("    {line}");
                last = line;
            }
            if complete(&nodeeni) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

fn progress_line(nodeeni: &NodeENI) -> String {
    let Some(status) = &nodeeni.status else {
        return "waiting for the controller".into();
    };
    let entries: Vec<String> = status
        .attachments
        .iter()
        .map(|a| {
            let state = a.state.map_or("-".to_owned(), |s| format!("{s:?}"));
            let interface = match (&a.interface_name, a.configured) {
                (Some(name), Some(true)) => format!(" {name} up"),
                (Some(name), _) => format!(" {name}"),
                _ => String::new(),
            };
            format!("{}: {state}{interface}", a.node_name)
        })
        .collect();
    entries.join(" | ")
}

/// Ready, and every node's interface configured.
fn complete(nodeeni: &NodeENI) -> bool {
    let Some(status) = &nodeeni.status else {
        return false;
    };
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ready
        && status.attachments.len() == NODES.len()
        && status
            .attachments
            .iter()
            .all(|a| a.configured == Some(true))
}

async fn show(cluster: &SimCluster, fabric: &Fabric) {
    println!("\n==> kubectl get neni -o wide");
    kubectl_stdin(cluster, &["get", "neni", "-o", "wide"], "");
    println!("\n==> ENIs in EC2 (by the cluster's tag)");
    for eni in cluster.owned_enis().await {
        let attachment = eni.attachment.as_ref();
        println!(
            "    {}  {}  {}  {}  index {}",
            eni.id,
            eni.mac_address,
            eni.subnet_id,
            attachment.map_or("-", |a| a.instance_id.as_str()),
            attachment.map_or(-1, |a| a.device_index)
        );
    }
    for node in NODES {
        println!(
            "\n==> ip link (node {node}, namespace {})",
            fabric.namespace(node)
        );
        print!("{}", fabric.ip_in(node, &["link", "show"]));
    }
}

/// Two nodes of one zone: an ipvlan interface on each node's configured ENI interface (as a
/// Multus ipvlan attachment would make), one pings the other across the VPC bridge. On a
/// kernel without ipvlan, macvlan stands in (in a real VPC only ipvlan works: the VPC
/// delivers only to the ENI's own MAC).
fn ping_over_ipvlan(fabric: &Fabric) -> Option<String> {
    let kind = if fabric::kernel_has("ipvlan") {
        "ipvlan"
    } else {
        "macvlan"
    };
    let mode = if kind == "ipvlan" { "l2" } else { "bridge" };
    println!(
        "\n==> {kind} on the ENI interface of {} and {}, then ping",
        NODES[0], NODES[1]
    );
    if kind != "ipvlan" {
        println!("    (this kernel has no ipvlan driver: macvlan stands in)");
    }
    for (i, node) in NODES[..2].iter().enumerate() {
        let address = format!("10.99.0.{}/24", i + 1);
        let namespace = fabric.namespace(node);
        fabric::ip(&[
            "-n", namespace, "link", "add", "pod0", "link", "multus", "type", kind, "mode", mode,
        ]);
        fabric::ip(&["-n", namespace, "addr", "add", &address, "dev", "pod0"]);
        fabric::ip(&["-n", namespace, "link", "set", "pod0", "up"]);
    }
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            fabric.namespace(NODES[0]),
            "ping",
            "-c",
            "3",
            "-W",
            "2",
            "10.99.0.2",
        ])
        .output()
        .expect("ping (iputils-ping; `just sandbox-deps` installs it)");
    print!("{}", String::from_utf8_lossy(&ping.stdout));
    (!ping.status.success()).then(|| format!("{kind} ping between two nodes failed"))
}

/// Deletes the NodeENI and checks that everything goes: ENIs, links, finalizer.
async fn remove_and_check(cluster: &mut SimCluster, fabric: &Fabric) -> Vec<String> {
    println!("\n==> kubectl delete neni multus");
    kubectl_stdin(cluster, &["delete", "neni", "multus", "--wait=false"], "");
    let deadline = Instant::now() + Duration::from_mins(2);
    let mut failures = Vec::new();
    while cluster
        .nodeenis()
        .get_opt("multus")
        .await
        .ok()
        .flatten()
        .is_some()
    {
        if Instant::now() > deadline {
            failures.push("the NodeENI's finalizer was not removed".to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let left = cluster.owned_enis().await;
    if !left.is_empty() {
        failures.push(format!("{} ENIs left in EC2", left.len()));
    }
    for node in NODES {
        let links = fabric.ip_in(node, &["-br", "link"]);
        if links.contains("multus") || links.contains("ens") {
            failures.push(format!("{node} still has the ENI's link: {links}"));
        }
    }
    if failures.is_empty() {
        println!("    ENIs detached and deleted, links gone, finalizer removed");
    }
    failures
}

fn kubectl_stdin(cluster: &SimCluster, args: &[&str], input: &str) {
    use std::io::Write;
    let mut child = cluster
        .plane
        .kubectl()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to kubectl");
    child.wait().expect("kubectl");
}
