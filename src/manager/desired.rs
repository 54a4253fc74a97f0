//! What this node's interfaces should look like, computed from the NodeENIs alone.
//!
//! Pure: no kube client, no netlink, no files. The controller records each attached ENI in
//! the NodeENI's status (`attachments`, one entry per node and subnet, with its MAC); this
//! module picks this node's entries and turns each into a [`Wanted`] interface.

use std::collections::BTreeSet;

use crate::api::{Attachment, AttachmentState, NodeENI};
use crate::manager::mac::Mac;

/// One attachment entry of this node: the NodeENI's name and the subnet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    pub nodeeni: String,
    pub subnet_id: String,
}

/// An ENI this node serves and how its interface should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub key: EntryKey,
    pub eni_id: Option<String>,
    pub mac: Mac,
    /// The interface name, with its numeric suffix when the NodeENI has several ENIs here.
    pub name: Option<String>,
    pub mtu: Option<u32>,
    pub dpdk: Option<DpdkWanted>,
}

/// The ENI is to be bound to a DPDK driver instead of the kernel's network stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkWanted {
    pub driver: &'static str,
    /// The SR-IOV device plugin resource (`prefix/name`) that advertises the device.
    pub resource: Option<String>,
    /// The device, when the NodeENI names it instead of letting the agent find it.
    pub pci_address: Option<String>,
}

/// Everything this node's agent must do and may report on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// The ENIs to configure, ordered by NodeENI, network card and device index.
    pub serve: Vec<Wanted>,
    /// Every entry of this node the controller has written: the agent reports on these
    /// only, so that it never brings back an entry the controller removed.
    pub entries: BTreeSet<EntryKey>,
    /// Entries that cannot be served, with the reason (for the status).
    pub invalid: Vec<(EntryKey, String)>,
}

impl Desired {
    /// The wanted interface with this MAC.
    pub fn by_mac(&self, mac: Mac) -> Option<&Wanted> {
        self.serve.iter().find(|wanted| wanted.mac == mac)
    }
}

/// This node's share of the NodeENIs.
pub fn desired<'a>(nodeenis: impl IntoIterator<Item = &'a NodeENI>, node: &str) -> Desired {
    let mut desired = Desired::default();
    for nodeeni in nodeenis {
        add_nodeeni(&mut desired, nodeeni, node);
    }
    desired
}

fn add_nodeeni(desired: &mut Desired, nodeeni: &NodeENI, node: &str) {
    let name = nodeeni.metadata.name.clone().unwrap_or_default();
    let deleting = nodeeni.metadata.deletion_timestamp.is_some();
    let mut mine: Vec<&Attachment> = nodeeni
        .status
        .iter()
        .flat_map(|status| &status.attachments)
        .filter(|entry| entry.node_name == node && written_by_controller(entry))
        .collect();
    mine.sort_by_key(|entry| {
        (
            entry.network_card_index,
            entry.device_index,
            entry.subnet_id.clone(),
        )
    });
    let mut serve = Vec::new();
    for entry in mine {
        let key = EntryKey {
            nodeeni: name.clone(),
            subnet_id: entry.subnet_id.clone(),
        };
        desired.entries.insert(key.clone());
        if deleting || !in_service(entry) {
            continue;
        }
        match entry.mac_address.as_deref().map(str::parse::<Mac>) {
            Some(Ok(mac)) => serve.push((key, entry, mac)),
            Some(Err(error)) => desired
                .invalid
                .push((key, format!("status macAddress: {error}"))),
            None => {}
        }
    }
    let several = serve.len() > 1;
    let spec = &nodeeni.spec;
    for (position, (key, entry, mac)) in serve.into_iter().enumerate() {
        let name = spec.interface_name.as_ref().map(|base| {
            if several {
                format!("{base}{position}")
            } else {
                base.clone()
            }
        });
        desired.serve.push(Wanted {
            key,
            eni_id: entry.eni_id.clone(),
            mac,
            name,
            mtu: spec
                .mtu
                .and_then(|mtu| u32::try_from(mtu).ok())
                .filter(|&mtu| mtu > 0),
            dpdk: spec.enable_dpdk.then(|| DpdkWanted {
                driver: spec.dpdk_driver.as_str(),
                resource: spec.dpdk_resource_name.clone(),
                pci_address: spec.dpdk_pci_address.clone(),
            }),
        });
    }
}

/// Entries that carry only an agent's fields (left over after the controller removed its
/// own) are not entries to serve or report on.
fn written_by_controller(entry: &Attachment) -> bool {
    entry.eni_id.is_some() || entry.mac_address.is_some() || entry.state.is_some()
}

/// An ENI the controller is detaching or deleting is released (DPDK devices are given back
/// to the kernel before the controller detaches them). Device index 0 is the instance's
/// primary ENI, which the agent never touches whatever the status says.
fn in_service(entry: &Attachment) -> bool {
    !matches!(
        entry.state,
        Some(AttachmentState::Detaching | AttachmentState::Deleting)
    ) && entry.device_index != Some(0)
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
