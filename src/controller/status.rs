//! The NodeENI status the controller writes: counts, the `Ready` condition and a bounded list
//! of per-node entries (those not ready first), so that it stays small at any number of
//! nodes. Built purely from the plan and the node agents' reports in the ENINodes; written by
//! server-side apply under one field manager, and only when it differs from what is there, so
//! that a steady state writes nothing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{Attachment, AttachmentState, MAX_ATTACHMENTS, NodeENIStatus};
use crate::ec2::types::Eni;
use crate::ownership::Owner;

use super::desired::Desired;
use super::eninode::Observed;
use super::nads::NadState;
use super::plan::SlotReport;
use super::reasons;

/// The condition of a NodeENI's NetworkAttachmentDefinitions.
pub const POD_NETWORK_READY: &str = "PodNetworkReady";

/// The controller's field manager for server-side apply.
pub const FIELD_MANAGER: &str = "multi-eni-controller";

/// Why the NodeENI as a whole cannot progress, or that it is being deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocker {
    pub reason: String,
    pub message: String,
}

/// Everything the status is made of.
pub struct Input<'a> {
    pub name: &'a str,
    pub generation: Option<i64>,
    pub desired: &'a Desired,
    pub reports: &'a BTreeMap<Owner, SlotReport>,
    /// Unwanted ENIs kept attached until the node agent releases them from DPDK.
    pub releasing: &'a [Eni],
    pub blocker: Option<Blocker>,
    /// The ENINodes, by node: what the agents report.
    pub eninodes: &'a BTreeMap<String, Observed>,
    /// How its NetworkAttachmentDefinitions stand, if it has a pod network: the
    /// `PodNetworkReady` condition.
    pub pod_network: Option<NadState>,
    pub current: Option<&'a NodeENIStatus>,
    pub now: Time,
}

/// The status, from the plan and the agents' reports.
pub fn build(input: &Input) -> NodeENIStatus {
    let mut entries = Vec::new();
    for slot in &input.desired.slots {
        let Some(report) = input.reports.get(&slot.owner) else {
            continue;
        };
        let eni = report.eni.as_ref();
        let mut entry = Attachment {
            node_name: slot.owner.node.clone(),
            subnet_id: slot.subnet.id.clone(),
            instance_id: Some(slot.owner.instance.clone()),
            eni_id: eni.map(|eni| eni.id.clone()),
            attachment_id: eni.and_then(|eni| eni.attachment.as_ref().map(|a| a.id.clone())),
            state: Some(report.state),
            reason: report.reason.clone(),
            message: report.message.clone(),
            ..Attachment::default()
        };
        add_agent_report(input, &mut entry);
        entries.push(entry);
    }
    for problem in &input.desired.problems {
        entries.push(Attachment {
            node_name: problem.node.clone(),
            state: Some(AttachmentState::Failed),
            reason: Some(problem.reason.to_owned()),
            message: Some(problem.message.clone()),
            ..Attachment::default()
        });
    }
    for eni in input.releasing {
        let Some(owner) = Owner::from_tags(&eni.tags) else {
            continue;
        };
        entries.push(Attachment {
            node_name: owner.node,
            subnet_id: owner.subnet,
            instance_id: Some(owner.instance),
            eni_id: Some(eni.id.clone()),
            attachment_id: eni.attachment.as_ref().map(|a| a.id.clone()),
            state: Some(AttachmentState::Detaching),
            reason: Some(reasons::DPDK_RELEASE.into()),
            message: Some("waiting for the node agent to release the device from DPDK".into()),
            ..Attachment::default()
        });
    }
    // Those not ready first, then by node and subnet.
    entries.sort_by(|a, b| {
        (is_ready(a), &a.node_name, &a.subnet_id).cmp(&(is_ready(b), &b.node_name, &b.subnet_id))
    });

    let (attached_nodes, configured_nodes) = node_counts(input.desired, &entries);
    let ready = ready_condition(input, &entries);
    let omitted = entries.len().saturating_sub(MAX_ATTACHMENTS);
    entries.truncate(MAX_ATTACHMENTS);
    NodeENIStatus {
        observed_generation: input.generation,
        desired_nodes: count(input.desired.selected_nodes),
        attached_nodes: count(attached_nodes),
        configured_nodes: count(configured_nodes),
        conditions: conditions(input, ready),
        attachments: entries,
        omitted_attachments: count(omitted),
    }
}

/// Copies the node agent's word on the entry's interface; an attached ENI whose interface
/// it could not configure gets its reason.
fn add_agent_report(input: &Input, entry: &mut Attachment) {
    let report = input.eninodes.get(&entry.node_name).and_then(|eninode| {
        eninode.report_on(input.name, &entry.subnet_id, entry.eni_id.as_deref())
    });
    let Some(report) = report else { return };
    entry.interface_name.clone_from(&report.interface_name);
    entry.configured = report.configured;
    if entry.state == Some(AttachmentState::Attached) && report.configured == Some(false) {
        entry.reason = Some(reasons::INTERFACE_NOT_CONFIGURED.into());
        entry.message.clone_from(&report.message);
    }
}

/// Attached, and not reported unconfigured.
fn is_ready(entry: &Attachment) -> bool {
    entry.state == Some(AttachmentState::Attached) && entry.configured != Some(false)
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Nodes with at least one slot, all attached; and of those, the ones whose agent reports
/// every interface configured.
fn node_counts(desired: &Desired, entries: &[Attachment]) -> (usize, usize) {
    let problem_nodes: BTreeSet<&str> = desired.problems.iter().map(|p| p.node.as_str()).collect();
    let mut nodes: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for entry in entries
        .iter()
        .filter(|a| !problem_nodes.contains(a.node_name.as_str()))
    {
        let attached = entry.state == Some(AttachmentState::Attached);
        let (all_attached, all_configured) = nodes.entry(&entry.node_name).or_insert((true, true));
        *all_attached &= attached;
        *all_configured &= attached && entry.configured == Some(true);
    }
    let attached = nodes.values().filter(|(a, _)| *a).count();
    let configured = nodes.values().filter(|(_, c)| *c).count();
    (attached, configured)
}

fn ready_condition(input: &Input, entries: &[Attachment]) -> Condition {
    let condition = |status: &str, reason: &str, message: String| Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: input.generation,
        last_transition_time: input.now.clone(),
    };
    if let Some(blocker) = &input.blocker {
        return condition("False", &blocker.reason, blocker.message.clone());
    }
    let total = entries.len();
    let failed = |a: &&Attachment| a.state == Some(AttachmentState::Failed);
    if let Some((first, reason)) = entries
        .iter()
        .filter(failed)
        .find_map(|a| Some((a, a.reason.as_deref()?)))
    {
        let failures = entries.iter().filter(failed).count();
        let message = format!(
            "{failures} of {total} ENIs cannot be attached; node {}: {}",
            first.node_name,
            first.message.as_deref().unwrap_or_default()
        );
        return condition("False", reason, message);
    }
    let attached = entries
        .iter()
        .filter(|a| a.state == Some(AttachmentState::Attached))
        .count();
    let unconfigured = entries.iter().find(|a| a.configured == Some(false));
    if let Some(entry) = unconfigured.filter(|_| attached == total) {
        let message = format!(
            "node {}: interface not configured: {}",
            entry.node_name,
            entry.message.as_deref().unwrap_or_default()
        );
        return condition("False", reasons::INTERFACE_NOT_CONFIGURED, message);
    }
    if attached < total {
        return condition(
            "False",
            reasons::PROGRESSING,
            format!("{attached} of {total} ENIs attached"),
        );
    }
    if total == 0 {
        return condition(
            "True",
            reasons::NO_NODES_SELECTED,
            "no node matches nodeSelector".into(),
        );
    }
    condition(
        "True",
        reasons::ATTACHED,
        format!(
            "{total} ENIs attached on {} nodes",
            input.desired.selected_nodes
        ),
    )
}

/// `Ready`, and `PodNetworkReady` with a pod network; each keeps its transition time while
/// its status stays.
fn conditions(input: &Input, ready: Condition) -> Vec<Condition> {
    let previous = |type_: &str| {
        input
            .current
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
    };
    let mut conditions = vec![keep_transition_time(ready, previous("Ready"))];
    if let Some(state) = &input.pod_network {
        let pod_network = Condition {
            type_: POD_NETWORK_READY.into(),
            status: if state.ready { "True" } else { "False" }.into(),
            reason: state.reason.into(),
            message: state.message.clone(),
            observed_generation: input.generation,
            last_transition_time: input.now.clone(),
        };
        conditions.push(keep_transition_time(
            pod_network,
            previous(POD_NETWORK_READY),
        ));
    }
    conditions
}

fn keep_transition_time(mut condition: Condition, previous: Option<&Condition>) -> Condition {
    if let Some(previous) = previous.filter(|p| p.status == condition.status) {
        condition.last_transition_time = previous.last_transition_time.clone();
    }
    condition
}

/// Whether `new` differs from what `current` holds (conditions other than ours, which
/// others may add, left aside).
pub fn differs(new: &NodeENIStatus, current: Option<&NodeENIStatus>) -> bool {
    let Some(current) = current else { return true };
    let ready: Vec<Condition> = current
        .conditions
        .iter()
        .filter(|c| c.type_ == "Ready" || c.type_ == POD_NETWORK_READY)
        .cloned()
        .collect();
    let current = NodeENIStatus {
        conditions: ready,
        ..current.clone()
    };
    *new != current
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
