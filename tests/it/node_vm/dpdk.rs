//! DPDK on a real kernel: the agent binds the hot-plugged virtio-net PCI device to
//! uio_pci_generic (its interface disappears), advertises it to the SR-IOV device plugin,
//! keeps it across its own restart, and gives it back to virtio-pci when DPDK is turned off
//! or the ENI is detached (the interface comes back).
//!
//! vfio-pci cannot take a device in this guest (Debian's cloud kernel is built without
//! VFIO_NOIOMMU and the `pc` machine has no IOMMU): `bind_refused` tests that case.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use super::{VmCluster, restart_agent};
use crate::support::vm::NodeVm;

pub const WAIT: Duration = Duration::from_mins(1);

/// The PCI driver of a device in the guest, `none` when unbound.
pub async fn driver(vm: &NodeVm, pci: &str) -> String {
    let script = format!(
        "basename \"$(readlink /sys/bus/pci/devices/{pci}/driver)\" 2>/dev/null || echo none"
    );
    vm.sh(&script).await.trim().to_owned()
}

/// Whether the guest has a network interface with `mac`.
pub fn has_link(mac: &str) -> String {
    format!("ip -o link | grep -q 'link/ether {mac} '")
}

pub async fn plugin_pod(vc: &VmCluster, name: &str, node: &str) {
    let pods: Api<Pod> = Api::namespaced(vc.cluster.client.clone(), "kube-system");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "sriovdp"}},
        "spec": {"nodeName": node, "containers": [{"name": "plugin", "image": "sriov-network-device-plugin"}]},
    }))
    .expect("a Pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the plugin's pod");
}

pub async fn pod_going(vc: &VmCluster, name: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(vc.cluster.client.clone(), "kube-system");
    let pod = pods.get_opt(name).await.expect("get the pod");
    pod.is_none_or(|pod| pod.metadata.deletion_timestamp.is_some())
}

/// Waits until the plugin's pod is deleted (given a deletion timestamp: no kubelet runs it).
pub async fn wait_going(vc: &VmCluster, pod: &str) {
    let going = tokio::time::timeout(WAIT, async {
        while !pod_going(vc, pod).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    going.await.expect("the plugin's pod deleted");
}

#[tokio::test]
async fn a_hot_plugged_eni_is_bound_kept_across_a_restart_and_given_back_with_its_name_and_mtu() {
    let node = "vm-dpdk";
    let vc = VmCluster::start(node, &[("SRIOV_PLUGIN_SELECTOR", "app=sriovdp")]).await;
    let vm = vc.vm();
    plugin_pod(&vc, "sriovdp-here", node).await;
    plugin_pod(&vc, "sriovdp-elsewhere", "another-node").await;
    let spec = json!({"deviceIndex": 1, "mtu": 9001, "interfaceName": "dpdk0", "enableDPDK": true,
                      "dpdkDriver": "uio_pci_generic", "dpdkResourceName": "intel.com/ena_dpdk"});
    vc.apply_nodeeni("dpdk", &spec).await;
    // A driver this kernel does not have: the entry says so, the device is left alone.
    let missing = json!({"deviceIndex": 2, "enableDPDK": true, "dpdkDriver": "igb_uio"});
    vc.apply_nodeeni("dpdk-missing", &missing).await;

    let entry = vc
        .wait_entry("dpdk", "dpdkBound: true", |e| {
            e.status.dpdk_bound == Some(true)
        })
        .await;
    let mac = entry.spec.mac_address.expect("the ENI's MAC");
    let pci = vm.pci_address(&mac).expect("the ENI is plugged");
    assert_eq!(entry.status.pci_address.as_deref(), Some(pci.as_str()));
    assert_eq!(entry.status.dpdk_driver.as_deref(), Some("uio_pci_generic"));
    assert_eq!(driver(vm, &pci).await, "uio_pci_generic");
    assert!(
        vm.try_sh(&has_link(&mac)).await.unwrap().0 != 0,
        "the interface is still there"
    );
    let state = vm.sh("cat /var/lib/multi-eni/dpdk-state.json").await;
    let state: serde_json::Value = serde_json::from_str(&state).expect("the agent's record");
    assert_eq!(
        state["devices"][&pci]["originalDriver"], "virtio-pci",
        "{state}"
    );
    let plugin_config = json!({"resourceList": [{"resourceName": "ena_dpdk", "resourcePrefix": "intel.com",
                                                 "selectors": [{"drivers": ["uio_pci_generic"], "pciAddresses": [pci]}]}]});
    let read_config = || async {
        let text = vm.sh("cat /etc/pcidp/config.json").await;
        serde_json::from_str::<serde_json::Value>(&text).expect("JSON")
    };
    assert_eq!(read_config().await, plugin_config);
    wait_going(&vc, "sriovdp-here").await;
    assert!(!pod_going(&vc, "sriovdp-elsewhere").await);

    let missing = vc
        .wait_entry("dpdk-missing", "the missing driver reported", |e| {
            e.status.message.is_some()
        })
        .await;
    let message = missing.status.message.unwrap_or_default();
    assert!(
        message.contains("modprobe igb_uio") && message.contains("spec.dpdkDriver"),
        "{message}"
    );
    let other_mac = missing.spec.mac_address.expect("a MAC");
    let other_pci = vm.pci_address(&other_mac).expect("plugged");
    assert_eq!(driver(vm, &other_pci).await, "virtio-pci");
    vm.sh(&has_link(&other_mac)).await;

    // Killed while the device is bound, and started again: it stays bound.
    restart_agent(vm).await;
    assert_eq!(driver(vm, &pci).await, "uio_pci_generic");
    assert_eq!(read_config().await, plugin_config);

    // DPDK off: the restarted agent gives the device back from its record; virtio_net
    // makes an interface of it again, which is named and configured.
    vc.apply_nodeeni(
        "dpdk",
        &json!({"deviceIndex": 1, "mtu": 9001, "interfaceName": "dpdk0"}),
    )
    .await;
    let entry = vc
        .wait_entry("dpdk", "configured as a kernel interface", |e| {
            e.status.configured == Some(true) && e.status.dpdk_bound != Some(true)
        })
        .await;
    assert_eq!(entry.status.interface_name.as_deref(), Some("dpdk0"));
    assert_eq!(driver(vm, &pci).await, "virtio-pci");
    let link = vm.sh("ip -o link show dpdk0").await;
    assert!(
        link.contains(&format!("link/ether {mac} "))
            && link.contains("mtu 9001")
            && link.contains(",UP"),
        "{link}"
    );
    assert_eq!(read_config().await, json!({"resourceList": []}));
}

#[tokio::test]
async fn a_bound_eni_is_given_back_before_it_is_detached_and_unplugged() {
    let node = "vm-dpdk-detach";
    let vc = VmCluster::start(node, &[]).await;
    let vm = vc.vm();
    let spec = json!({"mtu": 9001, "enableDPDK": true, "dpdkDriver": "uio_pci_generic"});
    vc.apply_nodeeni("dpdk-detach", &spec).await;
    let entry = vc
        .wait_entry("dpdk-detach", "dpdkBound: true", |e| {
            e.status.dpdk_bound == Some(true)
        })
        .await;
    let mac = entry.spec.mac_address.expect("the ENI's MAC");
    let pci = vm.pci_address(&mac).expect("plugged");
    assert_eq!(driver(vm, &pci).await, "uio_pci_generic");
    // The device may be back and gone again between two looks from here: the guest notes
    // the first sight of its interface itself.
    let watch = format!(
        "(until ip -o link | grep 'link/ether {mac} ' >/tmp/back; do usleep 20000; done) >/dev/null 2>&1 &"
    );
    vm.sh(&watch).await;

    // EC2 detaches only after the device is given back; the guest releases it (unplug),
    // then the ENI is deleted and the finalizer removed.
    vc.delete_until_unplugged("dpdk-detach", &pci).await;
    let gone = tokio::time::timeout(WAIT, async {
        while vc
            .cluster
            .nodeenis()
            .get_opt("dpdk-detach")
            .await
            .expect("get")
            .is_some()
            || !vc.cluster.owned_enis().await.is_empty()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    gone.await
        .expect("the ENI deleted and the finalizer removed");
    assert!(vc.fabric.settled(WAIT).await && vm.plugged().is_empty());
    // Given back before the detach: virtio_net had the device again, its interface under
    // the kernel's name with the kernel's MTU (nothing served it any more).
    let back = vm.sh("cat /tmp/back").await;
    assert!(
        back.contains(": eth") && back.contains(" mtu 1500 "),
        "the interface was not seen back before the unplug: {back:?}"
    );
}
