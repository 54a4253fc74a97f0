//! Describe calls: the filters a controller uses, pagination, batches of IDs, and the shapes of
//! instances and instance types.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, InstanceType, Reservation, ResourceType, Tag, TagSpecification};

use super::{World, error_of};

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

impl World {
    /// An ENI tagged `cluster=<cluster>`.
    async fn owned_eni(&self, cluster: &str) -> String {
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::NetworkInterface)
            .tags(Tag::builder().key("cluster").value(cluster).build())
            .build();
        let created = (self.ec2.create_network_interface())
            .subnet_id(&self.subnet)
            .tag_specifications(tags)
            .send()
            .await
            .unwrap();
        created
            .network_interface
            .unwrap()
            .network_interface_id
            .unwrap()
    }

    async fn eni_ids(&self, filters: &[Filter]) -> BTreeSet<String> {
        let described = (self.ec2.describe_network_interfaces())
            .set_filters(Some(filters.to_vec()))
            .send()
            .await
            .unwrap();
        let enis = described.network_interfaces().iter();
        enis.map(|e| e.network_interface_id().unwrap().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn network_interface_filters() {
    let w = World::new().await;
    let instance = w.instance("m5.xlarge");
    let mut ours = BTreeSet::new();
    for _ in 0..3 {
        ours.insert(w.owned_eni("east").await);
    }
    let theirs = w.owned_eni("west").await;
    let attached = ours.first().unwrap().clone();
    w.attach(&attached, &instance, 2, 0).await;
    let one = |id: &str| BTreeSet::from([id.to_owned()]);

    assert_eq!(w.eni_ids(&[filter("tag:cluster", "east")]).await, ours);
    assert_eq!(
        w.eni_ids(&[filter("tag:cluster", "w*t")]).await,
        one(&theirs)
    );
    assert_eq!(w.eni_ids(&[filter("tag-key", "cluster")]).await.len(), 4);
    let on_instance = [
        filter("attachment.instance-id", &instance),
        filter("tag:cluster", "*"),
    ];
    assert_eq!(w.eni_ids(&on_instance).await, one(&attached));
    assert_eq!(
        w.eni_ids(&[filter("attachment.device-index", "2")]).await,
        one(&attached)
    );
    assert_eq!(
        w.eni_ids(&[filter("attachment.status", "attached")])
            .await
            .len(),
        2
    );
    assert_eq!(w.eni_ids(&[filter("status", "available")]).await.len(), 3);
    assert_eq!(
        w.eni_ids(&[filter("network-interface-id", &theirs)]).await,
        one(&theirs)
    );
    for (name, value) in [("subnet-id", &w.subnet), ("vpc-id", &w.vpc)] {
        assert_eq!(w.eni_ids(&[filter(name, value)]).await.len(), 5, "{name}");
    }
    assert_eq!(
        w.eni_ids(&[filter("availability-zone", "us-east-1b")])
            .await
            .len(),
        0
    );

    let bad = w
        .ec2
        .describe_network_interfaces()
        .filters(filter("no-such-filter", "x"));
    assert_eq!(
        error_of(&bad.send().await.unwrap_err()).0,
        "InvalidParameterValue"
    );
}

#[tokio::test]
async fn network_interfaces_paginate() {
    let w = World::new().await;
    let mut created = BTreeSet::new();
    for _ in 0..12 {
        created.insert(w.owned_eni("east").await);
    }
    let (mut seen, mut pages, mut token) = (BTreeSet::new(), 0, None);
    loop {
        let page = (w.ec2.describe_network_interfaces())
            .filters(filter("tag:cluster", "east"))
            .max_results(5)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.network_interfaces().len() <= 5);
        seen.extend(
            page.network_interfaces()
                .iter()
                .map(|e| e.network_interface_id().unwrap().to_owned()),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!((seen, pages), (created.clone(), 3));

    let with_ids = (w.ec2.describe_network_interfaces())
        .network_interface_ids(created.first().unwrap())
        .max_results(5);
    assert_eq!(
        error_of(&with_ids.send().await.unwrap_err()).0,
        "InvalidParameterCombination"
    );
    let too_small = w.ec2.describe_network_interfaces().max_results(4);
    assert_eq!(
        error_of(&too_small.send().await.unwrap_err()).0,
        "InvalidParameterValue"
    );
}

#[tokio::test]
async fn instances_are_described_in_batches_with_their_interfaces() {
    let w = World::new().await;
    let instances = w.sim.run_instances(&w.subnet, "m5.large", 30);
    let eni = w.create_eni(&w.subnet).await;
    w.attach(&eni, &instances[7], 1, 0).await;

    let described = (w.ec2.describe_instances())
        .set_instance_ids(Some(instances.clone()))
        .send()
        .await
        .unwrap();
    let all: Vec<_> = described
        .reservations()
        .iter()
        .flat_map(Reservation::instances)
        .collect();
    assert_eq!(all.len(), 30);
    let seventh = all
        .iter()
        .find(|i| i.instance_id() == Some(instances[7].as_str()))
        .unwrap();
    assert_eq!(seventh.instance_type(), Some(&InstanceType::M5Large));
    assert_eq!(
        seventh.placement().unwrap().availability_zone(),
        Some("us-east-1a")
    );
    assert_eq!(seventh.state().unwrap().code(), Some(16));
    assert_eq!(seventh.subnet_id(), Some(w.subnet.as_str()));
    assert_eq!(seventh.vpc_id(), Some(w.vpc.as_str()));
    let interfaces = seventh.network_interfaces();
    let slots: Vec<_> = (interfaces.iter())
        .map(|n| {
            n.attachment().map(|a| {
                (
                    a.device_index(),
                    a.network_card_index(),
                    a.delete_on_termination(),
                )
            })
        })
        .collect();
    assert_eq!(
        slots,
        [
            Some((Some(0), Some(0), Some(true))),
            Some((Some(1), Some(0), Some(false)))
        ]
    );
    assert_eq!(
        seventh.private_ip_address(),
        interfaces[0].private_ip_address()
    );

    let running = (w.ec2.describe_instances())
        .filters(filter("instance-state-name", "running"))
        .filters(filter("subnet-id", &w.subnet))
        .max_results(5)
        .send()
        .await
        .unwrap();
    assert_eq!(
        running
            .reservations()
            .iter()
            .map(|r| r.instances().len())
            .sum::<usize>(),
        5
    );
    assert!(running.next_token().is_some());
    let unknown = w
        .ec2
        .describe_instances()
        .instance_ids("i-0000000000000dead")
        .send()
        .await;
    assert_eq!(
        error_of(&unknown.unwrap_err()).0,
        "InvalidInstanceID.NotFound"
    );
}

#[tokio::test]
async fn instance_types_report_network_limits_per_card() {
    let w = World::new().await;
    let described = (w.ec2.describe_instance_types())
        .instance_types(InstanceType::M5Large)
        .instance_types(InstanceType::P4d24xlarge)
        .send()
        .await
        .unwrap();
    let limits: Vec<_> = (described.instance_types().iter())
        .map(|t| {
            let n = t.network_info().unwrap();
            let cards: Vec<_> = (n.network_cards().iter())
                .map(|c| {
                    (
                        c.network_card_index().unwrap(),
                        c.maximum_network_interfaces().unwrap(),
                    )
                })
                .collect();
            let card_count = n.maximum_network_cards().unwrap();
            (
                t.instance_type().unwrap().as_str(),
                n.maximum_network_interfaces().unwrap(),
                card_count,
                cards,
            )
        })
        .collect();
    assert_eq!(
        limits,
        [
            ("m5.large", 3, 1, vec![(0, 3)]),
            (
                "p4d.24xlarge",
                60,
                4,
                vec![(0, 15), (1, 15), (2, 15), (3, 15)]
            ),
        ]
    );
    let m5 = described.instance_types()[0].network_info().unwrap();
    assert_eq!(
        (
            m5.ipv4_addresses_per_interface(),
            m5.default_network_card_index()
        ),
        (Some(10), Some(0))
    );
    let unknown = w
        .ec2
        .describe_instance_types()
        .instance_types(InstanceType::from("x9.huge"));
    assert_eq!(
        error_of(&unknown.send().await.unwrap_err()).0,
        "InvalidInstanceType"
    );
}

#[tokio::test]
async fn subnets_and_groups_resolve_by_name() {
    let w = World::new().await;
    let other_vpc = w.sim.create_vpc("10.1.0.0/16");
    w.sim.create_security_group(&other_vpc, "multus");
    let subnets = (w.ec2.describe_subnets())
        .filters(filter("tag:Name", "multus-b"))
        .filters(filter("vpc-id", &w.vpc))
        .send()
        .await
        .unwrap();
    let subnet = &subnets.subnets()[0];
    assert_eq!(subnets.subnets().len(), 1);
    assert_eq!(
        (subnet.subnet_id(), subnet.availability_zone()),
        (Some(w.subnet_b.as_str()), Some("us-east-1b"))
    );
    assert_eq!(subnet.cidr_block(), Some("10.0.2.0/24"));
    assert_eq!(subnet.available_ip_address_count(), Some(251));

    let groups = (w.ec2.describe_security_groups())
        .filters(filter("group-name", "multus"))
        .filters(filter("vpc-id", &w.vpc))
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = groups
        .security_groups()
        .iter()
        .map(|g| g.group_id().unwrap())
        .collect();
    assert_eq!(ids, [w.group.as_str()]);
    let by_id = w
        .ec2
        .describe_security_groups()
        .group_ids(&w.group)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.security_groups()[0].group_name(), Some("multus"));
    let unknown = w
        .ec2
        .describe_subnets()
        .subnet_ids("subnet-0000000000000dead")
        .send()
        .await;
    assert_eq!(
        error_of(&unknown.unwrap_err()).0,
        "InvalidSubnetID.NotFound"
    );
}
