//! The pods' addresses end to end: a real API server, the EC2 simulator over HTTP and the
//! `multi-eni controller` binary. The addresses EC2 gives each ENI reach the node's ENINode;
//! a raised count is assigned once; what an instance type or subnet cannot give is a per-node
//! reason, found without an EC2 call or retried with backoff.

use std::time::Duration;

use multi_eni::api::{AttachmentState, ENINode, NodeENI};
use multi_eni::ec2::types::Eni;
use serde_json::json;

use crate::controller::{WAIT, fast, ready};
use crate::support::ec2sim::NextFault;
use crate::support::sim_cluster::{SimCluster, ZONES};

/// The calls of `action` the simulator has answered.
fn calls(cluster: &SimCluster, action: &str) -> u64 {
    cluster
        .sim
        .stats()
        .actions
        .get(action)
        .map_or(0, |a| a.calls)
}

/// Two m5.large nodes selected by `ng: multi-eni`, a controller running.
async fn two_nodes() -> SimCluster {
    let mut cluster = SimCluster::start(fast()).await;
    for (node, zone) in [("n1", ZONES[0]), ("n2", ZONES[1])] {
        cluster
            .add_node(node, zone, "m5.large", &[("ng", "multi-eni")])
            .await;
    }
    cluster.start_controller(&[]);
    cluster
}

async fn apply(cluster: &SimCluster, name: &str, extra: serde_json::Value) {
    let subnet_ids: Vec<&String> = cluster.subnets.values().collect();
    let mut spec = json!({
        "nodeSelector": {"ng": "multi-eni"},
        "subnetIDs": subnet_ids,
        "securityGroupIDs": [cluster.security_group],
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    cluster.apply_nodeeni(name, spec).await;
}

/// Waits until every owned ENI lists `count` secondary addresses and each node's ENINode
/// carries exactly its ENI's addresses.
async fn wait_addresses(cluster: &SimCluster, count: usize) -> Vec<Eni> {
    cluster
        .wait_enis("the ENIs' addresses", WAIT, |enis| {
            enis.len() == 2 && enis.iter().all(|e| e.secondary_private_ips.len() == count)
        })
        .await;
    let enis = cluster.owned_enis().await;
    for eni in &enis {
        let node = &eni.tags[multi_eni::ownership::NODE_TAG];
        cluster
            .wait_eninode(node, "the ENI's addresses", WAIT, |e| {
                e.is_some_and(|e| carries(e, eni))
            })
            .await;
    }
    enis
}

/// The ENI's secondary addresses come with CreateNetworkInterface (no other call) and are the
/// ENINode's `ipv4Addresses`, with the pod network's name and ipvlan mode.
#[tokio::test]
async fn secondary_addresses_come_with_the_eni_and_reach_the_eninode() {
    let cluster = two_nodes().await;
    let network = json!({"name": "pods", "namespaces": ["default"], "ipvlanMode": "l3"});
    apply(
        &cluster,
        "multus",
        json!({"secondaryPrivateIPAddressCount": 4, "podNetwork": network}),
    )
    .await;
    cluster.wait_nodeeni("multus", "Ready", WAIT, ready).await;
    wait_addresses(&cluster, 4).await;
    assert_eq!(calls(&cluster, "CreateNetworkInterface"), 2);
    assert_eq!(calls(&cluster, "AssignPrivateIpAddresses"), 0);
}

/// The ENINode's one interface is `eni`, with its addresses and the pod network.
fn carries(eninode: &ENINode, eni: &Eni) -> bool {
    let [interface] = eninode.spec.interfaces.as_slice() else {
        return false;
    };
    interface.eni_id.as_deref() == Some(&eni.id)
        && interface.ipv4_addresses == eni.secondary_private_ips
        && interface.ipv4_prefixes == eni.ipv4_prefixes
        && interface.pod_network.as_deref() == Some("pods")
        && interface.ipvlan_mode == Some(multi_eni::api::IpvlanMode::L3)
}

/// Raising the count assigns the difference: one AssignPrivateIpAddresses per ENI, and none
/// again after a restart (the new process compares what EC2 lists with what is wanted).
#[tokio::test]
async fn a_raised_count_is_assigned_once_per_eni_even_across_restarts() {
    let mut cluster = two_nodes().await;
    let network = json!({"name": "pods", "namespaces": ["default"], "ipvlanMode": "l3"});
    apply(
        &cluster,
        "multus",
        json!({"secondaryPrivateIPAddressCount": 2, "podNetwork": network}),
    )
    .await;
    let before = wait_addresses(&cluster, 2).await;
    apply(
        &cluster,
        "multus",
        json!({"secondaryPrivateIPAddressCount": 5, "podNetwork": network}),
    )
    .await;
    let after = wait_addresses(&cluster, 5).await;
    for eni in &before {
        let now = after.iter().find(|e| e.id == eni.id).expect("the same ENI");
        assert!(
            eni.secondary_private_ips
                .iter()
                .all(|ip| now.secondary_private_ips.contains(ip))
        );
    }
    cluster.wait_nodeeni("multus", "Ready", WAIT, ready).await;
    assert_eq!(calls(&cluster, "AssignPrivateIpAddresses"), 2);
    cluster.kill_controller();
    cluster.start_controller(&[]);
    // The new process has planned (its status write) and a few passes more.
    cluster
        .wait_nodeeni("multus", "a status from the new process", WAIT, |n| {
            ready(n) && n.status.as_ref().is_some_and(|s| s.attached_nodes == 2)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(calls(&cluster, "AssignPrivateIpAddresses"), 2);
    assert_eq!(calls(&cluster, "CreateNetworkInterface"), 2);
}

/// The reason and state of the NodeENI's entry for `node`.
fn entry(nodeeni: &NodeENI, node: &str) -> Option<(Option<String>, Option<AttachmentState>)> {
    let status = nodeeni.status.as_ref()?;
    let entry = status.attachments.iter().find(|a| a.node_name == node)?;
    Some((entry.reason.clone(), entry.state))
}

/// Prefixes on a Xen type, or more addresses than the type takes per interface: the node's
/// entry says so (state Failed), and EC2 is not asked.
#[tokio::test]
async fn what_the_instance_type_cannot_hold_is_refused_before_any_call() {
    let mut cluster = SimCluster::start(fast()).await;
    cluster
        .add_node("xen", ZONES[0], "m4.large", &[("ng", "xen")])
        .await;
    cluster
        .add_node("small", ZONES[0], "t3.small", &[("ng", "small")])
        .await;
    cluster.start_controller(&[]);
    let subnet = &cluster.subnets[ZONES[0]];
    for (name, selector, extra) in [
        ("prefixes", "xen", json!({"ipv4PrefixCount": 1})),
        (
            "many",
            "small",
            json!({"secondaryPrivateIPAddressCount": 4}),
        ),
    ] {
        let mut spec = json!({
            "nodeSelector": {"ng": selector},
            "subnetID": subnet,
            "securityGroupIDs": [cluster.security_group],
        });
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        cluster.apply_nodeeni(name, spec).await;
    }
    let failed = |reason: &'static str, node: &'static str| {
        move |n: &NodeENI| {
            entry(n, node) == Some((Some(reason.into()), Some(AttachmentState::Failed)))
        }
    };
    let prefixes = (cluster.wait_nodeeni(
        "prefixes",
        "PrefixesNotSupported",
        WAIT,
        failed("PrefixesNotSupported", "xen"),
    ))
    .await;
    let message = prefixes.status.unwrap().attachments[0]
        .message
        .clone()
        .unwrap();
    assert!(
        message.contains("m4.large") && message.contains("spec.ipv4PrefixCount"),
        "{message}"
    );
    let many = (cluster.wait_nodeeni(
        "many",
        "AddressLimitReached",
        WAIT,
        failed("AddressLimitReached", "small"),
    ))
    .await;
    let message = many.status.unwrap().attachments[0].message.clone().unwrap();
    assert!(message.contains("at most 3"), "{message}");
    assert_eq!(calls(&cluster, "CreateNetworkInterface"), 0);
}

/// A subnet out of /28 blocks (EC2's InsufficientCidrBlocks, injected three times): the
/// node's entry says so and the create is retried with backoff, not in a storm, until it
/// succeeds with no change to the NodeENI.
#[tokio::test]
async fn a_subnet_short_of_blocks_is_retried_with_backoff() {
    let cluster = SimCluster::start(fast()).await;
    cluster
        .add_node("n1", ZONES[0], "m5.large", &[("ng", "multi-eni")])
        .await;
    let mut cluster = cluster;
    let message =
        "The specified subnet does not have enough free cidr blocks to satisfy the request.";
    cluster.sim.inject_fault(NextFault::new(
        "CreateNetworkInterface",
        3,
        "InsufficientCidrBlocks",
        message,
    ));
    cluster.start_controller(&[]);
    let spec = json!({
        "nodeSelector": {"ng": "multi-eni"},
        "subnetID": cluster.subnets[ZONES[0]],
        "securityGroupIDs": [cluster.security_group],
        "ipv4PrefixCount": 2,
    });
    cluster.apply_nodeeni("multus", spec).await;
    cluster
        .wait_nodeeni("multus", "InsufficientCidrBlocks", WAIT, |n| {
            entry(n, "n1")
                .is_some_and(|(reason, _)| reason.as_deref() == Some("InsufficientCidrBlocks"))
        })
        .await;
    // Backoff of 1, 2 and 4 s: the fourth create, about 7 s after the first, succeeds.
    let started = std::time::Instant::now();
    cluster.wait_nodeeni("multus", "Ready", WAIT, ready).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(calls(&cluster, "CreateNetworkInterface"), 4);
    let enis = cluster.owned_enis().await;
    assert_eq!(enis[0].ipv4_prefixes.len(), 2);
}
