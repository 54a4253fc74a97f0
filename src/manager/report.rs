//! What the agent writes into the NodeENIs' status: for each of this node's entries, the
//! agent's fields only (and the two list-map keys). Pure.

use std::collections::BTreeMap;

use crate::api::{Attachment, NodeENI};
use crate::manager::desired::{Desired, EntryKey};
use crate::manager::outcome::Outcome;

/// The agent's entries of each NodeENI, sorted by subnet. A NodeENI absent from the map
/// gets no entry from this node.
pub type Reports = BTreeMap<String, Vec<Attachment>>;

/// The reports for the entries the controller has written (never others: applying an entry
/// the controller removed would bring it back).
pub fn reports<'a>(
    node: &str,
    desired: &Desired,
    outcomes: impl IntoIterator<Item = &'a Outcome>,
) -> Reports {
    let mut reports = Reports::new();
    for outcome in outcomes {
        if desired.entries.contains(&outcome.key) {
            push(&mut reports, agent_entry(node, outcome));
        }
    }
    for (key, message) in &desired.invalid {
        let mut entry = keys(node, key);
        entry.configured = Some(false);
        entry.interface_message = Some(message.clone());
        push(&mut reports, (key.nodeeni.clone(), entry));
    }
    for entries in reports.values_mut() {
        entries.sort_by(|a, b| a.subnet_id.cmp(&b.subnet_id));
    }
    reports
}

fn push(reports: &mut Reports, (nodeeni, entry): (String, Attachment)) {
    if has_agent_fields(&entry) {
        reports.entry(nodeeni).or_default().push(entry);
    }
}

fn agent_entry(node: &str, outcome: &Outcome) -> (String, Attachment) {
    let mut entry = keys(node, &outcome.key);
    if outcome.serving {
        entry.interface_name.clone_from(&outcome.interface);
        entry.configured = Some(outcome.configured());
        entry.interface_message = outcome.problem.as_ref().map(|p| p.message.clone());
        entry.mtu = outcome.mtu.and_then(|mtu| i32::try_from(mtu).ok());
    } else if outcome.dpdk.as_ref().is_some_and(|dpdk| dpdk.bound) {
        // Still bound after a failed release: the controller keeps waiting, and says why.
        entry.interface_message = outcome.problem.as_ref().map(|p| p.message.clone());
    }
    if let Some(dpdk) = &outcome.dpdk {
        entry.pci_address = Some(dpdk.pci.clone());
        entry.dpdk_bound = Some(dpdk.bound);
        entry.dpdk_driver = Some(dpdk.driver.clone());
        entry.dpdk_resource_name.clone_from(&dpdk.resource);
    }
    (outcome.key.nodeeni.clone(), entry)
}

fn keys(node: &str, key: &EntryKey) -> Attachment {
    Attachment {
        node_name: node.into(),
        subnet_id: key.subnet_id.clone(),
        ..Attachment::default()
    }
}

/// This node's entries of `nodeeni` as the agent's fields show them now (for comparison
/// with [`reports`], so that a steady state writes nothing).
pub fn observed(nodeeni: &NodeENI, node: &str) -> Vec<Attachment> {
    let mut entries: Vec<Attachment> = nodeeni
        .status
        .iter()
        .flat_map(|status| &status.attachments)
        .filter(|entry| entry.node_name == node)
        .map(|entry| Attachment {
            node_name: entry.node_name.clone(),
            subnet_id: entry.subnet_id.clone(),
            interface_name: entry.interface_name.clone(),
            configured: entry.configured,
            interface_message: entry.interface_message.clone(),
            mtu: entry.mtu,
            pci_address: entry.pci_address.clone(),
            dpdk_bound: entry.dpdk_bound,
            dpdk_driver: entry.dpdk_driver.clone(),
            dpdk_resource_name: entry.dpdk_resource_name.clone(),
            ..Attachment::default()
        })
        .filter(has_agent_fields)
        .collect();
    entries.sort_by(|a, b| a.subnet_id.cmp(&b.subnet_id));
    entries
}

fn has_agent_fields(entry: &Attachment) -> bool {
    let keys_only = Attachment {
        node_name: entry.node_name.clone(),
        subnet_id: entry.subnet_id.clone(),
        ..Attachment::default()
    };
    *entry != keys_only
}
