//! An ENI left on its kernel driver and advertised to the SR-IOV device plugin
//! (`dpdkResourceName` without `enableDPDK`), on a real kernel: the device plugin's config
//! selects the virtio device by PCI address with its driver (virtio-pci), the interface is
//! configured on the node; the host-device CNI plugin, run as Multus runs it with the PCI
//! address the device plugin allocated, takes the interface into a pod's namespace and the
//! agent lets it (and still advertises the device, across its own restart); the interface
//! comes back when the pod goes and is configured again; the entry goes when the resource
//! name is removed and when the ENI is detached.

use std::time::Duration;

use serde_json::{Value, json};

use super::dpdk::{WAIT, has_link, plugin_pod, pod_going, wait_going};
use super::{Interface, VmCluster, restart_agent};
use crate::support::vm::NodeVm;

/// The pod's network as a NetworkAttachmentDefinition with the device plugin's resource
/// gives it to host-device: Multus adds the allocated device's PCI address as `deviceID`.
fn host_device(command: &str, pci: &str) -> String {
    format!(
        "echo '{{\"cniVersion\": \"0.4.0\", \"name\": \"ena-kernel\", \"type\": \"host-device\", \
         \"runtimeConfig\": {{\"deviceID\": \"{pci}\"}}}}' | CNI_COMMAND={command} \
         CNI_CONTAINERID=pod-kernel CNI_NETNS=/run/netns/pod CNI_IFNAME=net1 \
         CNI_PATH=/usr/lib/cni /usr/lib/cni/host-device"
    )
}

async fn plugin_config(vm: &NodeVm) -> Value {
    serde_json::from_str(&vm.sh("cat /etc/pcidp/config.json").await).expect("JSON")
}

fn configured_on_node(e: &Interface) -> bool {
    e.status.configured == Some(true) && e.status.interface_name.as_deref() == Some("hostdev0")
}

#[tokio::test]
async fn an_eni_on_its_kernel_driver_is_advertised_taken_by_a_pod_and_given_back() {
    let node = "vm-kernel-resource";
    let vc = VmCluster::start(node, &[("SRIOV_PLUGIN_SELECTOR", "app=sriovdp")]).await;
    let vm = vc.vm();
    plugin_pod(&vc, "sriovdp-1", node).await;
    let spec = json!({"deviceIndex": 1, "mtu": 9001, "interfaceName": "hostdev0",
                      "dpdkResourceName": "example.com/ena_kernel"});
    vc.apply_nodeeni("kernel", &spec).await;
    // Without a resource name: configured, never advertised.
    vc.apply_nodeeni("plain", &json!({"deviceIndex": 2})).await;

    let entry = vc
        .wait_entry("kernel", "configured and advertised", |e| {
            configured_on_node(e) && e.status.pci_address.is_some()
        })
        .await;
    let mac = entry.spec.mac_address.expect("the ENI's MAC");
    let pci = vm.pci_address(&mac).expect("plugged");
    assert_eq!(entry.status.pci_address.as_deref(), Some(pci.as_str()));
    assert_eq!(
        entry.status.dpdk_resource_name.as_deref(),
        Some("example.com/ena_kernel")
    );
    assert_eq!(entry.status.dpdk_bound, None);
    let link = vm.sh("ip -o link show hostdev0").await;
    assert!(link.contains("mtu 9001") && link.contains(",UP"), "{link}");
    let advertised = json!({"resourceList": [{"resourceName": "ena_kernel", "resourcePrefix": "example.com",
        "selectors": [{"drivers": ["virtio-pci"], "pciAddresses": [pci]}]}]});
    assert_eq!(plugin_config(vm).await, advertised);
    wait_going(&vc, "sriovdp-1").await;
    let plain = vc
        .wait_entry("plain", "configured", |e| e.status.configured == Some(true))
        .await;
    assert_eq!(plain.status.pci_address, None);
    plugin_pod(&vc, "sriovdp-2", node).await;

    taken_by_a_pod(&vc, &pci, &mac, &advertised).await;

    // The pod goes: host-device moves the interface back (down); configured again.
    vm.sh(&host_device("DEL", &pci)).await;
    vc.wait_entry("kernel", "back on the node", configured_on_node)
        .await;
    let link = vm.sh("ip -o link show hostdev0").await;
    assert!(
        link.contains(&format!("link/ether {mac} "))
            && link.contains("mtu 9001")
            && link.contains(",UP"),
        "{link}"
    );

    // The resource name removed: no longer advertised (the plugin restarted).
    vc.apply_nodeeni(
        "kernel",
        &json!({"deviceIndex": 1, "mtu": 9001, "interfaceName": "hostdev0"}),
    )
    .await;
    vc.wait_entry("kernel", "not advertised", |e| {
        e.status.pci_address.is_none()
    })
    .await;
    assert_eq!(plugin_config(vm).await, json!({"resourceList": []}));
    wait_going(&vc, "sriovdp-2").await;

    // Advertised again, then detached: the entry goes.
    vc.apply_nodeeni("kernel", &spec).await;
    vc.wait_entry("kernel", "advertised again", |e| {
        e.status.pci_address.is_some()
    })
    .await;
    assert_eq!(plugin_config(vm).await, advertised);
    vc.delete_until_unplugged("kernel", &pci).await;
    let withdrawn = tokio::time::timeout(WAIT, async {
        while plugin_config(vm).await != json!({"resourceList": []}) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    withdrawn
        .await
        .expect("the entry removed from the plugin's config");
    let state = vm.sh("cat /var/lib/multi-eni/dpdk-state.json").await;
    assert!(!state.contains(&pci), "{state}");
}

/// A pod takes the ENI: host-device moves the interface into the pod's namespace; the agent
/// lets it be and keeps advertising the device, also once restarted.
async fn taken_by_a_pod(vc: &VmCluster, pci: &str, mac: &str, advertised: &Value) {
    let vm = vc.vm();
    vm.sh("touch /run/netns/pod && unshare --net=/run/netns/pod true")
        .await;
    vm.sh(&host_device("ADD", pci)).await;
    let in_pod = vm
        .sh("nsenter --net=/run/netns/pod ip -o link show net1")
        .await;
    assert!(in_pod.contains(&format!("link/ether {mac} ")), "{in_pod}");
    let taken = vc
        .wait_entry("kernel", "reported taken", |e| {
            e.status.interface_name.is_none()
        })
        .await;
    assert_eq!(taken.status.configured, Some(true), "{:?}", taken.status);
    assert_eq!(taken.status.pci_address.as_deref(), Some(pci));
    assert_eq!(taken.status.message, None);
    restart_agent(vm).await;
    let in_pod = vm
        .sh("nsenter --net=/run/netns/pod ip -o link show net1")
        .await;
    assert!(in_pod.contains(&format!("link/ether {mac} ")), "{in_pod}");
    assert!(vm.try_sh(&has_link(mac)).await.unwrap().0 != 0);
    assert_eq!(plugin_config(vm).await, *advertised);
    assert!(!pod_going(vc, "sriovdp-2").await, "the plugin restarted");
    let entry = vc.entry("kernel").await.expect("the entry");
    assert_eq!(entry.status.configured, Some(true), "{:?}", entry.status);
    assert_eq!(entry.status.interface_name, None);
}
