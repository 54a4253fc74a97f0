//! The `NodeENI` custom resource: which nodes get which ENIs. The JSON field names of the
//! spec are those of the original aws-multi-eni-controller API, so its users' manifests apply
//! unchanged. Validation happens at admission: schema bounds and CEL rules, each naming the
//! field.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which nodes get which ENIs. One ENI per selected node and per subnet (in the node's zone).
// The printer columns repeat `type_ = ...`, which this lint mistakes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "networking.k8s.aws",
    version = "v1alpha1",
    kind = "NodeENI",
    shortname = "neni",
    status = "NodeENIStatus",
    doc = "Attaches extra AWS Elastic Network Interfaces to the nodes it selects.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Attached",
        type_ = "integer",
        description = "Nodes whose ENIs are all attached",
        json_path = ".status.attachedNodes"
    ),
    printcolumn(
        name = "Configured",
        type_ = "integer",
        description = "Nodes whose interfaces the node agent reports configured",
        json_path = ".status.configuredNodes"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        description = "Nodes selected by nodeSelector",
        json_path = ".status.desiredNodes"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "has(self.subnetID) || has(self.subnetName) || \
     (has(self.subnetIDs) && size(self.subnetIDs) > 0) || (has(self.subnetNames) && size(self.subnetNames) > 0)"
).message("set at least one of subnetID, subnetIDs, subnetName or subnetNames"))]
#[x_kube(validation = Rule::new(
    "(has(self.securityGroupIDs) && size(self.securityGroupIDs) > 0) || \
     (has(self.securityGroupNames) && size(self.securityGroupNames) > 0)"
).message("set at least one of securityGroupIDs or securityGroupNames"))]
#[x_kube(validation = Rule::new(
    "!has(self.interfaceName) || size(self.interfaceName) <= 13 || \
     (has(self.subnetID) ? 1 : 0) + (has(self.subnetName) ? 1 : 0) + \
     (has(self.subnetIDs) ? size(self.subnetIDs) : 0) + (has(self.subnetNames) ? size(self.subnetNames) : 0) <= 1"
).message("at most 13 characters when several subnets are listed: each interface gets a numeric suffix")
 .field_path(".interfaceName"))]
#[x_kube(validation = Rule::new(
    "!(has(self.secondaryPrivateIPAddressCount) && self.secondaryPrivateIPAddressCount > 0 && \
       has(self.ipv4PrefixCount) && self.ipv4PrefixCount > 0)"
).message("set secondaryPrivateIPAddressCount or ipv4PrefixCount, not both")
 .field_path(".ipv4PrefixCount"))]
#[x_kube(validation = Rule::new(
    "(has(oldSelf.secondaryPrivateIPAddressCount) ? oldSelf.secondaryPrivateIPAddressCount : 0) <= \
     (has(self.secondaryPrivateIPAddressCount) ? self.secondaryPrivateIPAddressCount : 0)"
).message("cannot be lowered: pods may hold the addresses; create a new NodeENI for fewer")
 .field_path(".secondaryPrivateIPAddressCount"))]
#[x_kube(validation = Rule::new(
    "(has(oldSelf.ipv4PrefixCount) ? oldSelf.ipv4PrefixCount : 0) <= \
     (has(self.ipv4PrefixCount) ? self.ipv4PrefixCount : 0)"
).message("cannot be lowered: pods may hold addresses of the prefixes; create a new NodeENI for fewer")
 .field_path(".ipv4PrefixCount"))]
#[x_kube(validation = Rule::new(
    "!has(self.podNetwork) || (has(self.secondaryPrivateIPAddressCount) && self.secondaryPrivateIPAddressCount > 0) || \
     (has(self.ipv4PrefixCount) && self.ipv4PrefixCount > 0)"
).message("needs addresses for the pods: set secondaryPrivateIPAddressCount or ipv4PrefixCount")
 .field_path(".podNetwork"))]
#[x_kube(validation = Rule::new("!has(self.podNetwork) || !self.enableDPDK")
 .message("cannot be used with enableDPDK: a DPDK-bound ENI has no interface for ipvlan")
 .field_path(".podNetwork"))]
#[serde(rename_all = "camelCase")]
pub struct NodeENISpec {
    /// Labels a node must carry to get the ENIs (all must match).
    #[x_kube(validation = Rule::new("size(self) > 0")
        .message("must name at least one label (for example ng: multi-eni)"))]
    #[schemars(extend("maxProperties" = 32))]
    pub node_selector: BTreeMap<String, String>,

    /// The subnet to create the ENI in, by ID.
    #[serde(rename = "subnetID", default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^subnet-([0-9a-f]{8}|[0-9a-f]{17})$')").message("must look like subnet-0123456789abcdef0"))]
    #[schemars(length(max = 32))]
    pub subnet_id: Option<String>,

    /// Subnets by ID: each subnet in a node's Availability Zone gives that node one ENI.
    #[serde(rename = "subnetIDs", default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^subnet-([0-9a-f]{8}|[0-9a-f]{17})$'))")
        .message("every entry must look like subnet-0123456789abcdef0"))]
    #[schemars(length(max = 16), inner(length(max = 32)))]
    pub subnet_ids: Vec<String>,

    /// The subnet to create the ENI in, by its `Name` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub subnet_name: Option<String>,

    /// Subnets by their `Name` tag, like `subnetIDs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 256)))]
    pub subnet_names: Vec<String>,

    /// Security groups for the ENI, by ID.
    #[serde(
        rename = "securityGroupIDs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    #[x_kube(validation = Rule::new("self.all(g, g.matches('^sg-([0-9a-f]{8}|[0-9a-f]{17})$'))")
        .message("every entry must look like sg-0123456789abcdef0"))]
    #[schemars(length(max = 16), inner(length(max = 32)))]
    pub security_group_ids: Vec<String>,

    /// Security groups for the ENI, by group name (looked up in the subnet's VPC).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 255)))]
    pub security_group_names: Vec<String>,

    /// Device index of the first ENI; further subnets take the following indices.
    #[serde(default = "default_device_index")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 31")
        .message("must be between 1 and 31 (0 is the instance's primary ENI)"))]
    pub device_index: i32,

    /// Network card the ENIs attach to (multi-card instance types such as p4d).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 15")
        .message("must be between 0 and 15"))]
    pub network_card_index: i32,

    /// Delete the ENI when its instance terminates.
    #[serde(default = "default_true")]
    pub delete_on_termination: bool,

    /// Description of the ENI in EC2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub description: Option<String>,

    /// MTU of the Linux interface; 0 or unset leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == 0 || (self >= 576 && self <= 9216)")
        .message("must be between 576 and 9216 (or 0 to leave the MTU unchanged)"))]
    pub mtu: Option<i32>,

    /// Stable Linux name the node agent gives the interface; several ENIs on one node get
    /// a numeric suffix (name0, name1, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}$')")
        .message("must be a Linux interface name: 1 to 15 letters, digits, '-', '_' or '.', not starting with '.'"))]
    #[x_kube(validation = Rule::new("self != 'all' && self != 'default'")
        .message("all and default are taken by the kernel (/proc/sys/net/ipv4/conf/all and default): choose another name"))]
    #[schemars(length(max = 15))]
    pub interface_name: Option<String>,

    /// The ENI's source/destination check (set false for routers and NAT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_dest_check: Option<bool>,

    /// Extra AWS tags for the ENI.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !k.lowerAscii().startsWith('aws:') && !k.startsWith('multi-eni.k8s.aws/'))")
        .message("keys starting with aws: (in any case) or multi-eni.k8s.aws/ are reserved"))]
    #[x_kube(validation = Rule::new("self.all(k, size(k) > 0)")
        .message("keys must not be empty"))]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 128 && size(self[k]) <= 256)")
        .message("keys are at most 128 characters and values at most 256"))]
    #[schemars(extend("maxProperties" = 32))]
    pub tags: BTreeMap<String, String>,

    /// Secondary private IPv4 addresses for pods, per ENI: requested in the ENI's
    /// CreateNetworkInterface (SecondaryPrivateIpAddressCount), assigned with
    /// AssignPrivateIpAddresses when raised. At most the instance type's
    /// Ipv4AddressesPerInterface minus one (the primary address); cannot be lowered.
    #[serde(
        rename = "secondaryPrivateIPAddressCount",
        default,
        skip_serializing_if = "is_zero"
    )]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 49")
        .message("must be between 0 and 49 (the largest instance types take 50 addresses per ENI, the primary included)"))]
    pub secondary_private_ip_address_count: i32,

    /// IPv4 prefixes (/28, 16 addresses each) delegated to each ENI for pods
    /// (Ipv4PrefixCount); Nitro instance types only. Each counts as one address against
    /// the type's Ipv4AddressesPerInterface; cannot be lowered.
    #[serde(rename = "ipv4PrefixCount", default, skip_serializing_if = "is_zero")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 49")
        .message("must be between 0 and 49 (each /28 prefix counts as one address of the ENI)"))]
    pub ipv4_prefix_count: i32,

    /// The Multus network that puts pods on these ENIs with the addresses above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_network: Option<PodNetwork>,

    /// Bind the interface to a DPDK driver instead of the kernel's network stack.
    #[serde(rename = "enableDPDK", default)]
    pub enable_dpdk: bool,

    /// The DPDK driver to bind to.
    #[serde(rename = "dpdkDriver", default)]
    pub dpdk_driver: DpdkDriver,

    /// SR-IOV device plugin resource (`prefix/name`) that advertises the device.
    #[serde(
        rename = "dpdkResourceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')")
        .message("must be prefix/name, for example intel.com/sriov_dpdk"))]
    #[schemars(length(max = 253))]
    pub dpdk_resource_name: Option<String>,

    /// PCI address of the device to bind, when it cannot be found from the interface.
    #[serde(
        rename = "dpdkPCIAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[x_kube(validation = Rule::new("self.matches('^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}[.][0-7]$')")
        .message("must be a PCI address such as 0000:00:06.0"))]
    #[schemars(length(max = 12))]
    pub dpdk_pci_address: Option<String>,
}

/// A Multus network on the ENIs: each node's agent writes a CNI configuration of this name
/// (ipvlan on the ENI's interface, host-local IPAM over exactly that ENI's addresses) in
/// Multus's node-local configuration directory, and the controller creates a
/// NetworkAttachmentDefinition of this name, without `spec.config`, in each namespace listed.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodNetwork {
    /// The network's name: the NetworkAttachmentDefinitions' and the CNI configuration's
    /// (pods ask for it with the annotation `k8s.v1.cni.cncf.io/networks: <name>`).
    /// Default: the NodeENI's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("must be a DNS label: lower-case letters, digits and '-', at most 63 characters"))]
    #[schemars(length(max = 63))]
    pub name: Option<String>,

    /// Namespaces whose pods may use the network: one NetworkAttachmentDefinition in each.
    #[x_kube(validation = Rule::new("size(self) > 0")
        .message("must list at least one namespace, for example [default]"))]
    #[x_kube(validation = Rule::new("self.all(n, n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))")
        .message("every entry must be a namespace name (a DNS label)"))]
    #[schemars(length(max = 64), inner(length(max = 63)))]
    pub namespaces: Vec<String>,

    /// The ipvlan mode of the pods' interfaces (the ipvlan CNI plugin's `mode`).
    #[serde(default)]
    pub ipvlan_mode: IpvlanMode,
}

impl PodNetwork {
    /// The network's name: `name`, or else the name of the NodeENI it belongs to.
    pub fn name_in(&self, nodeeni: &str) -> String {
        self.name.clone().unwrap_or_else(|| nodeeni.to_owned())
    }
}

/// ipvlan's modes (the kernel's ipvlan driver, as the ipvlan CNI plugin names them).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IpvlanMode {
    #[default]
    L2,
    L3,
    L3s,
}

impl IpvlanMode {
    /// The name the ipvlan CNI plugin's `mode` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
            IpvlanMode::L3s => "l3s",
        }
    }
}

/// DPDK-capable drivers the node agent can bind an ENA device to.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DpdkDriver {
    #[default]
    #[serde(rename = "vfio-pci")]
    VfioPci,
    #[serde(rename = "igb_uio")]
    IgbUio,
    #[serde(rename = "uio_pci_generic")]
    UioPciGeneric,
}

impl DpdkDriver {
    /// The kernel's name of the driver (its directory under /sys/bus/pci/drivers).
    pub fn as_str(self) -> &'static str {
        match self {
            DpdkDriver::VfioPci => "vfio-pci",
            DpdkDriver::IgbUio => "igb_uio",
            DpdkDriver::UioPciGeneric => "uio_pci_generic",
        }
    }
}

fn default_device_index() -> i32 {
    1
}

fn default_true() -> bool {
    true
}

/// What the controller observed: counts, conditions and a bounded list of per-node entries.
/// The per-node details (MAC, indices, interface settings, what the agent did) are in each
/// node's ENINode; this status stays the same size at any number of
/// nodes. Written by the controller alone (server-side apply, field manager
/// `multi-eni-controller`).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeENIStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Nodes selected by nodeSelector.
    #[serde(default)]
    pub desired_nodes: i32,

    /// Selected nodes whose ENIs are all attached.
    #[serde(default)]
    pub attached_nodes: i32,

    /// Selected nodes whose ENIs are all attached and whose node agent reports every
    /// interface configured.
    #[serde(default)]
    pub configured_nodes: i32,

    /// Standard conditions; `Ready` summarises the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// At most 32 entries, one per node and subnet: those not ready first
    /// (with reason and message), then the others by node name. `kubectl get eninode <node>
    /// -o yaml` shows every ENI of a node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["nodeName".into(), "subnetID".into()]))]
    pub attachments: Vec<Attachment>,

    /// How many entries `attachments` leaves out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_attachments: i32,
}

/// The most entries `status.attachments` lists.
pub const MAX_ATTACHMENTS: usize = 32;

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// One ENI of one node (or, with an empty subnetID, why a node has none), summarised from
/// the node's ENINode.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub node_name: String,
    #[serde(rename = "subnetID")]
    pub subnet_id: String,
    #[serde(
        rename = "instanceID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub instance_id: Option<String>,
    #[serde(rename = "eniID", default, skip_serializing_if = "Option::is_none")]
    pub eni_id: Option<String>,
    #[serde(
        rename = "attachmentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub attachment_id: Option<String>,
    /// Where the ENI is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AttachmentState>,
    /// Why the entry is not ready, as a CamelCase reason and a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Linux interface the ENI maps to, as the node agent reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Whether the node agent reports the interface configured as the spec asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured: Option<bool>,
}

/// The life of one ENI, as the controller sees it in EC2: `Pending` (not created yet, or
/// waiting for a name lookup), `Created` (not attached yet), `Attaching`, `Attached`,
/// `Detaching`, `Deleting` (detached, about to be deleted), `Failed` (cannot proceed until
/// something changes; see reason and message).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachmentState {
    #[default]
    Pending,
    Created,
    Attaching,
    Attached,
    Detaching,
    Deleting,
    Failed,
}
