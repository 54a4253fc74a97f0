//! The pod networks' CNI configurations: for each network an ENI of this node carries, one
//! configuration that Multus loads for a NetworkAttachmentDefinition of that name without
//! `spec.config`. Pure: it builds file names and contents, [`super::cni_files`] writes them.
//!
//! Multus (pkg/k8sclient `GetCNIConfigFromFile`) reads its node-local configuration
//! directory (`confDir`, default `/etc/cni/multus/net.d`): the files ending in `.conf`,
//! `.json` or `.conflist`, in name order, the first whose `name` is the network's wins, and
//! a file it cannot parse fails every lookup. So the agent writes single-plugin `.conf`
//! files named `multi-eni-<network>.conf`, writes them whole (a temporary file renamed), and
//! touches no other file there.
//!
//! A configuration is the ipvlan plugin on the ENI's interface, with host-local IPAM whose
//! one range set has one range per address of the ENI (`rangeStart` = `rangeEnd`) or per
//! delegated prefix (its first to last address), each with the ENI subnet's CIDR and the
//! VPC router as gateway: the subnet's first host address ("Subnet CIDR blocks", reserved
//! addresses, in the Amazon VPC User Guide). cniVersion 1.0.0: Multus v4 and the
//! containernetworking plugins from v1.0.0 on accept it.
//!
//! One network has one master interface: when several ENIs of this node carry the same
//! network (a NodeENI with several subnets in the node's zone, or two NodeENIs naming one
//! network), the first in the agent's order (NodeENI, network card, device index) is the
//! network's, and the others say so in their status.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::manager::desired::{EntryKey, PodNetworkWanted, Wanted};

/// The prefix of every file the agent owns in the directory.
pub const FILE_PREFIX: &str = "multi-eni-";
/// The suffix of those files: a single-plugin configuration, as Multus reads it.
pub const FILE_SUFFIX: &str = ".conf";
/// The CNI specification version of the configurations.
pub const CNI_VERSION: &str = "1.0.0";

/// The file name of a network's configuration.
pub fn file_name(network: &str) -> String {
    format!("{FILE_PREFIX}{network}{FILE_SUFFIX}")
}

/// Whether a file of the directory is one the agent writes (and may remove).
pub fn is_owned(file_name: &str) -> bool {
    file_name
        .strip_prefix(FILE_PREFIX)
        .and_then(|rest| rest.strip_suffix(FILE_SUFFIX))
        .is_some_and(|network| !network.is_empty())
}

/// What the agent does with one entry's pod network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkReport {
    /// Whether the network's configuration is written from this ENI.
    pub written: bool,
    /// Why not, naming the fix.
    pub message: Option<String>,
}

/// The networks to write, by file name, and a report for every entry with a pod network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Networks {
    pub files: BTreeMap<String, String>,
    pub reports: BTreeMap<EntryKey, NetworkReport>,
}

/// The configurations for the served entries, in their order, each with the Linux name of its
/// interface as the agent found (or renamed) it: `None` while it has none.
pub fn networks<'a>(served: impl IntoIterator<Item = (&'a Wanted, Option<&'a str>)>) -> Networks {
    let mut networks = Networks::default();
    let mut owners: BTreeMap<&str, &Wanted> = BTreeMap::new();
    for (wanted, interface) in served {
        let Some(network) = &wanted.pod_network else {
            continue;
        };
        let report = if let Some(owner) = owners.get(network.name.as_str()) {
            not_written(format!(
                "network {} is written from ENI {} ({} {}): a network has one master interface, so this ENI's addresses are not used; give each NodeENI with a podNetwork one subnet per zone",
                network.name,
                owner.eni_id.as_deref().unwrap_or("-"),
                owner.key.nodeeni,
                owner.key.subnet_id
            ))
        } else {
            owners.insert(&network.name, wanted);
            match (interface, ranges(network)) {
                (_, Err(problem)) => not_written(problem),
                (None, Ok(_)) => not_written(format!(
                    "network {} is written once the ENI's interface is configured",
                    network.name
                )),
                (Some(master), Ok(ranges)) => {
                    let text = config(network, wanted.mtu, master, &ranges);
                    networks.files.insert(file_name(&network.name), text);
                    NetworkReport {
                        written: true,
                        message: None,
                    }
                }
            }
        };
        networks.reports.insert(wanted.key.clone(), report);
    }
    networks
}

fn not_written(message: String) -> NetworkReport {
    NetworkReport {
        written: false,
        message: Some(message),
    }
}

/// host-local's ranges for the ENI's addresses and prefixes, or why there are none.
fn ranges(network: &PodNetworkWanted) -> Result<Vec<Value>, String> {
    let name = &network.name;
    let cidr = network.subnet_cidr.as_deref().ok_or_else(|| {
        format!(
            "network {name}: the spec has no subnetCIDR for this ENI (the controller fills it in)"
        )
    })?;
    let (subnet, len) = parse_cidr(cidr).map_err(|e| format!("spec subnetCIDR: {e}"))?;
    let mut spans = Vec::new();
    for address in &network.addresses {
        let ip: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("spec ipv4Addresses: {address:?} is not an IPv4 address"))?;
        spans.push((ip, ip));
    }
    for prefix in &network.prefixes {
        let (first, bits) = parse_cidr(prefix).map_err(|e| format!("spec ipv4Prefixes: {e}"))?;
        spans.push((first, Ipv4Addr::from(first.to_bits() | !mask(bits))));
    }
    if spans.is_empty() {
        return Err(format!(
            "network {name}: the ENI has no addresses yet (secondaryPrivateIPAddressCount or ipv4PrefixCount; the controller fills them in)"
        ));
    }
    let inside = |ip: Ipv4Addr| ip.to_bits() & mask(len) == subnet.to_bits();
    if let Some((start, _)) = spans
        .iter()
        .find(|(start, end)| !inside(*start) || !inside(*end))
    {
        return Err(format!(
            "network {name}: address {start} is outside the ENI's subnet {cidr}"
        ));
    }
    // The VPC router: the subnet's first host address.
    let gateway = Ipv4Addr::from(subnet.to_bits() + 1).to_string();
    Ok((spans.iter())
        .map(|(start, end)| {
            json!({"subnet": cidr, "rangeStart": start.to_string(), "rangeEnd": end.to_string(), "gateway": gateway})
        })
        .collect())
}

/// The configuration text (pretty JSON with a final newline): ipvlan on `master`, host-local
/// with `ranges` as its one range set.
fn config(network: &PodNetworkWanted, mtu: Option<u32>, master: &str, ranges: &[Value]) -> String {
    let mut config = json!({
        "cniVersion": CNI_VERSION,
        "name": network.name,
        "type": "ipvlan",
        "master": master,
        "mode": network.mode,
        "ipam": {"type": "host-local", "ranges": [ranges]},
    });
    if let Some(mtu) = mtu {
        config["mtu"] = json!(mtu);
    }
    let mut text = serde_json::to_string_pretty(&config).expect("JSON serializes");
    text.push('\n');
    text
}

/// `10.0.1.0/24` as its network address and prefix length; the address must be the network's.
fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u32), String> {
    let invalid = || format!("{cidr:?} is not an IPv4 CIDR block (such as 10.0.1.0/24)");
    let (address, len) = cidr.split_once('/').ok_or_else(invalid)?;
    let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
    let len: u32 = len
        .parse()
        .ok()
        .filter(|len| *len <= 32)
        .ok_or_else(invalid)?;
    if address.to_bits() & !mask(len) != 0 {
        return Err(invalid());
    }
    Ok((address, len))
}

fn mask(len: u32) -> u32 {
    u32::MAX.checked_shl(32 - len).unwrap_or(0)
}

#[cfg(test)]
#[path = "cni_tests.rs"]
mod tests;
