//! Migration from aws-multi-eni-controller, end to end: the EC2 simulator holds ENIs made and
//! attached the way the predecessor makes them (its tags, description and DeleteOnTermination),
//! the API server holds NodeENIs stored under its CRD (its finalizer, its status entries),
//! then our CRD replaces its own and the real controller binary starts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ec2::types::{NetworkInterfaceAttachmentChanges, ResourceType, Tag, TagSpecification};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use multi_eni::api::{AttachmentState, NodeENI};
use multi_eni::ec2::types::{AttachmentStatus, Eni, EniStatus};
use multi_eni::ownership::{Owner, PREDECESSOR_TAG, PREDECESSOR_VALUE};
use serde_json::json;

use crate::controller::{WAIT, event_reasons, fast, ready};
use crate::support::control_plane::wait_for;
use crate::support::ec2sim::NextFault;
use crate::support::repo_file;
use crate::support::sim_cluster::{SimCluster, ZONES};

const PREDECESSOR_FINALIZER: &str = "nodeeni.networking.k8s.aws/finalizer";
const OUR_FINALIZER: &str = "multi-eni.k8s.aws/cleanup";

/// The predecessor's CRD as far as it matters here (v1.3.8's field names and types): its
/// status is a plain list of entries keyed by nothing, with `nodeID` and `status`.
fn predecessor_crd() -> CustomResourceDefinition {
    let string = json!({"type": "string"});
    let integer = json!({"type": "integer"});
    let entry = json!({"type": "object", "properties": {
        "nodeID": string, "instanceID": string, "eniID": string, "attachmentID": string,
        "subnetID": string, "subnetCIDR": string, "mtu": integer, "deviceIndex": integer,
        "status": string, "lastUpdated": {"type": "string", "format": "date-time"},
        "dpdkBound": {"type": "boolean"}, "dpdkDriver": string,
        "dpdkResourceName": string, "dpdkPCIAddress": string}});
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "status": {"type": "object", "properties": {
            "attachments": {"type": "array", "items": entry}}}}});
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "nodeenis.networking.k8s.aws"},
        "spec": {"group": "networking.k8s.aws", "scope": "Cluster",
            "names": {"kind": "NodeENI", "listKind": "NodeENIList", "plural": "nodeenis",
                "singular": "nodeeni", "shortNames": ["neni"]},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}}, "schema": {"openAPIV3Schema": schema}}]}}))
    .expect("a CRD")
}

/// NodeENIs as the API server sees them whatever the schema.
fn raw_nodeenis(cluster: &SimCluster) -> Api<DynamicObject> {
    Api::all_with(cluster.client.clone(), &ApiResource::erase::<NodeENI>(&()))
}

/// Puts the predecessor's CRD in place of ours.
async fn install_predecessor_crd(cluster: &SimCluster) {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let mut crd = predecessor_crd();
    let current = crds.get(&crd.name_any()).await.expect("our CRD");
    crd.metadata.resource_version = current.metadata.resource_version;
    crds.replace(&crd.name_any(), &PostParams::default(), &crd)
        .await
        .expect("the predecessor's CRD");
}

/// One ENI the way the predecessor makes it: CreateNetworkInterface with its tags and
/// description (no ClientToken), then, on `(instance, device index)`, AttachNetworkInterface
/// (no network card index) and DeleteOnTermination true (its default, whatever the spec says).
async fn predecessor_eni(
    cluster: &SimCluster,
    nodeeni: &str,
    node: &str,
    subnet: &str,
    on: Option<(&str, i32)>,
) -> String {
    let tags = [
        (
            "Name",
            format!("nodeeni-{nodeeni}-{node}-{}", &subnet[subnet.len() - 8..]),
        ),
        ("NodeENI", nodeeni.into()),
        ("Node", node.into()),
        ("SubnetID", subnet.into()),
        (PREDECESSOR_TAG, PREDECESSOR_VALUE.into()),
        ("node.k8s.amazonaws.com/no_manage", "true".into()),
    ];
    let spec = TagSpecification::builder()
        .resource_type(ResourceType::NetworkInterface)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(*k).value(v).build())
                .collect(),
        ))
        .build();
    let sdk = cluster.sim.client();
    let created = sdk
        .create_network_interface()
        .subnet_id(subnet)
        .groups(&cluster.security_group)
        .description(format!("ENI created by nodeeni-controller for node {node}"))
        .tag_specifications(spec)
        .send()
        .await
        .expect("create");
    let eni = created
        .network_interface()
        .and_then(|e| e.network_interface_id())
        .expect("an ENI ID")
        .to_owned();
    if let Some((instance, device_index)) = on {
        let attached = sdk
            .attach_network_interface()
            .network_interface_id(&eni)
            .instance_id(instance)
            .device_index(device_index)
            .send()
            .await
            .expect("attach");
        let changes = NetworkInterfaceAttachmentChanges::builder()
            .attachment_id(attached.attachment_id().expect("an attachment"))
            .delete_on_termination(true)
            .build();
        sdk.modify_network_interface_attribute()
            .network_interface_id(&eni)
            .attachment(changes)
            .send()
            .await
            .expect("DeleteOnTermination");
    }
    eni
}

/// Every ENI carrying the predecessor's tag (adopted ones keep it), by ID.
async fn predecessor_enis(cluster: &SimCluster) -> BTreeMap<String, Eni> {
    let enis = cluster
        .ec2
        .enis_tagged(PREDECESSOR_TAG, PREDECESSOR_VALUE)
        .await
        .expect("describe");
    enis.into_iter().map(|eni| (eni.id.clone(), eni)).collect()
}

/// A NodeENI stored by the predecessor: its finalizer, and a status entry per attached ENI
/// as it writes them.
async fn predecessor_nodeeni(cluster: &SimCluster, name: &str, spec: serde_json::Value) {
    let object = json!({"apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI",
        "metadata": {"name": name, "finalizers": [PREDECESSOR_FINALIZER]}, "spec": spec});
    let api = raw_nodeenis(cluster);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(object).unwrap(),
    )
    .await
    .expect("create the NodeENI");
    let enis = predecessor_enis(cluster).await;
    let entries: Vec<serde_json::Value> = enis
        .values()
        .filter(|eni| eni.tags["NodeENI"] == name)
        .filter_map(|eni| {
            let attachment = eni.attachment.as_ref()?;
            Some(
                json!({"nodeID": eni.tags["Node"], "instanceID": attachment.instance_id,
                "eniID": eni.id, "attachmentID": attachment.id, "subnetID": eni.subnet_id,
                "subnetCIDR": "10.0.0.0/20", "mtu": 9001, "deviceIndex": attachment.device_index,
                "status": "attached", "lastUpdated": "2025-06-01T12:00:00Z"}),
            )
        })
        .collect();
    // The API server switches to a new CRD's schema shortly after the change; until then our
    // schema refuses these entries (no nodeName).
    let status = Patch::Merge(json!({"status": {"attachments": entries}}));
    wait_for("the predecessor's schema to store its status", || async {
        api.patch_status(name, &PatchParams::default(), &status)
            .await
            .is_ok_and(|stored| stored.data["status"]["attachments"][0]["nodeID"].is_string())
    })
    .await;
}

/// `kubectl apply` of our CRD over the predecessor's, as the README's migration says; waits
/// until the API server reads the NodeENIs with our schema (our defaults in the spec).
async fn apply_our_crd(cluster: &SimCluster) {
    cluster.plane.apply(&repo_file("manifests/crd.yaml"));
    let api = raw_nodeenis(cluster);
    wait_for("our CRD to be in effect", || async {
        let list = api.list(&ListParams::default()).await.expect("list");
        list.items
            .iter()
            .all(|n| n.data["spec"]["networkCardIndex"] == json!(0))
    })
    .await;
}

fn attached(eni: &Eni, instance: &str) -> bool {
    eni.attachment
        .as_ref()
        .is_some_and(|a| a.instance_id == instance && a.status == AttachmentStatus::Attached)
}

fn delete_on_termination(eni: &Eni) -> Option<bool> {
    eni.attachment.as_ref().map(|a| a.delete_on_termination)
}

fn finalizers(nodeeni: &NodeENI) -> Vec<String> {
    nodeeni.finalizers().to_vec()
}

fn calls(cluster: &SimCluster, action: &str) -> (u64, u64) {
    let stats = cluster.sim.stats().action(action);
    (stats.calls, stats.errors)
}

/// The predecessor's world: nodes n1 (zone a) and n2, n3 (zone b), m5.4xlarge (8 interfaces);
/// NodeENI "multus" on both zones' subnets at device index 2 (n1's and n2's attached, n3's
/// made but never attached), NodeENI "storage" (deleteOnTermination: false, which the
/// predecessor ignores) on the second subnet of zone a at index 3, for n1. Returns the ENIs by
/// NodeENI and node.
async fn predecessor_world(cluster: &SimCluster) -> BTreeMap<(&'static str, &'static str), String> {
    let mut instances = BTreeMap::new();
    for (node, zone) in [("n1", ZONES[0]), ("n2", ZONES[1]), ("n3", ZONES[1])] {
        let labels = [
            ("ng", "multi-eni"),
            ("storage", if node == "n1" { "yes" } else { "no" }),
        ];
        let instance = cluster.add_node(node, zone, "m5.4xlarge", &labels).await;
        instances.insert(node, instance);
    }
    let [a, b] = ZONES.map(|zone| cluster.subnets[zone].clone());
    let storage = cluster.extra_subnet.clone();
    let mut enis = BTreeMap::new();
    for (nodeeni, node, subnet, on) in [
        ("multus", "n1", &a, Some(2)),
        ("multus", "n2", &b, Some(2)),
        ("multus", "n3", &b, None),
        ("storage", "n1", &storage, Some(3)),
    ] {
        let on = on.map(|index| (instances[node].as_str(), index));
        let eni = predecessor_eni(cluster, nodeeni, node, subnet, on).await;
        enis.insert((nodeeni, node), eni);
    }
    wait_for("the predecessor's attachments", || async {
        let enis = predecessor_enis(cluster).await;
        let attachments = enis.values().filter_map(|eni| eni.attachment.as_ref());
        attachments
            .into_iter()
            .all(|a| a.status == AttachmentStatus::Attached)
    })
    .await;
    let sg = &cluster.security_group;
    install_predecessor_crd(cluster).await;
    let multus = json!({"nodeSelector": {"ng": "multi-eni"}, "subnetIDs": [a, b],
        "securityGroupIDs": [sg], "deviceIndex": 2, "mtu": 9001});
    let storage = json!({"nodeSelector": {"storage": "yes"}, "subnetID": storage,
        "securityGroupIDs": [sg], "deviceIndex": 3, "deleteOnTermination": false});
    predecessor_nodeeni(cluster, "multus", multus).await;
    predecessor_nodeeni(cluster, "storage", storage).await;
    enis
}

/// The instance the ENI `id` is attached to.
fn instance_of(enis: &BTreeMap<String, Eni>, id: &str) -> String {
    let attachment = enis[id].attachment.as_ref().expect("attached");
    attachment.instance_id.clone()
}

/// Waits until both NodeENIs are Ready, with our finalizer in place of the predecessor's,
/// and the cluster owns the predecessor's four ENIs, attached, DeleteOnTermination as each
/// spec says (multus true, storage false); returns them.
async fn wait_migrated(cluster: &SimCluster, ids: &BTreeSet<String>) -> Vec<Eni> {
    for name in ["multus", "storage"] {
        cluster
            .wait_nodeeni(name, "Ready with our finalizer alone", WAIT, |n| {
                ready(n) && finalizers(n) == [OUR_FINALIZER]
            })
            .await;
    }
    let owned = cluster
        .wait_enis("the predecessor's ENIs adopted", WAIT, |enis| {
            enis.len() == 4
                && enis.iter().all(|eni| {
                    let multus = eni.tags["NodeENI"] == "multus";
                    let instance = &eni.tags[multi_eni::ownership::INSTANCE_TAG];
                    attached(eni, instance) && delete_on_termination(eni) == Some(multus)
                })
        })
        .await;
    let owned_ids: BTreeSet<String> = owned.iter().map(|eni| eni.id.clone()).collect();
    assert_eq!(&owned_ids, ids, "the same ENIs as before");
    crate::controller::assert_one_attached_eni_per_slot(&owned, 4);
    for eni in &owned {
        let owner = Owner::from_tags(&eni.tags).expect("our tags");
        let theirs = (
            &eni.tags["NodeENI"],
            &eni.tags["Node"],
            &eni.tags["SubnetID"],
        );
        assert_eq!((&owner.nodeeni, &owner.node, &owner.subnet), theirs);
        assert_eq!(owner.cluster, cluster.cluster_name);
    }
    owned
}

#[tokio::test]
async fn the_predecessors_enis_are_adopted_not_created_again() {
    let mut cluster = SimCluster::start(fast()).await;
    let world = predecessor_world(&cluster).await;
    let ids: BTreeSet<String> = world.values().cloned().collect();
    // Left alone whatever happens: an ENI of nobody we know, and two of the predecessor of
    // another cluster of the account, with the same NodeENI name: one attached to that
    // cluster's node n1 (a node name this cluster has too), one available for a node this
    // cluster does not have.
    let enis = predecessor_enis(&cluster).await;
    let i1 = instance_of(&enis, &world[&("multus", "n1")]);
    let a = cluster.subnets[ZONES[0]].clone();
    let foreign = cluster.attach_foreign_eni(&i1, ZONES[0], 4).await;
    let elsewhere = cluster.sim.run_instances(&a, "m5.4xlarge", 1).remove(0);
    let other_cluster = predecessor_eni(&cluster, "multus", "n1", &a, Some((&elsewhere, 2))).await;
    let ghost = predecessor_eni(&cluster, "multus", "ghost", &a, None).await;
    apply_our_crd(&cluster).await;
    // What the API server makes of the predecessor's status under our schema: the fields our
    // schema lacks are pruned, and the rest has no nodeName, which our schema requires.
    let unreadable = cluster.nodeenis().get("multus").await.unwrap_err();
    assert!(unreadable.to_string().contains("nodeName"), "{unreadable}");

    let before = cluster.sim.stats();
    cluster.start_controller(&["--adopt-predecessor-enis"]);
    wait_migrated(&cluster, &ids).await;
    let after = cluster.sim.stats();
    let delta = |action: &str| {
        let (a, b) = (after.action(action), before.action(action));
        (a.calls - b.calls, a.errors - b.errors)
    };
    assert_eq!(delta("CreateNetworkInterface"), (0, 0), "nothing created");
    assert_eq!(delta("CreateTags"), (4, 0), "one CreateTags per ENI");
    assert_eq!(
        delta("AttachNetworkInterface"),
        (1, 0),
        "n3's available ENI"
    );
    assert_eq!(
        delta("ModifyNetworkInterfaceAttribute"),
        (2, 0),
        "storage's DeleteOnTermination, and n3's after its attach"
    );
    assert_eq!(delta("DetachNetworkInterface"), (0, 0));
    assert_eq!(delta("DeleteNetworkInterface"), (0, 0));

    let multus = cluster.nodeenis().get("multus").await.unwrap();
    let entries = &multus.status.as_ref().expect("our status").attachments;
    let by_node: BTreeMap<&str, (&Option<String>, Option<AttachmentState>)> = entries
        .iter()
        .map(|e| (e.node_name.as_str(), (&e.eni_id, e.state)))
        .collect();
    for node in ["n1", "n2", "n3"] {
        let eni = Some(world[&("multus", node)].clone());
        assert_eq!(
            by_node[node],
            (&eni, Some(AttachmentState::Attached)),
            "{node}"
        );
    }
    assert!(
        event_reasons(&cluster, "multus")
            .await
            .contains(&"Adopted".into())
    );

    // Past the grace period (2 s here), the others are as they were.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let enis = predecessor_enis(&cluster).await;
    let untouched = |id: &str| {
        !enis[id]
            .tags
            .contains_key(multi_eni::ownership::CLUSTER_TAG)
    };
    assert!(untouched(&other_cluster) && attached(&enis[&other_cluster], &elsewhere));
    assert!(untouched(&ghost) && enis[&ghost].status == EniStatus::Available);
    let foreign_now = cluster
        .sim
        .client()
        .describe_network_interfaces()
        .network_interface_ids(&foreign)
        .send()
        .await
        .unwrap();
    let foreign_now = &foreign_now.network_interfaces()[0];
    assert!(foreign_now.tag_set().is_empty());
    assert_eq!(
        foreign_now
            .attachment()
            .and_then(aws_sdk_ec2::types::NetworkInterfaceAttachment::device_index),
        Some(4)
    );

    // Deletable: the NodeENI goes once its ENI is detached and deleted.
    let storage_eni = world[&("storage", "n1")].clone();
    cluster
        .nodeenis()
        .delete("storage", &DeleteParams::default())
        .await
        .unwrap();
    cluster.wait_nodeeni_gone("storage", WAIT).await;
    assert!(!predecessor_enis(&cluster).await.contains_key(&storage_eni));
    let left = cluster.owned_enis().await;
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|eni| eni.tags["NodeENI"] == "multus"));
    cluster.kill_controller();
}

#[tokio::test]
async fn a_controller_killed_in_the_middle_of_adoptions_converges_without_duplicates() {
    let mut cluster = SimCluster::start(fast()).await;
    let world = predecessor_world(&cluster).await;
    let ids: BTreeSet<String> = world.values().cloned().collect();
    apply_our_crd(&cluster).await;
    // One adoption refused, one DeleteOnTermination after an adoption or attach refused (as
    // an IAM policy without the migration's statement would): both wait for a change.
    let refused = "You are not authorized to perform this operation.";
    for action in ["CreateTags", "ModifyNetworkInterfaceAttribute"] {
        let fault = NextFault::new(action, 1, "UnauthorizedOperation", refused);
        cluster.sim.inject_fault(fault);
    }
    cluster.start_controller(&["--adopt-predecessor-enis"]);
    cluster
        .wait_enis("three of four adopted", WAIT, |enis| enis.len() == 3)
        .await;
    wait_for("the refusals", || async {
        calls(&cluster, "CreateTags").1 == 1
            && calls(&cluster, "ModifyNetworkInterfaceAttribute").1 == 1
    })
    .await;
    wait_for("the refused adoption's reason in a status", || async {
        let list = cluster
            .nodeenis()
            .list(&ListParams::default())
            .await
            .unwrap();
        list.items.iter().flat_map(|n| &n.status).any(|s| {
            s.attachments
                .iter()
                .any(|e| e.reason.as_deref() == Some("Unauthorized"))
        })
    })
    .await;
    cluster.kill_controller();
    assert_eq!(calls(&cluster, "CreateTags"), (4, 1));

    cluster.start_controller(&["--adopt-predecessor-enis"]);
    wait_migrated(&cluster, &ids).await;
    assert_eq!(
        calls(&cluster, "CreateTags"),
        (5, 1),
        "only the refused one tagged again"
    );
    assert_eq!(
        calls(&cluster, "CreateNetworkInterface"),
        (4, 0),
        "the predecessor's four"
    );
    cluster.kill_controller();
}

#[tokio::test]
async fn with_the_flag_off_the_predecessors_enis_are_left_alone_as_before() {
    let mut cluster = SimCluster::start(fast()).await;
    let world = predecessor_world(&cluster).await;
    apply_our_crd(&cluster).await;
    let before = predecessor_enis(&cluster).await;
    cluster.start_controller(&[]);
    for name in ["multus", "storage"] {
        cluster.wait_nodeeni(name, "Ready", WAIT, ready).await;
    }
    let owned = cluster.owned_enis().await;
    assert_eq!(
        owned.len(),
        4,
        "an ENI of ours beside each of the predecessor's"
    );
    assert!(
        owned
            .iter()
            .all(|eni| !world.values().any(|id| *id == eni.id))
    );
    let n2 = owned
        .iter()
        .find(|eni| eni.tags[multi_eni::ownership::NODE_TAG] == "n2")
        .expect("n2's ENI");
    let index = n2.attachment.as_ref().map(|a| a.device_index);
    assert_eq!(
        index,
        Some(3),
        "the next index after the predecessor's at 2"
    );
    assert_eq!(calls(&cluster, "CreateTags"), (0, 0));
    assert_eq!(predecessor_enis(&cluster).await, before, "untouched");
    let multus = cluster.nodeenis().get("multus").await.unwrap();
    assert_eq!(finalizers(&multus), [PREDECESSOR_FINALIZER, OUR_FINALIZER]);
    cluster.kill_controller();
}
