//! Table tests of the desired interfaces.

use serde_json::{Value, json};

use super::{DpdkWanted, EntryKey, ResourceWanted, desired};
use crate::api::ENINode;

fn eninode(interfaces: &Value) -> ENINode {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.aws/v1alpha1",
        "kind": "ENINode",
        "metadata": {"name": "node-a"},
        "spec": {"instanceID": "i-0123456789abcdef0", "interfaces": interfaces},
    }))
    .unwrap()
}

fn entry(nodeeni: &str, subnet: &str, mac: &str, device_index: i32) -> Value {
    json!({
        "nodeENI": nodeeni, "subnetID": subnet, "eniID": format!("eni-{subnet}"),
        "macAddress": mac, "deviceIndex": device_index, "networkCardIndex": 0,
        "state": "Attached",
    })
}

fn with(mut entry: Value, fields: &Value) -> Value {
    for (field, value) in fields.as_object().unwrap() {
        entry[field] = value.clone();
    }
    entry
}

fn key(nodeeni: &str, subnet: &str) -> EntryKey {
    EntryKey {
        nodeeni: nodeeni.into(),
        subnet_id: subnet.into(),
    }
}

#[test]
fn entries_are_served_with_the_name_and_mtu_the_controller_wrote() {
    let node = eninode(&json!([with(
        entry("multus", "subnet-a", "02:00:00:00:00:0a", 2),
        &json!({"interfaceName": "multus", "mtu": 9001})
    )]));
    let desired = desired(Some(&node));
    assert_eq!(desired.serve.len(), 1);
    let wanted = &desired.serve[0];
    assert_eq!(wanted.key, key("multus", "subnet-a"));
    assert_eq!(wanted.mac.to_string(), "02:00:00:00:00:0a");
    assert_eq!(wanted.name.as_deref(), Some("multus"));
    assert_eq!(wanted.mtu, Some(9001));
    assert_eq!(wanted.eni_id.as_deref(), Some("eni-subnet-a"));
    assert_eq!(wanted.dpdk, None);
    assert_eq!(desired.entries.len(), 1);
    assert_eq!(super::desired(None), super::Desired::default());
}

#[test]
fn served_in_nodeeni_card_and_device_index_order() {
    let node = eninode(&json!([
        entry("m", "subnet-x", "02:00:00:00:00:03", 3),
        entry("m", "subnet-y", "02:00:00:00:00:02", 2),
        entry("a", "subnet-z", "02:00:00:00:00:04", 4),
    ]));
    let order: Vec<_> = desired(Some(&node))
        .serve
        .into_iter()
        .map(|w| w.key.subnet_id)
        .collect();
    assert_eq!(order, ["subnet-z", "subnet-y", "subnet-x"]);
}

#[test]
fn unset_name_and_zero_mtu_leave_the_interface_as_it_is() {
    let node = eninode(&json!([with(
        entry("plain", "subnet-a", "02:00:00:00:00:0a", 1),
        &json!({"mtu": 0})
    )]));
    let wanted = &desired(Some(&node)).serve[0];
    assert_eq!((wanted.name.as_deref(), wanted.mtu), (None, None));
}

#[test]
fn detaching_deleting_primary_and_macless_entries_are_not_served_but_reported_on() {
    let detaching = with(
        entry("multus", "subnet-d", "02:00:00:00:00:0d", 2),
        &json!({"state": "Detaching", "reason": "DPDKRelease"}),
    );
    let deleting = with(
        entry("multus", "subnet-e", "02:00:00:00:00:0e", 3),
        &json!({"state": "Deleting"}),
    );
    let primary = entry("multus", "subnet-p", "02:00:00:00:00:01", 0);
    let pending = json!({"nodeENI": "multus", "subnetID": "subnet-n", "state": "Pending"});
    let node = eninode(&json!([detaching, deleting, primary, pending]));
    let desired = desired(Some(&node));
    assert!(desired.serve.is_empty(), "{:?}", desired.serve);
    let entries: Vec<_> = desired
        .entries
        .iter()
        .map(|k| k.subnet_id.as_str())
        .collect();
    assert_eq!(entries, ["subnet-d", "subnet-e", "subnet-n", "subnet-p"]);
}

#[test]
fn dpdk_settings_come_from_the_entry() {
    let node = eninode(&json!([with(
        entry("dpdk", "subnet-a", "02:00:00:00:00:0a", 1),
        &json!({"enableDPDK": true, "dpdkDriver": "igb_uio", "dpdkResourceName": "intel.com/ena_dpdk"})
    )]));
    let wanted = &desired(Some(&node)).serve[0];
    assert_eq!(
        wanted.dpdk,
        Some(DpdkWanted {
            driver: "igb_uio",
            resource: Some("intel.com/ena_dpdk".into()),
            pci_address: None,
        })
    );
}

#[test]
fn a_resource_name_without_dpdk_advertises_the_device_on_its_kernel_driver() {
    let resource = json!({"dpdkResourceName": "example.com/ena", "dpdkPCIAddress": "0000:00:07.0"});
    let node = eninode(&json!([
        with(
            entry("kernel", "subnet-a", "02:00:00:00:00:0a", 1),
            &resource
        ),
        entry("plain", "subnet-a", "02:00:00:00:00:0b", 2),
        with(
            entry("dpdk", "subnet-a", "02:00:00:00:00:0c", 3),
            &json!({"enableDPDK": true, "dpdkResourceName": "example.com/dpdk"})
        ),
        with(
            entry("primary", "subnet-a", "02:00:00:00:00:0d", 0),
            &resource
        ),
    ]));
    let desired = desired(Some(&node));
    let resources: Vec<(&str, Option<&ResourceWanted>)> = (desired.serve.iter())
        .map(|w| (w.key.nodeeni.as_str(), w.resource.as_ref()))
        .collect();
    let kernel = ResourceWanted {
        name: "example.com/ena".into(),
        pci_address: Some("0000:00:07.0".into()),
    };
    assert_eq!(
        resources,
        [("dpdk", None), ("kernel", Some(&kernel)), ("plain", None)]
    );
}

#[test]
fn a_malformed_mac_is_reported_not_served() {
    let node = eninode(&json!([entry("multus", "subnet-a", "02:00:00", 1)]));
    let desired = desired(Some(&node));
    assert!(desired.serve.is_empty());
    assert_eq!(desired.invalid.len(), 1);
    assert!(
        desired.invalid[0].1.contains("macAddress"),
        "{:?}",
        desired.invalid
    );
}
