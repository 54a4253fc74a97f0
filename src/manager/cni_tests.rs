//! Table tests of the pod networks' CNI configurations.

use serde_json::{Value, json};

use super::{file_name, is_owned, networks};
use crate::manager::desired::{EntryKey, PodNetworkWanted, Wanted};
use crate::manager::mac::Mac;

fn wanted(subnet: &str, network: Option<PodNetworkWanted>) -> Wanted {
    Wanted {
        key: EntryKey {
            nodeeni: "multus".into(),
            subnet_id: subnet.into(),
        },
        eni_id: Some(format!("eni-{subnet}")),
        mac: Mac([2, 0, 0, 0, 0, 1]),
        name: Some("multus".into()),
        mtu: Some(9001),
        dpdk: None,
        resource: None,
        pod_network: network,
    }
}

fn network(name: &str, addresses: &[&str], prefixes: &[&str]) -> PodNetworkWanted {
    PodNetworkWanted {
        name: name.into(),
        mode: "l2",
        subnet_cidr: Some("10.0.1.0/24".into()),
        addresses: addresses.iter().map(|a| (*a).into()).collect(),
        prefixes: prefixes.iter().map(|p| (*p).into()).collect(),
    }
}

fn range(start: &str, end: &str) -> Value {
    json!({"subnet": "10.0.1.0/24", "rangeStart": start, "rangeEnd": end, "gateway": "10.0.1.1"})
}

fn only_file(served: &[(&Wanted, Option<&str>)]) -> Value {
    let built = networks(served.iter().copied());
    assert_eq!(built.files.len(), 1, "{built:?}");
    let text = built.files.values().next().unwrap();
    assert!(text.ends_with('\n'));
    serde_json::from_str(text).unwrap()
}

#[test]
fn one_range_per_address_with_the_subnet_and_the_vpc_router() {
    let eni = wanted(
        "subnet-a",
        Some(network("pods", &["10.0.1.10", "10.0.1.11"], &[])),
    );
    let config = only_file(&[(&eni, Some("multus"))]);
    assert_eq!(
        config,
        json!({
            "cniVersion": "1.0.0", "name": "pods", "type": "ipvlan", "master": "multus",
            "mode": "l2", "mtu": 9001,
            "ipam": {"type": "host-local", "ranges": [[
                range("10.0.1.10", "10.0.1.10"), range("10.0.1.11", "10.0.1.11"),
            ]]},
        })
    );
    let built = networks([(&eni, Some("multus"))]);
    assert_eq!(
        built.files.keys().collect::<Vec<_>>(),
        ["multi-eni-pods.conf"]
    );
    assert!(built.reports[&eni.key].written);
}

#[test]
fn a_prefix_is_one_range_from_its_first_to_its_last_address() {
    let mut eni = wanted(
        "subnet-a",
        Some(network("pods", &[], &["10.0.1.32/28", "10.0.1.48/28"])),
    );
    eni.mtu = None;
    if let Some(network) = &mut eni.pod_network {
        network.mode = "l3";
    }
    let config = only_file(&[(&eni, Some("eth1"))]);
    assert_eq!(config["master"], "eth1");
    assert_eq!(config["mode"], "l3");
    assert!(config.get("mtu").is_none(), "no MTU: the master's");
    assert_eq!(
        config["ipam"]["ranges"],
        json!([[
            range("10.0.1.32", "10.0.1.47"),
            range("10.0.1.48", "10.0.1.63")
        ]])
    );
}

#[test]
fn entries_without_a_network_are_left_out() {
    let plain = wanted("subnet-a", None);
    let built = networks([(&plain, Some("multus"))]);
    assert!(built.files.is_empty() && built.reports.is_empty());
}

#[test]
fn nothing_is_written_without_an_interface_addresses_or_a_valid_spec() {
    let cases = [
        (
            network("pods", &["10.0.1.10"], &[]),
            None,
            "once the ENI's interface",
        ),
        (
            network("pods", &[], &[]),
            Some("multus"),
            "no addresses yet",
        ),
        (
            network("pods", &["10.0.2.10"], &[]),
            Some("multus"),
            "10.0.2.10 is outside the ENI's subnet 10.0.1.0/24",
        ),
        (
            network("pods", &[], &["10.0.1.250/28"]),
            Some("multus"),
            "spec ipv4Prefixes",
        ),
        (
            network("pods", &["ten"], &[]),
            Some("multus"),
            "spec ipv4Addresses",
        ),
        (
            PodNetworkWanted {
                subnet_cidr: None,
                ..network("pods", &["10.0.1.10"], &[])
            },
            Some("multus"),
            "no subnetCIDR",
        ),
    ];
    for (network, interface, expected) in cases {
        let eni = wanted("subnet-a", Some(network));
        let built = networks([(&eni, interface)]);
        assert!(built.files.is_empty(), "{expected}");
        let report = &built.reports[&eni.key];
        assert!(!report.written);
        let message = report.message.as_deref().unwrap();
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn several_enis_of_one_network_write_one_file_from_the_first() {
    let first = wanted("subnet-a", Some(network("pods", &["10.0.1.10"], &[])));
    let second = wanted("subnet-b", Some(network("pods", &["10.0.1.20"], &[])));
    let other = wanted("subnet-c", Some(network("other", &["10.0.1.30"], &[])));
    let built = networks([
        (&first, Some("multus0")),
        (&second, Some("multus1")),
        (&other, Some("multus2")),
    ]);
    assert_eq!(
        built.files.keys().collect::<Vec<_>>(),
        ["multi-eni-other.conf", "multi-eni-pods.conf"]
    );
    let pods: Value = serde_json::from_str(&built.files["multi-eni-pods.conf"]).unwrap();
    assert_eq!(pods["master"], "multus0");
    assert!(built.reports[&first.key].written);
    let report = &built.reports[&second.key];
    assert!(!report.written);
    let message = report.message.as_deref().unwrap();
    assert!(message.contains("eni-subnet-a"), "{message}");
    assert!(message.contains("one subnet per zone"), "{message}");
}

#[test]
fn owned_files_are_those_named_by_the_agent() {
    assert!(is_owned(&file_name("pods")));
    for foreign in [
        "multi-eni-.conf",
        "multi-eni.conf",
        "pods.conf",
        "multi-eni-pods.conflist",
        ".multi-eni-pods.conf.1.tmp",
    ] {
        assert!(!is_owned(foreign), "{foreign}");
    }
}
