//! What this node's interfaces should look like, read from the node's ENINode alone.
//!
//! Pure: no kube client, no netlink, no files. The controller writes every ENI of the node
//! into the spec of its ENINode (one entry per NodeENI and subnet, with its MAC and the
//! interface settings, the name already suffixed); this module turns each entry the agent
//! serves into a [`Wanted`] interface.

use std::collections::BTreeSet;

use crate::api::{AttachmentState, ENINode, InterfaceSpec};
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
    /// The interface stays on its kernel driver and its PCI device is advertised to the
    /// SR-IOV device plugin (`dpdkResourceName` without `enableDPDK`), for a pod to take the
    /// whole ENI through the `host-device` CNI plugin.
    pub resource: Option<ResourceWanted>,
    /// The pod network whose CNI configuration the agent writes for this ENI.
    pub pod_network: Option<PodNetworkWanted>,
}

/// The pod network an ENI carries, as the spec gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNetworkWanted {
    /// The network's name (NodeENI `podNetwork.name`).
    pub name: String,
    /// ipvlan's `mode`: `l2`, `l3` or `l3s`.
    pub mode: &'static str,
    /// The ENI subnet's CIDR (`10.0.1.0/24`).
    pub subnet_cidr: Option<String>,
    /// The ENI's secondary private addresses.
    pub addresses: Vec<String>,
    /// The ENI's delegated prefixes (CIDR).
    pub prefixes: Vec<String>,
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

/// The ENI's PCI device, on its kernel driver, is a device plugin resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceWanted {
    /// The SR-IOV device plugin resource (`prefix/name`).
    pub name: String,
    /// The device, when the NodeENI names it instead of letting the agent find it.
    pub pci_address: Option<String>,
}

/// Everything this node's agent must do and may report on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// The ENIs to configure, ordered by NodeENI, network card and device index.
    pub serve: Vec<Wanted>,
    /// Every entry of the spec: the agent reports on these only, so that its status never
    /// keeps an entry the controller removed.
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

/// What this node's ENINode asks for (nothing when it has none).
pub fn desired(eninode: Option<&ENINode>) -> Desired {
    let mut desired = Desired::default();
    let mut serve = Vec::new();
    for entry in eninode.iter().flat_map(|eninode| &eninode.spec.interfaces) {
        let key = EntryKey {
            nodeeni: entry.node_eni.clone(),
            subnet_id: entry.subnet_id.clone(),
        };
        desired.entries.insert(key.clone());
        if !in_service(entry) {
            continue;
        }
        match entry.mac_address.as_deref().map(str::parse::<Mac>) {
            Some(Ok(mac)) => {
                let order = (
                    entry.node_eni.clone(),
                    entry.network_card_index,
                    entry.device_index,
                );
                serve.push((order, wanted(key, entry, mac)));
            }
            Some(Err(error)) => desired
                .invalid
                .push((key, format!("spec macAddress: {error}"))),
            None => {}
        }
    }
    serve.sort_by(|(a, _), (b, _)| a.cmp(b));
    desired.serve = serve.into_iter().map(|(_, wanted)| wanted).collect();
    desired
}

fn wanted(key: EntryKey, entry: &InterfaceSpec, mac: Mac) -> Wanted {
    Wanted {
        key,
        eni_id: entry.eni_id.clone(),
        mac,
        name: entry.interface_name.clone(),
        mtu: entry
            .mtu
            .and_then(|mtu| u32::try_from(mtu).ok())
            .filter(|&mtu| mtu > 0),
        dpdk: entry.enable_dpdk.then(|| DpdkWanted {
            driver: entry.dpdk_driver.unwrap_or_default().as_str(),
            resource: entry.dpdk_resource_name.clone(),
            pci_address: entry.dpdk_pci_address.clone(),
        }),
        resource: (entry.dpdk_resource_name.clone())
            .filter(|_| !entry.enable_dpdk)
            .map(|name| ResourceWanted {
                name,
                pci_address: entry.dpdk_pci_address.clone(),
            }),
        pod_network: entry.pod_network.as_ref().map(|name| PodNetworkWanted {
            name: name.clone(),
            mode: entry.ipvlan_mode.unwrap_or_default().as_str(),
            subnet_cidr: entry.subnet_cidr.clone(),
            addresses: entry.ipv4_addresses.clone(),
            prefixes: entry.ipv4_prefixes.clone(),
        }),
    }
}

/// An ENI the controller is detaching or deleting is released (DPDK devices are given back
/// to the kernel before the controller detaches them). Device index 0 is the instance's
/// primary ENI, which the agent never touches whatever the spec says.
fn in_service(entry: &InterfaceSpec) -> bool {
    !matches!(
        entry.state,
        AttachmentState::Detaching | AttachmentState::Deleting
    ) && entry.device_index != Some(0)
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
