//! The EC2 boundary and the pods' addresses: secondary private IPv4 addresses and /28
//! prefixes requested with the ENI, and as DescribeNetworkInterfaces lists them.

use multi_eni::ec2::types::NewEni;
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
