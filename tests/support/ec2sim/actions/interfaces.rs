//! ENIs: create (ClientToken idempotency, tags at creation, security groups of the subnet's
//! VPC, secondary addresses or /28 prefixes from the subnet), delete (only when `available`),
//! describe (IDs, filters, pagination), and their XML.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::addresses::Request;
use super::network::tag_set;
use super::{Ctx, Xml, done};
use crate::support::ec2sim::error::ApiError;
use crate::support::ec2sim::query::{Field, Filterable, Paging, Params, Tags, select};
use crate::support::ec2sim::state::{ACCOUNT, Eni, World, eni_not_found};

/// What a new ENI is made of.
pub struct NewInterface<'a> {
    pub subnet_id: &'a str,
    /// Empty: the VPC's `default` group.
    pub groups: Vec<String>,
    pub description: String,
    pub tags: Tags,
    pub private_ip: Option<Ipv4Addr>,
    pub secondary_count: usize,
    pub prefix_count: usize,
}

impl NewInterface<'_> {
    pub fn in_subnet(subnet_id: &str) -> NewInterface<'_> {
        NewInterface {
            subnet_id,
            groups: Vec::new(),
            description: String::new(),
            tags: Tags::new(),
            private_ip: None,
            secondary_count: 0,
            prefix_count: 0,
        }
    }
}

impl World {
    /// A new `available` ENI, visible to callers from `visible_at` on. The ENI is not yet
    /// attached, so no instance type limits its addresses: AttachNetworkInterface checks them.
    pub fn create_interface(
        &mut self,
        spec: &NewInterface,
        visible_at: Instant,
    ) -> Result<String, ApiError> {
        let subnet = self.subnet(spec.subnet_id)?;
        let (vpc_id, az) = (subnet.vpc_id.clone(), subnet.az.clone());
        let groups = self.groups_in_vpc(&spec.groups, &vpc_id, spec.subnet_id)?;
        if spec.secondary_count > 0 && spec.prefix_count > 0 {
            return Err(ApiError::combination(
                "Specify SecondaryPrivateIpAddressCount or Ipv4PrefixCount, not both",
            ));
        }
        let request = Request {
            ips: std::iter::once(spec.private_ip)
                .chain((0..spec.secondary_count).map(|_| None))
                .collect(),
            prefixes: spec.prefix_count,
        };
        let (ips, prefixes) = self.allocate(spec.subnet_id, &request)?;
        let id = self.new_id("eni");
        let eni = Eni {
            id: id.clone(),
            subnet_id: spec.subnet_id.to_owned(),
            vpc_id,
            az,
            description: spec.description.clone(),
            mac: self.new_mac(),
            ips,
            prefixes,
            groups,
            tags: spec.tags.clone(),
            source_dest_check: true,
            attachment: None,
            visible_at,
        };
        self.enis.insert(id.clone(), eni);
        Ok(id)
    }

    /// The security groups, checked to exist and to belong to the subnet's VPC.
    pub fn groups_in_vpc(
        &self,
        groups: &[String],
        vpc_id: &str,
        subnet_id: &str,
    ) -> Result<Vec<String>, ApiError> {
        if groups.is_empty() {
            let default = self
                .groups
                .values()
                .find(|g| g.vpc_id == vpc_id && g.name == "default");
            return Ok(default.map(|g| g.id.clone()).into_iter().collect());
        }
        for id in groups {
            if self.group(id)?.vpc_id != vpc_id {
                return Err(ApiError::combination(format!(
                    "Security group {id} and subnet {subnet_id} belong to different networks."
                )));
            }
        }
        Ok(groups.to_vec())
    }

    /// Forgets the ENI and gives its addresses back to the subnet.
    pub fn remove_interface(&mut self, id: &str) {
        let Some(eni) = self.enis.remove(id) else {
            return;
        };
        if let Some(subnet) = self.subnets.get_mut(&eni.subnet_id) {
            subnet.release_all(&eni.ips, &eni.prefixes);
        }
    }
}

pub fn create(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let token = p.get("ClientToken");
    let fingerprint = p.fingerprint(&["ClientToken"]);
    if let Some(token) = token {
        if token.len() > 64 || !token.is_ascii() {
            return Err(ApiError::invalid_value(
                "ClientToken must be at most 64 ASCII characters",
            ));
        }
        if let Some((first, created)) = ctx.world.tokens.get(token) {
            if *first != fingerprint {
                return Err(ApiError::new(
                    "IdempotentParameterMismatch",
                    format!(
                        "The client token '{token}' was already used with different parameters."
                    ),
                ));
            }
            // EC2 answers a used token with the result of the first request, "updated
            // information" where there is some ("Ensuring idempotency in Amazon EC2 API
            // requests"): the ENI as it is now, or, deleted since, as it was created. Nothing
            // is created again.
            let eni = ctx.world.enis.get(&created.id).unwrap_or(created);
            x.node("networkInterface", |x| eni_body(x, eni))
                .leaf("clientToken", token);
            return Ok(());
        }
    }
    let spec = NewInterface {
        subnet_id: p.required("SubnetId")?,
        groups: p.list("SecurityGroupId"),
        description: p.get("Description").unwrap_or_default().to_owned(),
        tags: p.tag_specs("network-interface")?,
        private_ip: p.get("PrivateIpAddress").map(parse_ip).transpose()?,
        secondary_count: count(p, "SecondaryPrivateIpAddressCount")?,
        prefix_count: count(p, "Ipv4PrefixCount")?,
    };
    let id = ctx
        .world
        .create_interface(&spec, ctx.now + ctx.consistency_window())?;
    let eni = &ctx.world.enis[&id];
    if let Some(token) = token {
        (ctx.world.tokens).insert(token.to_owned(), (fingerprint, eni.clone()));
    }
    x.node("networkInterface", |x| eni_body(x, eni))
        .opt_leaf("clientToken", token);
    Ok(())
}

pub fn delete(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let id = p.required("NetworkInterfaceId")?;
    if ctx.world.eni(id, ctx.now)?.attachment.is_some() {
        return Err(ApiError::new(
            "InvalidNetworkInterface.InUse",
            format!("The network interface '{id}' is currently in use."),
        ));
    }
    ctx.world.remove_interface(id);
    done(x);
    Ok(())
}

pub fn describe(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let ids = p.list("NetworkInterfaceId");
    let paging = Paging::read(p, (5, 1000), !ids.is_empty(), "NetworkInterfaceIds")?;
    let now = ctx.now;
    let visible = |eni: &Eni| eni.visible(now);
    let found = select(&ctx.world.enis, &ids, &p.filters(), visible, eni_not_found)?;
    let (page, next) = paging.page(found, |e| &e.id);
    x.items("networkInterfaceSet", page, eni_body)
        .opt_leaf("nextToken", next);
    Ok(())
}

/// A `NetworkInterface` (also read as an `InstanceNetworkInterface`: parsers skip the rest).
pub fn eni_body(x: &mut Xml, eni: &Eni) {
    x.leaf("networkInterfaceId", &eni.id)
        .leaf("subnetId", &eni.subnet_id)
        .leaf("vpcId", &eni.vpc_id)
        .leaf("availabilityZone", &eni.az)
        .leaf("description", &eni.description)
        .leaf("ownerId", ACCOUNT)
        .leaf("requesterManaged", false)
        .leaf("status", eni.status())
        .leaf("macAddress", &eni.mac)
        .leaf("privateIpAddress", eni.ips[0])
        .leaf("sourceDestCheck", eni.source_dest_check)
        .leaf("interfaceType", "interface")
        .items("groupSet", &eni.groups, |x, id| {
            x.leaf("groupId", id);
        });
    if let Some(a) = &eni.attachment {
        x.node("attachment", |x| {
            x.leaf("attachmentId", &a.id)
                .leaf("instanceId", &a.instance_id)
                .leaf("instanceOwnerId", ACCOUNT)
                .leaf("deviceIndex", a.device_index)
                .leaf("networkCardIndex", a.card_index)
                .leaf("status", a.state.name())
                .leaf("attachTime", humantime::format_rfc3339_millis(a.time))
                .leaf("deleteOnTermination", a.delete_on_termination);
        });
    }
    x.items(
        "privateIpAddressesSet",
        eni.ips.iter().enumerate(),
        |x, (n, ip)| {
            x.leaf("privateIpAddress", ip).leaf("primary", n == 0);
        },
    );
    x.items("ipv4PrefixSet", &eni.prefixes, |x, prefix| {
        x.leaf("ipv4Prefix", prefix);
    });
    tag_set(x, &eni.tags);
}

pub fn parse_ip(text: &str) -> Result<Ipv4Addr, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid_value(format!("Invalid IPv4 address '{text}'")))
}

pub fn count(p: &Params, key: &str) -> Result<usize, ApiError> {
    let n = p.int(key)?.unwrap_or(0);
    usize::try_from(n)
        .map_err(|_| ApiError::invalid_value(format!("Invalid value '{n}' for {key}")))
}

impl Filterable for Eni {
    fn tags(&self) -> &Tags {
        &self.tags
    }

    fn field(name: &str) -> Option<Field<Eni>> {
        Some(match name {
            "network-interface-id" => |e| vec![e.id.clone()],
            "subnet-id" => |e| vec![e.subnet_id.clone()],
            "vpc-id" => |e| vec![e.vpc_id.clone()],
            "availability-zone" => |e| vec![e.az.clone()],
            "status" => |e| vec![e.status().into()],
            "description" => |e| vec![e.description.clone()],
            "mac-address" => |e| vec![e.mac.clone()],
            "private-ip-address" => |e| vec![e.ips[0].to_string()],
            "addresses.private-ip-address" => |e| e.ips.iter().map(ToString::to_string).collect(),
            "group-id" => |e| e.groups.clone(),
            "source-dest-check" => |e| vec![e.source_dest_check.to_string()],
            "interface-type" => |_| vec!["interface".into()],
            "owner-id" => |_| vec![ACCOUNT.into()],
            "requester-managed" => |_| vec!["false".into()],
            "attachment.attachment-id" => |e| e.attachment.iter().map(|a| a.id.clone()).collect(),
            "attachment.instance-id" => {
                |e| e.attachment.iter().map(|a| a.instance_id.clone()).collect()
            }
            "attachment.instance-owner-id" => {
                |e| e.attachment.iter().map(|_| ACCOUNT.into()).collect()
            }
            "attachment.device-index" => |e| {
                e.attachment
                    .iter()
                    .map(|a| a.device_index.to_string())
                    .collect()
            },
            "attachment.network-card-index" => |e| {
                e.attachment
                    .iter()
                    .map(|a| a.card_index.to_string())
                    .collect()
            },
            "attachment.status" => |e| e.attachment.iter().map(|a| a.state.name().into()).collect(),
            "attachment.delete-on-termination" => |e| {
                e.attachment
                    .iter()
                    .map(|a| a.delete_on_termination.to_string())
                    .collect()
            },
            _ => return None,
        })
    }
}
