//! Changes to an existing ENI: ModifyNetworkInterfaceAttribute (the attachment's
//! DeleteOnTermination, source/dest check, description, security groups) and secondary private
//! addresses, within the instance type's per-interface limit.

use std::net::Ipv4Addr;

use super::interfaces::{count, parse_ip};
use super::{Ctx, Xml, done};
use crate::support::ec2sim::error::ApiError;
use crate::support::ec2sim::instance_types;
use crate::support::ec2sim::query::Params;

pub fn modify(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let id = p.required("NetworkInterfaceId")?;
    let eni = ctx.world.eni(id, ctx.now)?;
    let groups = p.list("SecurityGroupId");
    let groups = if groups.is_empty() {
        None
    } else {
        Some(
            ctx.world
                .groups_in_vpc(&groups, &eni.vpc_id, &eni.subnet_id)?,
        )
    };
    let attachment = match p.get("Attachment.AttachmentId") {
        Some(attachment_id) => {
            let attached = eni
                .attachment
                .as_ref()
                .is_some_and(|a| a.id == attachment_id);
            if !attached {
                return Err(ApiError::not_found(
                    "InvalidAttachmentID.NotFound",
                    "attachment",
                    attachment_id,
                ));
            }
            p.bool("Attachment.DeleteOnTermination")?
        }
        None => None,
    };
    let source_dest_check = p.bool("SourceDestCheck.Value")?;
    let description = p.get("Description.Value");
    if groups.is_none()
        && attachment.is_none()
        && source_dest_check.is_none()
        && description.is_none()
    {
        return Err(ApiError::combination("No attributes specified."));
    }
    let eni = ctx.world.eni_mut(id, ctx.now)?;
    if let (Some(dot), Some(a)) = (attachment, eni.attachment.as_mut()) {
        a.delete_on_termination = dot;
    }
    eni.groups = groups.unwrap_or_else(|| eni.groups.clone());
    eni.source_dest_check = source_dest_check.unwrap_or(eni.source_dest_check);
    if let Some(description) = description {
        description.clone_into(&mut eni.description);
    }
    done(x);
    Ok(())
}

pub fn assign_private_ips(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let id = p.required("NetworkInterfaceId")?;
    let wanted = addresses(p)?;
    let extra = count(p, "SecondaryPrivateIpAddressCount")?;
    if wanted.is_empty() == (extra == 0) {
        return Err(ApiError::combination(
            "Specify either PrivateIpAddress or SecondaryPrivateIpAddressCount",
        ));
    }
    let eni = ctx.world.eni(id, ctx.now)?;
    let adding = wanted.len() + extra;
    let limit = (eni.attachment.as_ref())
        .and_then(|a| ctx.world.instances.get(&a.instance_id))
        .and_then(|i| instance_types::find(&i.type_name))
        .map(|t| t.ipv4_per_interface as usize);
    if limit.is_some_and(|limit| eni.ips.len() + adding > limit) {
        return Err(ApiError::new(
            "PrivateIpAddressLimitExceeded",
            "Number of private addresses will exceed limit.",
        ));
    }
    let subnet_id = eni.subnet_id.clone();
    let subnet = ctx
        .world
        .subnets
        .get_mut(&subnet_id)
        .expect("the ENI's subnet");
    let requests = wanted.into_iter().map(Some).chain((0..extra).map(|_| None));
    let mut assigned = Vec::new();
    for request in requests {
        match subnet.allocate(request) {
            Ok(ip) => assigned.push(ip),
            Err(error) => {
                for ip in &assigned {
                    subnet.release(*ip);
                }
                return Err(error);
            }
        }
    }
    let eni = ctx.world.eni_mut(id, ctx.now)?;
    eni.ips.extend(&assigned);
    x.leaf("networkInterfaceId", id)
        .items("assignedPrivateIpAddressesSet", assigned, |x, ip| {
            x.leaf("privateIpAddress", ip);
        });
    done(x);
    Ok(())
}

pub fn unassign_private_ips(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let id = p.required("NetworkInterfaceId")?;
    let ips = addresses(p)?;
    if ips.is_empty() {
        return Err(ApiError::missing("PrivateIpAddress"));
    }
    let eni = ctx.world.eni_mut(id, ctx.now)?;
    if !ips.iter().all(|ip| eni.ips[1..].contains(ip)) {
        return Err(ApiError::invalid_value(format!(
            "Some of the specified addresses are not assigned to interface {id}"
        )));
    }
    eni.ips.retain(|ip| !ips.contains(ip));
    let subnet_id = eni.subnet_id.clone();
    if let Some(subnet) = ctx.world.subnets.get_mut(&subnet_id) {
        for ip in &ips {
            subnet.release(*ip);
        }
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
