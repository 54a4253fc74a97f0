//! The ENINodes the controller writes: for every node, one spec entry per slot of every
//! NodeENI there, with the EC2 side (ENI, MAC, indices, state) and the interface settings the
//! node agent applies, and one per unwanted ENI the agent still holds bound to DPDK (kept as
//! `Detaching`, reason `DPDKRelease`, until it gives the device back).
//!
//! Pure: built from the plan and compared with what the ENINodes hold, so that a steady state
//! writes nothing. An ENINode is written only for a node the controller knows (its owner
//! reference needs the Node's UID), and deleted once its node has no entry left.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{AttachmentState, ENINode, ENINodeSpec, InterfaceSpec, NodeENISpec};
use crate::ec2::types::Eni;
use crate::ownership::Owner;

use super::desired::{NodeInfo, Slot};
use super::plan::SlotReport;
use super::reasons;

/// A slot of a node: the NodeENI's name and the subnet ID (the list-map keys).
pub type SlotKey = (String, String);

/// What the node agent reports of one interface, as far as the controller needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentReport {
    pub eni_id: Option<String>,
    pub interface_name: Option<String>,
    pub configured: Option<bool>,
    pub message: Option<String>,
    pub dpdk_bound: Option<bool>,
}

/// What the controller keeps of an ENINode.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The object's own UID and spec generation: which of two readings is newer.
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub spec: ENINodeSpec,
    /// The UID of the Node its owner reference names.
    pub owner_uid: Option<String>,
    pub agent: BTreeMap<SlotKey, AgentReport>,
}

impl Observed {
    pub fn new(eninode: ENINode) -> Observed {
        let owner_uid = eninode
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|owner| owner.kind == "Node" && owner.api_version == "v1")
            .map(|owner| owner.uid.clone());
        let agent = eninode
            .status
            .into_iter()
            .flat_map(|status| status.interfaces)
            .map(|interface| {
                let report = AgentReport {
                    eni_id: interface.eni_id,
                    interface_name: interface.interface_name,
                    configured: interface.configured,
                    message: interface.message,
                    dpdk_bound: interface.dpdk_bound,
                };
                ((interface.node_eni, interface.subnet_id), report)
            })
            .collect();
        Observed {
            uid: eninode.metadata.uid,
            generation: eninode.metadata.generation,
            spec: eninode.spec,
            owner_uid,
            agent,
        }
    }

    /// This reading (a watch event, or else the answer to the controller's own write) in
    /// place of `before`: the newer spec of the two by generation, and the agent's reports
    /// from the watch alone. Events come in order, but the answer to a write may be taken in
    /// after the events that followed it (an agent's report); and an event may come after
    /// the answer to a newer write.
    #[must_use]
    pub fn replacing(mut self, before: Option<&Observed>, from_watch: bool) -> Observed {
        let Some(before) = before.filter(|before| before.uid == self.uid) else {
            return self;
        };
        if before.generation > self.generation {
            self.generation = before.generation;
            self.spec.clone_from(&before.spec);
            self.owner_uid.clone_from(&before.owner_uid);
        }
        if !from_watch {
            self.agent.clone_from(&before.agent);
        }
        self
    }

    /// The agent's report on a slot, if it is about `eni` (or names no ENI).
    pub fn report_on(
        &self,
        nodeeni: &str,
        subnet: &str,
        eni: Option<&str>,
    ) -> Option<&AgentReport> {
        self.agent
            .get(&(nodeeni.to_owned(), subnet.to_owned()))
            .filter(|report| report.eni_id.is_none() || report.eni_id.as_deref() == eni)
    }
}

/// One NodeENI's slots and the settings its interfaces get.
pub struct Source<'a> {
    pub name: &'a str,
    pub spec: &'a NodeENISpec,
    pub slots: &'a [Slot],
}

/// Everything the ENINodes are made of.
pub struct Input<'a> {
    pub sources: &'a [Source<'a>],
    pub reports: &'a BTreeMap<Owner, SlotReport>,
    /// Unwanted ENIs kept attached until the node agent releases them from DPDK.
    pub releasing: &'a [Eni],
    pub nodes: &'a BTreeMap<String, NodeInfo>,
    pub current: &'a BTreeMap<String, Observed>,
    pub now: Time,
}

/// A write to make.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Create or update (server-side apply) the ENINode of `node`, owned by the Node `uid`.
    Apply {
        node: String,
        uid: String,
        spec: ENINodeSpec,
    },
    Delete {
        node: String,
    },
}

/// The writes that bring the ENINodes to what the plan says.
pub fn writes(input: &Input) -> Vec<Write> {
    let wanted = specs(input);
    let mut writes = Vec::new();
    for (node, spec) in &wanted {
        let uid = &input.nodes[node].uid;
        let current = input.current.get(node);
        if current.is_none_or(|c| c.spec != *spec || c.owner_uid.as_ref() != Some(uid)) {
            writes.push(Write::Apply {
                node: node.clone(),
                uid: uid.clone(),
                spec: spec.clone(),
            });
        }
    }
    for node in input.current.keys().filter(|n| !wanted.contains_key(*n)) {
        writes.push(Write::Delete { node: node.clone() });
    }
    writes
}

/// The spec of every node that has entries and a known Node object.
fn specs(input: &Input) -> BTreeMap<String, ENINodeSpec> {
    let mut specs: BTreeMap<String, ENINodeSpec> = BTreeMap::new();
    for source in input.sources {
        for (node, slots) in by_node(source.slots) {
            let several = slots.len() > 1;
            for (rank, slot) in slots.into_iter().enumerate() {
                let Some(report) = input.reports.get(&slot.owner) else {
                    continue;
                };
                let name = source.spec.interface_name.as_ref().map(|base| {
                    if several {
                        format!("{base}{rank}")
                    } else {
                        base.clone()
                    }
                });
                let spec = specs.entry(node.clone()).or_default();
                spec.instance_id = Some(slot.owner.instance.clone());
                spec.interfaces.push(slot_entry(source, slot, report, name));
            }
        }
    }
    for eni in input.releasing {
        let Some(owner) = Owner::from_tags(&eni.tags) else {
            continue;
        };
        let spec = specs.entry(owner.node.clone()).or_default();
        let taken = spec
            .interfaces
            .iter()
            .any(|i| i.node_eni == owner.nodeeni && i.subnet_id == owner.subnet);
        if !taken {
            spec.instance_id.get_or_insert(owner.instance.clone());
            spec.interfaces.push(releasing_entry(&owner, eni));
        }
    }
    specs.retain(|node, _| input.nodes.get(node).is_some_and(|n| !n.uid.is_empty()));
    for (node, spec) in &mut specs {
        spec.interfaces
            .sort_by(|a, b| (&a.node_eni, &a.subnet_id).cmp(&(&b.node_eni, &b.subnet_id)));
        let previous = input.current.get(node).map(|c| &c.spec);
        for entry in &mut spec.interfaces {
            entry.last_transition_time = transition_time(previous, entry, &input.now);
        }
    }
    specs
}

/// One NodeENI's slots of each node, ranked by preferred device index and subnet (its slots
/// share one network card): the order of the interface names' suffixes, which does not move
/// with the order in which EC2 attaches them.
fn by_node(slots: &[Slot]) -> BTreeMap<String, Vec<&Slot>> {
    let mut nodes: BTreeMap<String, Vec<&Slot>> = BTreeMap::new();
    for slot in slots {
        nodes.entry(slot.owner.node.clone()).or_default().push(slot);
    }
    for slots in nodes.values_mut() {
        slots.sort_by(|a, b| {
            (a.preferred_index, &a.subnet.id).cmp(&(b.preferred_index, &b.subnet.id))
        });
    }
    nodes
}

fn slot_entry(
    source: &Source,
    slot: &Slot,
    report: &SlotReport,
    interface_name: Option<String>,
) -> InterfaceSpec {
    let spec = source.spec;
    let eni = report.eni.as_ref();
    let attachment = eni.and_then(|eni| eni.attachment.as_ref());
    let dpdk = spec.enable_dpdk;
    // A resource name without DPDK: the device, on its kernel driver, is advertised to the
    // SR-IOV device plugin (the agent's `advertise`).
    let device = dpdk || spec.dpdk_resource_name.is_some();
    InterfaceSpec {
        node_eni: source.name.to_owned(),
        subnet_id: slot.subnet.id.clone(),
        subnet_cidr: Some(slot.subnet.cidr_block.clone()).filter(|cidr| !cidr.is_empty()),
        eni_id: eni.map(|eni| eni.id.clone()),
        attachment_id: attachment.map(|a| a.id.clone()),
        mac_address: eni
            .map(|eni| eni.mac_address.clone())
            .filter(|mac| !mac.is_empty()),
        network_card_index: attachment.map(|a| a.network_card_index),
        device_index: attachment.map(|a| a.device_index),
        state: report.state,
        reason: report.reason.clone(),
        message: report.message.clone(),
        last_transition_time: None,
        interface_name,
        mtu: spec.mtu.filter(|mtu| *mtu > 0),
        enable_dpdk: dpdk,
        dpdk_driver: dpdk.then_some(spec.dpdk_driver),
        dpdk_resource_name: spec.dpdk_resource_name.clone(),
        dpdk_pci_address: spec.dpdk_pci_address.clone().filter(|_| device),
        ipv4_addresses: eni
            .map(|eni| eni.secondary_private_ips.clone())
            .unwrap_or_default(),
        ipv4_prefixes: eni.map(|eni| eni.ipv4_prefixes.clone()).unwrap_or_default(),
        pod_network: spec
            .pod_network
            .as_ref()
            .map(|network| network.name_in(source.name)),
        ipvlan_mode: spec.pod_network.as_ref().map(|network| network.ipvlan_mode),
    }
}

fn releasing_entry(owner: &Owner, eni: &Eni) -> InterfaceSpec {
    let attachment = eni.attachment.as_ref();
    InterfaceSpec {
        node_eni: owner.nodeeni.clone(),
        subnet_id: owner.subnet.clone(),
        eni_id: Some(eni.id.clone()),
        attachment_id: attachment.map(|a| a.id.clone()),
        mac_address: Some(eni.mac_address.clone()),
        network_card_index: attachment.map(|a| a.network_card_index),
        device_index: attachment.map(|a| a.device_index),
        state: AttachmentState::Detaching,
        reason: Some(reasons::DPDK_RELEASE.into()),
        message: Some(
            "waiting for the node agent to give the device back to its kernel driver".into(),
        ),
        ..InterfaceSpec::default()
    }
}

/// A state change takes the current time; anything else keeps the previous time.
fn transition_time(
    previous: Option<&ENINodeSpec>,
    entry: &InterfaceSpec,
    now: &Time,
) -> Option<Time> {
    let previous = previous.and_then(|spec| {
        spec.interfaces
            .iter()
            .find(|p| p.node_eni == entry.node_eni && p.subnet_id == entry.subnet_id)
    });
    match previous {
        Some(previous) if previous.state == entry.state => previous.last_transition_time.clone(),
        _ => Some(now.clone()),
    }
}

#[cfg(test)]
#[path = "eninode_tests.rs"]
mod tests;
