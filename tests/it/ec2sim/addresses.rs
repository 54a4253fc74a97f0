//! The pods' addresses in the simulator: secondary private addresses and /28 prefixes from the
//! subnet, at creation and by Assign/UnassignPrivateIpAddresses, within the instance type's
//! Ipv4AddressesPerInterface and hypervisor, and DescribeNetworkInterfaces showing them.

use std::net::Ipv4Addr;

use aws_sdk_ec2::types::{InstanceType, NetworkInterface};

use super::{World, error_of};

fn secondary(eni: &NetworkInterface) -> Vec<String> {
    (eni.private_ip_addresses().iter())
        .filter(|a| a.primary() == Some(false))
        .filter_map(|a| a.private_ip_address().map(str::to_owned))
        .collect()
}

fn prefixes(eni: &NetworkInterface) -> Vec<String> {
    (eni.ipv4_prefixes().iter())
        .filter_map(|p| p.ipv4_prefix().map(str::to_owned))
        .collect()
}

impl World {
    /// CreateNetworkInterface with that many secondary addresses and prefixes.
    async fn try_create(
        &self,
        subnet: &str,
        secondary: i32,
        prefixes: i32,
    ) -> Result<NetworkInterface, (String, String)> {
        let created = (self.ec2.create_network_interface())
            .subnet_id(subnet)
            .set_secondary_private_ip_address_count((secondary > 0).then_some(secondary))
            .set_ipv4_prefix_count((prefixes > 0).then_some(prefixes))
            .send()
            .await
            .map_err(|e| error_of(&e))?;
        Ok(created.network_interface.expect("an ENI"))
    }

    async fn assign_prefixes(
        &self,
        eni: &str,
        count: i32,
    ) -> Result<Vec<String>, (String, String)> {
        let assigned = (self.ec2.assign_private_ip_addresses())
            .network_interface_id(eni)
            .ipv4_prefix_count(count)
            .send()
            .await
            .map_err(|e| error_of(&e))?;
        Ok((assigned.assigned_ipv4_prefixes().iter())
            .filter_map(|p| p.ipv4_prefix().map(str::to_owned))
            .collect())
    }
}

#[tokio::test]
async fn create_takes_secondary_addresses_or_prefixes_and_describe_shows_them() {
    let w = World::new().await;
    let eni = w.try_create(&w.subnet, 3, 0).await.unwrap();
    let id = eni.network_interface_id().unwrap();
    let listed = w.eni(id).await;
    let primaries: Vec<_> = (listed.private_ip_addresses().iter())
        .map(aws_sdk_ec2::types::NetworkInterfacePrivateIpAddress::primary)
        .collect();
    assert_eq!(
        primaries,
        [Some(true), Some(false), Some(false), Some(false)]
    );
    assert_eq!(
        listed.private_ip_addresses()[0].private_ip_address(),
        listed.private_ip_address()
    );
    assert_eq!(secondary(&listed), secondary(&eni));
    assert!(prefixes(&listed).is_empty());
    let known = w.sim.addresses(id).unwrap();
    assert_eq!(known.secondary.len(), 3);
    assert!(known.contains(known.secondary[2]));

    let eni = w.try_create(&w.subnet, 0, 2).await.unwrap();
    let got = prefixes(&eni);
    assert_eq!(got.len(), 2, "{eni:?}");
    for prefix in &got {
        let (base, len) = prefix.split_once('/').unwrap();
        let base: Ipv4Addr = base.parse().unwrap();
        assert_eq!(len, "28");
        assert_eq!(u32::from(base) % 16, 0, "{prefix} is not aligned");
        assert!(
            prefix.starts_with("10.0.1."),
            "{prefix} is outside the subnet"
        );
    }
    assert_ne!(got[0], got[1]);
    assert_eq!(
        prefixes(&w.eni(eni.network_interface_id().unwrap()).await),
        got
    );
    let known = w
        .sim
        .addresses(eni.network_interface_id().unwrap())
        .unwrap();
    let inside: Ipv4Addr = got[1].replace("/28", "").parse::<Ipv4Addr>().unwrap();
    assert!(known.contains(Ipv4Addr::from(u32::from(inside) + 15)));
    assert!(!known.contains(Ipv4Addr::new(10, 0, 2, 5)));

    let both = w.try_create(&w.subnet, 1, 1).await.unwrap_err();
    assert_eq!(both.0, "InvalidParameterCombination");
}

/// A subnet with free addresses but no free aligned /28 answers InsufficientCidrBlocks; one
/// without enough addresses, InsufficientFreeAddressesInSubnet, and takes none of them.
#[tokio::test]
async fn a_fragmented_subnet_has_no_cidr_block_and_a_full_one_no_address() {
    let w = World::new().await;
    // 10.0.3.0/26: the /28s at .16 and .32 are the only ones clear of the reserved addresses.
    let small = w
        .sim
        .create_subnet(&w.vpc, "us-east-1a", "10.0.3.0/26", "small");
    let mut holders = Vec::new();
    for ip in ["10.0.3.20", "10.0.3.40"] {
        let eni = (w.ec2.create_network_interface())
            .subnet_id(&small)
            .private_ip_address(ip)
            .send()
            .await
            .unwrap();
        holders.push(eni.network_interface.unwrap().network_interface_id.unwrap());
    }
    let refused = w.try_create(&small, 0, 1).await.unwrap_err();
    assert_eq!(refused.0, "InsufficientCidrBlocks", "{refused:?}");
    // Addresses remain for secondary addresses.
    w.try_create(&small, 2, 0).await.unwrap();
    w.ec2
        .delete_network_interface()
        .network_interface_id(&holders[0])
        .send()
        .await
        .unwrap();
    let eni = w.try_create(&small, 0, 1).await.unwrap();
    assert_eq!(prefixes(&eni), ["10.0.3.16/28"]);

    // 10.0.4.0/28: 11 usable addresses.
    let tiny = w
        .sim
        .create_subnet(&w.vpc, "us-east-1a", "10.0.4.0/28", "tiny");
    let full = w.try_create(&tiny, 11, 0).await.unwrap_err();
    assert_eq!(full.0, "InsufficientFreeAddressesInSubnet");
    let eni = w.try_create(&tiny, 10, 0).await.unwrap();
    assert_eq!(secondary(&eni).len(), 10);
}

/// Ipv4AddressesPerInterface holds at attach (InvalidInterface.IpAddressLimitExceeded) and at
/// assign (PrivateIpAddressLimitExceeded): the primary, the secondaries and each prefix count.
#[tokio::test]
async fn the_type_limit_holds_at_attach_and_at_assign() {
    let w = World::new().await;
    let instance = w.instance("t3.small"); // 4 addresses per interface
    let five = w.try_create(&w.subnet, 4, 0).await.unwrap();
    let five = five.network_interface_id().unwrap();
    let (code, message) = w.try_attach(five, &instance, 1, 0).await.unwrap_err();
    assert_eq!(code, "InvalidInterface.IpAddressLimitExceeded");
    assert!(
        message.contains("Address count 5") && message.contains("t3.small"),
        "{message}"
    );

    let four = w.try_create(&w.subnet, 0, 3).await.unwrap();
    let four = four.network_interface_id().unwrap();
    w.attach(four, &instance, 1, 0).await;
    let over = w.assign_prefixes(four, 1).await.unwrap_err();
    assert_eq!(over.0, "PrivateIpAddressLimitExceeded");
    assert_eq!(prefixes(&w.eni(four).await).len(), 3);
}

/// Prefixes need a Nitro type: attaching an ENI that has some to a Xen instance, or
/// assigning some to an ENI attached to one, is refused; DescribeInstanceTypes says which.
#[tokio::test]
async fn prefixes_need_a_nitro_instance_type() {
    let w = World::new().await;
    let types = w
        .ec2
        .describe_instance_types()
        .instance_types(InstanceType::M4Large)
        .instance_types(InstanceType::M5Large)
        .send()
        .await
        .unwrap();
    let described: Vec<_> = (types.instance_types().iter())
        .map(|t| {
            let network = t.network_info().unwrap();
            (
                t.instance_type().unwrap().as_str().to_owned(),
                t.hypervisor().unwrap().as_str().to_owned(),
                network.ipv4_addresses_per_interface().unwrap(),
            )
        })
        .collect();
    assert!(described.contains(&("m4.large".into(), "xen".into(), 10)));
    assert!(described.contains(&("m5.large".into(), "nitro".into(), 10)));

    let xen = w.instance("m4.large");
    let with_prefix = w.try_create(&w.subnet, 0, 1).await.unwrap();
    let with_prefix = with_prefix.network_interface_id().unwrap();
    let refused = w.try_attach(with_prefix, &xen, 1, 0).await.unwrap_err();
    assert_eq!(refused.0, "UnsupportedOperation", "{refused:?}");
    let plain = w.try_create(&w.subnet, 2, 0).await.unwrap();
    let plain = plain.network_interface_id().unwrap();
    w.attach(plain, &xen, 1, 0).await;
    let refused = w.assign_prefixes(plain, 1).await.unwrap_err();
    assert_eq!(refused.0, "UnsupportedOperation");

    let nitro = w.instance("m5.large");
    w.attach(with_prefix, &nitro, 1, 0).await;
    assert_eq!(w.assign_prefixes(with_prefix, 2).await.unwrap().len(), 2);
}

/// Assign and Unassign with prefixes: an unassigned prefix goes back to the subnet.
#[tokio::test]
async fn prefixes_are_assigned_and_unassigned() {
    let w = World::new().await;
    let eni = w.try_create(&w.subnet, 0, 0).await.unwrap();
    let eni = eni.network_interface_id().unwrap();
    let first = w.assign_prefixes(eni, 2).await.unwrap();
    assert_eq!(prefixes(&w.eni(eni).await), first);
    let count = (w.ec2.assign_private_ip_addresses())
        .network_interface_id(eni)
        .secondary_private_ip_address_count(1)
        .ipv4_prefix_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_of(&count).0, "InvalidParameterCombination");
    (w.ec2.unassign_private_ip_addresses())
        .network_interface_id(eni)
        .ipv4_prefixes(&first[0])
        .send()
        .await
        .unwrap();
    assert_eq!(prefixes(&w.eni(eni).await), [first[1].clone()]);
    let again = w.assign_prefixes(eni, 1).await.unwrap();
    assert_eq!(again, [first[0].clone()], "the lowest free /28 again");
}
