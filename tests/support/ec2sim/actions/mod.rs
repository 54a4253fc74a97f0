//! The EC2 actions: each reads its Query parameters, changes or reads the world, and writes
//! the body of its XML response.

mod addresses;
mod attach;
mod instances;
mod interface_changes;
mod interfaces;
mod lifecycle;
mod network;
mod tags;

use std::time::{Duration, Instant};

use super::config::SimConfig;
use super::error::ApiError;
use super::hooks::{AttachmentEvent, DetachRequest};
use super::query::Params;
use super::state::World;
use super::xml::Xml;

pub use attach::Pending;
pub use instances::Launch;

/// What one call works with, and what it leaves to do once the world is unlocked.
pub struct Ctx<'a> {
    pub world: &'a mut World,
    pub config: &'a SimConfig,
    pub now: Instant,
    /// Attachment events to hand to the hooks.
    pub events: Vec<AttachmentEvent>,
    /// Attachment transitions due after a latency.
    pub pending: Vec<Pending>,
    /// Detaches to tell the guests that hold them.
    pub requests: Vec<DetachRequest>,
}

impl<'a> Ctx<'a> {
    pub fn new(world: &'a mut World, config: &'a SimConfig) -> Ctx<'a> {
        Ctx {
            world,
            config,
            now: Instant::now(),
            events: Vec::new(),
            pending: Vec::new(),
            requests: Vec::new(),
        }
    }

    fn consistency_window(&self) -> Duration {
        Duration::from_millis(self.config.consistency_window_ms)
    }
}

pub type Handler = fn(&mut Ctx, &Params, &mut Xml) -> Result<(), ApiError>;

pub fn handler(action: &str) -> Option<Handler> {
    Some(match action {
        "CreateVpc" => network::create_vpc,
        "CreateSubnet" => network::create_subnet,
        "CreateSecurityGroup" => network::create_security_group,
        "DescribeSubnets" => network::describe_subnets,
        "DescribeSecurityGroups" => network::describe_security_groups,
        "RunInstances" => instances::run_instances,
        "StopInstances" => lifecycle::stop_instances,
        "StartInstances" => lifecycle::start_instances,
        "TerminateInstances" => lifecycle::terminate_instances,
        "DescribeInstances" => instances::describe_instances,
        "DescribeInstanceTypes" => instances::describe_instance_types,
        "CreateNetworkInterface" => interfaces::create,
        "DeleteNetworkInterface" => interfaces::delete,
        "DescribeNetworkInterfaces" => interfaces::describe,
        "ModifyNetworkInterfaceAttribute" => interface_changes::modify,
        "AssignPrivateIpAddresses" => addresses::assign_private_ips,
        "UnassignPrivateIpAddresses" => addresses::unassign_private_ips,
        "AttachNetworkInterface" => attach::attach,
        "DetachNetworkInterface" => attach::detach,
        "CreateTags" => tags::create_tags,
        "DeleteTags" => tags::delete_tags,
        _ => return None,
    })
}

/// `<return>true</return>`, the whole answer of the actions that only change something.
fn done(x: &mut Xml) {
    x.leaf("return", true);
}
