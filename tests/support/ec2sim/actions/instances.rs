//! Instances: launched `running` with a primary ENI, described in reservations; and the
//! instance types' network limits. Stop, start and terminate are in `lifecycle.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Instant, SystemTime};

use super::interfaces::{NewInterface, eni_body};
use super::network::tag_set;
use super::{Ctx, Xml};
use crate::support::ec2sim::error::ApiError;
use crate::support::ec2sim::instance_types::{self, InstanceType};
use crate::support::ec2sim::query::{Field, Filterable, Paging, Params, Tags, select};
use crate::support::ec2sim::state::{
    ACCOUNT, AttachState, Attachment, Instance, InstanceState, World, instance_not_found,
};

/// What RunInstances needs to know.
pub struct Launch<'a> {
    pub subnet_id: &'a str,
    pub instance_type: &'a str,
    pub image_id: &'a str,
    pub count: usize,
    pub tags: Tags,
}

impl World {
    /// Launches `count` running instances; returns the reservation and instance IDs.
    pub fn run_instances(
        &mut self,
        launch: &Launch,
        now: Instant,
    ) -> Result<(String, Vec<String>), ApiError> {
        if instance_types::find(launch.instance_type).is_none() {
            return Err(ApiError::invalid_value(format!(
                "Invalid value '{}' for InstanceType.",
                launch.instance_type
            )));
        }
        let subnet = self.subnet(launch.subnet_id)?;
        let (vpc_id, az) = (subnet.vpc_id.clone(), subnet.az.clone());
        if subnet.available() < launch.count {
            return Err(ApiError::new(
                "InsufficientFreeAddressesInSubnet",
                format!("Not enough free addresses in subnet '{}'", launch.subnet_id),
            ));
        }
        let reservation_id = self.new_id("r");
        let mut ids = Vec::new();
        for launch_index in 0..launch.count {
            let id = self.new_id("i");
            let primary = NewInterface::in_subnet(launch.subnet_id);
            let eni_id = self.create_interface(&primary, now)?;
            let attachment = Attachment {
                id: self.new_id("eni-attach"),
                instance_id: id.clone(),
                device_index: 0,
                card_index: 0,
                state: AttachState::Attached,
                time: SystemTime::now(),
                delete_on_termination: true,
            };
            let eni = self.enis.get_mut(&eni_id).expect("just created");
            eni.attachment = Some(attachment);
            let instance = Instance {
                id: id.clone(),
                reservation_id: reservation_id.clone(),
                image_id: launch.image_id.to_owned(),
                type_name: launch.instance_type.to_owned(),
                az: az.clone(),
                subnet_id: launch.subnet_id.to_owned(),
                vpc_id: vpc_id.clone(),
                private_ip: eni.ips[0],
                state: InstanceState::Running,
                launch_time: SystemTime::now(),
                launch_index,
                tags: launch.tags.clone(),
                blocked: BTreeSet::new(),
                guest_releases: false,
            };
            self.instances.insert(id.clone(), instance);
            ids.push(id);
        }
        Ok((reservation_id, ids))
    }
}

pub fn run_instances(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let count = p.int("MaxCount")?.or(p.int("MinCount")?).unwrap_or(1);
    let launch = Launch {
        subnet_id: p.required("SubnetId")?,
        instance_type: p.get("InstanceType").unwrap_or("m5.large"),
        image_id: p.required("ImageId")?,
        count: usize::try_from(count)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::invalid_value("MaxCount must be at least 1"))?,
        tags: p.tag_specs("instance")?,
    };
    let (reservation_id, ids) = ctx.world.run_instances(&launch, ctx.now)?;
    x.leaf("reservationId", reservation_id)
        .leaf("ownerId", ACCOUNT)
        .node("groupSet", |_| {});
    x.items("instancesSet", &ids, |x, id| {
        instance(x, ctx.world, &ctx.world.instances[id]);
    });
    Ok(())
}

pub fn describe_instances(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let ids = p.list("InstanceId");
    if ids.len() > 1000 {
        return Err(ApiError::invalid_value(
            "At most 1000 instance IDs per request",
        ));
    }
    let paging = Paging::read(p, (5, 1000), !ids.is_empty(), "instancesSet")?;
    let found = select(
        &ctx.world.instances,
        &ids,
        &p.filters(),
        |_| true,
        instance_not_found,
    )?;
    let (page, next) = paging.page(found, |i| &i.id);
    let mut reservations: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for i in page {
        reservations.entry(&i.reservation_id).or_default().push(i);
    }
    x.items(
        "reservationSet",
        reservations,
        |x, (reservation_id, instances)| {
            x.leaf("reservationId", reservation_id)
                .leaf("ownerId", ACCOUNT)
                .node("groupSet", |_| {})
                .items("instancesSet", instances, |x, i| instance(x, ctx.world, i));
        },
    )
    .opt_leaf("nextToken", next);
    Ok(())
}

fn instance(x: &mut Xml, world: &World, i: &Instance) {
    let (code, name) = i.state.code_and_name();
    let mut enis: Vec<_> = world.enis_of(&i.id).collect();
    enis.sort_by_key(|e| {
        e.attachment
            .as_ref()
            .map(|a| (a.card_index, a.device_index))
    });
    let ip = i.private_ip.octets();
    x.leaf("instanceId", &i.id)
        .leaf("imageId", &i.image_id)
        .node("instanceState", |x| {
            x.leaf("code", code).leaf("name", name);
        })
        .leaf(
            "privateDnsName",
            format!("ip-{}-{}-{}-{}.ec2.internal", ip[0], ip[1], ip[2], ip[3]),
        )
        .leaf("amiLaunchIndex", i.launch_index)
        .leaf("instanceType", &i.type_name)
        .leaf(
            "launchTime",
            humantime::format_rfc3339_millis(i.launch_time),
        )
        .node("placement", |x| {
            x.leaf("availabilityZone", &i.az).leaf("tenancy", "default");
        })
        .leaf("subnetId", &i.subnet_id)
        .leaf("vpcId", &i.vpc_id)
        .leaf("privateIpAddress", i.private_ip)
        .leaf("sourceDestCheck", true)
        .leaf("architecture", "x86_64");
    tag_set(x, &i.tags);
    x.items("networkInterfaceSet", enis, eni_body);
}

pub fn describe_instance_types(_: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let names = p.list("InstanceType");
    if let Some(filter) = p.filters().first() {
        return Err(ApiError::invalid_value(format!(
            "The filter '{}' is invalid",
            filter.name
        )));
    }
    let paging = Paging::read(p, (5, 100), !names.is_empty(), "InstanceTypes")?;
    let types: Vec<&InstanceType> = if names.is_empty() {
        instance_types::all().iter().collect()
    } else {
        let unknown: Vec<&str> = (names.iter().map(String::as_str))
            .filter(|name| instance_types::find(name).is_none())
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::new(
                "InvalidInstanceType",
                format!(
                    "The following supplied instance types do not exist: [{}]",
                    unknown.join(", ")
                ),
            ));
        }
        names
            .iter()
            .filter_map(|name| instance_types::find(name))
            .collect()
    };
    let (page, next) = paging.page(types, |t| t.name);
    x.items("instanceTypeSet", page, instance_type)
        .opt_leaf("nextToken", next);
    Ok(())
}

fn instance_type(x: &mut Xml, t: &InstanceType) {
    x.leaf("instanceType", t.name)
        .leaf("currentGeneration", true)
        .leaf("hypervisor", t.hypervisor);
    x.node("networkInfo", |x| {
        x.leaf("networkPerformance", t.performance)
            .leaf("maximumNetworkInterfaces", t.max_interfaces)
            .leaf("maximumNetworkCards", t.network_cards)
            .leaf("defaultNetworkCardIndex", 0)
            .items("networkCards", 0..t.network_cards, |x, card| {
                x.leaf("networkCardIndex", card)
                    .leaf("networkPerformance", t.performance)
                    .leaf("maximumNetworkInterfaces", t.per_card());
            })
            .leaf("ipv4AddressesPerInterface", t.ipv4_per_interface)
            .leaf("ipv6AddressesPerInterface", t.ipv4_per_interface)
            .leaf("ipv6Supported", true)
            .leaf("enaSupport", "required");
    });
}

impl Filterable for Instance {
    fn tags(&self) -> &Tags {
        &self.tags
    }

    fn field(name: &str) -> Option<Field<Instance>> {
        Some(match name {
            "instance-id" => |i| vec![i.id.clone()],
            "instance-type" => |i| vec![i.type_name.clone()],
            "instance-state-name" => |i| vec![i.state.code_and_name().1.into()],
            "instance-state-code" => |i| vec![i.state.code_and_name().0.to_string()],
            "availability-zone" => |i| vec![i.az.clone()],
            "subnet-id" => |i| vec![i.subnet_id.clone()],
            "vpc-id" => |i| vec![i.vpc_id.clone()],
            "private-ip-address" => |i| vec![i.private_ip.to_string()],
            "image-id" => |i| vec![i.image_id.clone()],
            "reservation-id" => |i| vec![i.reservation_id.clone()],
            _ => return None,
        })
    }
}
