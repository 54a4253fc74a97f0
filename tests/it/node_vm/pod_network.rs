//! Pods on the ENIs, end to end: the controller gives each node's ENI two secondary
//! addresses, each node's agent writes the pod network's CNI configuration, and Debian's
//! ipvlan and host-local plugins, run in the node VMs as Multus runs them, give pods those
//! addresses. The VPC bridge passes only addresses EC2 assigned to the ENI, as a VPC does.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::{Interface, VmCluster};
use crate::support::ec2sim::ActionStats;
use crate::support::vm::pods::{add_pod, network_file, ping};

const NODES: [&str; 2] = ["pods-a", "pods-b"];
const NODEENI: &str = "pods";

/// Applies the NodeENI with `addresses` (the count field) and a pod network, and waits for
/// both nodes' agents to write it; each node's entry.
async fn network_written(vc: &VmCluster, addresses: &Value) -> Vec<Interface> {
    let mut fields = json!({"interfaceName": "multus", "mtu": 9001,
                            "podNetwork": {"namespaces": ["default"]}});
    fields
        .as_object_mut()
        .unwrap()
        .extend(addresses.as_object().unwrap().clone());
    vc.apply_nodeeni(NODEENI, &fields).await;
    let mut enis = Vec::new();
    for node in NODES {
        let entry = vc
            .wait_entry_on(node, NODEENI, "the pod network written", |e| {
                e.status.pod_network_written == Some(true)
            })
            .await;
        check_file(vc, node, &entry).await;
        enis.push(entry);
    }
    enis
}

#[tokio::test]
async fn pods_get_their_nodes_eni_addresses_and_only_those_reach_each_other() {
    let vc = VmCluster::start_nodes(&NODES, &[]).await;
    let enis = network_written(&vc, &json!({"secondaryPrivateIPAddressCount": 2})).await;
    for eni in &enis {
        assert_eq!(eni.spec.ipv4_addresses.len(), 2, "{eni:?}");
    }
    let file = network_file(NODEENI);
    let (vm_a, vm_b) = (vc.fabric.vm(NODES[0]), vc.fabric.vm(NODES[1]));
    let before = calls(&vc);

    let a1 = add_pod(vm_a, "a1", &file).await.unwrap();
    let b1 = add_pod(vm_b, "b1", &file).await.unwrap();
    assert!(enis[0].spec.ipv4_addresses.contains(&a1), "{a1}: {enis:?}");
    assert!(enis[1].spec.ipv4_addresses.contains(&b1), "{b1}: {enis:?}");
    assert_pings(vm_a, "a1", &b1, true).await;
    assert_pings(vm_b, "b1", &a1, true).await;

    // K = 2 addresses on node a: the second pod gets the other one, the third none.
    let a2 = add_pod(vm_a, "a2", &file).await.unwrap();
    assert!(enis[0].spec.ipv4_addresses.contains(&a2) && a2 != a1);
    let error = add_pod(vm_a, "a3", &file).await.unwrap_err();
    assert!(error.contains("no IP addresses available"), "{error}");
    assert_pings(vm_a, "a1", &b1, true).await;
    assert_pings(vm_a, "a2", &b1, true).await;

    // A hand-written configuration with an address of the subnet that EC2 did not assign:
    // the pod gets it, but the VPC passes nothing from or to it.
    let rogue = unassigned(&enis[1].spec.subnet_cidr.clone().unwrap(), &vc, &enis);
    let config = json!({
        "cniVersion": "1.0.0", "name": "rogue", "type": "ipvlan", "master": "multus",
        "mode": "l2", "ipam": {"type": "host-local", "ranges": [[{
            "subnet": enis[1].spec.subnet_cidr, "rangeStart": rogue, "rangeEnd": rogue,
        }]]},
    });
    vm_b.sh(&format!("cat > /tmp/rogue.conf <<'EOF'\n{config}\nEOF"))
        .await;
    assert_eq!(
        add_pod(vm_b, "rogue", "/tmp/rogue.conf").await.unwrap(),
        rogue
    );
    assert_pings(vm_b, "rogue", &a1, false).await;
    assert_pings(vm_a, "a1", &rogue, false).await;
    assert_pings(vm_a, "a1", &b1, true).await;

    assert_eq!(
        calls(&vc),
        before,
        "EC2 calls while pods were made and pinged"
    );

    // Once EC2 assigns that address to node b's ENI, the VPC passes it.
    let eni_b = enis[1].spec.eni_id.clone().unwrap();
    (vc.cluster.sim.client().assign_private_ip_addresses())
        .network_interface_id(&eni_b)
        .private_ip_addresses(&rogue)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_pings(vm_b, "rogue", &a1, true).await;
}

#[tokio::test]
async fn pods_get_addresses_of_their_nodes_prefix() {
    let vc = VmCluster::start_nodes(&NODES, &[]).await;
    let enis = network_written(&vc, &json!({"ipv4PrefixCount": 1})).await;
    let file = network_file(NODEENI);
    let (vm_a, vm_b) = (vc.fabric.vm(NODES[0]), vc.fabric.vm(NODES[1]));
    let a1 = add_pod(vm_a, "a1", &file).await.unwrap();
    let b1 = add_pod(vm_b, "b1", &file).await.unwrap();
    for (eni, address) in enis.iter().zip([&a1, &b1]) {
        let (first, last) = prefix_span(&eni.spec.ipv4_prefixes[0]);
        assert!(
            (first..=last).contains(&address.parse::<Ipv4Addr>().unwrap()),
            "{address}: {eni:?}"
        );
    }
    assert_pings(vm_a, "a1", &b1, true).await;
}

/// The first and last address of a CIDR block.
fn prefix_span(cidr: &str) -> (Ipv4Addr, Ipv4Addr) {
    let (base, len) = cidr.split_once('/').unwrap();
    let base: Ipv4Addr = base.parse().unwrap();
    let len: u32 = len.parse().unwrap();
    (base, Ipv4Addr::from(base.to_bits() | (u32::MAX >> len)))
}

/// The agent's file on `node` is host-local over exactly the node's ENI addresses.
async fn check_file(vc: &VmCluster, node: &str, entry: &Interface) {
    let text = vc
        .fabric
        .vm(node)
        .sh(&format!("cat {}", network_file(NODEENI)))
        .await;
    let config: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            &config["type"],
            &config["master"],
            &config["mode"],
            &config["mtu"]
        ),
        (
            &json!("ipvlan"),
            &json!("multus"),
            &json!("l2"),
            &json!(9001)
        )
    );
    let ranges: Vec<(Ipv4Addr, Ipv4Addr)> = config["ipam"]["ranges"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (address(&r["rangeStart"]), address(&r["rangeEnd"])))
        .collect();
    let singles =
        (entry.spec.ipv4_addresses.iter()).map(|a| (a.parse().unwrap(), a.parse().unwrap()));
    let spans = entry.spec.ipv4_prefixes.iter().map(|p| prefix_span(p));
    let expected: Vec<(Ipv4Addr, Ipv4Addr)> = singles.chain(spans).collect();
    assert!(!expected.is_empty(), "{entry:?}");
    assert_eq!(ranges, expected, "{text}");
}

fn address(value: &Value) -> Ipv4Addr {
    value.as_str().unwrap().parse().unwrap()
}

async fn assert_pings(vm: &crate::support::vm::NodeVm, pod: &str, to: &str, expected: bool) {
    let (replied, output) = ping(vm, pod, to).await;
    assert_eq!(replied, expected, "{}: {pod} ping {to}:\n{output}", vm.name);
}

/// The EC2 calls counted so far, by action.
fn calls(vc: &VmCluster) -> BTreeMap<String, ActionStats> {
    vc.cluster.sim.stats().actions
}

/// An address of the subnet assigned to neither ENI (nor their primaries).
fn unassigned(cidr: &str, vc: &VmCluster, enis: &[Interface]) -> String {
    let (base, _) = cidr.split_once('/').unwrap();
    let base: Ipv4Addr = base.parse().unwrap();
    let candidate = Ipv4Addr::from(base.to_bits() + 250);
    for eni in enis {
        let assigned = vc
            .cluster
            .sim
            .addresses(eni.spec.eni_id.as_deref().unwrap());
        assert!(
            !assigned.clone().unwrap().contains(candidate),
            "{assigned:?}"
        );
    }
    candidate.to_string()
}
