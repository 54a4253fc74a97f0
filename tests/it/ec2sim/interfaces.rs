//! ENIs on their own: creation (ClientToken, tags, groups, errors), deletion, attribute
//! changes, secondary addresses and tags.

use aws_sdk_ec2::types::{
    AttributeBooleanValue, AttributeValue, Filter, NetworkInterfaceAttachmentChanges,
    NetworkInterfaceStatus, ResourceType, Tag, TagSpecification,
};

use super::{World, error_of};

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

#[tokio::test]
async fn client_token_makes_create_idempotent() {
    let w = World::new().await;
    let create = |description: &str| {
        (w.ec2.create_network_interface())
            .subnet_id(&w.subnet)
            .groups(&w.group)
            .description(description)
            .client_token("node-a/multus/0")
    };
    let first = create("multus").send().await.unwrap();
    let again = create("multus").send().await.unwrap();
    let id = first
        .network_interface()
        .unwrap()
        .network_interface_id()
        .unwrap();
    assert_eq!(
        again.network_interface().unwrap().network_interface_id(),
        Some(id)
    );
    assert_eq!(again.client_token(), Some("node-a/multus/0"));
    let all = w.ec2.describe_network_interfaces().send().await.unwrap();
    assert_eq!(all.network_interfaces().len(), 1, "one ENI for one token");

    let mismatch = create("other").send().await.unwrap_err();
    assert_eq!(error_of(&mismatch).0, "IdempotentParameterMismatch");

    // Deleted, the ENI is still the token's answer, and nothing is created.
    (w.ec2.delete_network_interface().network_interface_id(id))
        .send()
        .await
        .unwrap();
    let replayed = create("multus").send().await.unwrap();
    assert_eq!(
        replayed.network_interface().unwrap().network_interface_id(),
        Some(id)
    );
    let all = w.ec2.describe_network_interfaces().send().await.unwrap();
    assert!(all.network_interfaces().is_empty(), "no ENI created");
    let described = (w
        .ec2
        .describe_network_interfaces()
        .network_interface_ids(id))
    .send()
    .await
    .unwrap_err();
    assert_eq!(error_of(&described).0, "InvalidNetworkInterfaceID.NotFound");
}

#[tokio::test]
async fn create_checks_subnet_and_groups() {
    let w = World::new().await;
    let other_vpc = w.sim.create_vpc("10.1.0.0/16");
    let foreign = w.sim.create_security_group(&other_vpc, "elsewhere");
    let create = |subnet: &str, group: &str| {
        (w.ec2.create_network_interface())
            .subnet_id(subnet)
            .groups(group)
            .send()
    };
    let cases = [
        (
            "subnet-0000000000000dead",
            w.group.as_str(),
            "InvalidSubnetID.NotFound",
        ),
        (
            w.subnet.as_str(),
            "sg-0000000000000dead",
            "InvalidGroup.NotFound",
        ),
        (
            w.subnet.as_str(),
            foreign.as_str(),
            "InvalidParameterCombination",
        ),
    ];
    for (subnet, group, code) in cases {
        let error = create(subnet, group).await.unwrap_err();
        assert_eq!(error_of(&error).0, code, "subnet {subnet}, group {group}");
    }
}

#[tokio::test]
async fn create_tags_atomically_and_fills_every_field() {
    let w = World::new().await;
    let spec = TagSpecification::builder()
        .resource_type(ResourceType::NetworkInterface)
        .tags(tag("multi-eni.k8s.aws/owner", "multus"))
        .tags(tag("node.k8s.amazonaws.com/no_manage", "true"))
        .build();
    let created = (w.ec2.create_network_interface())
        .subnet_id(&w.subnet)
        .groups(&w.group)
        .description("<multus & \"friends\">")
        .tag_specifications(spec)
        .send()
        .await
        .unwrap();
    let eni = created.network_interface().unwrap();
    assert_eq!(eni.tag_set().len(), 2);
    let eni = w.eni(eni.network_interface_id().unwrap()).await;
    assert_eq!(eni.description(), Some("<multus & \"friends\">"));
    assert_eq!(eni.subnet_id(), Some(w.subnet.as_str()));
    assert_eq!(eni.vpc_id(), Some(w.vpc.as_str()));
    assert_eq!(eni.availability_zone(), Some("us-east-1a"));
    assert_eq!(
        eni.status().map(NetworkInterfaceStatus::as_str),
        Some("available")
    );
    assert_eq!(eni.groups()[0].group_id(), Some(w.group.as_str()));
    assert_eq!(eni.mac_address().map(str::len), Some(17));
    assert!(eni.private_ip_address().unwrap().starts_with("10.0.1."));
    assert_eq!(eni.private_ip_addresses().len(), 1);
    assert_eq!(eni.source_dest_check(), Some(true));
    assert_eq!(eni.owner_id(), Some("123456789012"));
    assert_eq!(eni.requester_managed(), Some(false));
    assert!(eni.attachment().is_none());
}

#[tokio::test]
async fn delete_refuses_an_attached_eni() {
    let w = World::new().await;
    let instance = w.instance("m5.large");
    let eni = w.create_eni(&w.subnet).await;
    let attachment = w.attach(&eni, &instance, 1, 0).await;
    let delete = || {
        w.ec2
            .delete_network_interface()
            .network_interface_id(&eni)
            .send()
    };
    assert_eq!(
        error_of(&delete().await.unwrap_err()).0,
        "InvalidNetworkInterface.InUse"
    );

    let detach = w.ec2.detach_network_interface().attachment_id(&attachment);
    detach.send().await.unwrap();
    delete().await.unwrap();
    let gone = delete().await.unwrap_err();
    assert_eq!(error_of(&gone).0, "InvalidNetworkInterfaceID.NotFound");
}

#[tokio::test]
async fn modify_sets_delete_on_termination_and_attributes() {
    let w = World::new().await;
    let instance = w.instance("m5.large");
    let eni = w.create_eni(&w.subnet).await;
    let attachment = w.attach(&eni, &instance, 1, 0).await;
    let changes = NetworkInterfaceAttachmentChanges::builder()
        .attachment_id(&attachment)
        .delete_on_termination(true)
        .build();
    let modify = || {
        w.ec2
            .modify_network_interface_attribute()
            .network_interface_id(&eni)
    };
    modify().attachment(changes).send().await.unwrap();
    let off = AttributeBooleanValue::builder().value(false).build();
    modify().source_dest_check(off).send().await.unwrap();
    let description = AttributeValue::builder().value("router").build();
    modify().description(description).send().await.unwrap();
    let group = w.sim.create_security_group(&w.vpc, "second");
    modify().groups(&group).send().await.unwrap();

    let eni = w.eni(&eni).await;
    assert_eq!(
        eni.attachment().unwrap().delete_on_termination(),
        Some(true)
    );
    assert_eq!(eni.source_dest_check(), Some(false));
    assert_eq!(eni.description(), Some("router"));
    assert_eq!(eni.groups()[0].group_id(), Some(group.as_str()));

    let wrong = NetworkInterfaceAttachmentChanges::builder()
        .attachment_id("eni-attach-0000000000000dead")
        .delete_on_termination(true)
        .build();
    let error = modify().attachment(wrong).send().await.unwrap_err();
    assert_eq!(error_of(&error).0, "InvalidAttachmentID.NotFound");
}

#[tokio::test]
async fn secondary_addresses_are_assigned_within_the_type_limit() {
    let w = World::new().await;
    let instance = w.instance("t3.micro");
    let eni = w.create_eni(&w.subnet).await;
    let assign = || {
        w.ec2
            .assign_private_ip_addresses()
            .network_interface_id(&eni)
    };
    let assigned = assign()
        .private_ip_addresses("10.0.1.200")
        .send()
        .await
        .unwrap();
    let ips: Vec<_> = (assigned.assigned_private_ip_addresses().iter())
        .filter_map(|a| a.private_ip_address())
        .collect();
    assert_eq!(ips, ["10.0.1.200"]);
    assert_eq!(w.eni(&eni).await.private_ip_addresses().len(), 2);

    // t3.micro allows 2 addresses per interface, and this one has them.
    w.attach(&eni, &instance, 1, 0).await;
    let over = assign()
        .secondary_private_ip_address_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_of(&over).0, "PrivateIpAddressLimitExceeded");

    let unassign = || {
        w.ec2
            .unassign_private_ip_addresses()
            .network_interface_id(&eni)
    };
    unassign()
        .private_ip_addresses("10.0.1.200")
        .send()
        .await
        .unwrap();
    assert_eq!(w.eni(&eni).await.private_ip_addresses().len(), 1);
    let again = unassign()
        .private_ip_addresses("10.0.1.200")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_of(&again).0, "InvalidParameterValue");
}

#[tokio::test]
async fn tags_are_created_and_deleted() {
    let w = World::new().await;
    let eni = w.create_eni(&w.subnet).await;
    let create = w.ec2.create_tags().resources(&eni).resources(&w.subnet);
    create
        .tags(tag("team", "net"))
        .tags(tag("env", "dev"))
        .send()
        .await
        .unwrap();
    let delete = w.ec2.delete_tags().resources(&eni);
    delete
        .tags(Tag::builder().key("env").build())
        .send()
        .await
        .unwrap();
    // A value that does not match keeps the tag.
    let delete = w.ec2.delete_tags().resources(&eni);
    delete.tags(tag("team", "other")).send().await.unwrap();

    let tags = w.eni(&eni).await.tag_set().to_vec();
    assert_eq!(tags, [tag("team", "net")]);
    let by_tag = Filter::builder().name("tag:team").values("net").build();
    let subnets = w
        .ec2
        .describe_subnets()
        .filters(by_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(subnets.subnets().len(), 1);

    let unknown = w
        .ec2
        .create_tags()
        .resources("eni-0000000000000dead")
        .tags(tag("a", "b"));
    let error = unknown.send().await.unwrap_err();
    assert_eq!(error_of(&error).0, "InvalidNetworkInterfaceID.NotFound");
}
