//! VPCs, subnets and security groups: enough of them for ENIs and instances to live in.

use super::{Ctx, Xml};
use crate::support::ec2sim::error::ApiError;
use crate::support::ec2sim::query::{Field, Filterable, Paging, Params, Tags, select};
use crate::support::ec2sim::state::{
    ACCOUNT, Cidr, SecurityGroup, Subnet, Vpc, World, group_not_found, subnet_not_found,
};

impl World {
    /// A VPC with its `default` security group, as EC2 creates it.
    pub fn create_vpc(&mut self, cidr: &str, tags: Tags) -> Result<String, ApiError> {
        let cidr = Cidr::parse(cidr)?;
        let id = self.new_id("vpc");
        self.vpcs.insert(
            id.clone(),
            Vpc {
                id: id.clone(),
                cidr,
                tags,
            },
        );
        self.create_security_group(&id, "default", "default VPC security group", Tags::new())?;
        Ok(id)
    }

    pub fn create_subnet(
        &mut self,
        vpc_id: &str,
        az: &str,
        cidr: &str,
        tags: Tags,
    ) -> Result<String, ApiError> {
        let vpc_cidr = self.vpc(vpc_id)?.cidr;
        let cidr = Cidr::parse(cidr)?;
        if !vpc_cidr.contains(cidr) {
            return Err(ApiError::new(
                "InvalidSubnet.Range",
                format!("The CIDR '{cidr}' is invalid."),
            ));
        }
        if (self.subnets.values()).any(|s| s.vpc_id == vpc_id && s.cidr.overlaps(cidr)) {
            return Err(ApiError::new(
                "InvalidSubnet.Conflict",
                format!("The CIDR '{cidr}' conflicts with another subnet"),
            ));
        }
        let id = self.new_id("subnet");
        let subnet = Subnet {
            id: id.clone(),
            vpc_id: vpc_id.to_owned(),
            az: az.to_owned(),
            cidr,
            tags,
            used: std::collections::BTreeSet::new(),
        };
        self.subnets.insert(id.clone(), subnet);
        Ok(id)
    }

    pub fn create_security_group(
        &mut self,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: Tags,
    ) -> Result<String, ApiError> {
        self.vpc(vpc_id)?;
        if (self.groups.values()).any(|g| g.vpc_id == vpc_id && g.name == name) {
            return Err(ApiError::new(
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
            ));
        }
        let id = self.new_id("sg");
        let group = SecurityGroup {
            id: id.clone(),
            vpc_id: vpc_id.to_owned(),
            name: name.to_owned(),
            description: description.to_owned(),
            tags,
        };
        self.groups.insert(id.clone(), group);
        Ok(id)
    }
}

pub fn create_vpc(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let id = (ctx.world).create_vpc(p.required("CidrBlock")?, p.tag_specs("vpc")?)?;
    let vpc = &ctx.world.vpcs[&id];
    x.node("vpc", |x| {
        x.leaf("vpcId", &vpc.id)
            .leaf("ownerId", ACCOUNT)
            .leaf("state", "available")
            .leaf("cidrBlock", vpc.cidr)
            .leaf("dhcpOptionsId", "default")
            .leaf("instanceTenancy", "default")
            .leaf("isDefault", false);
        tag_set(x, &vpc.tags);
    });
    Ok(())
}

pub fn create_subnet(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let id = ctx.world.create_subnet(
        p.required("VpcId")?,
        p.get("AvailabilityZone").unwrap_or("us-east-1a"),
        p.required("CidrBlock")?,
        p.tag_specs("subnet")?,
    )?;
    x.node("subnet", |x| subnet(x, &ctx.world.subnets[&id]));
    Ok(())
}

pub fn create_security_group(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let id = ctx.world.create_security_group(
        p.required("VpcId")?,
        p.required("GroupName")?,
        p.required("GroupDescription")?,
        p.tag_specs("security-group")?,
    )?;
    x.leaf("return", true).leaf("groupId", &id);
    tag_set(x, &ctx.world.groups[&id].tags);
    Ok(())
}

pub fn describe_subnets(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let ids = p.list("SubnetId");
    let paging = Paging::read(p, (5, 1000), !ids.is_empty(), "SubnetIds")?;
    let found = select(
        &ctx.world.subnets,
        &ids,
        &p.filters(),
        |_| true,
        subnet_not_found,
    )?;
    let (page, next) = paging.page(found, |s| &s.id);
    x.items("subnetSet", page, subnet)
        .opt_leaf("nextToken", next);
    Ok(())
}

pub fn describe_security_groups(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let ids = p.list("GroupId");
    let names = p.list("GroupName");
    let paging = Paging::read(p, (5, 1000), !ids.is_empty(), "GroupIds")?;
    let found = select(
        &ctx.world.groups,
        &ids,
        &p.filters(),
        |_| true,
        group_not_found,
    )?;
    let found = found
        .into_iter()
        .filter(|g| names.is_empty() || names.contains(&g.name));
    let (page, next) = paging.page(found.collect(), |g| &g.id);
    x.items("securityGroupInfo", page, |x, g| {
        x.leaf("ownerId", ACCOUNT)
            .leaf("groupId", &g.id)
            .leaf("groupName", &g.name)
            .leaf("groupDescription", &g.description)
            .leaf("vpcId", &g.vpc_id)
            .leaf(
                "securityGroupArn",
                format!("arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/{}", g.id),
            )
            .node("ipPermissions", |_| {})
            .node("ipPermissionsEgress", |_| {});
        tag_set(x, &g.tags);
    })
    .opt_leaf("nextToken", next);
    Ok(())
}

fn subnet(x: &mut Xml, s: &Subnet) {
    x.leaf("subnetId", &s.id)
        .leaf(
            "subnetArn",
            format!("arn:aws:ec2:us-east-1:{ACCOUNT}:subnet/{}", s.id),
        )
        .leaf("state", "available")
        .leaf("vpcId", &s.vpc_id)
        .leaf("ownerId", ACCOUNT)
        .leaf("cidrBlock", s.cidr)
        .leaf("availableIpAddressCount", s.available())
        .leaf("availabilityZone", &s.az)
        .leaf("defaultForAz", false)
        .leaf("mapPublicIpOnLaunch", false);
    tag_set(x, &s.tags);
}

pub fn tag_set(x: &mut Xml, tags: &Tags) {
    x.items("tagSet", tags, |x, (key, value)| {
        x.leaf("key", key).leaf("value", value);
    });
}

impl Filterable for Subnet {
    fn tags(&self) -> &Tags {
        &self.tags
    }

    fn field(name: &str) -> Option<Field<Subnet>> {
        Some(match name {
            "subnet-id" => |s| vec![s.id.clone()],
            "vpc-id" => |s| vec![s.vpc_id.clone()],
            "availability-zone" => |s| vec![s.az.clone()],
            "cidr-block" | "cidrBlock" => |s| vec![s.cidr.to_string()],
            "state" => |_| vec!["available".into()],
            "owner-id" => |_| vec![ACCOUNT.into()],
            _ => return None,
        })
    }
}

impl Filterable for SecurityGroup {
    fn tags(&self) -> &Tags {
        &self.tags
    }

    fn field(name: &str) -> Option<Field<SecurityGroup>> {
        Some(match name {
            "group-id" => |g| vec![g.id.clone()],
            "group-name" => |g| vec![g.name.clone()],
            "vpc-id" => |g| vec![g.vpc_id.clone()],
            "description" => |g| vec![g.description.clone()],
            "owner-id" => |_| vec![ACCOUNT.into()],
            _ => return None,
        })
    }
}
