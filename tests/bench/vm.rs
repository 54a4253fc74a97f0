//! `just bench-vm`: the node agent in a node VM (Debian's cloud kernel under QEMU, TCG),
//! against a real API server, with ENIs hot-plugged as virtio-net PCI devices.
//!
//! Measures boot to agent ready (QEMU started → the agent's first report on the node's
//! entries, this machine's clock), then hot-plugs 20 devices one at a time and times each
//! inside the VM with a probe (the guest's clock): from the kernel adding the PCI device
//! (uevent) and from its link appearing, to the link renamed, at its MTU and up. Then unplugs
//! them: `device_del` → the guest released the device (QEMU's DEVICE_DELETED).
//! Usage: `bench-vm <multi-eni binary> <vm-probe binary>` (root).

#[path = "../support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kube::Api;
use multi_eni::api::ENINode;
use support::bench::{eninode_with_entries, ms, quantile};
use support::control_plane::{ControlPlane, wait_for};
use support::vm::{NodeImage, NodeVm, NodeVmConfig, Vpc};

const PLUGS: usize = 20;
const NODE: &str = "bench-vm";
const MTU: u32 = 9001;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, agent, probe] = &args[..] else {
        panic!("usage: bench-vm <multi-eni binary> <vm-probe binary>");
    };
    let plane = ControlPlane::start().await;
    plane.install_crd().await;
    let macs: Vec<String> = (0..PLUGS)
        .map(|i| format!("02:be:9d:00:00:{i:02x}"))
        .collect();
    eninode_with_entries(&plane, "bench", NODE, &macs, MTU).await;
    let image = NodeImage::build(plane.dir(), Path::new(agent), &[Path::new(probe)]);
    let vpc = Vpc::new(&format!("mb{}", std::process::id() % 10_000));
    let vm = NodeVm::boot(&NodeVmConfig {
        name: NODE,
        image: &image,
        kubeconfig: plane.guest_kubeconfig(),
        start_agent: true,
        agent_env: &[("RUST_LOG", "warn")],
        dir: plane.dir(),
    })
    .await;
    let api: Api<ENINode> = Api::all(plane.client().await);
    wait_for("the agent's first report", || async {
        entries(&api)
            .await
            .iter()
            .any(|(_, configured)| configured.is_some())
    })
    .await;
    println!(
        "multi-eni manager in a node VM (QEMU TCG, 1 vCPU, 512 MiB), {PLUGS} ENIs hot-plugged one at a time"
    );
    println!(
        "  boot: QEMU started → guest booted {:.1} s → agent's first report {:.1} s",
        (vm.booted - vm.started).as_secs_f64(),
        vm.started.elapsed().as_secs_f64()
    );

    vm.sh("setsid /bin/vm-probe >/tmp/probe.log 2>&1 </dev/null &")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut host = Vec::new();
    let mut addresses = HashMap::new();
    for mac in &macs {
        let plugged = Instant::now();
        addresses.insert(vm.hot_plug(&vpc, mac).await.pci_address, mac.clone());
        wait_for("the hot-plugged ENI configured", || async {
            entries(&api).await.contains(&(mac.clone(), Some(true)))
        })
        .await;
        host.push(plugged.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probe = vm.sh("cat /tmp/probe.log").await;
    let (from_pci, from_link) = guest_latencies(&probe, &addresses);
    report("in the VM: PCI device added → configured", from_pci);
    report("in the VM: link appeared → configured", from_link);
    report("from QMP device_add to `configured: true` in the API", host);

    let mut unplugs = Vec::new();
    for mac in &macs {
        let start = Instant::now();
        vm.unplug(&vpc, mac).await;
        unplugs.push(start.elapsed());
    }
    report("unplug: device_del → released by the guest", unplugs);
}

/// This node's entries: MAC and whether the agent reports its interface configured.
async fn entries(api: &Api<ENINode>) -> Vec<(String, Option<bool>)> {
    let eninode = api.get(NODE).await.expect("get the ENINode");
    let reports = eninode.status.map(|s| s.interfaces).unwrap_or_default();
    (eninode.spec.interfaces.into_iter())
        .map(|entry| {
            let report = reports.iter().find(|r| r.subnet_id == entry.subnet_id);
            let mac = entry.mac_address.unwrap_or_default();
            (mac, report.and_then(|r| r.configured))
        })
        .collect()
}

/// From the probe's lines: per device, PCI added → configured and link seen → configured.
fn guest_latencies(
    probe: &str,
    addresses: &HashMap<String, String>,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut added = HashMap::new();
    let mut appeared = HashMap::new();
    let mut configured = HashMap::new();
    for line in probe.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = fields.first().and_then(|t| t.parse::<f64>().ok()) else {
            continue;
        };
        let at = Duration::from_secs_f64(at / 1000.0);
        match fields[1..] {
            ["pci-add", address] => {
                if let Some(mac) = addresses.get(address) {
                    added.entry(mac.clone()).or_insert(at);
                }
            }
            ["link", name, mac, mtu, up] => {
                appeared.entry(mac.to_owned()).or_insert(at);
                let wanted = addresses.values().any(|m| m == mac);
                if wanted && name.starts_with('b') && mtu == MTU.to_string() && up == "up" {
                    configured.entry(mac.to_owned()).or_insert(at);
                }
            }
            _ => {}
        }
    }
    let since = |start: &HashMap<String, Duration>| {
        let mut latencies: Vec<Duration> = (configured.iter())
            .filter_map(|(mac, done)| start.get(mac).map(|s| done.saturating_sub(*s)))
            .collect();
        latencies.sort();
        latencies
    };
    (since(&added), since(&appeared))
}

fn report(what: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    assert_eq!(latencies.len(), PLUGS, "{what}: {PLUGS} samples expected");
    println!(
        "  {what}: p50 {:.1} ms, p99 {:.1} ms (n = {PLUGS}), min {:.1} ms",
        ms(quantile(&latencies, 0.5)),
        ms(quantile(&latencies, 0.99)),
        ms(latencies[0])
    );
}
