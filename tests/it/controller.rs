//! The controller end to end: a real API server, the EC2 simulator over HTTP, and the
//! `multi-eni controller` binary. Every outcome is checked in EC2 (by tags), in the NodeENI's
//! status and in the nodes' ENINodes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};
use multi_eni::api::{AttachmentState, ENINode, InterfaceSpec, NodeENI};
use multi_eni::ec2::types::AttachmentStatus;
use multi_eni::ownership::{NODE_TAG, NODEENI_TAG, Owner};
use serde_json::json;

use crate::support::ec2sim::SimConfig;
use crate::support::sim_cluster::{SimCluster, ZONES};

pub const WAIT: Duration = Duration::from_secs(30);

pub fn fast() -> SimConfig {
    SimConfig {
        attach_latency_ms: 100,
        detach_latency_ms: 100,
        ..SimConfig::default()
    }
}

pub fn ready(nodeeni: &NodeENI) -> bool {
    nodeeni.status.as_ref().is_some_and(|status| {
        status.observed_generation == nodeeni.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

pub fn ready_reason(nodeeni: &NodeENI) -> Option<String> {
    let status = nodeeni.status.as_ref()?;
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
}

async fn events(cluster: &SimCluster, nodeeni: &str) -> Vec<Event> {
    let events: Api<Event> = Api::all(cluster.client.clone());
    let selector = format!("involvedObject.name={nodeeni}");
    let list = events
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap();
    list.items
}

pub async fn event_reasons(cluster: &SimCluster, nodeeni: &str) -> Vec<String> {
    let events = events(cluster, nodeeni).await;
    events
        .into_iter()
        .filter_map(|event| event.reason)
        .collect()
}

#[tokio::test]
async fn nodes_come_and_go() {
    let mut cluster = SimCluster::start(fast()).await;
    let i1 = cluster
        .add_node("n1", ZONES[0], "m5.large", &[("ng", "multi-eni")])
        .await;
    let i2 = cluster
        .add_node("n2", ZONES[1], "m5.large", &[("ng", "multi-eni")])
        .await;
    cluster
        .add_node("other", ZONES[0], "m5.large", &[("ng", "other")])
        .await;
    cluster.start_controller(&[]);
    let subnet_ids: Vec<&String> = cluster.subnets.values().collect();
    cluster
        .apply_nodeeni(
            "multus",
            json!({
                "nodeSelector": {"ng": "multi-eni"},
                "subnetIDs": subnet_ids,
                "securityGroupIDs": [cluster.security_group],
                "deviceIndex": 2,
            }),
        )
        .await;

    check_first_attachments(&cluster, &[("n1", &i1, ZONES[0]), ("n2", &i2, ZONES[1])]).await;

    // A new matching node gets one.
    cluster
        .add_node("n3", ZONES[0], "m5.large", &[("ng", "multi-eni")])
        .await;
    cluster
        .wait_nodeeni("multus", "n3 attached", WAIT, |n| {
            ready(n) && n.status.as_ref().unwrap().attached_nodes == 3
        })
        .await;

    // A node relabelled away loses its ENI: detached, then deleted; and its ENINode.
    cluster.label_node("n1", "ng", None).await;
    cluster
        .wait_enis("n1's ENI deleted", WAIT, |enis| {
            enis.len() == 2 && enis.iter().all(|e| e.tags[NODE_TAG] != "n1")
        })
        .await;
    cluster
        .wait_eninode("n1", "n1's ENINode deleted", WAIT, |e| e.is_none())
        .await;
    // The event follows the delete (it is published once EC2 has answered).
    let deadline = std::time::Instant::now() + WAIT;
    while !event_reasons(&cluster, "multus")
        .await
        .contains(&"Deleted".into())
    {
        assert!(std::time::Instant::now() < deadline, "no Deleted event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A deleted node loses its ENI, and its ENINode (deleted by the controller: the test's
    // API server has no garbage collector to follow the owner reference).
    cluster.delete_node("n2").await;
    cluster
        .wait_enis("n2's ENI deleted", WAIT, |enis| enis.len() == 1)
        .await;
    cluster
        .wait_eninode("n2", "n2's ENINode deleted", WAIT, |e| e.is_none())
        .await;
    let nodeeni = cluster
        .wait_nodeeni("multus", "1 node", WAIT, |n| {
            ready(n) && n.status.as_ref().unwrap().desired_nodes == 1
        })
        .await;
    assert_eq!(nodeeni.status.unwrap().attachments.len(), 1);

    // Deleting the NodeENI removes its ENIs, then its finalizer.
    cluster
        .nodeenis()
        .delete("multus", &DeleteParams::default())
        .await
        .unwrap();
    cluster
        .wait_enis("every ENI deleted", WAIT, <[_]>::is_empty)
        .await;
    cluster.wait_nodeeni_gone("multus", WAIT).await;

    // multi-eni never forces a detach (that can leave the device index blocked until the
    // instance stops): EC2 saw three detaches, none forced, and no event speaks of forcing.
    let stats = cluster.sim.stats();
    assert_eq!(stats.action("DetachNetworkInterface").calls, 3, "{stats:?}");
    assert_eq!(stats.forced_detach_calls, 0, "{stats:?}");
    let events = events(&cluster, "multus").await;
    let detached = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Detached"));
    // Like events come as one with a series count.
    let count = |e: &Event| e.series.as_ref().and_then(|s| s.count).unwrap_or(1);
    assert_eq!(detached.map(count).sum::<i32>(), 3, "{events:?}");
    let texts = events
        .iter()
        .flat_map(|e| [&e.reason, &e.message])
        .flatten();
    assert!(!texts.map(|t| t.to_lowercase()).any(|t| t.contains("force")));
    cluster.kill_controller();
}

#[tokio::test]
async fn names_keep_on_termination_and_a_foreign_eni() {
    let mut cluster = SimCluster::start(fast()).await;
    let instance = cluster
        .add_node("n1", ZONES[0], "m5.xlarge", &[("ng", "multi-eni")])
        .await;
    // Someone else's ENI holds device index 1.
    let sdk = cluster.sim.client();
    let foreign = cluster.attach_foreign_eni(&instance, ZONES[0], 1).await;
    cluster.start_controller(&[]);
    cluster
        .apply_nodeeni(
            "by-name",
            json!({
                "nodeSelector": {"ng": "multi-eni"},
                "subnetNames": [format!("multus-{}", ZONES[0]), format!("multus-{}", ZONES[1])],
                "securityGroupNames": ["multus"],
                "deleteOnTermination": false,
            }),
        )
        .await;
    cluster.wait_nodeeni("by-name", "Ready", WAIT, ready).await;
    let entry = &only_interface(&cluster, "n1").await;
    assert_eq!(
        entry.device_index,
        Some(2),
        "index 1 is taken: the next free one"
    );
    let enis = cluster.owned_enis().await;
    let [eni] = enis.as_slice() else {
        panic!("{enis:?}")
    };
    assert_eq!(eni.security_group_ids, vec![cluster.security_group.clone()]);
    assert!(!eni.attachment.as_ref().unwrap().delete_on_termination);

    // Terminated, the instance leaves the ENI available (no DeleteOnTermination): deleted.
    sdk.terminate_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    cluster
        .wait_enis("the ENI deleted", WAIT, <[_]>::is_empty)
        .await;
    // The foreign ENI is untouched: still there, detached by the termination only.
    let foreign_now = sdk
        .describe_network_interfaces()
        .network_interface_ids(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_now.network_interfaces().len(), 1);
    cluster.kill_controller();
}

#[tokio::test]
async fn limits_and_missing_subnets_are_reported_without_retrying() {
    let mut cluster = SimCluster::start(fast()).await;
    // A t3.micro takes 2 interfaces: the primary and one more, taken by a foreign ENI.
    let instance = cluster
        .add_node("small", ZONES[0], "t3.micro", &[("ng", "small")])
        .await;
    cluster.attach_foreign_eni(&instance, ZONES[0], 1).await;
    cluster.start_controller(&[]);
    cluster
        .apply_nodeeni(
            "full",
            json!({
                "nodeSelector": {"ng": "small"},
                "subnetID": cluster.subnets[ZONES[0]],
                "securityGroupIDs": [cluster.security_group],
            }),
        )
        .await;
    cluster
        .apply_nodeeni(
            "missing",
            json!({
                "nodeSelector": {"ng": "small"},
                "subnetID": "subnet-0123456789abcdef0",
                "securityGroupIDs": [cluster.security_group],
            }),
        )
        .await;
    let full = cluster
        .wait_nodeeni("full", "InterfaceLimitReached", WAIT, |n| {
            ready_reason(n).as_deref() == Some("InterfaceLimitReached")
        })
        .await;
    let entry = &full.status.unwrap().attachments[0];
    assert_eq!(entry.state, Some(AttachmentState::Failed));
    assert!(
        entry.message.as_deref().unwrap().contains("t3.micro")
            || entry.message.as_deref().unwrap().contains("2 interfaces")
    );
    cluster
        .wait_nodeeni("missing", "SubnetNotFound", WAIT, |n| {
            ready_reason(n).as_deref() == Some("SubnetNotFound")
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = cluster.sim.stats();
    assert_eq!(
        stats.action("CreateNetworkInterface").calls,
        1,
        "only the test's own create: none for a full instance"
    );
    assert_eq!(
        stats.action("AttachNetworkInterface").calls,
        1,
        "only the test's own attach"
    );
    assert!(cluster.owned_enis().await.is_empty());
    cluster.kill_controller();
}

#[tokio::test]
async fn eninodes_carry_the_interface_settings_and_bring_back_the_agents_word() {
    use k8s_openapi::api::core::v1::Node;
    let mut cluster = SimCluster::start(fast()).await;
    let instance = cluster
        .add_node("n1", ZONES[0], "m5.xlarge", &[("ng", "multi-eni")])
        .await;
    cluster.start_controller(&[]);
    let (first, second) = (
        cluster.extra_subnet.clone(),
        cluster.subnets[ZONES[0]].clone(),
    );
    let spec = json!({
        "nodeSelector": {"ng": "multi-eni"},
        "subnetIDs": [first, second],
        "securityGroupIDs": [cluster.security_group],
        "deviceIndex": 2, "interfaceName": "multus", "mtu": 9001,
    });
    cluster.apply_nodeeni("multus", spec).await;
    let nodeeni = cluster.wait_nodeeni("multus", "Ready", WAIT, ready).await;
    let eninode = cluster.eninodes().get("n1").await.unwrap();
    let node = Api::<Node>::all(cluster.client.clone())
        .get("n1")
        .await
        .unwrap();
    let owner = &eninode.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str()
        ),
        ("v1", "Node", "n1")
    );
    assert_eq!(Some(&owner.uid), node.metadata.uid.as_ref());
    assert_eq!(eninode.spec.instance_id.as_deref(), Some(instance.as_str()));
    let interface = |subnet: &str| {
        let found = eninode
            .spec
            .interfaces
            .iter()
            .find(|i| i.subnet_id == subnet);
        let found = found.unwrap();
        (
            found.interface_name.clone().unwrap(),
            found.device_index,
            found.mtu,
        )
    };
    // Names by the slot's rank (subnet order in the spec), whatever order EC2 attached them in.
    assert_eq!(interface(&first), ("multus0".into(), Some(2), Some(9001)));
    assert_eq!(interface(&second), ("multus1".into(), Some(3), Some(9001)));

    // Converged, the controller writes nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = cluster.eninodes().get("n1").await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        eninode.metadata.resource_version
    );
    let nodeeni_again = cluster.nodeenis().get("multus").await.unwrap();
    assert_eq!(
        nodeeni_again.metadata.resource_version,
        nodeeni.metadata.resource_version
    );

    agents_word_reaches_the_nodeeni(&cluster, &eninode, [&first, &second]).await;

    // Deleted by someone, the ENINode is written again.
    let eninodes = cluster.eninodes();
    eninodes
        .delete("n1", &DeleteParams::default())
        .await
        .unwrap();
    cluster
        .wait_eninode("n1", "the ENINode written again", WAIT, |e| {
            e.is_some_and(|e| e.spec.interfaces.len() == 2)
        })
        .await;
    cluster.kill_controller();
}

/// The agent's word, as it writes it into the ENINode of `n1` (one interface not
/// configured, then both), reaches the NodeENI's status.
async fn agents_word_reaches_the_nodeeni(
    cluster: &SimCluster,
    eninode: &ENINode,
    subnets: [&str; 2],
) {
    use kube::api::{Patch, PatchParams};
    // The agent's word, as it writes it: one interface not configured.
    let [first, second] = subnets;
    let report = |configured: bool| {
        let entry = |subnet: &str, name: &str, ok: bool| {
            let eni = eninode
                .spec
                .interfaces
                .iter()
                .find(|i| i.subnet_id == subnet);
            json!({"nodeENI": "multus", "subnetID": subnet, "eniID": eni.unwrap().eni_id,
                   "interfaceName": name, "configured": ok,
                   "message": if ok { None } else { Some("MTU 9001 refused") }})
        };
        json!({"apiVersion": "networking.k8s.aws/v1alpha1", "kind": "ENINode",
               "status": {"interfaces": [entry(first, "multus0", true), entry(second, "multus1", configured)]}})
    };
    let params = PatchParams::apply("multi-eni-manager").force();
    let eninodes = cluster.eninodes();
    eninodes
        .patch_status("n1", &params, &Patch::Apply(report(false)))
        .await
        .unwrap();
    let nodeeni = cluster
        .wait_nodeeni("multus", "InterfaceNotConfigured", WAIT, |n| {
            ready_reason(n).as_deref() == Some("InterfaceNotConfigured")
        })
        .await;
    let status = nodeeni.status.unwrap();
    assert_eq!((status.attached_nodes, status.configured_nodes), (1, 0));
    let entry = &status.attachments[0];
    assert_eq!(entry.subnet_id, second, "the entry not ready comes first");
    assert_eq!(entry.message.as_deref(), Some("MTU 9001 refused"));
    eninodes
        .patch_status("n1", &params, &Patch::Apply(report(true)))
        .await
        .unwrap();
    let nodeeni = cluster
        .wait_nodeeni("multus", "every interface configured", WAIT, |n| {
            ready(n) && n.status.as_ref().is_some_and(|s| s.configured_nodes == 1)
        })
        .await;
    let names: Vec<_> = nodeeni
        .status
        .unwrap()
        .attachments
        .into_iter()
        .map(|a| a.interface_name)
        .collect();
    assert_eq!(names, [Some("multus0".into()), Some("multus1".into())]);
}

/// The one interface of a node's ENINode.
async fn only_interface(cluster: &SimCluster, node: &str) -> InterfaceSpec {
    let eninode = cluster.eninodes().get(node).await.unwrap();
    let [interface] = eninode.spec.interfaces.as_slice() else {
        panic!("{eninode:#?}")
    };
    interface.clone()
}

/// One ENI per node, in the subnet of the node's zone, attached at index 2 with
/// DeleteOnTermination, reported in status and the node's ENINode, and by events.
async fn check_first_attachments(cluster: &SimCluster, nodes: &[(&str, &String, &str)]) {
    let nodeeni = cluster.wait_nodeeni("multus", "Ready", WAIT, ready).await;
    let status = nodeeni.status.unwrap();
    assert_eq!((status.desired_nodes, status.attached_nodes), (2, 2));
    let enis = cluster.owned_enis().await;
    assert_eq!(enis.len(), 2);
    for &(node, instance, zone) in nodes {
        let eni = enis.iter().find(|e| e.tags[NODE_TAG] == node).unwrap();
        assert_eq!(eni.subnet_id, cluster.subnets[zone]);
        let attachment = eni.attachment.as_ref().unwrap();
        assert_eq!(
            (attachment.instance_id.as_str(), attachment.device_index),
            (instance.as_str(), 2)
        );
        assert!(attachment.delete_on_termination);
        let entry = status
            .attachments
            .iter()
            .find(|a| a.node_name == node)
            .unwrap();
        assert_eq!(entry.eni_id.as_deref(), Some(eni.id.as_str()));
        assert_eq!(entry.instance_id.as_deref(), Some(instance.as_str()));
        assert_eq!(entry.attachment_id.as_deref(), Some(attachment.id.as_str()));
        assert_eq!(entry.state, Some(AttachmentState::Attached));
        let interface = only_interface(cluster, node).await;
        assert_eq!(interface.node_eni, "multus");
        assert_eq!(interface.eni_id.as_deref(), Some(eni.id.as_str()));
        assert_eq!(
            interface.mac_address.as_deref(),
            Some(eni.mac_address.as_str())
        );
        assert_eq!(interface.device_index, Some(2));
        assert_eq!(interface.state, AttachmentState::Attached);
        assert_eq!(
            interface.subnet_cidr.as_deref().map(|c| c.ends_with("/18")),
            Some(true)
        );
    }
    let reasons = event_reasons(cluster, "multus").await;
    assert!(
        reasons.contains(&"Created".into()) && reasons.contains(&"Attached".into()),
        "{reasons:?}"
    );
}

/// Every ENI of the cluster is attached, once, where its tags say.
pub fn assert_one_attached_eni_per_slot(enis: &[multi_eni::ec2::types::Eni], slots: usize) {
    let mut owners: Vec<Owner> = enis
        .iter()
        .filter_map(|e| Owner::from_tags(&e.tags))
        .collect();
    owners.sort();
    owners.dedup();
    assert_eq!(owners.len(), enis.len(), "a duplicate ENI: {enis:#?}");
    assert_eq!(enis.len(), slots, "{enis:#?}");
    for eni in enis {
        let attachment = eni.attachment.as_ref().expect("attached");
        assert_eq!(attachment.status, AttachmentStatus::Attached);
        assert_eq!(
            attachment.instance_id,
            eni.tags[multi_eni::ownership::INSTANCE_TAG]
        );
        assert!(!eni.tags[NODEENI_TAG].is_empty());
    }
}

/// Six nodes with two subnets each, and a foreign ENI on every instance at device index 1.
async fn crowded_cluster(config: SimConfig) -> (SimCluster, Vec<String>) {
    let cluster = SimCluster::start(config).await;
    let mut foreign = Vec::new();
    for i in 0..6 {
        let instance = cluster
            .add_node(
                &format!("n{i}"),
                ZONES[0],
                "m5.xlarge",
                &[("ng", "multi-eni")],
            )
            .await;
        let eni = cluster.attach_foreign_eni(&instance, ZONES[0], 1).await;
        foreign.push(eni);
    }
    cluster
        .apply_nodeeni(
            "crowded",
            json!({
                "nodeSelector": {"ng": "multi-eni"},
                "subnetIDs": [cluster.subnets[ZONES[0]], cluster.extra_subnet],
                "securityGroupIDs": [cluster.security_group],
            }),
        )
        .await;
    (cluster, foreign)
}

/// The end state after any history: ready, one ENI per slot, foreign ENIs where they were.
async fn assert_converged(cluster: &SimCluster, foreign: &[String]) {
    cluster
        .wait_nodeeni("crowded", "Ready", Duration::from_mins(1), ready)
        .await;
    // The test's own look at EC2 must not meet injected faults.
    cluster.sim.set_config(fast());
    // Past the grace period, leftovers would have been collected too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let enis = cluster.owned_enis().await;
    assert_one_attached_eni_per_slot(&enis, 12);
    let sdk = cluster.sim.client();
    let described = sdk
        .describe_network_interfaces()
        .set_network_interface_ids(Some(foreign.to_vec()))
        .send()
        .await
        .unwrap();
    for eni in described.network_interfaces() {
        let attachment = eni.attachment().expect("foreign ENIs stay attached");
        assert_eq!(attachment.device_index(), Some(1));
    }
    assert_eq!(described.network_interfaces().len(), foreign.len());
}

#[tokio::test]
async fn a_controller_killed_at_any_point_neither_leaks_nor_duplicates() {
    use crate::support::ec2sim::{AttachmentEventKind, NextFault};
    let config = SimConfig {
        attach_latency_ms: 300,
        added_latency_ms: 10,
        ..SimConfig::default()
    };
    let (mut cluster, foreign) = crowded_cluster(config).await;

    // Between create and attach: attaches fail until the ENIs exist, then the kill.
    cluster.sim.inject_fault(NextFault::new(
        "AttachNetworkInterface",
        40,
        "Unavailable",
        "injected",
    ));
    cluster.start_controller(&[]);
    cluster
        .wait_enis("every ENI created", WAIT, |enis| enis.len() == 12)
        .await;
    cluster.kill_controller();

    // Between attach and the status write: killed the moment EC2 reports an attachment.
    let (attached, mut first_attached) = tokio::sync::mpsc::unbounded_channel();
    cluster.sim.on_attachment(Box::new(move |event| {
        if event.kind == AttachmentEventKind::Attached {
            let _ = attached.send(());
        }
    }));
    cluster.start_controller(&[]);
    first_attached.recv().await;
    cluster.kill_controller();

    // And at assorted moments of convergence.
    for delay_ms in [50, 150, 300, 500, 800] {
        cluster.start_controller(&[]);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        cluster.kill_controller();
    }
    cluster.start_controller(&[]);
    assert_converged(&cluster, &foreign).await;
    cluster.kill_controller();
}

#[tokio::test]
async fn throttling_server_errors_and_eventual_consistency_are_ridden_out() {
    use crate::support::ec2sim::Bucket;
    let mut config = SimConfig {
        attach_latency_ms: 100,
        detach_latency_ms: 100,
        consistency_window_ms: 400,
        error_rate: 0.1,
        ..SimConfig::default()
    };
    config.throttle.interface_mutating = Bucket::new(4.0, 10.0);
    config.throttle.mutating = Bucket::new(4.0, 10.0);
    config.throttle.describe = Bucket::new(4.0, 10.0);
    let (mut cluster, foreign) = crowded_cluster(fast()).await;
    cluster.sim.set_config(config);
    cluster.start_controller(&["--ec2-budget", "1"]);
    assert_converged(&cluster, &foreign).await;
    let stats = cluster.sim.stats();
    let throttled: u64 = stats.actions.values().map(|a| a.throttled).sum();
    let errors: u64 = stats.actions.values().map(|a| a.errors).sum();
    assert!(
        throttled > 0 && errors > 0,
        "the faults happened: {stats:?}"
    );
    cluster.kill_controller();
}

#[tokio::test]
async fn a_standby_replica_takes_over_from_a_dead_leader() {
    use k8s_openapi::api::coordination::v1::Lease;
    let mut cluster = SimCluster::start(fast()).await;
    cluster
        .add_node("n1", ZONES[0], "m5.large", &[("ng", "multi-eni")])
        .await;
    cluster.start_controller(&["--leader-elect", "true", "--identity", "replica-1"]);
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-system");
    let holder = || async {
        let lease = leases.get_opt("multi-eni-controller").await.unwrap();
        lease.and_then(|l| l.spec?.holder_identity)
    };
    let deadline = std::time::Instant::now() + WAIT;
    while holder().await.as_deref() != Some("replica-1") {
        assert!(std::time::Instant::now() < deadline, "replica-1 never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.start_controller(&["--leader-elect", "true", "--identity", "replica-2"]);
    let subnet = cluster.subnets[ZONES[0]].clone();
    let spec = json!({"nodeSelector": {"ng": "multi-eni"}, "subnetID": subnet, "securityGroupIDs": [cluster.security_group]});
    cluster.apply_nodeeni("multus", spec).await;
    cluster.wait_nodeeni("multus", "Ready", WAIT, ready).await;
    assert_eq!(
        holder().await.as_deref(),
        Some("replica-1"),
        "one leader while it lives"
    );

    cluster.kill_oldest_controller();
    cluster
        .add_node("n2", ZONES[0], "m5.large", &[("ng", "multi-eni")])
        .await;
    cluster
        .wait_nodeeni(
            "multus",
            "n2 attached by the new leader",
            Duration::from_mins(1),
            |n| ready(n) && n.status.as_ref().is_some_and(|s| s.attached_nodes == 2),
        )
        .await;
    assert_eq!(holder().await.as_deref(), Some("replica-2"));
    assert_one_attached_eni_per_slot(&cluster.owned_enis().await, 2);
    cluster.kill_controller();
}

#[tokio::test]
async fn a_dpdk_bound_eni_waits_for_its_release_and_metrics_are_served() {
    use kube::api::{Patch, PatchParams};
    let mut cluster = SimCluster::start(fast()).await;
    cluster
        .add_node("n1", ZONES[0], "m5.large", &[("ng", "dpdk")])
        .await;
    cluster.start_controller(&[]);
    let subnet = cluster.subnets[ZONES[0]].clone();
    let spec = json!({
        "nodeSelector": {"ng": "dpdk"},
        "subnetID": subnet,
        "securityGroupIDs": [cluster.security_group],
        "enableDPDK": true,
    });
    cluster.apply_nodeeni("dpdk", spec).await;
    cluster.wait_nodeeni("dpdk", "Ready", WAIT, ready).await;

    let interface = only_interface(&cluster, "n1").await;
    assert!(interface.enable_dpdk);
    assert_eq!(
        interface.dpdk_driver,
        Some(multi_eni::api::DpdkDriver::VfioPci)
    );

    // The node agent's report in the ENINode's status, under its field manager: bound.
    let agent = |bound: bool| {
        json!({"apiVersion": "networking.k8s.aws/v1alpha1", "kind": "ENINode",
               "status": {"interfaces": [{"nodeENI": "dpdk", "subnetID": subnet, "dpdkBound": bound}]}})
    };
    let params = PatchParams::apply("multi-eni-manager").force();
    cluster
        .eninodes()
        .patch_status("n1", &params, &Patch::Apply(agent(true)))
        .await
        .unwrap();
    cluster.label_node("n1", "ng", None).await;
    // The entry stays, as Detaching, for the agent to release the device; the ENI stays attached.
    let releasing = |e: Option<&ENINode>| {
        e.is_some_and(|e| {
            e.spec.interfaces.iter().any(|i| {
                i.state == AttachmentState::Detaching && i.reason.as_deref() == Some("DPDKRelease")
            })
        })
    };
    cluster
        .wait_eninode("n1", "the entry asks for the release", WAIT, releasing)
        .await;
    cluster
        .wait_nodeeni("dpdk", "the NodeENI says so", WAIT, |n| {
            n.status.as_ref().is_some_and(|s| {
                s.attachments
                    .iter()
                    .any(|a| a.reason.as_deref() == Some("DPDKRelease"))
            })
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let enis = cluster.owned_enis().await;
    assert_eq!(enis.len(), 1);
    assert!(
        enis[0].attachment.is_some(),
        "a DPDK-bound ENI stays attached until released"
    );

    cluster
        .eninodes()
        .patch_status("n1", &params, &Patch::Apply(agent(false)))
        .await
        .unwrap();
    cluster
        .wait_enis("the released ENI deleted", WAIT, <[_]>::is_empty)
        .await;
    cluster
        .wait_eninode("n1", "the ENINode deleted", WAIT, |e| e.is_none())
        .await;

    let port = cluster.metrics_port().unwrap();
    let metrics = http_get(port, "/metrics").await;
    assert!(
        metrics.contains(
            r#"multi_eni_ec2_calls_total{action="CreateNetworkInterface",outcome="ok"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("multi_eni_reconcile_seconds"));
    assert_eq!(http_get(port, "/healthz").await, "ok\n");
    assert_eq!(http_get(port, "/readyz").await, "ok\n");
    cluster.kill_controller();
}

/// The body of a plain HTTP GET on 127.0.0.1.
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}
