//! Status by server-side apply: each node's agent writes its own ENINode's status, next to
//! the controller's spec, and only when it changes.

use serde_json::json;

use super::{
    attached, config, controller_writes, eninodes, entry, start_agent, wait_for_entry, with,
};
use crate::support::control_plane::wait_for;
use crate::support::netns::TestNetns;

#[tokio::test]
async fn two_nodes_report_in_their_own_eninodes_and_a_removed_entry_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let name = "status-two-nodes";
    let (a, b) = ("status-node-a", "status-node-b");
    let subnet = "subnet-0000000e";
    let settings = json!({"interfaceName": "net1", "mtu": 9001});
    controller_writes(
        a,
        &[with(
            attached(name, subnet, "02:00:00:00:05:0a", 1),
            &settings,
        )],
    )
    .await;
    controller_writes(
        b,
        &[with(
            attached(name, subnet, "02:00:00:00:05:0b", 1),
            &settings,
        )],
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
        let object = eninodes().await.get(node).await.unwrap();
        let ready = &object.status.unwrap().conditions[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "True")
        );
        assert_eq!(ready.observed_generation, object.metadata.generation);
        let mut managers: Vec<_> = object
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| Some((m.manager?, m.subresource)))
            .collect();
        managers.sort();
        assert_eq!(
            managers,
            [
                ("multi-eni-manager".into(), Some("status".into())),
                ("test-controller".into(), None)
            ]
        );
    }

    // The controller drops node b's entry (the node stopped matching): the agent's report
    // must not keep it alive.
    controller_writes(b, &[]).await;
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
    let interface = with(
        attached(name, subnet, "02:00:00:00:06:0f", 1),
        &json!({"mtu": 1400}),
    );
    controller_writes(node, &[interface]).await;
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
        let object = eninodes().await.get(node).await.unwrap();
        object.metadata.resource_version
    };
    let before = version().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let after = version().await;
    assert_eq!(before, after, "the agent wrote although nothing changed");
}
