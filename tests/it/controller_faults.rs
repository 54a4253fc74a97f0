//! Faults seen in the field, replayed: a slot emptied and filled again (ClientTokens), a
//! NodeENI deletion interrupted by a restart, and situations that need reasons of their own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use kube::api::DeleteParams;
use multi_eni::api::AttachmentState;
use multi_eni::ec2::types::EniStatus;
use multi_eni::ownership::{NODE_TAG, Owner};
use serde_json::json;

use crate::controller::{
    WAIT, assert_one_attached_eni_per_slot, event_reasons, fast, ready, ready_reason,
};
use crate::support::ec2sim::SimConfig;
use crate::support::sim_cluster::{SimCluster, ZONES};

/// Two nodes, one per zone, with one ENI each, Ready.
async fn two_converged_nodes(cluster: &mut SimCluster) {
    for (node, zone) in [("n1", ZONES[0]), ("n2", ZONES[1])] {
        cluster
            .add_node(node, zone, "m5.large", &[("ng", "multi-eni")])
            .await;
    }
    cluster.start_controller(&[]);
    let subnets: Vec<&String> = cluster.subnets.values().collect();
    let spec = json!({"nodeSelector": {"ng": "multi-eni"}, "subnetIDs": subnets, "securityGroupIDs": [cluster.security_group]});
    cluster.apply_nodeeni("multus", spec).await;
    cluster
        .wait_nodeeni("multus", "Ready on two nodes", WAIT, |n| {
            ready(n) && n.status.as_ref().unwrap().attached_nodes == 2
        })
        .await;
}

/// One node with the ENI of NodeENI "multus" (with the `extra` spec fields), Ready.
async fn one_node_ready(config: SimConfig, extra: &serde_json::Value) -> SimCluster {
    let mut cluster = SimCluster::start(config).await;
    cluster
        .add_node("n1", ZONES[0], "m5.large", &[("ng", "multi-eni")])
        .await;
    cluster.start_controller(&[]);
    let mut spec = json!({"nodeSelector": {"ng": "multi-eni"}, "subnetID": cluster.subnets[ZONES[0]], "securityGroupIDs": [cluster.security_group]});
    for (field, value) in extra.as_object().expect("spec fields") {
        spec[field] = value.clone();
    }
    cluster.apply_nodeeni("multus", spec).await;
    cluster.wait_nodeeni("multus", "Ready", WAIT, ready).await;
    cluster
}

async fn unselect_n1(cluster: &SimCluster) {
    cluster.label_node("n1", "ng", None).await;
    cluster
        .wait_enis("n1's ENI deleted", WAIT, |enis| {
            enis.len() == 1 && enis[0].tags[NODE_TAG] == "n2"
        })
        .await;
}

async fn reselect_n1(cluster: &SimCluster) {
    cluster.label_node("n1", "ng", Some("multi-eni")).await;
    cluster
        .wait_nodeeni("multus", "n1 attached again", WAIT, |n| {
            ready(n) && n.status.as_ref().unwrap().attached_nodes == 2
        })
        .await;
    assert_one_attached_eni_per_slot(&cluster.owned_enis().await, 2);
}

#[tokio::test]
async fn a_node_selected_again_gets_its_eni_from_the_first_create() {
    let mut cluster = SimCluster::start(fast()).await;
    two_converged_nodes(&mut cluster).await;
    unselect_n1(&cluster).await;
    // The delete's event follows EC2's answer, as the controller learns of it.
    let deadline = Instant::now() + WAIT;
    while !event_reasons(&cluster, "multus")
        .await
        .contains(&"Deleted".into())
    {
        assert!(Instant::now() < deadline, "no Deleted event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = cluster.sim.stats();
    reselect_n1(&cluster).await;
    let after = cluster.sim.stats();
    let delta = |action: &str| {
        let (a, b) = (after.action(action), before.action(action));
        (a.calls - b.calls, a.errors - b.errors)
    };
    assert_eq!(delta("CreateNetworkInterface"), (1, 0), "one create, fresh");
    assert_eq!(delta("AttachNetworkInterface"), (1, 0), "no failed attach");
    let reasons = event_reasons(&cluster, "multus").await;
    assert!(
        !reasons.iter().any(|r| r.ends_with("Failed")),
        "{reasons:?}"
    );
    cluster.kill_controller();
}

#[tokio::test]
async fn after_a_restart_a_spent_client_token_costs_at_most_one_create() {
    let mut cluster = SimCluster::start(fast()).await;
    two_converged_nodes(&mut cluster).await;
    unselect_n1(&cluster).await;
    // A new process does not know that n1's slot's token is spent.
    cluster.kill_controller();
    cluster.start_controller(&[]);
    let before = cluster.sim.stats();
    let started = Instant::now();
    reselect_n1(&cluster).await;
    let took = started.elapsed();
    let after = cluster.sim.stats();
    let creates = after.action("CreateNetworkInterface").calls
        - before.action("CreateNetworkInterface").calls;
    assert_eq!(
        creates, 2,
        "the spent token's create, then a fresh one ({took:?})"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    cluster.kill_controller();
}

#[tokio::test]
async fn a_deletion_interrupted_by_a_restart_ends_as_soon_as_the_eni_is_available() {
    let config = SimConfig {
        detach_latency_ms: 15_000,
        ..fast()
    };
    let mut cluster = one_node_ready(config, &json!({})).await;

    (cluster.nodeenis())
        .delete("multus", &DeleteParams::default())
        .await
        .unwrap();
    cluster
        .wait_enis("the ENI detaching", WAIT, |enis| {
            enis.iter().all(|e| e.status == EniStatus::Detaching)
        })
        .await;
    cluster.kill_controller();
    // The default grace period: it is not what this ENI waits for.
    cluster.start_controller(&["--gc-grace-period", "5m"]);
    cluster
        .wait_enis("the ENI available", WAIT, |enis| {
            enis.iter().all(|e| e.status != EniStatus::Detaching)
        })
        .await;
    // Within a few transition polls of the ENI being available.
    cluster
        .wait_nodeeni_gone("multus", Duration::from_secs(5))
        .await;
    assert!(cluster.owned_enis().await.is_empty());
    cluster.kill_controller();
}

#[tokio::test]
async fn a_missing_network_card_and_an_unknown_instance_have_reasons_of_their_own() {
    let mut cluster = SimCluster::start(fast()).await;
    let subnet = cluster.subnets[ZONES[0]].clone();
    cluster
        .add_node("big", ZONES[0], "p4d.24xlarge", &[("ng", "cards")])
        .await;
    // A Node whose provider ID names an instance EC2 does not know, and an ENI of ours for it.
    let ghost = "i-0123456789abcdef0";
    let labels = BTreeMap::from([("ng".to_owned(), "ghost".to_owned())]);
    cluster
        .create_node("ghost", &labels, &format!("aws:///{}/{ghost}", ZONES[0]))
        .await;
    let owner = Owner {
        cluster: cluster.cluster_name.clone(),
        nodeeni: "ghost".into(),
        node: "ghost".into(),
        instance: ghost.into(),
        subnet: subnet.clone(),
    };
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::NetworkInterface)
        .set_tags(Some(
            (owner.tags(&BTreeMap::new()).into_iter())
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build();
    let sdk = cluster.sim.client();
    (sdk.create_network_interface().subnet_id(&subnet))
        .tag_specifications(tags)
        .send()
        .await
        .unwrap();
    cluster.start_controller(&[]);
    let spec = |selector: &str, card: i32| json!({"nodeSelector": {"ng": selector}, "subnetID": subnet, "securityGroupIDs": [cluster.security_group], "networkCardIndex": card});
    cluster.apply_nodeeni("cards", spec("cards", 9)).await;
    cluster.apply_nodeeni("ghost", spec("ghost", 0)).await;

    let cards = cluster
        .wait_nodeeni("cards", "NoSuchNetworkCard", WAIT, |n| {
            ready_reason(n).as_deref() == Some("NoSuchNetworkCard")
        })
        .await;
    let entry = &cards.status.unwrap().attachments[0];
    assert_eq!(entry.state, Some(AttachmentState::Failed));
    assert_eq!(
        entry.message.as_deref(),
        Some("spec.networkCardIndex is 9, but instance type p4d.24xlarge has network cards 0–3")
    );

    let ghost_nodeeni = cluster
        .wait_nodeeni("ghost", "InstanceNotFound", WAIT, |n| {
            ready_reason(n).as_deref() == Some("InstanceNotFound")
        })
        .await;
    let entry = &ghost_nodeeni.status.unwrap().attachments[0];
    assert_eq!(entry.state, Some(AttachmentState::Failed), "not Deleting");
    assert!(
        entry.message.as_deref().unwrap().contains(ghost),
        "{entry:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let enis = cluster.owned_enis().await;
    assert_eq!(
        enis.len(),
        1,
        "the unknown instance's ENI is kept: {enis:?}"
    );
    let stats = cluster.sim.stats();
    assert_eq!(
        stats.action("CreateNetworkInterface").calls,
        1,
        "only the test's own create"
    );
    cluster.kill_controller();
}

#[tokio::test]
async fn a_new_eni_ec2_does_not_know_yet_is_waited_for_not_replaced() {
    // For 600 ms after its create, EC2 answers NotFound for the ENI (eventual consistency):
    // the source/destination check and the attach right after the create meet it.
    let config = SimConfig {
        consistency_window_ms: 600,
        ..fast()
    };
    let mut cluster = one_node_ready(config, &json!({"sourceDestCheck": false})).await;
    let stats = cluster.sim.stats();
    assert_eq!(
        stats.action("CreateNetworkInterface").calls,
        1,
        "the same ENI, once EC2 knows it"
    );
    let enis = cluster.owned_enis().await;
    assert_one_attached_eni_per_slot(&enis, 1);
    assert_eq!(enis[0].source_dest_check, Some(false));
    cluster.kill_controller();
}
