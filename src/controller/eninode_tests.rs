//! Table tests of the ENINodes the controller writes.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::api::DpdkDriver;
use crate::ec2::types::{AttachmentStatus, EniAttachment, Subnet};

fn owner(nodeeni: &str, node: &str, subnet: &str) -> Owner {
    Owner {
        cluster: "prod".into(),
        nodeeni: nodeeni.into(),
        node: node.into(),
        instance: format!("i-{node}"),
        subnet: subnet.into(),
    }
}

fn slot(nodeeni: &str, node: &str, subnet: &str, preferred_index: i32) -> Slot {
    Slot {
        owner: owner(nodeeni, node, subnet),
        subnet: Subnet {
            id: subnet.into(),
            cidr_block: "10.0.0.0/20".into(),
            ..Subnet::default()
        },
        preferred_index,
    }
}

fn attached_eni(owner: &Owner, device_index: i32) -> Eni {
    Eni {
        id: format!("eni-{}-{}", owner.node, owner.subnet),
        mac_address: format!("02:00:00:00:00:{device_index:02x}"),
        tags: owner.tags(&BTreeMap::new()),
        attachment: Some(EniAttachment {
            id: "eni-attach-1".into(),
            instance_id: owner.instance.clone(),
            device_index,
            network_card_index: 0,
            status: AttachmentStatus::Attached,
            delete_on_termination: true,
        }),
        ..Eni::default()
    }
}

fn report(state: AttachmentState, eni: Option<Eni>) -> SlotReport {
    SlotReport {
        state,
        eni,
        reason: None,
        message: None,
    }
}

fn spec(extra: &serde_json::Value) -> NodeENISpec {
    let mut spec = json!({
        "nodeSelector": {"ng": "multi-eni"},
        "subnetIDs": ["subnet-a", "subnet-b"],
        "securityGroupIDs": ["sg-0123abcd"],
    });
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    serde_json::from_value(spec).unwrap()
}

fn nodes(names: &[&str]) -> BTreeMap<String, NodeInfo> {
    names
        .iter()
        .map(|name| {
            let mut info = NodeInfo::new(name, BTreeMap::new(), None, false);
            info.uid = format!("uid-{name}");
            ((*name).to_owned(), info)
        })
        .collect()
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap())
}

/// The specs `writes` applies.
fn applied(writes: &[Write]) -> BTreeMap<String, ENINodeSpec> {
    writes
        .iter()
        .filter_map(|write| match write {
            Write::Apply { node, spec, .. } => Some((node.clone(), spec.clone())),
            Write::Delete { .. } => None,
        })
        .collect()
}

#[test]
fn every_slot_gets_an_entry_with_names_ranked_by_device_index_not_attach_order() {
    let slots = [
        slot("multus", "n1", "subnet-b", 3),
        slot("multus", "n1", "subnet-a", 2),
        slot("multus", "n2", "subnet-a", 2),
    ];
    let mut reports = BTreeMap::new();
    // Only n1's second slot is attached yet: its name is still multus1.
    let eni = attached_eni(&slots[0].owner, 3);
    reports.insert(
        slots[0].owner.clone(),
        report(AttachmentState::Attached, Some(eni)),
    );
    reports.insert(
        slots[1].owner.clone(),
        report(AttachmentState::Pending, None),
    );
    reports.insert(
        slots[2].owner.clone(),
        report(AttachmentState::Pending, None),
    );
    let nodeeni = spec(&json!({"interfaceName": "multus", "mtu": 9001}));
    let sources = [Source {
        name: "multus",
        spec: &nodeeni,
        slots: &slots,
    }];
    let nodes = nodes(&["n1", "n2"]);
    let current = BTreeMap::new();
    let input = Input {
        sources: &sources,
        reports: &reports,
        releasing: &[],
        nodes: &nodes,
        current: &current,
        now: now(),
    };
    let specs = applied(&writes(&input));
    let n1 = &specs["n1"];
    assert_eq!(n1.instance_id.as_deref(), Some("i-n1"));
    let names: Vec<_> = n1
        .interfaces
        .iter()
        .map(|i| (i.subnet_id.as_str(), i.interface_name.as_deref(), i.state))
        .collect();
    assert_eq!(
        names,
        [
            ("subnet-a", Some("multus0"), AttachmentState::Pending),
            ("subnet-b", Some("multus1"), AttachmentState::Attached)
        ]
    );
    let b = &n1.interfaces[1];
    assert_eq!(b.mac_address.as_deref(), Some("02:00:00:00:00:03"));
    assert_eq!((b.device_index, b.network_card_index), (Some(3), Some(0)));
    assert_eq!(b.subnet_cidr.as_deref(), Some("10.0.0.0/20"));
    assert_eq!(b.mtu, Some(9001));
    assert_eq!(b.last_transition_time, Some(now()));
    assert_eq!((b.enable_dpdk, b.dpdk_driver), (false, None));
    // One slot alone keeps the name as it is.
    assert_eq!(
        specs["n2"].interfaces[0].interface_name.as_deref(),
        Some("multus")
    );
}

#[test]
fn dpdk_settings_are_written_only_with_enable_dpdk_and_a_resource_name_always() {
    let slots = [slot("dpdk", "n1", "subnet-a", 1)];
    let reports = BTreeMap::from([(
        slots[0].owner.clone(),
        report(AttachmentState::Pending, None),
    )]);
    let nodes = nodes(&["n1"]);
    let current = BTreeMap::new();
    let cases = [
        (true, Some("intel.com/ena"), Some(DpdkDriver::IgbUio), true),
        (false, Some("intel.com/ena"), None, true),
        (false, None, None, false),
    ];
    for (enabled, resource, driver, pci) in cases {
        let nodeeni = spec(&json!({
            "enableDPDK": enabled, "dpdkDriver": "igb_uio", "dpdkResourceName": resource,
            "dpdkPCIAddress": "0000:00:06.0", "mtu": 0,
        }));
        let sources = [Source {
            name: "dpdk",
            spec: &nodeeni,
            slots: &slots,
        }];
        let input = Input {
            sources: &sources,
            reports: &reports,
            releasing: &[],
            nodes: &nodes,
            current: &current,
            now: now(),
        };
        let entry = applied(&writes(&input))["n1"].interfaces[0].clone();
        assert_eq!((entry.enable_dpdk, entry.dpdk_driver), (enabled, driver));
        assert_eq!(entry.dpdk_resource_name.as_deref(), resource);
        assert_eq!(entry.dpdk_pci_address.is_some(), pci);
        assert_eq!(entry.mtu, None, "mtu 0 leaves the MTU alone");
    }
}

#[test]
fn a_steady_state_writes_nothing_and_nodes_without_entries_lose_their_eninode() {
    let slots = [slot("multus", "n1", "subnet-a", 1)];
    let eni = attached_eni(&slots[0].owner, 1);
    let reports = BTreeMap::from([(
        slots[0].owner.clone(),
        report(AttachmentState::Attached, Some(eni)),
    )]);
    let nodeeni = spec(&json!({}));
    let sources = [Source {
        name: "multus",
        spec: &nodeeni,
        slots: &slots,
    }];
    let known = nodes(&["n1", "gone"]);
    let run = |nodes: &BTreeMap<String, NodeInfo>, current: &BTreeMap<String, Observed>, second| {
        writes(&Input {
            sources: &sources,
            reports: &reports,
            releasing: &[],
            nodes,
            current,
            now: Time(k8s_openapi::jiff::Timestamp::from_second(second).unwrap()),
        })
    };
    let first = run(&known, &BTreeMap::new(), 1_000_000);
    let [Write::Apply { node, uid, spec }] = first.as_slice() else {
        panic!("{first:?}")
    };
    assert_eq!((node.as_str(), uid.as_str()), ("n1", "uid-n1"));

    // As the API server has it: no write, even a minute later.
    let observed = Observed {
        spec: spec.clone(),
        owner_uid: Some(uid.clone()),
        ..Observed::default()
    };
    let mut current = BTreeMap::from([
        ("n1".to_owned(), observed.clone()),
        ("gone".to_owned(), observed),
    ]);
    assert_eq!(
        run(&known, &current, 1_000_060),
        [Write::Delete {
            node: "gone".into()
        }]
    );

    // A Node created again under the same name (another UID) gets its owner reference fixed.
    current.remove("gone");
    current.get_mut("n1").unwrap().owner_uid = Some("uid-before".into());
    assert!(matches!(
        run(&known, &current, 1_000_060).as_slice(),
        [Write::Apply { .. }]
    ));

    // A node the controller does not know (no Node, no UID) gets no ENINode.
    assert!(run(&BTreeMap::new(), &BTreeMap::new(), 1_000_060).is_empty());
}

#[test]
fn an_unwanted_eni_held_for_dpdk_keeps_an_entry_until_released() {
    let held = attached_eni(&owner("dpdk", "n1", "subnet-a"), 1);
    let nodes = nodes(&["n1"]);
    let current = BTreeMap::new();
    let input = Input {
        sources: &[],
        reports: &BTreeMap::new(),
        releasing: std::slice::from_ref(&held),
        nodes: &nodes,
        current: &current,
        now: now(),
    };
    let specs = applied(&writes(&input));
    let entry = &specs["n1"].interfaces[0];
    assert_eq!(
        (
            entry.node_eni.as_str(),
            entry.state,
            entry.reason.as_deref()
        ),
        (
            "dpdk",
            AttachmentState::Detaching,
            Some(reasons::DPDK_RELEASE)
        )
    );
    assert_eq!(entry.eni_id.as_deref(), Some(held.id.as_str()));
    assert_eq!(entry.mac_address.as_deref(), Some("02:00:00:00:00:01"));
}

#[test]
fn agent_reports_count_only_for_the_eni_they_name() {
    let eninode: ENINode = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.aws/v1alpha1", "kind": "ENINode",
        "metadata": {"name": "n1", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-n1"}]},
        "spec": {"interfaces": []},
        "status": {"interfaces": [
            {"nodeENI": "multus", "subnetID": "subnet-a", "eniID": "eni-1", "configured": true},
            {"nodeENI": "dpdk", "subnetID": "subnet-a", "dpdkBound": true},
        ]},
    }))
    .unwrap();
    let observed = Observed::new(eninode);
    assert_eq!(observed.owner_uid.as_deref(), Some("uid-n1"));
    let configured = |eni| {
        observed
            .report_on("multus", "subnet-a", eni)
            .and_then(|r| r.configured)
    };
    assert_eq!(configured(Some("eni-1")), Some(true));
    assert_eq!(
        configured(Some("eni-2")),
        None,
        "a report on an earlier ENI"
    );
    assert!(
        observed
            .report_on("dpdk", "subnet-a", Some("eni-3"))
            .is_some()
    );
}

#[test]
fn a_reading_never_takes_back_a_newer_spec_or_agent_report() {
    let reading = |generation: i64, configured: bool| {
        let agent = AgentReport {
            configured: Some(configured),
            ..AgentReport::default()
        };
        Observed {
            uid: Some("uid-1".into()),
            generation: Some(generation),
            spec: ENINodeSpec {
                instance_id: Some(format!("generation {generation}")),
                interfaces: Vec::new(),
            },
            owner_uid: Some("uid-n1".into()),
            agent: BTreeMap::from([(("multus".into(), "subnet-a".into()), agent)]),
        }
    };
    let configured = |o: &Observed| o.agent.values().next().unwrap().configured;
    // The watch brought the agent's report (configured) on generation 2; the answer to the
    // write of generation 2, taken in later, still shows the report before it.
    let from_watch = reading(2, true);
    let answer = reading(2, false).replacing(Some(&from_watch), false);
    assert_eq!(configured(&answer), Some(true));
    // An event of generation 1 arriving after the answer of generation 2: the spec stays.
    let late = reading(1, true).replacing(Some(&answer), true);
    assert_eq!(late.generation, Some(2));
    assert_eq!(late.spec.instance_id.as_deref(), Some("generation 2"));
    // Another object under the same name (deleted and created again): taken as it is.
    let mut other = reading(1, false);
    other.uid = Some("uid-2".into());
    let taken = other.clone().replacing(Some(&answer), false);
    assert_eq!(taken, other);
}
