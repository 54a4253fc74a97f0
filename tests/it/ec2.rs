//! The EC2 boundary (`multi_eni::ec2`) over HTTP, against the project's EC2 simulator (every
//! behaviour) and against moto, an independent EC2 implementation (what moto models). Each
//! test builds its own VPC, so tests share one moto server.

use std::collections::BTreeMap;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use multi_eni::ec2::types::{AttachmentStatus, EniStatus, NewEni};
use multi_eni::ec2::{Ec2, ErrorKind};
use multi_eni::ownership::{CLUSTER_TAG, NO_MANAGE_TAG, Owner};

use crate::support::ec2sim::{SimConfig, Simulator};
use crate::support::moto;

/// An EC2 endpoint, through the raw SDK (to set up a world) and through `Ec2` (under test).
pub struct Backend {
    pub sdk: aws_sdk_ec2::Client,
    pub ec2: Ec2,
    /// The simulator behind the endpoint, when it is one.
    pub sim: Option<Simulator>,
}

impl Backend {
    pub fn at(endpoint_url: &str) -> Backend {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(endpoint_url)
            .http_client(multi_eni::ec2::https_client())
            .build();
        let sdk = aws_sdk_ec2::Client::from_conf(config);
        Backend {
            ec2: Ec2::new(sdk.clone(), None),
            sdk,
            sim: None,
        }
    }

    pub fn moto() -> Backend {
        Backend::at(&moto::shared().endpoint_url)
    }

    pub async fn simulator(config: SimConfig) -> Backend {
        let sim = Simulator::start(config).await;
        let backend = Backend::at(&sim.endpoint_url());
        Backend {
            sim: Some(sim),
            ..backend
        }
    }

    fn sim(&self) -> &Simulator {
        self.sim.as_ref().expect("a simulator backend")
    }

    /// A VPC with a subnet in each of two zones, a security group and an m5.large per zone.
    pub async fn world(&self) -> World {
        let vpc = self
            .sdk
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .unwrap();
        let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
        let mut subnets = Vec::new();
        let mut instances = Vec::new();
        for (i, zone) in ["us-east-1a", "us-east-1b"].into_iter().enumerate() {
            let subnet = self
                .sdk
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.0.{i}.0/24"))
                .availability_zone(zone)
                .tag_specifications(name_tag(ResourceType::Subnet, "multus"))
                .send()
                .await
                .unwrap();
            let subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_owned();
            let run = self
                .sdk
                .run_instances()
                .image_id("ami-12c6146b")
                .instance_type(InstanceType::M5Large)
                .min_count(1)
                .max_count(1)
                .subnet_id(&subnet)
                .send()
                .await
                .unwrap();
            instances.push(run.instances()[0].instance_id().unwrap().to_owned());
            subnets.push(subnet);
        }
        let group = self
            .sdk
            .create_security_group()
            .group_name("multus")
            .description("multus")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap();
        let security_group = group.group_id().unwrap().to_owned();
        World {
            vpc,
            subnets,
            instances,
            security_group,
            cluster: unique("cluster"),
        }
    }
}

fn name_tag(resource: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .tags(Tag::builder().key("Name").value(name).build())
        .build()
}

/// A name no other test uses.
fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

pub struct World {
    pub vpc: String,
    /// In us-east-1a, us-east-1b.
    pub subnets: Vec<String>,
    /// One per subnet.
    pub instances: Vec<String>,
    pub security_group: String,
    pub cluster: String,
}

impl World {
    pub fn owner(&self, zone: usize) -> Owner {
        Owner {
            cluster: self.cluster.clone(),
            nodeeni: "multus".into(),
            node: format!("node-{zone}"),
            instance: self.instances[zone].clone(),
            subnet: self.subnets[zone].clone(),
        }
    }

    pub fn new_eni(&self, zone: usize) -> NewEni {
        let owner = self.owner(zone);
        NewEni {
            subnet_id: owner.subnet.clone(),
            security_group_ids: vec![self.security_group.clone()],
            description: "multi-eni test".into(),
            tags: owner.tags(&BTreeMap::from([("team".into(), "net".into())])),
            client_token: owner.client_token("uid", 0),
            secondary_private_ip_count: 0,
            ipv4_prefix_count: 0,
        }
    }
}

/// `both: tests` run on the simulator and on moto; `simulator: tests` only on the simulator,
/// because moto does not model the behaviour (see the comment at each).
macro_rules! backends {
    (both: $($test:ident),* $(,)?) => {
        $(mod $test {
            #[tokio::test]
            async fn simulator() {
                super::$test(super::Backend::simulator(super::SimConfig::default()).await).await;
            }
            #[tokio::test]
            async fn moto() {
                super::$test(super::Backend::moto()).await;
            }
        })*
    };
    (simulator: $($test:ident),* $(,)?) => {
        $(mod $test {
            #[tokio::test]
            async fn simulator() {
                super::$test(super::Backend::simulator(super::SimConfig::default()).await).await;
            }
        })*
    };
}

// The pods' addresses: secondary private addresses and prefixes (after the macro, which it uses).
#[path = "ec2_addresses.rs"]
mod addresses;

backends!(both:
    create_tags_the_eni_at_creation,
    attach_detach_and_delete,
    owned_enis_are_found_by_tag,
    instances_skip_the_missing,
    subnets_by_id_and_by_name,
    security_groups_by_name_stay_in_their_vpc,
    network_limits_are_asked_once,
    not_found_is_classified,
    tagging_an_eni_adds_tags_and_keeps_the_others,
);

pub async fn create_tags_the_eni_at_creation(backend: Backend) {
    let world = backend.world().await;
    let eni = backend.ec2.create_eni(&world.new_eni(0)).await.unwrap();
    assert!(eni.id.starts_with("eni-"));
    assert_eq!(eni.subnet_id, world.subnets[0]);
    assert_eq!(eni.security_group_ids, vec![world.security_group.clone()]);
    assert_eq!(eni.description, "multi-eni test");
    assert!(!eni.mac_address.is_empty());
    assert_eq!(eni.tags[NO_MANAGE_TAG], "true");
    assert_eq!(eni.tags["team"], "net");
    assert_eq!(Owner::from_tags(&eni.tags), Some(world.owner(0)));
    backend
        .ec2
        .set_source_dest_check(&eni.id, false)
        .await
        .unwrap();
    let listed = backend
        .ec2
        .enis_tagged(CLUSTER_TAG, &world.cluster)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].source_dest_check, Some(false));
}

/// Adoption's one call: CreateTags on an ENI someone else made, which keeps its tags.
pub async fn tagging_an_eni_adds_tags_and_keeps_the_others(backend: Backend) {
    let world = backend.world().await;
    let created = backend
        .sdk
        .create_network_interface()
        .subnet_id(&world.subnets[0])
        .tag_specifications(name_tag(ResourceType::NetworkInterface, "theirs"))
        .send()
        .await
        .unwrap();
    let eni_id = created
        .network_interface()
        .and_then(|eni| eni.network_interface_id())
        .unwrap();
    let tags = world.owner(0).tags(&BTreeMap::new());
    backend.ec2.tag_eni(eni_id, &tags).await.unwrap();
    let listed = backend
        .ec2
        .enis_tagged(CLUSTER_TAG, &world.cluster)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, eni_id);
    assert_eq!(Owner::from_tags(&listed[0].tags), Some(world.owner(0)));
    assert_eq!(listed[0].tags["Name"], "theirs");
    assert_eq!(backend.ec2.metrics().calls_of("CreateTags", "ok"), 1);
}

pub async fn attach_detach_and_delete(backend: Backend) {
    let world = backend.world().await;
    let eni = backend.ec2.create_eni(&world.new_eni(0)).await.unwrap();
    let attachment = backend
        .ec2
        .attach(&eni.id, &world.instances[0], 1, 0)
        .await
        .unwrap();
    assert!(!attachment.is_empty());
    backend
        .ec2
        .set_delete_on_termination(&eni.id, &attachment, true)
        .await
        .unwrap();
    let listed = wait_for_eni(&backend, &world, |eni| {
        eni.attachment
            .as_ref()
            .is_some_and(|a| a.status == AttachmentStatus::Attached)
    })
    .await;
    let attached = listed.attachment.unwrap();
    assert_eq!(
        (attached.instance_id.as_str(), attached.device_index),
        (world.instances[0].as_str(), 1)
    );
    assert_eq!(attached.network_card_index, 0);

    backend.ec2.detach(&attachment, false).await.unwrap();
    wait_for_eni(&backend, &world, |eni| eni.status == EniStatus::Available).await;
    backend.ec2.delete_eni(&eni.id).await.unwrap();
    assert!(
        backend
            .ec2
            .enis_tagged(CLUSTER_TAG, &world.cluster)
            .await
            .unwrap()
            .is_empty()
    );
    // Detach and delete of what is already gone are done, not errors.
    backend.ec2.detach(&attachment, false).await.unwrap();
    backend.ec2.delete_eni(&eni.id).await.unwrap();
}

/// Lists the world's one owned ENI until `ready` holds for it.
async fn wait_for_eni(
    backend: &Backend,
    world: &World,
    ready: impl Fn(&multi_eni::ec2::types::Eni) -> bool,
) -> multi_eni::ec2::types::Eni {
    for _ in 0..200 {
        let enis = backend
            .ec2
            .enis_tagged(CLUSTER_TAG, &world.cluster)
            .await
            .unwrap();
        if let [eni] = enis.as_slice()
            && ready(eni)
        {
            return eni.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the ENI never reached the expected state");
}

pub async fn owned_enis_are_found_by_tag(backend: Backend) {
    let world = backend.world().await;
    for i in 0..3 {
        let mut new = world.new_eni(i % 2);
        new.client_token = format!("token-{}-{i}", world.cluster);
        backend.ec2.create_eni(&new).await.unwrap();
    }
    let mut foreign = world.new_eni(0);
    foreign
        .tags
        .insert(CLUSTER_TAG.into(), "another-cluster".into());
    foreign.client_token = format!("foreign-{}", world.cluster);
    backend.ec2.create_eni(&foreign).await.unwrap();
    backend
        .sdk
        .create_network_interface()
        .subnet_id(&world.subnets[0])
        .send()
        .await
        .unwrap();

    let owned = backend
        .ec2
        .enis_tagged(CLUSTER_TAG, &world.cluster)
        .await
        .unwrap();
    assert_eq!(owned.len(), 3);
    assert!(
        owned
            .iter()
            .all(|eni| eni.tags[CLUSTER_TAG] == world.cluster)
    );
}

pub async fn instances_skip_the_missing(backend: Backend) {
    let world = backend.world().await;
    let mut ids = world.instances.clone();
    ids.push("i-0123456789abcdef0".into());
    let instances = backend.ec2.instances(&ids).await.unwrap();
    let mut found: Vec<_> = instances.iter().map(|i| i.id.clone()).collect();
    found.sort();
    let mut expected = world.instances.clone();
    expected.sort();
    assert_eq!(found, expected);
    let first = instances
        .iter()
        .find(|i| i.id == world.instances[0])
        .unwrap();
    assert_eq!(first.availability_zone, "us-east-1a");
    assert_eq!(first.instance_type, "m5.large");
    assert_eq!(first.vpc_id, world.vpc);
    assert!(first.interfaces.iter().any(|i| i.device_index == 0));
}

pub async fn subnets_by_id_and_by_name(backend: Backend) {
    let world = backend.world().await;
    let by_id = backend
        .ec2
        .subnets(&[world.subnets[1].clone(), "subnet-0000000000000000f".into()])
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].availability_zone, "us-east-1b");
    assert_eq!(by_id[0].cidr_block, "10.0.1.0/24");
    assert_eq!(by_id[0].name.as_deref(), Some("multus"));
    let by_name = backend.ec2.subnets_named(&["multus".into()]).await.unwrap();
    for subnet in &world.subnets {
        assert!(
            by_name.iter().any(|s| &s.id == subnet),
            "{subnet} not found by name"
        );
    }
}

pub async fn security_groups_by_name_stay_in_their_vpc(backend: Backend) {
    let world = backend.world().await;
    let other = backend.world().await;
    let named = backend
        .ec2
        .security_groups_named(&["multus".into()], &world.vpc)
        .await
        .unwrap();
    assert_eq!(
        named.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        vec![world.security_group.as_str()]
    );
    assert_eq!(named[0].vpc_id, world.vpc);
    let by_id = backend
        .ec2
        .security_groups(std::slice::from_ref(&other.security_group))
        .await
        .unwrap();
    assert_eq!(by_id[0].name, "multus");
    assert_eq!(by_id[0].vpc_id, other.vpc);
}

pub async fn network_limits_are_asked_once(backend: Backend) {
    let limits = backend.ec2.network_limits("m5.large").await.unwrap();
    assert_eq!(limits.maximum_interfaces, 3);
    assert_eq!(limits.interfaces_on_card(0), 3);
    assert_eq!(
        backend.ec2.network_limits("m5.large").await.unwrap(),
        limits
    );
    assert_eq!(
        backend
            .ec2
            .metrics()
            .calls_of("DescribeInstanceTypes", "ok"),
        1
    );
}

pub async fn not_found_is_classified(backend: Backend) {
    let world = backend.world().await;
    let error = backend
        .ec2
        .attach("eni-0123456789abcdef0", &world.instances[0], 1, 0)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotFound, "{error}");
    assert_eq!(error.code, "InvalidNetworkInterfaceID.NotFound");
    assert_eq!(
        backend
            .ec2
            .metrics()
            .calls_of("AttachNetworkInterface", "not_found"),
        1
    );
}

// moto ignores ClientToken, accepts an occupied device index, a delete of an attached ENI,
// attachments past the instance type's limit and across zones, ignores DeleteOnTermination
// in ModifyNetworkInterfaceAttribute, tags IDs it does not know, and neither throttles nor
// fails on purpose.
backends!(simulator:
    client_token_returns_the_first_eni,
    tagging_an_unknown_eni_is_not_found,
    occupied_device_index_is_a_conflict,
    deleting_an_attached_eni_is_a_conflict,
    attaching_past_the_limit_is_limit_exceeded,
    attaching_across_zones_is_invalid_input,
    delete_on_termination_is_set_on_the_attachment,
    owned_enis_are_listed_across_pages,
    throttling_is_retried_and_counted,
    server_errors_are_retried_then_transient,
);

pub async fn client_token_returns_the_first_eni(backend: Backend) {
    let world = backend.world().await;
    let new = world.new_eni(0);
    let first = backend.ec2.create_eni(&new).await.unwrap();
    assert_eq!(backend.ec2.create_eni(&new).await.unwrap().id, first.id);
    let mut changed = new.clone();
    changed.description = "something else".into();
    let error = backend.ec2.create_eni(&changed).await.unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_str()),
        (ErrorKind::Conflict, "IdempotentParameterMismatch")
    );
    assert_eq!(
        backend
            .ec2
            .enis_tagged(CLUSTER_TAG, &world.cluster)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(backend.ec2.eni_exists(&first.id).await.unwrap());
    // Deleted, the ENI is still what the token answers with: a create that names an ENI
    // EC2 does not know.
    backend.ec2.delete_eni(&first.id).await.unwrap();
    assert_eq!(backend.ec2.create_eni(&new).await.unwrap().id, first.id);
    assert!(!backend.ec2.eni_exists(&first.id).await.unwrap());
}

pub async fn tagging_an_unknown_eni_is_not_found(backend: Backend) {
    let world = backend.world().await;
    let tags = world.owner(0).tags(&BTreeMap::new());
    let missing = backend
        .ec2
        .tag_eni("eni-0123456789abcdef0", &tags)
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
}

pub async fn occupied_device_index_is_a_conflict(backend: Backend) {
    let world = backend.world().await;
    let eni = backend.ec2.create_eni(&world.new_eni(0)).await.unwrap();
    let error = backend
        .ec2
        .attach(&eni.id, &world.instances[0], 0, 0)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Conflict, "{error}");
    assert!(error.message.contains("device index"), "{error}");
}

pub async fn deleting_an_attached_eni_is_a_conflict(backend: Backend) {
    let world = backend.world().await;
    let eni = backend.ec2.create_eni(&world.new_eni(0)).await.unwrap();
    backend
        .ec2
        .attach(&eni.id, &world.instances[0], 1, 0)
        .await
        .unwrap();
    let error = backend.ec2.delete_eni(&eni.id).await.unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_str()),
        (ErrorKind::Conflict, "InvalidNetworkInterface.InUse")
    );
}

pub async fn attaching_past_the_limit_is_limit_exceeded(backend: Backend) {
    let world = backend.world().await;
    // An m5.large takes 3 interfaces: the primary and two more.
    for index in 1..=2 {
        let mut new = world.new_eni(0);
        new.client_token = format!("limit-{index}");
        let eni = backend.ec2.create_eni(&new).await.unwrap();
        backend
            .ec2
            .attach(&eni.id, &world.instances[0], index, 0)
            .await
            .unwrap();
    }
    let mut new = world.new_eni(0);
    new.client_token = "limit-3".into();
    let eni = backend.ec2.create_eni(&new).await.unwrap();
    let error = backend
        .ec2
        .attach(&eni.id, &world.instances[0], 3, 0)
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_str()),
        (ErrorKind::LimitExceeded, "AttachmentLimitExceeded")
    );
}

pub async fn attaching_across_zones_is_invalid_input(backend: Backend) {
    let world = backend.world().await;
    let eni = backend.ec2.create_eni(&world.new_eni(0)).await.unwrap();
    let error = backend
        .ec2
        .attach(&eni.id, &world.instances[1], 1, 0)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidInput, "{error}");
}

pub async fn delete_on_termination_is_set_on_the_attachment(backend: Backend) {
    let world = backend.world().await;
    let eni = backend.ec2.create_eni(&world.new_eni(0)).await.unwrap();
    let attachment = backend
        .ec2
        .attach(&eni.id, &world.instances[0], 1, 0)
        .await
        .unwrap();
    for value in [true, false] {
        backend
            .ec2
            .set_delete_on_termination(&eni.id, &attachment, value)
            .await
            .unwrap();
        let listed = backend
            .ec2
            .enis_tagged(CLUSTER_TAG, &world.cluster)
            .await
            .unwrap();
        assert_eq!(
            listed[0].attachment.as_ref().unwrap().delete_on_termination,
            value
        );
    }
}

pub async fn owned_enis_are_listed_across_pages(backend: Backend) {
    let mut config = SimConfig::default();
    config.throttle.enabled = false;
    backend.sim().set_config(config);
    let world = backend.world().await;
    // A /24 holds 251 ENIs; a /20 holds them all.
    let big = backend
        .sim()
        .create_subnet(&world.vpc, "us-east-1a", "10.0.16.0/20", "big");
    for i in 0..1005 {
        let mut new = world.new_eni(0);
        new.subnet_id.clone_from(&big);
        new.client_token = format!("page-{i}");
        backend.ec2.create_eni(&new).await.unwrap();
    }
    let owned = backend
        .ec2
        .enis_tagged(CLUSTER_TAG, &world.cluster)
        .await
        .unwrap();
    assert_eq!(owned.len(), 1005);
    assert_eq!(
        backend
            .ec2
            .metrics()
            .calls_of("DescribeNetworkInterfaces", "ok"),
        2
    );
}

pub async fn throttling_is_retried_and_counted(backend: Backend) {
    let mut config = SimConfig::default();
    config.throttle.interface_mutating = crate::support::ec2sim::Bucket::new(1.0, 20.0);
    backend.sim().set_config(config);
    let world = backend.world().await;
    for i in 0..3 {
        let mut new = world.new_eni(0);
        new.client_token = format!("throttle-{i}");
        backend.ec2.create_eni(&new).await.unwrap();
    }
    let throttled = backend
        .sim()
        .stats()
        .action("CreateNetworkInterface")
        .throttled;
    assert!(throttled > 0, "the bucket of 1 must have throttled");
    let attempts = backend
        .ec2
        .metrics()
        .attempts
        .get_or_create(&attempt("CreateNetworkInterface", "throttled"))
        .get();
    assert_eq!(attempts, throttled);
    // Without retries, the caller sees the kind.
    let no_retries = Ec2::new(backend.sim().client(), None);
    let errors = futures::future::join_all((0..5).map(|i| {
        let mut new = world.new_eni(0);
        new.client_token = format!("throttle-burst-{i}");
        let ec2 = no_retries.clone();
        async move { ec2.create_eni(&new).await }
    }))
    .await;
    assert!(
        errors
            .iter()
            .any(|r| r.as_ref().is_err_and(|e| e.kind == ErrorKind::Throttled))
    );
}

fn attempt(action: &'static str, result: &'static str) -> multi_eni::ec2::AttemptLabels {
    multi_eni::ec2::AttemptLabels { action, result }
}

pub async fn server_errors_are_retried_then_transient(backend: Backend) {
    use crate::support::ec2sim::NextFault;
    let world = backend.world().await;
    backend.sim().inject_fault(NextFault::new(
        "CreateNetworkInterface",
        1,
        "InternalError",
        "try again",
    ));
    backend.ec2.create_eni(&world.new_eni(0)).await.unwrap();
    let failed = backend
        .ec2
        .metrics()
        .attempts
        .get_or_create(&attempt("CreateNetworkInterface", "server_error"))
        .get();
    assert_eq!(failed, 1);
    backend.sim().inject_fault(NextFault::new(
        "DescribeNetworkInterfaces",
        10,
        "InternalError",
        "down",
    ));
    let error = backend
        .ec2
        .enis_tagged(CLUSTER_TAG, &world.cluster)
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_str()),
        (ErrorKind::Transient, "InternalError")
    );
}
