//! The local sandbox (`just demo`, `just e2e`): the whole system on one machine, without AWS
//! or a cluster. A real kube-apiserver and etcd; the EC2 simulator with AWS's throttling;
//! three nodes, each a Node object, an instance and a small VM with a real Linux kernel
//! running the node agent; and the controller. ENIs the simulator attaches are hot-plugged
//! into the instance's VM as virtio-net PCI devices with the ENI's MAC, on a "VPC" bridge.
//!
//! Without flags it stays up after the demonstration until Ctrl-C; `--exit` stops there
//! instead; `--e2e` runs it headless and asserts the whole flow, including the removal.

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use multi_eni::api::NodeENI;
use support::ec2sim::SimConfig;
use support::sim_cluster::{SimCluster, ZONES, multi_eni_binary};
use support::vm::{Fabric, NodeImage, NodeVm, NodeVmConfig, Vpc, pods};

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
    let started = Instant::now();
    println!("==> starting kube-apiserver, etcd and the EC2 simulator (AWS throttling on)");
    // Detaches complete when a VM's guest releases the device (the fabric holds them).
    let config = SimConfig {
        attach_latency_ms: 1000,
        ..SimConfig::default()
    };
    let mut cluster = SimCluster::start(config).await;
    let kubeconfig = cluster.plane.kubeconfig.display().to_string();
    println!("    export KUBECONFIG={kubeconfig}");

    let fabric = boot_nodes(&cluster).await;
    fabric.wire(&cluster.sim);
    println!("==> starting the controller");
    cluster.start_controller(&["--transition-poll", "1s"]);

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
    failures.extend(ping_over_ipvlan(&fabric).await);
    if e2e {
        failures.extend(remove_and_check(&mut cluster, &fabric).await);
    } else if failures.is_empty() && stay {
        println!(
            "\nThe sandbox stays up until Ctrl-C (`just demo --exit` stops here). In another shell:"
        );
        println!(
            "    export KUBECONFIG={kubeconfig}; kubectl get neni -o wide; kubectl get eninodes"
        );
        println!("    kubectl get eninode {} -o yaml", NODES[0]);
        println!(
            "    the nodes' consoles and agents' logs: {}/<node>/",
            cluster.plane.dir().display()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    println!("==> cleaning up");
    cluster.kill_controller();
    if failures.is_empty() {
        println!("    {:.0} s in all", started.elapsed().as_secs_f64());
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

/// One instance, Node and VM per node (the VMs boot at once); their agents start at boot.
async fn boot_nodes(cluster: &SimCluster) -> Arc<Fabric> {
    println!("==> booting a VM per node (Debian's cloud kernel under QEMU) with its node agent");
    let image = NodeImage::build(cluster.plane.dir(), &multi_eni_binary(), &[]);
    let vpc = Vpc::new(&format!("me{}", std::process::id() % 10_000));
    let kubeconfig = cluster.plane.guest_kubeconfig();
    let mut instances = Vec::new();
    for (node, zone) in NODES.iter().zip([ZONES[0], ZONES[0], ZONES[1]]) {
        let instance = cluster
            .add_node(node, zone, "m5.xlarge", &[("ng", "multi-eni")])
            .await;
        instances.push((instance, zone));
    }
    let boots = NODES.iter().map(|node| {
        let config = NodeVmConfig {
            name: node,
            image: &image,
            kubeconfig: kubeconfig.clone(),
            start_agent: true,
            agent_env: &[("RUST_LOG", "multi_eni=debug,info")],
            dir: cluster.plane.dir(),
        };
        async move { NodeVm::boot(&config).await }
    });
    let vms = futures::future::join_all(boots).await;
    let mut nodes = Vec::new();
    for ((instance, zone), vm) in instances.into_iter().zip(vms) {
        println!(
            "    node {}: {instance} in {zone}, booted in {:.1} s",
            vm.name,
            (vm.booted - vm.started).as_secs_f64()
        );
        nodes.push((instance, vm));
    }
    Fabric::new(vpc, nodes)
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
    println!("\n==> kubectl get eninodes (one per node: its ENIs and what its agent did)");
    kubectl_stdin(cluster, &["get", "eninodes"], "");
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
        println!("\n==> ip link (in node {node}'s VM)");
        print!("{}", fabric.vm(node).sh("ip link").await);
    }
}

/// Two nodes of one zone: a pod on each, attached to the node's ENI by the ipvlan CNI
/// plugin (L2) with the configuration the node's agent wrote (the pod network `multus`, an
/// address EC2 assigned to the ENI), one pings the other across the VPC bridge. In a VPC only
/// ipvlan works: the VPC delivers only to the ENI's own MAC, and only assigned addresses.
async fn ping_over_ipvlan(fabric: &Fabric) -> Option<String> {
    let file = pods::network_file("multus");
    println!(
        "\n==> a pod on {} and on {} (the agent's {file}: ipvlan L2 on `multus`, host-local over the ENI's addresses), then ping",
        NODES[0], NODES[1]
    );
    let mut addresses = Vec::new();
    for node in &NODES[..2] {
        println!("    {node}: {file}");
        print!("{}", fabric.vm(node).sh(&format!("cat {file}")).await);
        match pods::add_pod(fabric.vm(node), "pod", &file).await {
            Ok(address) => {
                println!("    {node}: pod at {address} on multus");
                addresses.push(address);
            }
            Err(error) => return Some(format!("{node}: {error}")),
        }
    }
    let (replied, output) = pods::ping(fabric.vm(NODES[0]), "pod", &addresses[1]).await;
    print!("{output}");
    (!replied).then(|| "the ipvlan ping between pods on two nodes failed".to_owned())
}

/// Deletes the NodeENI and checks that everything goes: ENIs, devices, links, finalizer.
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
    if !fabric.settled(Duration::from_mins(1)).await {
        failures.push("devices were not unplugged from the VMs".to_owned());
    }
    let eninodes = cluster
        .eninodes()
        .list(&kube::api::ListParams::default())
        .await;
    if let Some(left) = eninodes.ok().filter(|list| !list.items.is_empty()) {
        failures.push(format!("{} ENINodes left", left.items.len()));
    }
    for node in NODES {
        let vm = fabric.vm(node);
        let links = vm.sh("ip -o link").await;
        if !vm.plugged().is_empty() || links.contains("multus") {
            failures.push(format!(
                "{node} still has an ENI's device ({:?}) or link: {links}",
                vm.plugged()
            ));
        }
    }
    if failures.is_empty() {
        println!(
            "    ENIs detached and deleted, devices unplugged, links gone, ENINodes deleted, finalizer removed"
        );
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
