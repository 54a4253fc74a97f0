//! The `ENINode` custom resource: one per node that has, or should have, ENIs (named after
//! the node, owned by its Node object so that it goes with it). The controller writes the
//! spec: every ENI the node must serve and how its agent configures it. The node's agent
//! writes the status: what it did. Each node's agent reads and writes only its own ENINode,
//! so the per-node state never piles up in one object, and an agent receives only its own
//! node's changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::nodeeni::{AttachmentState, DpdkDriver, IpvlanMode};

/// The ENIs one node serves. Written by the controller alone (server-side apply, field
/// manager `multi-eni-controller`); named after the node.
// The printer columns repeat `type_ = ...`, which this lint mistakes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "networking.k8s.aws",
    version = "v1alpha1",
    kind = "ENINode",
    plural = "eninodes",
    status = "ENINodeStatus",
    doc = "The ENIs of one node (named after it): what the controller attached and how the node agent configures them (spec), and what the node agent did (status).",
    printcolumn(name = "Instance", type_ = "string", json_path = ".spec.instanceID"),
    printcolumn(
        name = "ENIs",
        type_ = "string",
        json_path = ".spec.interfaces[*].eniID"
    ),
    printcolumn(
        name = "Interfaces",
        type_ = "string",
        json_path = ".status.interfaces[*].interfaceName"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ENINodeSpec {
    /// The node's EC2 instance.
    #[serde(
        rename = "instanceID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub instance_id: Option<String>,

    /// One entry per slot of every NodeENI on this node (a NodeENI and one of its subnets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["nodeENI".into(), "subnetID".into()]))]
    pub interfaces: Vec<InterfaceSpec>,
}

/// One ENI of the node: where it is in EC2 and how the agent configures its interface.
///
/// With a pod network, the ENI's secondary addresses (`ipv4Addresses`) or delegated prefixes
/// (`ipv4Prefixes`) and the network's name and ipvlan mode: the agent writes the CNI
/// configuration from them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceSpec {
    /// The NodeENI that wants the ENI.
    #[serde(rename = "nodeENI")]
    pub node_eni: String,
    #[serde(rename = "subnetID")]
    pub subnet_id: String,
    #[serde(
        rename = "subnetCIDR",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subnet_cidr: Option<String>,
    #[serde(rename = "eniID", default, skip_serializing_if = "Option::is_none")]
    pub eni_id: Option<String>,
    #[serde(
        rename = "attachmentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub attachment_id: Option<String>,
    /// The ENI's MAC address: the agent finds the interface by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_card_index: Option<i32>,
    /// The attachment's device index (0 is the primary ENI, which the agent never touches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_index: Option<i32>,
    /// Where the ENI is in its life, as EC2 shows it.
    pub state: AttachmentState,
    /// Why the ENI is not attached, as a CamelCase reason and a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `state` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,

    /// The Linux name to give the interface: the NodeENI's `interfaceName`, with a numeric
    /// suffix (by network card, device index, subnet) when it has several ENIs on the node.
    /// Unset: the kernel's name is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// The MTU to set; unset: left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i32>,
    /// Bind the ENI's device to a DPDK driver instead of configuring its interface.
    #[serde(rename = "enableDPDK", default, skip_serializing_if = "is_false")]
    pub enable_dpdk: bool,
    #[serde(
        rename = "dpdkDriver",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dpdk_driver: Option<DpdkDriver>,
    #[serde(
        rename = "dpdkResourceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dpdk_resource_name: Option<String>,
    #[serde(
        rename = "dpdkPCIAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dpdk_pci_address: Option<String>,
    /// The ENI's secondary private IPv4 addresses, as EC2 assigned them (the primary is not
    /// listed): the pods' addresses.
    #[serde(
        rename = "ipv4Addresses",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ipv4_addresses: Vec<String>,
    /// The ENI's delegated IPv4 prefixes (CIDR, /28): the pods' addresses.
    #[serde(
        rename = "ipv4Prefixes",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ipv4_prefixes: Vec<String>,
    /// The pod network's name (NodeENI `podNetwork.name`, default the NodeENI's name): the
    /// agent writes a CNI configuration of that name for this ENI. Unset: no pod network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_network: Option<String>,
    /// The pod network's ipvlan mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvlan_mode: Option<IpvlanMode>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

/// What the node's agent did. Written by that agent alone (server-side apply of the status
/// subresource, field manager `multi-eni-manager`), only when it changes.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ENINodeStatus {
    /// One entry per interface of the spec the agent reports on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["nodeENI".into(), "subnetID".into()]))]
    pub interfaces: Vec<InterfaceStatus>,

    /// `Ready`: every interface the agent serves is configured (observedGeneration: the
    /// spec generation it served).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// What the agent did with one interface of the spec.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStatus {
    #[serde(rename = "nodeENI")]
    pub node_eni: String,
    #[serde(rename = "subnetID")]
    pub subnet_id: String,
    #[serde(rename = "eniID", default, skip_serializing_if = "Option::is_none")]
    pub eni_id: Option<String>,
    /// The Linux interface the ENI maps to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Whether the interface is configured as the spec asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured: Option<bool>,
    /// Why it is not, naming the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i32>,
    #[serde(
        rename = "pciAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pci_address: Option<String>,
    /// Whether the device is bound to a DPDK driver: the controller does not detach the ENI
    /// before the agent reports it released.
    #[serde(rename = "dpdkBound", default, skip_serializing_if = "Option::is_none")]
    pub dpdk_bound: Option<bool>,
    #[serde(
        rename = "dpdkDriver",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dpdk_driver: Option<String>,
    #[serde(
        rename = "dpdkResourceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dpdk_resource_name: Option<String>,
    /// With a pod network: whether the agent has written the network's CNI configuration
    /// from this ENI in Multus's configuration directory (pods can use the network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_network_written: Option<bool>,
    /// Why the pod network is not written from this ENI, naming the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_network_message: Option<String>,
}
