//! The EC2 boundary and the pods' addresses: secondary private IPv4 addresses and /28
//! prefixes requested with the ENI, and as DescribeNetworkInterfaces lists them.

use multi_eni::ec2::ErrorKind;
use multi_eni::ec2::types::{AttachmentStatus, NewEni};
use multi_eni::ownership::CLUSTER_TAG;

use super::Backend;
use crate::support::ec2sim::SimConfig;

backends!(both: create_asks_for_secondary_addresses_in_the_same_call);

/// SecondaryPrivateIpAddressCount in CreateNetworkInterface: the ENI comes back with the
/// primary and that many secondary addresses, all in the subnet, and is listed so.
pub async fn create_asks_for_secondary_addresses_in_the_same_call(backend: Backend) {
    let world = backend.world().await;
    let new = NewEni {
        secondary_private_ip_count: 3,
        ..world.new_eni(0)
    };
    let eni = backend.ec2.create_eni(&new).await.unwrap();
    assert_eq!(eni.secondary_private_ips.len(), 3, "{eni:?}");
    let primary = eni.private_ip.clone().unwrap();
    assert!(!eni.secondary_private_ips.contains(&primary));
    for ip in &eni.secondary_private_ips {
        assert!(
            ip.starts_with("10.0.0."),
            "{ip} is not in subnet 10.0.0.0/24"
        );
    }
    assert!(eni.ipv4_prefixes.is_empty());
    let listed = backend
        .ec2
        .enis_tagged(CLUSTER_TAG, &world.cluster)
        .await
        .unwrap();
    assert_eq!(listed[0].secondary_private_ips, eni.secondary_private_ips);
    assert_eq!(
        backend
            .ec2
            .metrics()
            .calls_of("CreateNetworkInterface", "ok"),
        1
    );
}

backends!(both:
    assign_adds_secondary_addresses,
    network_limits_give_addresses_per_interface_and_nitro,
);

/// AssignPrivateIpAddresses with a count: EC2 picks the addresses; the ENI lists them after.
/// (moto answers with every address of the ENI, the primary included, where EC2 answers with
/// the new ones: the controller reads the ENI, never the answer.)
pub async fn assign_adds_secondary_addresses(backend: Backend) {
    let world = backend.world().await;
    let eni = backend.ec2.create_eni(&world.new_eni(0)).await.unwrap();
    let assigned = backend.ec2.assign_private_ips(&eni.id, 2, 0).await.unwrap();
    let listed = backend
        .ec2
        .enis_tagged(CLUSTER_TAG, &world.cluster)
        .await
        .unwrap();
    let have = &listed[0].secondary_private_ips;
    assert_eq!(have.len(), 2, "{listed:?}");
    assert!(
        have.iter().all(|ip| assigned.private_ips.contains(ip)),
        "{assigned:?}"
    );
}

pub async fn network_limits_give_addresses_per_interface_and_nitro(backend: Backend) {
    let m5 = backend.ec2.network_limits("m5.large").await.unwrap();
    assert_eq!(m5.ipv4_addresses_per_interface, 10);
    assert!(m5.nitro);
    let m4 = backend.ec2.network_limits("m4.large").await.unwrap();
    assert_eq!(m4.ipv4_addresses_per_interface, 10);
    assert!(!m4.nitro);
}

// moto neither delegates prefixes nor enforces the per-type address limit, nor runs out of
// addresses in a subnet.
backends!(simulator:
    prefixes_come_with_the_eni_and_by_assign,
    address_shortages_are_limits_not_retried,
);

pub async fn prefixes_come_with_the_eni_and_by_assign(backend: Backend) {
    let world = backend.world().await;
    let new = NewEni {
        ipv4_prefix_count: 2,
        ..world.new_eni(0)
    };
    let eni = backend.ec2.create_eni(&new).await.unwrap();
    assert_eq!(eni.ipv4_prefixes.len(), 2, "{eni:?}");
    assert!(eni.secondary_private_ips.is_empty());
    let assigned = backend.ec2.assign_private_ips(&eni.id, 0, 1).await.unwrap();
    assert_eq!(assigned.ipv4_prefixes.len(), 1);
    let listed = backend
        .ec2
        .enis_tagged(CLUSTER_TAG, &world.cluster)
        .await
        .unwrap();
    assert_eq!(listed[0].ipv4_prefixes.len(), 3);
    assert!(listed[0].ipv4_prefixes.contains(&assigned.ipv4_prefixes[0]));
}

/// PrivateIpAddressLimitExceeded, InsufficientCidrBlocks and InsufficientFreeAddressesInSubnet
/// are limits (no retry helps until something changes): one call each, none retried.
pub async fn address_shortages_are_limits_not_retried(backend: Backend) {
    let world = backend.world().await;
    let eni = backend.ec2.create_eni(&world.new_eni(0)).await.unwrap();
    backend
        .ec2
        .attach(&eni.id, &world.instances[0], 1, 0)
        .await
        .unwrap();
    super::wait_for_eni(&backend, &world, |eni| {
        eni.attachment
            .as_ref()
            .is_some_and(|a| a.status == AttachmentStatus::Attached)
    })
    .await;
    // m5.large: 10 addresses per interface, the primary is one.
    let over = backend.ec2.assign_private_ips(&eni.id, 10, 0).await;
    let over = over.unwrap_err();
    assert_eq!(
        (over.kind, over.code.as_str()),
        (ErrorKind::LimitExceeded, "PrivateIpAddressLimitExceeded")
    );
    // 10.0.0.0/24 has 251 usable addresses: ask for more than there are.
    let huge = NewEni {
        secondary_private_ip_count: 251,
        client_token: "huge".into(),
        ..world.new_eni(0)
    };
    let full = backend.ec2.create_eni(&huge).await.unwrap_err();
    assert_eq!(
        (full.kind, full.code.as_str()),
        (
            ErrorKind::LimitExceeded,
            "InsufficientFreeAddressesInSubnet"
        )
    );
    // 14 /28s fit in a /24 (not the first or the last, which hold reserved addresses): 15
    // do not, though the subnet has the 240 addresses.
    let many = NewEni {
        ipv4_prefix_count: 15,
        client_token: "many".into(),
        ..world.new_eni(0)
    };
    let fragmented = backend.ec2.create_eni(&many).await.unwrap_err();
    assert_eq!(
        (fragmented.kind, fragmented.code.as_str()),
        (ErrorKind::LimitExceeded, "InsufficientCidrBlocks")
    );
    let metrics = backend.ec2.metrics();
    assert_eq!(
        metrics.calls_of("AssignPrivateIpAddresses", "limit_exceeded"),
        1
    );
    assert_eq!(
        metrics.calls_of("CreateNetworkInterface", "limit_exceeded"),
        2
    );
    let stats = backend.sim.as_ref().unwrap().stats();
    assert_eq!(stats.actions["AssignPrivateIpAddresses"].calls, 1);
    assert_eq!(stats.actions["CreateNetworkInterface"].calls, 3);
}
