//! Status by server-side apply: each node's agent owns its own entries' agent fields, next
//! to the controller's fields and the other nodes' entries.

use serde_json::json;

use super::{
    attached, config, controller_writes, create_nodeeni, entry, nodeenis, start_agent,
    wait_for_entry,
};
use crate::support::control_plane::wait_for;
use crate::support::netns::TestNetns;

#[tokio::test]
async fn two_nodes_report_side_by_side_and_a_removed_entry_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let name = "status-two-nodes";
    create_nodeeni(
        name,
        &json!({"subnetIDs": ["subnet-0000000e"], "interfaceName": "net1", "mtu": 9001}),
    )
    .await;
    let (a, b) = ("status-node-a", "status-node-b");
    let subnet = "subnet-0000000e";
    controller_writes(
        name,
        &[
            attached(a, subnet, "02:00:00:00:05:0a", 1),
            attached(b, subnet, "02:00:00:00:05:0b", 1),
        ],
    )
    .await;
    let (ns_a, ns_b) = (TestNetns::new(), TestNetns::new());
    let _agent_a = start_agent(&ns_a, config(a, &dir.path().join("a"))).await;
    let _agent_b = start_agent(&ns_b, config(b, &dir.path().join("b"))).await;
    ns_a.add_link("eth1", "02:00:00:00:05:0a").await;
    ns_b.add_link("eth1", "02:00:00:00:05:0b").await;

    for node in [a, b] {
        let reported = wait_for_entry(name, node, subnet, "both nodes' reports", |e| {
            e.configured == Some(true)
        })
        .await;
        assert_eq!(reported.interface_name.as_deref(), Some("net1"));
        assert_eq!(
            reported.state,
            Some(multi_eni::api::AttachmentState::Attached)
        );
    }
    let object = nodeenis().await.get(name).await.unwrap();
    let managers: Vec<_> = object
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    for manager in [
        "multi-eni-manager/status-node-a",
        "multi-eni-manager/status-node-b",
        "test-controller",
    ] {
        assert!(
            managers.iter().any(|m| m == manager),
            "{manager} missing from {managers:?}"
        );
    }

    // The controller drops node b's entry (the node stopped matching): the agent's fields
    // must not keep it alive.
    controller_writes(name, &[attached(a, subnet, "02:00:00:00:05:0a", 1)]).await;
    wait_for("node b's entry to disappear", || async {
        entry(name, b, subnet).await.is_none()
    })
    .await;
    assert_eq!(entry(name, a, subnet).await.unwrap().configured, Some(true));
}

#[tokio::test]
async fn a_steady_state_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let name = "status-steady";
    let node = "status-steady-node";
    let subnet = "subnet-0000000f";
    create_nodeeni(name, &json!({"subnetIDs": [subnet], "mtu": 1400})).await;
    controller_writes(name, &[attached(node, subnet, "02:00:00:00:06:0f", 1)]).await;
    let ns = TestNetns::new();
    let mut config = config(node, dir.path());
    config.resync_period = std::time::Duration::from_millis(200);
    let _agent = start_agent(&ns, config).await;
    ns.add_link("eth1", "02:00:00:00:06:0f").await;
    wait_for_entry(name, node, subnet, "the report", |e| {
        e.configured == Some(true)
    })
    .await;
    // Let the report settle, then watch several resyncs go by.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let version = || async {
        let object = nodeenis().await.get(name).await.unwrap();
        object.metadata.resource_version
    };
    let before = version().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let after = version().await;
    assert_eq!(before, after, "the agent wrote although nothing changed");
}
