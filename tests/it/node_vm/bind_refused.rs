//! A DPDK driver the kernel refuses the device to: vfio-pci on a node without an IOMMU and
//! without vfio's no-IOMMU mode (this guest: the `pc` machine has no IOMMU, Debian's cloud
//! kernel no VFIO_NOIOMMU), the default `dpdkDriver`. The kernel answers the bind with EINVAL
//! after the device was unbound from virtio-pci: the agent gives it back at once, reports
//! why with the fixes, and does not try again until the node's modules or the spec change
//! (each try takes the interface away for a moment).

use std::time::Duration;

use serde_json::json;

use super::VmCluster;
use super::dpdk::{WAIT, driver, has_link};
use crate::support::vm::NodeVm;

/// The interface index of the guest's link with `mac` (a device bound anew gets a new
/// one), `None` when it has none.
async fn ifindex(vm: &NodeVm, mac: &str) -> Option<u32> {
    let script = format!("ip -o link | grep 'link/ether {mac} ' | cut -d: -f1");
    vm.sh(&script).await.trim().parse().ok()
}

/// The agent's count of refused binds, from its /metrics on the node's loopback (the
/// default `--metrics-addr`).
async fn refused_binds(vm: &NodeVm) -> u32 {
    let metrics = vm.sh("wget -qO- http://127.0.0.1:9810/metrics").await;
    let series = r#"multi_eni_agent_dpdk_binds_total{operation="bind",result="bind_refused"} "#;
    let line = metrics.lines().find_map(|line| line.strip_prefix(series));
    let line = line.unwrap_or_else(|| panic!("no refused binds in:\n{metrics}"));
    line.trim().parse().expect("a count")
}

/// Waits until the device is back on virtio-pci with an interface other than `before`'s;
/// its index.
async fn back_on_virtio(vm: &NodeVm, pci: &str, mac: &str, before: Option<u32>) -> u32 {
    let back = tokio::time::timeout(WAIT, async {
        loop {
            let index = ifindex(vm, mac)
                .await
                .filter(|index| Some(*index) != before);
            if let Some(index) = index
                && driver(vm, pci).await == "virtio-pci"
            {
                return index;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    back.await
        .expect("the device back on virtio-pci with its interface")
}

#[tokio::test]
async fn a_refused_vfio_bind_gives_the_device_back_and_waits_for_a_change() {
    let node = "vm-vfio";
    // A resync every second: a retry would show within the test.
    let vc = VmCluster::start(node, &[("RESYNC_PERIOD", "1s")]).await;
    let vm = vc.vm();
    vc.apply_nodeeni("vfio", &json!({"enableDPDK": true})).await;
    let entry = vc
        .wait_entry("vfio", "the refused bind reported", |e| {
            e.status
                .message
                .as_deref()
                .is_some_and(|m| m.contains("refused"))
        })
        .await;
    let message = entry.status.message.unwrap_or_default();
    for part in [
        "refused to bind",
        "to vfio-pci",
        "back on virtio-pci",
        "IOMMU",
        "enable_unsafe_noiommu_mode",
        "spec.dpdkDriver to uio_pci_generic",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert_eq!(entry.status.configured, Some(false));
    assert_eq!(entry.status.dpdk_bound, Some(false));
    let mac = entry.spec.mac_address.expect("the ENI's MAC");
    let pci = vm.pci_address(&mac).expect("plugged");
    let first = back_on_virtio(vm, &pci, &mac, None).await;
    let state = vm.sh("cat /var/lib/multi-eni/dpdk-state.json").await;
    assert!(
        !state.contains(&pci),
        "a device not bound is recorded: {state}"
    );

    // Nothing changes: not tried again, though the agent makes a full pass every second.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        ifindex(vm, &mac).await,
        Some(first),
        "the bind was tried again"
    );
    assert_eq!(driver(vm, &pci).await, "virtio-pci");
    assert_eq!(refused_binds(vm).await, 1);

    // The node's modules change: tried again, refused again, given back again, then left.
    vm.sh("rmmod ipvlan").await;
    let second = back_on_virtio(vm, &pci, &mac, Some(first)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        ifindex(vm, &mac).await,
        Some(second),
        "tried again with nothing changed"
    );
    assert_eq!(refused_binds(vm).await, 2);

    // The spec asks for a driver that works here: bound.
    let spec = json!({"enableDPDK": true, "dpdkDriver": "uio_pci_generic"});
    vc.apply_nodeeni("vfio", &spec).await;
    let entry = vc
        .wait_entry("vfio", "bound to uio_pci_generic", |e| {
            e.status.dpdk_bound == Some(true)
        })
        .await;
    assert_eq!(entry.status.configured, Some(true), "{:?}", entry.status);
    assert_eq!(driver(vm, &pci).await, "uio_pci_generic");
    assert!(vm.try_sh(&has_link(&mac)).await.unwrap().0 != 0);
}
