//! The pod networks' NetworkAttachmentDefinitions end to end: a real API server with
//! Multus's CRD installed by the test (or not), the EC2 simulator and the `multi-eni
//! controller` binary. One per listed namespace, kept in step, never touching one that is not
//! ours, gone before the NodeENI; a missing CRD is a condition.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use multi_eni::api::NodeENI;
use serde_json::json;

use crate::controller::WAIT;
use crate::controller::fast;
use crate::support::control_plane::wait_for;
use crate::support::repo_file;
use crate::support::sim_cluster::{SimCluster, ZONES};

fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition");
    ApiResource::from_gvk_with_plural(&gvk, "network-attachment-definitions")
}

fn nads(cluster: &SimCluster, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(cluster.client.clone(), namespace, &resource())
}

async fn install_multus_crd(cluster: &SimCluster) {
    let output = cluster.plane.kubectl_apply(
        &std::fs::read_to_string(repo_file(
            "tests/fixtures/crd/network-attachment-definition.yaml",
        ))
        .unwrap(),
        &[],
    );
    assert!(output.status.success(), "{output:?}");
    let all: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &resource());
    wait_for("Multus's CRD to be served", || async {
        all.list(&ListParams::default()).await.is_ok()
    })
    .await;
}

async fn create_namespaces(cluster: &SimCluster, names: &[&str]) {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    for name in names {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
}

/// One node, a controller resyncing every 3 s.
async fn cluster() -> SimCluster {
    let mut cluster = SimCluster::start(fast()).await;
    cluster
        .add_node("n1", ZONES[0], "m5.large", &[("ng", "multi-eni")])
        .await;
    cluster.start_controller(&["--resync-period", "3s"]);
    cluster
}

async fn apply(cluster: &SimCluster, network: serde_json::Value) {
    let spec = json!({
        "nodeSelector": {"ng": "multi-eni"},
        "subnetID": cluster.subnets[ZONES[0]],
        "securityGroupIDs": [cluster.security_group],
        "secondaryPrivateIPAddressCount": 2,
        "podNetwork": network,
    });
    cluster.apply_nodeeni("multus", spec).await;
}

/// The `PodNetworkReady` condition's (status, reason, message).
fn pod_network(nodeeni: &NodeENI) -> Option<(String, String, String)> {
    let status = nodeeni.status.as_ref()?;
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "PodNetworkReady")?;
    Some((
        condition.status.clone(),
        condition.reason.clone(),
        condition.message.clone(),
    ))
}

async fn wait_pod_network(cluster: &SimCluster, status: &str, reason: &str) -> String {
    let nodeeni = cluster
        .wait_nodeeni("multus", reason, WAIT, |n| {
            pod_network(n).is_some_and(|(s, r, _)| s == status && r == reason)
        })
        .await;
    pod_network(&nodeeni).unwrap().2
}

/// Where the NetworkAttachmentDefinition `name` exists, of the namespaces given.
async fn present(cluster: &SimCluster, name: &str, namespaces: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for namespace in namespaces {
        if nads(cluster, namespace)
            .get_opt(name)
            .await
            .unwrap()
            .is_some()
        {
            found.push((*namespace).to_owned());
        }
    }
    found
}

async fn wait_present(cluster: &SimCluster, name: &str, all: &[&str], expected: &[&str]) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found = present(cluster, name, all).await;
        if found == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} is in {found:?}, not {expected:?}\n{}",
            cluster.controller_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn nads_follow_the_nodeeni_and_leave_others_alone() {
    let cluster = cluster().await;
    install_multus_crd(&cluster).await;
    let all = ["team-a", "team-b", "team-c"];
    create_namespaces(&cluster, &all).await;
    // The user's own "pods" in team-c, without our labels.
    let theirs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "pods", "namespace": "team-c"},
        "spec": {"config": "{\"cniVersion\": \"0.4.0\", \"type\": \"macvlan\"}"},
    }))
    .unwrap();
    let theirs = nads(&cluster, "team-c")
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();

    apply(
        &cluster,
        json!({"name": "pods", "namespaces": ["team-a", "team-b"]}),
    )
    .await;
    wait_present(&cluster, "pods", &all, &["team-a", "team-b", "team-c"]).await;
    let message = wait_pod_network(&cluster, "True", "NetworkAttachmentDefinitionsCreated").await;
    assert!(message.contains("team-a, team-b"), "{message}");
    let ours = nads(&cluster, "team-a").get("pods").await.unwrap();
    let labels = ours.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "multi-eni");
    assert_eq!(labels["multi-eni.k8s.aws/nodeeni"], "multus");
    assert!(ours.data["spec"].get("config").is_none(), "{:?}", ours.data);

    // A namespace dropped and one added whose "pods" is the user's: that one is reported,
    // not touched.
    apply(
        &cluster,
        json!({"name": "pods", "namespaces": ["team-b", "team-c"]}),
    )
    .await;
    let message = wait_pod_network(&cluster, "False", "NetworkAttachmentDefinitionConflict").await;
    assert!(message.contains("team-c/pods"), "{message}");
    wait_present(&cluster, "pods", &all, &["team-b", "team-c"]).await;
    let still = nads(&cluster, "team-c").get("pods").await.unwrap();
    assert_eq!(
        still.metadata.resource_version,
        theirs.metadata.resource_version
    );

    // Renamed: the old name goes, the new one comes, in both namespaces.
    apply(
        &cluster,
        json!({"name": "pods2", "namespaces": ["team-b", "team-c"]}),
    )
    .await;
    wait_present(&cluster, "pods2", &all, &["team-b", "team-c"]).await;
    wait_present(&cluster, "pods", &all, &["team-c"]).await;
    wait_pod_network(&cluster, "True", "NetworkAttachmentDefinitionsCreated").await;

    // Deleted with the NodeENI, before its finalizer goes; the user's stays.
    cluster
        .nodeenis()
        .delete("multus", &DeleteParams::default())
        .await
        .unwrap();
    cluster.wait_nodeeni_gone("multus", WAIT).await;
    assert_eq!(present(&cluster, "pods2", &all).await, Vec::<String>::new());
    assert_eq!(present(&cluster, "pods", &all).await, ["team-c"]);
}

#[tokio::test]
async fn a_missing_crd_is_a_condition_until_multus_is_installed() {
    let cluster = cluster().await;
    create_namespaces(&cluster, &["team-a"]).await;
    apply(&cluster, json!({"namespaces": ["team-a"]})).await;
    let message =
        wait_pod_network(&cluster, "False", "NetworkAttachmentDefinitionCRDMissing").await;
    assert!(message.contains("install Multus"), "{message}");
    // The ENIs do not wait for Multus.
    cluster
        .wait_nodeeni("multus", "Ready", WAIT, crate::controller::ready)
        .await;
    install_multus_crd(&cluster).await;
    wait_pod_network(&cluster, "True", "NetworkAttachmentDefinitionsCreated").await;
    wait_present(&cluster, "multus", &["team-a"], &["team-a"]).await;
    // Removing the pod network removes its NetworkAttachmentDefinitions.
    let spec = json!({
        "nodeSelector": {"ng": "multi-eni"},
        "subnetID": cluster.subnets[ZONES[0]],
        "securityGroupIDs": [cluster.security_group],
        "secondaryPrivateIPAddressCount": 2,
    });
    cluster.apply_nodeeni("multus", spec).await;
    wait_present(&cluster, "multus", &["team-a"], &[]).await;
    cluster
        .wait_nodeeni("multus", "no PodNetworkReady", WAIT, |n| {
            pod_network(n).is_none()
        })
        .await;
}
