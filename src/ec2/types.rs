//! EC2 things in the project's own terms. Plain data: no SDK types, so that planning code
//! can use them without knowing aws-sdk-ec2.

use std::collections::BTreeMap;

/// An Elastic Network Interface as DescribeNetworkInterfaces reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Eni {
    pub id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    pub mac_address: String,
    pub private_ip: Option<String>,
    pub status: EniStatus,
    pub description: String,
    pub security_group_ids: Vec<String>,
    pub source_dest_check: Option<bool>,
    pub tags: BTreeMap<String, String>,
    pub attachment: Option<EniAttachment>,
    /// The secondary private IPv4 addresses (`PrivateIpAddresses` whose `Primary` is false),
    /// in EC2's order.
    pub secondary_private_ips: Vec<String>,
    /// The delegated IPv4 prefixes (`Ipv4Prefixes`), as CIDRs (`10.0.1.16/28`).
    pub ipv4_prefixes: Vec<String>,
}

/// `NetworkInterface.Status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EniStatus {
    #[default]
    Available,
    Attaching,
    InUse,
    Detaching,
    Associated,
    /// A status this version does not know.
    Other(String),
}

impl EniStatus {
    pub fn from_ec2(status: &str) -> EniStatus {
        match status {
            "available" => EniStatus::Available,
            "attaching" => EniStatus::Attaching,
            "in-use" => EniStatus::InUse,
            "detaching" => EniStatus::Detaching,
            "associated" => EniStatus::Associated,
            other => EniStatus::Other(other.to_owned()),
        }
    }
}

/// An ENI's attachment to an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EniAttachment {
    pub id: String,
    pub instance_id: String,
    pub device_index: i32,
    pub network_card_index: i32,
    pub status: AttachmentStatus,
    pub delete_on_termination: bool,
}

/// `Attachment.Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachmentStatus {
    Attaching,
    Attached,
    Detaching,
    Detached,
}

impl AttachmentStatus {
    pub fn from_ec2(status: &str) -> AttachmentStatus {
        match status {
            "attaching" => AttachmentStatus::Attaching,
            "detaching" => AttachmentStatus::Detaching,
            "detached" => AttachmentStatus::Detached,
            _ => AttachmentStatus::Attached,
        }
    }
}

/// An EC2 instance, with the interfaces attached to it (ours and everyone else's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub instance_type: String,
    pub availability_zone: String,
    pub state: InstanceState,
    pub vpc_id: String,
    pub interfaces: Vec<InstanceInterface>,
}

/// `Instance.State.Name`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    #[default]
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
    Other(String),
}

impl InstanceState {
    pub fn from_ec2(state: &str) -> InstanceState {
        match state {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            other => InstanceState::Other(other.to_owned()),
        }
    }

    /// EC2's name of the state (`Instance.State.Name`): `running`, `shutting-down`…
    pub fn name(&self) -> &str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Other(name) => name,
        }
    }

    /// Gone for good: its ENIs are deleted or detached by EC2.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
}

/// One interface slot in use on an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInterface {
    pub eni_id: String,
    pub device_index: i32,
    pub network_card_index: i32,
}

/// A subnet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    pub cidr_block: String,
    /// The `Name` tag.
    pub name: Option<String>,
}

/// A security group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
}

/// How many interfaces an instance type takes (DescribeInstanceTypes `NetworkInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkLimits {
    pub maximum_interfaces: i32,
    pub default_network_card_index: i32,
    /// Interfaces per network card, by card index (one entry on single-card types).
    pub cards: BTreeMap<i32, i32>,
    /// Private IPv4 addresses one interface takes: the primary, the secondaries and each /28
    /// prefix count one ("Prefix delegation for Amazon EC2 network interfaces").
    pub ipv4_addresses_per_interface: i32,
    /// Built on the Nitro System (`Hypervisor` is `nitro`, or a bare-metal type): only these
    /// take IPv4 prefixes.
    pub nitro: bool,
}

impl NetworkLimits {
    /// The type's network card indices (only the default card on single-card types).
    pub fn card_indices(&self) -> std::collections::BTreeSet<i32> {
        if self.cards.is_empty() {
            [self.default_network_card_index].into()
        } else {
            self.cards.keys().copied().collect()
        }
    }

    /// How many interfaces the given card takes; unknown cards take none.
    pub fn interfaces_on_card(&self, card: i32) -> i32 {
        match self.cards.get(&card) {
            Some(max) => *max,
            None if self.cards.is_empty() && card == self.default_network_card_index => {
                self.maximum_interfaces
            }
            None => 0,
        }
    }
}

/// What CreateNetworkInterface needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewEni {
    pub subnet_id: String,
    pub security_group_ids: Vec<String>,
    pub description: String,
    /// Tags applied atomically with the creation (TagSpecifications).
    pub tags: BTreeMap<String, String>,
    /// Idempotency token (at most 64 ASCII characters).
    pub client_token: String,
    /// Secondary private IPv4 addresses EC2 picks from the subnet
    /// (`SecondaryPrivateIpAddressCount`); 0: none.
    pub secondary_private_ip_count: i32,
    /// /28 IPv4 prefixes EC2 delegates from the subnet (`Ipv4PrefixCount`, Nitro instance
    /// types only); 0: none. Not with `secondary_private_ip_count` (EC2 refuses both).
    pub ipv4_prefix_count: i32,
}

/// What AssignPrivateIpAddresses gave an ENI: the new secondary addresses and prefixes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assigned {
    pub private_ips: Vec<String>,
    /// CIDRs (`10.0.1.16/28`).
    pub ipv4_prefixes: Vec<String>,
}
