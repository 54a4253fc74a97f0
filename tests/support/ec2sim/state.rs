//! The simulated account and Region: VPCs, subnets, security groups, instances and ENIs, with
//! the lookups every action shares (each failing with EC2's NotFound code for its kind).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::{Instant, SystemTime};

use super::error::ApiError;
use super::query::Tags;

pub const ACCOUNT: &str = "123456789012";

/// Cloned whole for a dry run, which changes only the copy.
#[derive(Clone, Default)]
pub struct World {
    pub vpcs: BTreeMap<String, Vpc>,
    pub subnets: BTreeMap<String, Subnet>,
    pub groups: BTreeMap<String, SecurityGroup>,
    pub instances: BTreeMap<String, Instance>,
    pub enis: BTreeMap<String, Eni>,
    /// ClientToken → (request fingerprint, the ENI as created).
    pub tokens: HashMap<String, (String, Eni)>,
    serial: u64,
}

#[derive(Clone)]
pub struct Vpc {
    pub id: String,
    pub cidr: Cidr,
    pub tags: Tags,
}

#[derive(Clone)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub az: String,
    pub cidr: Cidr,
    pub tags: Tags,
    pub used: BTreeSet<u32>,
}

#[derive(Clone)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc_id: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
}

#[derive(Clone)]
pub struct Instance {
    pub id: String,
    pub reservation_id: String,
    pub image_id: String,
    pub type_name: String,
    pub az: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub private_ip: Ipv4Addr,
    pub state: InstanceState,
    pub launch_time: SystemTime,
    pub launch_index: usize,
    pub tags: Tags,
    /// (network card, device index) slots left blocked by forced detaches until the instance
    /// stops: see `DetachNetworkInterface` with `Force`.
    pub blocked: BTreeSet<(i64, i64)>,
    /// Its guest releases detached devices itself (`Simulator::hold_detaches`): a detach
    /// from it while it runs stays `detaching` until released, instead of for the latency.
    pub guest_releases: bool,
}

/// The instance states the simulator reaches; stop and start complete at once, so it never
/// reports `pending`, `stopping` or `shutting-down`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InstanceState {
    Running,
    Stopped,
    Terminated,
}

impl InstanceState {
    /// EC2's (code, name) of the state.
    pub fn code_and_name(self) -> (u16, &'static str) {
        match self {
            InstanceState::Running => (16, "running"),
            InstanceState::Stopped => (80, "stopped"),
            InstanceState::Terminated => (48, "terminated"),
        }
    }
}

#[derive(Clone)]
pub struct Eni {
    pub id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub az: String,
    pub description: String,
    pub mac: String,
    /// The primary private address first.
    pub ips: Vec<Ipv4Addr>,
    /// Delegated /28 prefixes.
    pub prefixes: Vec<Cidr>,
    pub groups: Vec<String>,
    pub tags: Tags,
    pub source_dest_check: bool,
    pub attachment: Option<Attachment>,
    /// Before this instant the ENI is not yet visible (eventual consistency).
    pub visible_at: Instant,
}

impl Eni {
    pub fn status(&self) -> &'static str {
        match self.attachment.as_ref().map(|a| a.state) {
            None => "available",
            Some(AttachState::Attaching) => "attaching",
            Some(AttachState::Attached) => "in-use",
            Some(AttachState::Detaching) => "detaching",
        }
    }

    pub fn visible(&self, now: Instant) -> bool {
        self.visible_at <= now
    }

    /// What counts against the instance type's Ipv4AddressesPerInterface: every private
    /// address, the primary included, and each prefix as one ("Prefix delegation for Amazon
    /// EC2 network interfaces", Considerations).
    pub fn address_count(&self) -> usize {
        self.ips.len() + self.prefixes.len()
    }
}

#[derive(Clone)]
pub struct Attachment {
    pub id: String,
    pub instance_id: String,
    pub device_index: i64,
    pub card_index: i64,
    pub state: AttachState,
    pub time: SystemTime,
    pub delete_on_termination: bool,
}

impl Attachment {
    /// (network card, device index): where the interface sits on the instance.
    pub fn slot(&self) -> (i64, i64) {
        (self.card_index, self.device_index)
    }

    pub fn is_primary(&self) -> bool {
        self.device_index == 0 && self.card_index == 0
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AttachState {
    Attaching,
    Attached,
    Detaching,
}

impl AttachState {
    pub fn name(self) -> &'static str {
        match self {
            AttachState::Attaching => "attaching",
            AttachState::Attached => "attached",
            AttachState::Detaching => "detaching",
        }
    }
}

impl World {
    /// Forgets every resource; IDs keep counting so that no old ID ever names a new resource.
    pub fn reset(&mut self) {
        *self = World {
            serial: self.serial,
            ..World::default()
        };
    }

    /// A fresh ID in EC2's form (`eni-` and 17 hex digits), unique for the simulator's life.
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.serial += 1;
        // An odd multiplier permutes u64, so the IDs stay unique while looking random.
        format!(
            "{prefix}-0{:016x}",
            self.serial.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )
    }

    /// A locally administered MAC address, unique for the simulator's life.
    pub fn new_mac(&mut self) -> String {
        self.serial += 1;
        let bits = self.serial.wrapping_mul(0x5851_f42d_4c95_7f2d) & 0xff_ffff_ffff;
        let bytes = bits.to_be_bytes();
        format!(
            "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]
        )
    }

    pub fn vpc(&self, id: &str) -> Result<&Vpc, ApiError> {
        self.vpcs.get(id).ok_or_else(|| vpc_not_found(id))
    }

    pub fn subnet(&self, id: &str) -> Result<&Subnet, ApiError> {
        self.subnets.get(id).ok_or_else(|| subnet_not_found(id))
    }

    pub fn group(&self, id: &str) -> Result<&SecurityGroup, ApiError> {
        self.groups.get(id).ok_or_else(|| group_not_found(id))
    }

    pub fn instance(&self, id: &str) -> Result<&Instance, ApiError> {
        self.instances.get(id).ok_or_else(|| instance_not_found(id))
    }

    pub fn eni(&self, id: &str, now: Instant) -> Result<&Eni, ApiError> {
        self.enis
            .get(id)
            .filter(|eni| eni.visible(now))
            .ok_or_else(|| eni_not_found(id))
    }

    pub fn eni_mut(&mut self, id: &str, now: Instant) -> Result<&mut Eni, ApiError> {
        self.enis
            .get_mut(id)
            .filter(|eni| eni.visible(now))
            .ok_or_else(|| eni_not_found(id))
    }

    /// The ENI that holds the attachment.
    pub fn attached_eni_mut(&mut self, attachment_id: &str) -> Result<&mut Eni, ApiError> {
        self.enis
            .values_mut()
            .find(|eni| {
                eni.attachment
                    .as_ref()
                    .is_some_and(|a| a.id == attachment_id)
            })
            .ok_or_else(|| {
                ApiError::not_found("InvalidAttachmentID.NotFound", "attachment", attachment_id)
            })
    }

    /// The ENIs attached to the instance, in any attachment state.
    pub fn enis_of<'a>(&'a self, instance_id: &'a str) -> impl Iterator<Item = &'a Eni> + 'a {
        self.enis.values().filter(move |eni| {
            eni.attachment
                .as_ref()
                .is_some_and(|a| a.instance_id == instance_id)
        })
    }

    /// The tags of whatever resource the ID names.
    pub fn tags_mut(&mut self, id: &str, now: Instant) -> Result<&mut Tags, ApiError> {
        match id.split_once('-').map_or("", |(prefix, _)| prefix) {
            "vpc" => self
                .vpcs
                .get_mut(id)
                .map(|r| &mut r.tags)
                .ok_or_else(|| vpc_not_found(id)),
            "subnet" => {
                (self.subnets.get_mut(id).map(|r| &mut r.tags)).ok_or_else(|| subnet_not_found(id))
            }
            "sg" => {
                (self.groups.get_mut(id).map(|r| &mut r.tags)).ok_or_else(|| group_not_found(id))
            }
            "i" => (self.instances.get_mut(id).map(|r| &mut r.tags))
                .ok_or_else(|| instance_not_found(id)),
            "eni" => self.eni_mut(id, now).map(|r| &mut r.tags),
            _ => Err(ApiError::new(
                "InvalidID",
                format!("The ID '{id}' is not valid"),
            )),
        }
    }
}

pub fn vpc_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidVpcID.NotFound", "vpc", id)
}

pub fn subnet_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidSubnetID.NotFound", "subnet", id)
}

pub fn eni_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidNetworkInterfaceID.NotFound", "networkInterface", id)
}

pub fn instance_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidInstanceID.NotFound", "instance", id)
}

pub fn group_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidGroup.NotFound",
        format!("The security group '{id}' does not exist"),
    )
}

/// An IPv4 block, `10.0.1.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, ApiError> {
        let invalid = || {
            ApiError::invalid_value(format!(
                "Value ({text}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
            ))
        };
        let (addr, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if !(16..=28).contains(&prefix) {
            return Err(invalid());
        }
        let cidr = Cidr {
            base: u32::from(addr),
            prefix,
        };
        if cidr.base & !cidr.mask() != 0 {
            return Err(invalid());
        }
        Ok(cidr)
    }

    fn mask(self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    pub fn size(self) -> u32 {
        1 << (32 - self.prefix)
    }

    pub fn contains(self, other: Cidr) -> bool {
        other.prefix >= self.prefix && other.base & self.mask() == self.base
    }

    pub fn overlaps(self, other: Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl Subnet {
    /// AWS reserves the first four addresses and the last one of every subnet.
    pub fn available(&self) -> usize {
        (self.cidr.size() as usize).saturating_sub(5 + self.used.len())
    }

    /// The lowest free address, or a specific one if asked.
    pub fn allocate(&mut self, wanted: Option<Ipv4Addr>) -> Result<Ipv4Addr, ApiError> {
        let offset = match wanted {
            Some(ip) => {
                let offset = u32::from(ip).wrapping_sub(self.cidr.base);
                if offset < 4 || offset >= self.cidr.size() - 1 || self.used.contains(&offset) {
                    return Err(ApiError::invalid_value(format!(
                        "Address {ip} is not available in subnet {}",
                        self.id
                    )));
                }
                offset
            }
            None => (4..self.cidr.size() - 1)
                .find(|offset| !self.used.contains(offset))
                .ok_or_else(|| {
                    ApiError::new(
                        "InsufficientFreeAddressesInSubnet",
                        format!("Not enough free addresses in subnet '{}'", self.id),
                    )
                })?,
        };
        self.used.insert(offset);
        Ok(Ipv4Addr::from(self.cidr.base + offset))
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used
            .remove(&u32::from(ip).wrapping_sub(self.cidr.base));
    }

    /// The lowest /28 of the subnet that is aligned, wholly free and clear of the five
    /// reserved addresses (so never the subnet's first or last /28); all 16 addresses are
    /// then used. A subnet with free addresses but no such block (fragmented) answers
    /// InsufficientCidrBlocks, as EC2 does for automatic prefix assignment.
    pub fn allocate_prefix(&mut self) -> Result<Cidr, ApiError> {
        let block = PREFIX_SIZE;
        let free = |start: u32| {
            start >= 4
                && start + block < self.cidr.size()
                && (start..start + block).all(|offset| !self.used.contains(&offset))
        };
        let start = (0..self.cidr.size() / block)
            .map(|n| n * block)
            .find(|start| free(*start))
            .ok_or_else(|| {
                ApiError::new(
                    "InsufficientCidrBlocks",
                    "The specified subnet does not have enough free cidr blocks to satisfy the request.",
                )
            })?;
        self.used.extend(start..start + block);
        Ok(Cidr {
            base: self.cidr.base + start,
            prefix: 28,
        })
    }

    pub fn release_prefix(&mut self, prefix: Cidr) {
        let start = prefix.base.wrapping_sub(self.cidr.base);
        for offset in start..start + prefix.size() {
            self.used.remove(&offset);
        }
    }

    /// Gives the addresses and prefixes back.
    pub fn release_all(&mut self, ips: &[Ipv4Addr], prefixes: &[Cidr]) {
        for ip in ips {
            self.release(*ip);
        }
        for prefix in prefixes {
            self.release_prefix(*prefix);
        }
    }
}

/// Addresses in an IPv4 prefix EC2 delegates (/28).
const PREFIX_SIZE: u32 = 16;
