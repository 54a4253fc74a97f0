//! Tests of the NodeENI status: bounded, those not ready first, the agents' word from the
//! ENINodes.

use std::collections::BTreeMap;

use super::*;
use crate::controller::desired::{NodeProblem, Slot};
use crate::controller::eninode::AgentReport;
use crate::ec2::types::Subnet;

fn slot(node: &str) -> Slot {
    Slot {
        owner: Owner {
            cluster: "prod".into(),
            nodeeni: "multus".into(),
            node: node.into(),
            instance: format!("i-{node}"),
            subnet: "subnet-a".into(),
        },
        subnet: Subnet {
            id: "subnet-a".into(),
            ..Subnet::default()
        },
        preferred_index: 1,
    }
}

fn eni(node: &str) -> Eni {
    Eni {
        id: format!("eni-{node}"),
        ..Eni::default()
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap())
}

/// `n` selected nodes, all attached but `n005` (still attaching), plus a node without a
/// provider ID; `reports_of` gives each node's agent report.
fn cluster(
    n: usize,
    reports_of: impl Fn(&str) -> Option<bool>,
) -> (
    Desired,
    BTreeMap<Owner, SlotReport>,
    BTreeMap<String, Observed>,
) {
    let mut desired = Desired::default();
    let mut reports = BTreeMap::new();
    let mut eninodes = BTreeMap::new();
    for i in 0..n {
        let node = format!("n{i:03}");
        let slot = slot(&node);
        let state = if node == "n005" {
            AttachmentState::Attaching
        } else {
            AttachmentState::Attached
        };
        let report = SlotReport {
            state,
            eni: Some(eni(&node)),
            reason: None,
            message: None,
        };
        reports.insert(slot.owner.clone(), report);
        if let Some(configured) = reports_of(&node) {
            let agent = AgentReport {
                eni_id: Some(format!("eni-{node}")),
                interface_name: Some("multus".into()),
                configured: Some(configured),
                message: (!configured).then(|| "MTU 9001 refused".into()),
                dpdk_bound: None,
            };
            let observed = Observed {
                agent: BTreeMap::from([(("multus".into(), "subnet-a".into()), agent)]),
                ..Observed::default()
            };
            eninodes.insert(node.clone(), observed);
        }
        desired.slots.push(slot);
    }
    desired.problems.push(NodeProblem {
        node: "zz-no-provider".into(),
        reason: "NoProviderID",
        message: "the node has no AWS provider ID".into(),
    });
    desired.selected_nodes = n + 1;
    (desired, reports, eninodes)
}

fn build_with(
    desired: &Desired,
    reports: &BTreeMap<Owner, SlotReport>,
    eninodes: &BTreeMap<String, Observed>,
) -> NodeENIStatus {
    build(&Input {
        name: "multus",
        generation: Some(3),
        desired,
        reports,
        releasing: &[],
        blocker: None,
        eninodes,
        pod_network: None,
        current: None,
        now: now(),
    })
}

#[test]
fn a_thousand_nodes_list_32_entries_those_not_ready_first() {
    let (desired, reports, eninodes) = cluster(1000, |node| Some(node != "n500"));
    let status = build_with(&desired, &reports, &eninodes);
    assert_eq!(status.attachments.len(), MAX_ATTACHMENTS);
    assert_eq!(status.omitted_attachments, 1001 - 32);
    assert_eq!(
        (
            status.desired_nodes,
            status.attached_nodes,
            status.configured_nodes
        ),
        (1001, 999, 998)
    );
    let first: Vec<_> = status.attachments[..3]
        .iter()
        .map(|a| (a.node_name.as_str(), a.reason.as_deref()))
        .collect();
    assert_eq!(
        first,
        [
            ("n005", None),
            ("n500", Some("InterfaceNotConfigured")),
            ("zz-no-provider", Some("NoProviderID"))
        ]
    );
    assert_eq!(
        status.attachments[1].message.as_deref(),
        Some("MTU 9001 refused")
    );
    assert_eq!(status.attachments[3].node_name, "n000");
    let entry = &status.attachments[3];
    assert_eq!(
        (
            entry.eni_id.as_deref(),
            entry.interface_name.as_deref(),
            entry.configured
        ),
        (Some("eni-n000"), Some("multus"), Some(true))
    );
    let ready = &status.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NoProviderID")
    );
    let size = serde_json::to_vec(&status).unwrap().len();
    assert!(size < 16 * 1024, "{size} bytes");
}

#[test]
fn ready_waits_for_the_agents_that_report() {
    // Every ENI attached; one agent reports its interface not configured.
    let (mut desired, mut reports, eninodes) = cluster(3, |node| Some(node != "n001"));
    desired.problems.clear();
    desired.selected_nodes = 3;
    for report in reports.values_mut() {
        report.state = AttachmentState::Attached;
    }
    let status = build_with(&desired, &reports, &eninodes);
    let ready = &status.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reasons::INTERFACE_NOT_CONFIGURED)
    );
    assert!(ready.message.contains("n001") && ready.message.contains("MTU 9001 refused"));
    assert_eq!((status.attached_nodes, status.configured_nodes), (3, 2));

    // Agents that have not reported yet do not hold Ready back (the controller benchmark
    // runs none); they only count as not configured.
    let status = build_with(&desired, &reports, &BTreeMap::new());
    assert_eq!(status.conditions[0].status, "True");
    assert_eq!((status.attached_nodes, status.configured_nodes), (3, 0));
    assert!(!differs(&status, Some(&status)));
}
