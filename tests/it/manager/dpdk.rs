//! The agent with DPDK: binding an ENI found by MAC, advertising it to the SR-IOV device
//! plugin and restarting the plugin, and giving the device back.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use multi_eni::manager::{AgentConfig, PluginPods};
use serde_json::{Value, json};

use super::sysfs::settle;
use super::{
    attached, config, controller_writes, create_nodeeni, nodeenis, start_agent, wait_for_entry,
};
use crate::support::control_plane::{self, wait_for};
use crate::support::fake_sysfs::FakeSysfs;
use crate::support::netns::TestNetns;

const PCI: &str = "0000:00:06.0";

fn dpdk_config(node: &str, dir: &std::path::Path, sys: &FakeSysfs) -> AgentConfig {
    let mut config = config(node, dir);
    config.sysfs_root = sys.root().into();
    config.settle = settle();
    config
}

async fn plugin_pod(namespace: &str, name: &str, node: &str) {
    let pods: Api<Pod> = Api::namespaced(control_plane::shared().client().await, namespace);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "sriovdp"}},
        "spec": {"nodeName": node, "containers": [{"name": "plugin", "image": "sriov-network-device-plugin"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

async fn being_deleted(namespace: &str, name: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(control_plane::shared().client().await, namespace);
    pods.get_opt(name)
        .await
        .unwrap()
        .is_none_or(|pod| pod.metadata.deletion_timestamp.is_some())
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn a_dpdk_eni_is_bound_advertised_and_given_back_when_detaching() {
    let (name, node, subnet, mac) = (
        "dpdk-detach",
        "dpdk-node",
        "subnet-00000010",
        "02:00:00:00:07:10",
    );
    plugin_pod("kube-system", "sriovdp-here", node).await;
    plugin_pod("kube-system", "sriovdp-elsewhere", "another-node").await;

    let sys = FakeSysfs::new(&["ena", "vfio-pci"]);
    sys.add_device(PCI, "ena", Some("eth1"));
    let dir = tempfile::tempdir().unwrap();
    let mut config = dpdk_config(node, dir.path(), &sys);
    config.plugin = Some(PluginPods {
        namespace: "kube-system".into(),
        selector: "app=sriovdp".into(),
    });
    let (state_file, plugin_file) = (config.state_file.clone(), config.sriov_config.clone());
    create_nodeeni(name, &json!({"subnetIDs": [subnet], "enableDPDK": true, "dpdkResourceName": "example.com/ena_dpdk"})).await;
    controller_writes(name, &[attached(node, subnet, mac, 1)]).await;
    let ns = TestNetns::new();
    let _agent = start_agent(&ns, config).await;
    ns.add_link("eth1", mac).await;

    let entry = wait_for_entry(name, node, subnet, "dpdkBound: true", |e| {
        e.dpdk_bound == Some(true)
    })
    .await;
    assert_eq!(entry.pci_address.as_deref(), Some(PCI));
    assert_eq!(entry.dpdk_driver.as_deref(), Some("vfio-pci"));
    assert_eq!(
        entry.dpdk_resource_name.as_deref(),
        Some("example.com/ena_dpdk")
    );
    assert_eq!(
        (entry.configured, entry.interface_name.as_deref()),
        (Some(true), Some("eth1"))
    );
    assert_eq!(sys.driver(PCI).as_deref(), Some("vfio-pci"));
    assert_eq!(
        read_json(&state_file)["devices"][PCI]["originalDriver"],
        "ena"
    );
    wait_for("the plugin config", || async { plugin_file.exists() }).await;
    assert_eq!(
        read_json(&plugin_file),
        json!({"resourceList": [{"resourceName": "ena_dpdk", "resourcePrefix": "example.com",
                                 "selectors": [{"pciAddresses": [PCI]}]}]})
    );
    wait_for("the plugin pod on this node to be deleted", || async {
        being_deleted("kube-system", "sriovdp-here").await
    })
    .await;
    assert!(!being_deleted("kube-system", "sriovdp-elsewhere").await);

    // The controller starts detaching: the agent gives the device back first.
    let mut detaching = attached(node, subnet, mac, 1);
    detaching["state"] = json!("Detaching");
    controller_writes(name, &[detaching]).await;
    wait_for_entry(name, node, subnet, "dpdkBound: false", |e| {
        e.dpdk_bound == Some(false)
    })
    .await;
    assert_eq!(sys.driver(PCI).as_deref(), Some("ena"));
    assert_eq!(read_json(&state_file)["devices"], json!({}));
    assert_eq!(read_json(&plugin_file), json!({"resourceList": []}));
}

#[tokio::test]
async fn a_restarted_agent_gives_back_the_devices_in_its_record() {
    let (name, node, subnet, mac) = (
        "dpdk-restart",
        "dpdk-restart-node",
        "subnet-00000011",
        "02:00:00:00:08:11",
    );
    let sys = FakeSysfs::new(&["ena", "vfio-pci"]);
    sys.add_device(PCI, "ena", Some("eth1"));
    let dir = tempfile::tempdir().unwrap();
    create_nodeeni(name, &json!({"subnetIDs": [subnet], "enableDPDK": true})).await;
    controller_writes(name, &[attached(node, subnet, mac, 1)]).await;
    let ns = TestNetns::new();
    let agent = start_agent(&ns, dpdk_config(node, dir.path(), &sys)).await;
    ns.add_link("eth1", mac).await;
    wait_for_entry(name, node, subnet, "dpdkBound: true", |e| {
        e.dpdk_bound == Some(true)
    })
    .await;

    // Bound to vfio-pci, the device has no network interface; meanwhile DPDK is turned off.
    drop(agent);
    ns.delete("eth1").await;
    let patch = json!({"spec": {"enableDPDK": false}});
    nodeenis()
        .await
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();

    let _agent = start_agent(&ns, dpdk_config(node, dir.path(), &sys)).await;
    wait_for("the device to be given back to ena", || async {
        sys.driver(PCI).as_deref() == Some("ena")
    })
    .await;
    wait_for_entry(name, node, subnet, "dpdkBound: false", |e| {
        e.dpdk_bound == Some(false)
    })
    .await;
    // Back on ena, the kernel gives it a network interface again, which is configured.
    ns.add_link("eth1", mac).await;
    let entry = wait_for_entry(
        name,
        node,
        subnet,
        "configured as a kernel interface",
        |e| e.configured == Some(true) && e.dpdk_bound.is_none(),
    )
    .await;
    assert_eq!(entry.interface_name.as_deref(), Some("eth1"));
}
