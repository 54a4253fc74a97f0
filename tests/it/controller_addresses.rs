//! The pods' addresses end to end: a real API server, the EC2 simulator over HTTP and the
//! `multi-eni controller` binary. The addresses EC2 gives each ENI reach the node's ENINode.

use multi_eni::api::ENINode;
use multi_eni::ec2::types::Eni;
use serde_json::json;

use crate::controller::{WAIT, fast, ready};
use crate::support::sim_cluster::{SimCluster, ZONES};

/// The ENI's secondary addresses come with CreateNetworkInterface (no other call) and are the
/// ENINode's `ipv4Addresses`, with the pod network's name and ipvlan mode.
#[tokio::test]
async fn secondary_addresses_come_with_the_eni_and_reach_the_eninode() {
    let mut cluster = SimCluster::start(fast()).await;
    for (node, zone) in [("n1", ZONES[0]), ("n2", ZONES[1])] {
        cluster
            .add_node(node, zone, "m5.large", &[("ng", "multi-eni")])
            .await;
    }
    cluster.start_controller(&[]);
    let subnet_ids: Vec<&String> = cluster.subnets.values().collect();
    cluster
        .apply_nodeeni(
            "multus",
            json!({
                "nodeSelector": {"ng": "multi-eni"},
                "subnetIDs": subnet_ids,
                "securityGroupIDs": [cluster.security_group],
                "secondaryPrivateIPAddressCount": 4,
                "podNetwork": {"name": "pods", "namespaces": ["default"], "ipvlanMode": "l3"},
            }),
        )
        .await;
    cluster.wait_nodeeni("multus", "Ready", WAIT, ready).await;
    let enis = cluster.owned_enis().await;
    assert_eq!(enis.len(), 2);
    for eni in &enis {
        assert_eq!(eni.secondary_private_ips.len(), 4, "{eni:?}");
        let node = &eni.tags[multi_eni::ownership::NODE_TAG];
        cluster
            .wait_eninode(node, "the ENI's addresses", WAIT, |e| {
                e.is_some_and(|e| carries(e, eni))
            })
            .await;
    }
    let stats = cluster.sim.stats();
    let calls = |action: &str| stats.actions.get(action).map_or(0, |a| a.calls);
    assert_eq!(calls("CreateNetworkInterface"), 2);
    assert_eq!(calls("AssignPrivateIpAddresses"), 0);
}

/// The ENINode's one interface is `eni`, with its addresses and the pod network.
fn carries(eninode: &ENINode, eni: &Eni) -> bool {
    let [interface] = eninode.spec.interfaces.as_slice() else {
        return false;
    };
    interface.eni_id.as_deref() == Some(&eni.id)
        && interface.ipv4_addresses == eni.secondary_private_ips
        && interface.ipv4_prefixes.is_empty()
        && interface.pod_network.as_deref() == Some("pods")
        && interface.ipvlan_mode == Some(multi_eni::api::IpvlanMode::L3)
}
