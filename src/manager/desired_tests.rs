//! Table tests of the desired interfaces.

use serde_json::{Value, json};

use super::{DpdkWanted, EntryKey, desired};
use crate::api::NodeENI;

fn nodeeni(name: &str, spec: &Value, attachments: &Value) -> NodeENI {
    let mut full_spec = json!({
        "nodeSelector": {"ng": "multi-eni"},
        "subnetID": "subnet-0123456789abcdef0",
        "securityGroupIDs": ["sg-0123456789abcdef0"],
    });
    for (field, value) in spec.as_object().unwrap() {
        full_spec[field] = value.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.aws/v1alpha1",
        "kind": "NodeENI",
        "metadata": {"name": name},
        "spec": full_spec,
        "status": {"attachments": attachments},
    }))
    .unwrap()
}

fn entry(node: &str, subnet: &str, mac: &str, device_index: i32) -> Value {
    json!({
        "nodeName": node, "subnetID": subnet, "eniID": format!("eni-{subnet}"),
        "macAddress": mac, "deviceIndex": device_index, "state": "Attached",
    })
}

fn key(nodeeni: &str, subnet: &str) -> EntryKey {
    EntryKey {
        nodeeni: nodeeni.into(),
        subnet_id: subnet.into(),
    }
}

#[test]
fn only_this_nodes_entries_are_served_with_spec_name_and_mtu() {
    let list = [nodeeni(
        "multus",
        &json!({"interfaceName": "multus", "mtu": 9001}),
        &json!([
            entry("node-a", "subnet-a", "02:00:00:00:00:0a", 2),
            entry("node-b", "subnet-a", "02:00:00:00:00:0b", 2),
        ]),
    )];
    let desired = desired(&list, "node-a");
    assert_eq!(desired.serve.len(), 1);
    let wanted = &desired.serve[0];
    assert_eq!(wanted.key, key("multus", "subnet-a"));
    assert_eq!(wanted.mac.to_string(), "02:00:00:00:00:0a");
    assert_eq!(wanted.name.as_deref(), Some("multus"));
    assert_eq!(wanted.mtu, Some(9001));
    assert_eq!(wanted.eni_id.as_deref(), Some("eni-subnet-a"));
    assert_eq!(wanted.dpdk, None);
    assert_eq!(desired.entries.len(), 1);
}

#[test]
fn several_enis_of_one_nodeeni_get_suffixes_in_device_index_order() {
    let list = [nodeeni(
        "multus",
        &json!({"interfaceName": "m"}),
        &json!([
            entry("node-a", "subnet-x", "02:00:00:00:00:03", 3),
            entry("node-a", "subnet-y", "02:00:00:00:00:02", 2),
            entry("node-a", "subnet-z", "02:00:00:00:00:04", 4),
        ]),
    )];
    let names: Vec<_> = desired(&list, "node-a")
        .serve
        .into_iter()
        .map(|w| (w.key.subnet_id, w.name.unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("subnet-y".to_string(), "m0".to_string()),
            ("subnet-x".into(), "m1".into()),
            ("subnet-z".into(), "m2".into())
        ]
    );
}

#[test]
fn unset_name_and_zero_mtu_leave_the_interface_as_it_is() {
    let list = [nodeeni(
        "plain",
        &json!({"mtu": 0}),
        &json!([entry("node-a", "subnet-a", "02:00:00:00:00:0a", 1)]),
    )];
    let wanted = &desired(&list, "node-a").serve[0];
    assert_eq!((wanted.name.as_deref(), wanted.mtu), (None, None));
}

#[test]
fn detaching_deleted_primary_and_macless_entries_are_not_served_but_reported_on() {
    let mut detaching = entry("node-a", "subnet-d", "02:00:00:00:00:0d", 2);
    detaching["state"] = json!("Detaching");
    let primary = entry("node-a", "subnet-p", "02:00:00:00:00:01", 0);
    let pending = json!({"nodeName": "node-a", "subnetID": "subnet-n", "state": "Pending"});
    let agent_leftover = json!({"nodeName": "node-a", "subnetID": "subnet-l", "configured": true});
    let list = [nodeeni(
        "multus",
        &json!({}),
        &json!([detaching, primary, pending, agent_leftover]),
    )];
    let desired = desired(&list, "node-a");
    assert!(desired.serve.is_empty(), "{:?}", desired.serve);
    let entries: Vec<_> = desired
        .entries
        .iter()
        .map(|k| k.subnet_id.as_str())
        .collect();
    assert_eq!(entries, ["subnet-d", "subnet-n", "subnet-p"]);

    let mut deleting = nodeeni(
        "gone",
        &json!({}),
        &json!([entry("node-a", "subnet-a", "02:00:00:00:00:0a", 1)]),
    );
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
    let desired = super::desired(&[deleting], "node-a");
    assert!(desired.serve.is_empty());
    assert_eq!(desired.entries.len(), 1);
}

#[test]
fn dpdk_settings_come_from_the_spec() {
    let list = [nodeeni(
        "dpdk",
        &json!({"enableDPDK": true, "dpdkDriver": "igb_uio", "dpdkResourceName": "intel.com/ena_dpdk"}),
        &json!([entry("node-a", "subnet-a", "02:00:00:00:00:0a", 1)]),
    )];
    let wanted = &desired(&list, "node-a").serve[0];
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
fn a_malformed_mac_is_reported_not_served() {
    let list = [nodeeni(
        "multus",
        &json!({}),
        &json!([entry("node-a", "subnet-a", "02:00:00", 1)]),
    )];
    let desired = desired(&list, "node-a");
    assert!(desired.serve.is_empty());
    assert_eq!(desired.invalid.len(), 1);
    assert!(
        desired.invalid[0].1.contains("macAddress"),
        "{:?}",
        desired.invalid
    );
}
