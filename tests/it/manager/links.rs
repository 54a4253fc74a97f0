//! Links that appear after the agent started are configured; others are left alone; a link
//! that comes back is configured again; drift is repaired.

use serde_json::json;

use super::{attached, config, controller_writes, start_agent, wait_for_entry, with};
use crate::support::control_plane::wait_for;
use crate::support::netns::TestNetns;

const NODE: &str = "links-node";

#[tokio::test]
async fn links_that_appear_later_are_renamed_set_to_the_mtu_and_brought_up() {
    let dir = tempfile::tempdir().unwrap();
    let settings = |name: &str| json!({"interfaceName": name, "mtu": 9001});
    controller_writes(
        NODE,
        &[
            with(
                attached("links-multus", "subnet-0000000a", "02:00:00:00:01:0a", 3),
                &settings("multus1"),
            ),
            with(
                attached("links-multus", "subnet-0000000b", "02:00:00:00:01:0b", 2),
                &settings("multus0"),
            ),
        ],
    )
    .await;
    // Another node's ENINode: none of this node's business.
    controller_writes(
        "links-other-node",
        &[with(
            attached("links-multus", "subnet-0000000a", "02:00:00:00:02:0a", 3),
            &settings("multus"),
        )],
    )
    .await;
    let ns = TestNetns::new();
    let _agent = start_agent(&ns, config(NODE, dir.path())).await;

    ns.add_link("bystander", "02:00:00:00:09:09").await;
    // The other node's MAC, as if a stray link carried it here: not this node's ENI.
    ns.add_link("stray", "02:00:00:00:02:0a").await;
    ns.add_link("ens6", "02:00:00:00:01:0b").await;
    ns.add_link("ens7", "02:00:00:00:01:0a").await;

    wait_for("multus0 and multus1 up with MTU 9001", || async {
        ns.is_configured("multus0", 9001).await && ns.is_configured("multus1", 9001).await
    })
    .await;
    assert_eq!(
        ns.link("multus0").await.unwrap().mac.to_string(),
        "02:00:00:00:01:0b"
    );
    assert_eq!(
        ns.link("multus1").await.unwrap().mac.to_string(),
        "02:00:00:00:01:0a"
    );
    for untouched in ["bystander", "stray"] {
        let link = ns.link(untouched).await.unwrap();
        assert!(
            !link.up && link.mtu == 1500,
            "{untouched} was changed: {link:?}"
        );
    }

    let entry = wait_for_entry(
        "links-multus",
        NODE,
        "subnet-0000000b",
        "the status of multus0",
        |e| e.configured == Some(true),
    )
    .await;
    assert_eq!(entry.interface_name.as_deref(), Some("multus0"));
    assert_eq!(entry.mtu, Some(9001));
    assert_eq!(entry.message, None);
    assert_eq!(entry.eni_id.as_deref(), Some("eni-010b"));
}

#[tokio::test]
async fn a_link_that_comes_back_is_configured_again_and_drift_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let node = "comeback-node";
    controller_writes(
        node,
        &[with(
            attached("links-comeback", "subnet-0000000c", "02:00:00:00:03:0c", 1),
            &json!({"interfaceName": "data", "mtu": 9000}),
        )],
    )
    .await;
    let ns = TestNetns::new();
    let _agent = start_agent(&ns, config(node, dir.path())).await;

    ns.add_link("eth1", "02:00:00:00:03:0c").await;
    wait_for("data configured", || async {
        ns.is_configured("data", 9000).await
    })
    .await;

    ns.delete("data").await;
    let gone = wait_for_entry(
        "links-comeback",
        node,
        "subnet-0000000c",
        "the status to say the interface is gone",
        |e| e.configured == Some(false),
    )
    .await;
    assert!(
        gone.message
            .as_deref()
            .unwrap_or_default()
            .contains("02:00:00:00:03:0c"),
        "{gone:?}"
    );

    ns.add_link("eth5", "02:00:00:00:03:0c").await;
    wait_for("data configured again", || async {
        ns.is_configured("data", 9000).await
    })
    .await;
    wait_for_entry(
        "links-comeback",
        node,
        "subnet-0000000c",
        "the status to say configured again",
        |e| e.configured == Some(true),
    )
    .await;

    ns.set_mtu("data", 1500).await;
    wait_for("the MTU to be repaired", || async {
        ns.is_configured("data", 9000).await
    })
    .await;
    ns.set_down("data").await;
    wait_for("the link to be brought up again", || async {
        ns.is_configured("data", 9000).await
    })
    .await;
}

#[tokio::test]
async fn a_name_held_by_another_interface_is_reported_and_taken_once_free() {
    let dir = tempfile::tempdir().unwrap();
    let node = "taken-node";
    controller_writes(
        node,
        &[with(
            attached("links-taken", "subnet-0000000d", "02:00:00:00:04:0d", 1),
            &json!({"interfaceName": "taken"}),
        )],
    )
    .await;
    let ns = TestNetns::new();
    ns.add_link("taken", "02:00:00:00:09:0d").await;
    let _agent = start_agent(&ns, config(node, dir.path())).await;
    ns.add_link("eth1", "02:00:00:00:04:0d").await;

    let entry = wait_for_entry(
        "links-taken",
        node,
        "subnet-0000000d",
        "the conflict to be reported",
        |e| e.configured == Some(false) && e.message.is_some(),
    )
    .await;
    let message = entry.message.unwrap();
    assert!(
        message.contains("taken") && message.contains("spec.interfaceName"),
        "{message}"
    );
    // The failed rename did not leave the ENI's link down.
    wait_for("eth1 to be up", || async {
        ns.link("eth1").await.is_some_and(|l| l.up)
    })
    .await;

    ns.delete("taken").await;
    wait_for("the name to be taken once free", || async {
        ns.link("taken")
            .await
            .is_some_and(|l| l.up && l.mac.to_string() == "02:00:00:00:04:0d")
    })
    .await;
}
