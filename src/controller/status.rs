//! The NodeENI status the controller writes: per-node entries and the `Ready` condition.
//! Built purely from the plan; written by server-side apply under one field manager, and only
//! when it differs from what is there, so that a steady state writes nothing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{Attachment, AttachmentState, NodeENIStatus};
use crate::ec2::types::Eni;
use crate::ownership::Owner;

use super::desired::Desired;
use super::plan::SlotReport;
use super::reasons;

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
    pub generation: Option<i64>,
    pub desired: &'a Desired,
    pub reports: &'a BTreeMap<Owner, SlotReport>,
    /// Unwanted ENIs kept attached until the node agent releases them from DPDK.
    pub releasing: &'a [Eni],
    pub blocker: Option<Blocker>,
    pub current: Option<&'a NodeENIStatus>,
    pub now: Time,
}

/// The controller's part of the status.
pub fn build(input: &Input) -> NodeENIStatus {
    let previous = |node: &str, subnet: &str| {
        input.current.and_then(|status| {
            status
                .attachments
                .iter()
                .find(|a| a.node_name == node && a.subnet_id == subnet)
        })
    };
    let mut attachments: Vec<Attachment> = Vec::new();
    for slot in &input.desired.slots {
        let Some(report) = input.reports.get(&slot.owner) else {
            continue;
        };
        let eni = report.eni.as_ref();
        let attachment = eni.and_then(|eni| eni.attachment.as_ref());
        let entry = Attachment {
            node_name: slot.owner.node.clone(),
            subnet_id: slot.subnet.id.clone(),
            instance_id: Some(slot.owner.instance.clone()),
            eni_id: eni.map(|eni| eni.id.clone()),
            attachment_id: attachment.map(|a| a.id.clone()),
            subnet_cidr: Some(slot.subnet.cidr_block.clone()).filter(|cidr| !cidr.is_empty()),
            mac_address: eni
                .map(|eni| eni.mac_address.clone())
                .filter(|mac| !mac.is_empty()),
            device_index: attachment.map(|a| a.device_index),
            network_card_index: attachment.map(|a| a.network_card_index),
            state: Some(report.state),
            reason: report.reason.clone(),
            message: report.message.clone(),
            ..Attachment::default()
        };
        attachments.push(entry);
    }
    for problem in &input.desired.problems {
        let entry = Attachment {
            node_name: problem.node.clone(),
            state: Some(AttachmentState::Failed),
            reason: Some(problem.reason.to_owned()),
            message: Some(problem.message.clone()),
            ..Attachment::default()
        };
        attachments.push(entry);
    }
    for eni in input.releasing {
        let Some(owner) = Owner::from_tags(&eni.tags) else {
            continue;
        };
        let entry = Attachment {
            node_name: owner.node,
            subnet_id: owner.subnet,
            instance_id: Some(owner.instance),
            eni_id: Some(eni.id.clone()),
            attachment_id: eni.attachment.as_ref().map(|a| a.id.clone()),
            mac_address: Some(eni.mac_address.clone()),
            state: Some(AttachmentState::Detaching),
            reason: Some(reasons::DPDK_RELEASE.into()),
            message: Some(
                "waiting for the node agent to give the device back to its kernel driver".into(),
            ),
            ..Attachment::default()
        };
        attachments.push(entry);
    }
    for entry in &mut attachments {
        let previous = previous(&entry.node_name, &entry.subnet_id);
        entry.last_transition_time = transition_time(previous, entry, &input.now);
    }
    attachments.sort_by(|a, b| (&a.node_name, &a.subnet_id).cmp(&(&b.node_name, &b.subnet_id)));

    let attached_nodes = attached_nodes(input.desired, &attachments);
    let ready = ready_condition(input, &attachments);
    let previous_ready = input
        .current
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    NodeENIStatus {
        observed_generation: input.generation,
        desired_nodes: count(input.desired.selected_nodes),
        attached_nodes: count(attached_nodes),
        conditions: vec![keep_transition_time(ready, previous_ready)],
        attachments,
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A state change takes the current time; anything else keeps the previous time.
fn transition_time(previous: Option<&Attachment>, entry: &Attachment, now: &Time) -> Option<Time> {
    match previous {
        Some(previous) if previous.state == entry.state => previous.last_transition_time.clone(),
        _ => Some(now.clone()),
    }
}

/// Nodes with at least one slot, all attached.
fn attached_nodes(desired: &Desired, attachments: &[Attachment]) -> usize {
    let problem_nodes: BTreeSet<&str> = desired.problems.iter().map(|p| p.node.as_str()).collect();
    let mut nodes: BTreeMap<&str, bool> = BTreeMap::new();
    for entry in attachments
        .iter()
        .filter(|a| !problem_nodes.contains(a.node_name.as_str()))
    {
        let attached = entry.state == Some(AttachmentState::Attached);
        *nodes.entry(&entry.node_name).or_insert(true) &= attached;
    }
    nodes.values().filter(|attached| **attached).count()
}

fn ready_condition(input: &Input, attachments: &[Attachment]) -> Condition {
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
    let total = attachments.len();
    if let Some((failed, reason)) = attachments.iter().find_map(|a| {
        let reason = a.reason.as_deref()?;
        (a.state == Some(AttachmentState::Failed)).then_some((a, reason))
    }) {
        let failures = attachments
            .iter()
            .filter(|a| a.state == Some(AttachmentState::Failed))
            .count();
        let message = format!(
            "{failures} of {total} ENIs cannot be attached; node {}: {}",
            failed.node_name,
            failed.message.as_deref().unwrap_or_default()
        );
        return condition("False", reason, message);
    }
    let attached = attachments
        .iter()
        .filter(|a| a.state == Some(AttachmentState::Attached))
        .count();
    let unconfigured = input
        .current
        .into_iter()
        .flat_map(|s| &s.attachments)
        .find(|a| {
            a.configured == Some(false)
                && attachments
                    .iter()
                    .any(|ours| ours.node_name == a.node_name && ours.subnet_id == a.subnet_id)
        });
    if let Some(entry) = unconfigured.filter(|_| attached == total) {
        let message = format!(
            "node {}: interface not configured: {}",
            entry.node_name,
            entry.interface_message.as_deref().unwrap_or_default()
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

fn keep_transition_time(mut condition: Condition, previous: Option<&Condition>) -> Condition {
    if let Some(previous) = previous.filter(|p| p.status == condition.status) {
        condition.last_transition_time = previous.last_transition_time.clone();
    }
    condition
}

/// Whether `new` (the controller's part) differs from what `current` holds.
pub fn differs(new: &NodeENIStatus, current: Option<&NodeENIStatus>) -> bool {
    let Some(current) = current else { return true };
    // Entries the node agent alone still holds are not the controller's.
    let ours: Vec<Attachment> = current
        .attachments
        .iter()
        .filter(|a| a.state.is_some())
        .map(controller_fields)
        .collect();
    let ready: Vec<&Condition> = current
        .conditions
        .iter()
        .filter(|c| c.type_ == "Ready")
        .collect();
    new.observed_generation != current.observed_generation
        || new.desired_nodes != current.desired_nodes
        || new.attached_nodes != current.attached_nodes
        || new.conditions.iter().collect::<Vec<_>>() != ready
        || new.attachments != ours
}

/// An entry with the node agent's fields left out.
fn controller_fields(entry: &Attachment) -> Attachment {
    Attachment {
        interface_name: None,
        configured: None,
        interface_message: None,
        mtu: None,
        pci_address: None,
        dpdk_bound: None,
        dpdk_driver: None,
        dpdk_resource_name: None,
        ..entry.clone()
    }
}
