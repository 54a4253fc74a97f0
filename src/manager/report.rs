//! What the agent writes into its ENINode's status: one entry per interface of the spec it
//! has something to say about, and the `Ready` condition. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use std::collections::BTreeMap;

use crate::api::{ENINodeStatus, InterfaceStatus};
use crate::manager::cni::NetworkReport;
use crate::manager::desired::{Desired, EntryKey};
use crate::manager::outcome::Outcome;

/// The agent's entries, sorted by NodeENI and subnet.
pub type Reports = Vec<InterfaceStatus>;

/// The reports for the entries of the spec (never others: the status would keep an entry
/// the controller removed), with what became of their pod networks.
pub fn reports<'a>(
    desired: &Desired,
    outcomes: impl IntoIterator<Item = &'a Outcome>,
    networks: &BTreeMap<EntryKey, NetworkReport>,
) -> Reports {
    let mut reports = Reports::new();
    for outcome in outcomes {
        if desired.entries.contains(&outcome.key) {
            let mut entry = entry(outcome);
            if let Some(network) = networks.get(&outcome.key) {
                entry.pod_network_written = Some(network.written);
                entry.pod_network_message.clone_from(&network.message);
            }
            reports.push(entry);
        }
    }
    for (key, message) in &desired.invalid {
        let mut entry = keys(key);
        entry.configured = Some(false);
        entry.message = Some(message.clone());
        reports.push(entry);
    }
    reports.retain(has_agent_fields);
    reports.sort_by(|a, b| (&a.node_eni, &a.subnet_id).cmp(&(&b.node_eni, &b.subnet_id)));
    reports
}

fn entry(outcome: &Outcome) -> InterfaceStatus {
    let mut entry = keys(&outcome.key);
    entry.eni_id.clone_from(&outcome.eni_id);
    if outcome.serving {
        entry.interface_name.clone_from(&outcome.interface);
        entry.configured = Some(outcome.configured());
        entry.message = outcome.problem.as_ref().map(|p| p.message.clone());
        entry.mtu = outcome.mtu.and_then(|mtu| i32::try_from(mtu).ok());
    } else if outcome.dpdk.as_ref().is_some_and(|dpdk| dpdk.bound) {
        // Still bound after a failed release: the controller keeps waiting, and says why.
        entry.message = outcome.problem.as_ref().map(|p| p.message.clone());
    }
    if let Some(resource) = &outcome.resource {
        entry.pci_address = Some(resource.pci.clone());
        entry.dpdk_resource_name = Some(resource.name.clone());
    }
    if let Some(dpdk) = &outcome.dpdk {
        entry.pci_address = Some(dpdk.pci.clone());
        entry.dpdk_bound = Some(dpdk.bound);
        entry.dpdk_driver = Some(dpdk.driver.clone());
        entry.dpdk_resource_name.clone_from(&dpdk.resource);
    }
    entry
}

fn keys(key: &EntryKey) -> InterfaceStatus {
    InterfaceStatus {
        node_eni: key.nodeeni.clone(),
        subnet_id: key.subnet_id.clone(),
        ..InterfaceStatus::default()
    }
}

fn has_agent_fields(entry: &InterfaceStatus) -> bool {
    let bare = InterfaceStatus {
        eni_id: entry.eni_id.clone(),
        ..keys(&EntryKey {
            nodeeni: entry.node_eni.clone(),
            subnet_id: entry.subnet_id.clone(),
        })
    };
    *entry != bare
}

/// The whole status: the reports and `Ready` (every served interface configured), for the
/// spec `generation`. `current` is the status there now: `Ready` keeps its transition time
/// while its status stays.
pub fn status(
    reports: Reports,
    generation: Option<i64>,
    current: Option<&ENINodeStatus>,
    now: Time,
) -> ENINodeStatus {
    let served: Vec<&InterfaceStatus> = reports.iter().filter(|r| r.configured.is_some()).collect();
    let failed: Vec<&&InterfaceStatus> = served
        .iter()
        .filter(|r| r.configured == Some(false))
        .collect();
    let (status, reason, message) = match failed.first() {
        Some(first) => (
            "False",
            "InterfaceNotConfigured",
            format!(
                "{} of {} interfaces not configured; {} {}: {}",
                failed.len(),
                served.len(),
                first.node_eni,
                first.subnet_id,
                first.message.as_deref().unwrap_or_default()
            ),
        ),
        None => (
            "True",
            "Configured",
            format!("{} interfaces configured", served.len()),
        ),
    };
    let previous = current.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let last_transition_time = previous
        .filter(|p| p.status == status)
        .map_or(now, |p| p.last_transition_time.clone());
    let ready = Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    ENINodeStatus {
        interfaces: reports,
        conditions: vec![ready],
    }
}

/// Whether `current` (the status there now) says something else than `wanted` (from
/// [`status`]), conditions other than `Ready` left aside: a steady state writes nothing.
pub fn differs(current: Option<&ENINodeStatus>, wanted: &ENINodeStatus) -> bool {
    let observed = current.map(|current| ENINodeStatus {
        interfaces: current.interfaces.clone(),
        conditions: current
            .conditions
            .iter()
            .filter(|c| c.type_ == "Ready")
            .cloned()
            .collect(),
    });
    !same(&observed.unwrap_or_default(), wanted)
}

/// Whether two statuses say the same, the `Ready` condition's transition time aside (a
/// status built now carries the current time until the API server has it).
pub fn same(a: &ENINodeStatus, b: &ENINodeStatus) -> bool {
    let without_time = |status: &ENINodeStatus| {
        let mut status = status.clone();
        for condition in &mut status.conditions {
            condition.last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        }
        status
    };
    without_time(a) == without_time(b)
}
