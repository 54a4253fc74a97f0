//! An ENI's private IPv4 addresses and /28 prefixes: allocated from its subnet at creation and
//! by AssignPrivateIpAddresses, given back by UnassignPrivateIpAddresses and at deletion, and
//! held within the instance type's Ipv4AddressesPerInterface (the primary address included,
//! each prefix counting as one) and its hypervisor (prefixes on Nitro types only).

use std::net::Ipv4Addr;

use super::interfaces::{count, parse_ip};
use super::{Ctx, Xml, done};
use crate::support::ec2sim::error::ApiError;
use crate::support::ec2sim::instance_types::{self, InstanceType};
use crate::support::ec2sim::query::Params;
use crate::support::ec2sim::state::{Cidr, Eni, World};

/// Addresses to take from a subnet: specific ones or the lowest free (`None`), and prefixes.
#[derive(Default)]
pub struct Request {
    pub ips: Vec<Option<Ipv4Addr>>,
    pub prefixes: usize,
}

impl World {
    /// Takes the addresses from the subnet, all or none: InsufficientFreeAddressesInSubnet
    /// when it has too few addresses, InsufficientCidrBlocks when it has no free aligned /28
    /// left for a prefix.
    pub fn allocate(
        &mut self,
        subnet_id: &str,
        request: &Request,
    ) -> Result<(Vec<Ipv4Addr>, Vec<Cidr>), ApiError> {
        let subnet = self.subnets.get_mut(subnet_id).expect("a known subnet");
        if subnet.available() < request.ips.len() + 16 * request.prefixes {
            return Err(ApiError::new(
                "InsufficientFreeAddressesInSubnet",
                format!("Not enough free addresses in subnet '{subnet_id}'"),
            ));
        }
        let mut ips = Vec::new();
        let mut prefixes = Vec::new();
        let mut take = || -> Result<(), ApiError> {
            for wanted in &request.ips {
                ips.push(subnet.allocate(*wanted)?);
            }
            for _ in 0..request.prefixes {
                prefixes.push(subnet.allocate_prefix()?);
            }
            Ok(())
        };
        if let Err(error) = take() {
            subnet.release_all(&ips, &prefixes);
            return Err(error);
        }
        Ok((ips, prefixes))
    }

    /// The type of the instance the ENI is attached to, if it is.
    pub fn attached_type(&self, eni: &Eni) -> Option<&'static InstanceType> {
        let attachment = eni.attachment.as_ref()?;
        let instance = self.instances.get(&attachment.instance_id)?;
        instance_types::find(&instance.type_name)
    }
}

/// Whether the type takes an interface with `addresses` (primary, secondaries and prefixes)
/// of which `prefixes` are prefixes. EC2 answers AttachNetworkInterface past the limit with
/// `InvalidInterface.IpAddressLimitExceeded: Address count N on interface-… exceeds the limit
/// for TYPE` (as reported in cilium/cilium#9730); AssignPrivateIpAddresses past it with
/// `PrivateIpAddressLimitExceeded: Number of private addresses will exceed limit.` Prefixes on
/// a non-Nitro type: EC2 documents prefixes for Nitro types only, not the error it answers;
/// the simulator answers `UnsupportedOperation`.
pub fn check_type(
    t: &InstanceType,
    addresses: usize,
    prefixes: usize,
    over: ApiError,
) -> Result<(), ApiError> {
    if prefixes > 0 && t.hypervisor != "nitro" {
        return Err(ApiError::new(
            "UnsupportedOperation",
            format!(
                "IPv4 prefixes are not supported on instance type {}: prefix delegation needs an instance type built on the Nitro System.",
                t.name
            ),
        ));
    }
    if addresses > t.ipv4_per_interface as usize {
        return Err(over);
    }
    Ok(())
}

pub fn assign_private_ips(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let id = p.required("NetworkInterfaceId")?;
    let wanted = addresses(p)?;
    let extra = count(p, "SecondaryPrivateIpAddressCount")?;
    let prefixes = count(p, "Ipv4PrefixCount")?;
    let asked = [!wanted.is_empty(), extra > 0, prefixes > 0];
    if asked.iter().filter(|a| **a).count() != 1 {
        return Err(ApiError::combination(
            "Specify one of PrivateIpAddress, SecondaryPrivateIpAddressCount or Ipv4PrefixCount",
        ));
    }
    let eni = ctx.world.eni(id, ctx.now)?;
    if let Some(t) = ctx.world.attached_type(eni) {
        let over = ApiError::new(
            "PrivateIpAddressLimitExceeded",
            "Number of private addresses will exceed limit.",
        );
        let total = eni.address_count() + wanted.len() + extra + prefixes;
        check_type(t, total, eni.prefixes.len() + prefixes, over)?;
    }
    let request = Request {
        ips: wanted
            .into_iter()
            .map(Some)
            .chain((0..extra).map(|_| None))
            .collect(),
        prefixes,
    };
    let subnet_id = eni.subnet_id.clone();
    let (ips, cidrs) = ctx.world.allocate(&subnet_id, &request)?;
    let eni = ctx.world.eni_mut(id, ctx.now)?;
    eni.ips.extend(&ips);
    eni.prefixes.extend(&cidrs);
    x.leaf("networkInterfaceId", id)
        .items("assignedPrivateIpAddressesSet", ips, |x, ip| {
            x.leaf("privateIpAddress", ip);
        })
        .items("assignedIpv4PrefixSet", cidrs, |x, prefix| {
            x.leaf("ipv4Prefix", prefix);
        });
    done(x);
    Ok(())
}

pub fn unassign_private_ips(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let id = p.required("NetworkInterfaceId")?;
    let ips = addresses(p)?;
    let prefixes = p
        .list("Ipv4Prefix")
        .iter()
        .map(|text| Cidr::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    if ips.is_empty() && prefixes.is_empty() {
        return Err(ApiError::missing("PrivateIpAddress"));
    }
    let eni = ctx.world.eni_mut(id, ctx.now)?;
    let assigned = ips.iter().all(|ip| eni.ips[1..].contains(ip))
        && prefixes.iter().all(|p| eni.prefixes.contains(p));
    if !assigned {
        return Err(ApiError::invalid_value(format!(
            "Some of the specified addresses are not assigned to interface {id}"
        )));
    }
    eni.ips.retain(|ip| !ips.contains(ip));
    eni.prefixes.retain(|q| !prefixes.contains(q));
    let subnet_id = eni.subnet_id.clone();
    if let Some(subnet) = ctx.world.subnets.get_mut(&subnet_id) {
        subnet.release_all(&ips, &prefixes);
    }
    done(x);
    Ok(())
}

fn addresses(p: &Params) -> Result<Vec<Ipv4Addr>, ApiError> {
    p.list("PrivateIpAddress")
        .iter()
        .map(|ip| parse_ip(ip))
        .collect()
}
