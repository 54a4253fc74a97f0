//! From SDK shapes to the project's types.

use std::collections::BTreeMap;

use aws_sdk_ec2::types as sdk;

use super::types::{
    AttachmentStatus, Eni, EniAttachment, EniStatus, Instance, InstanceInterface, InstanceState,
    NetworkLimits, SecurityGroup, Subnet,
};

fn text(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

pub fn tags(tags: &[sdk::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|tag| (text(tag.key()), text(tag.value())))
        .collect()
}

pub fn eni(eni: &sdk::NetworkInterface) -> Eni {
    Eni {
        id: text(eni.network_interface_id()),
        subnet_id: text(eni.subnet_id()),
        vpc_id: text(eni.vpc_id()),
        availability_zone: text(eni.availability_zone()),
        mac_address: text(eni.mac_address()),
        private_ip: eni.private_ip_address().map(str::to_owned),
        status: eni.status().map_or(EniStatus::Available, |status| {
            EniStatus::from_ec2(status.as_str())
        }),
        description: text(eni.description()),
        security_group_ids: eni
            .groups()
            .iter()
            .filter_map(|group| group.group_id())
            .map(str::to_owned)
            .collect(),
        source_dest_check: eni.source_dest_check(),
        tags: tags(eni.tag_set()),
        attachment: eni.attachment().and_then(attachment),
        secondary_private_ips: eni
            .private_ip_addresses()
            .iter()
            .filter(|address| address.primary() != Some(true))
            .filter_map(|address| address.private_ip_address())
            .map(str::to_owned)
            .collect(),
        ipv4_prefixes: eni
            .ipv4_prefixes()
            .iter()
            .filter_map(|prefix| prefix.ipv4_prefix())
            .map(str::to_owned)
            .collect(),
    }
}

fn attachment(attachment: &sdk::NetworkInterfaceAttachment) -> Option<EniAttachment> {
    Some(EniAttachment {
        id: attachment.attachment_id()?.to_owned(),
        instance_id: text(attachment.instance_id()),
        device_index: attachment.device_index().unwrap_or_default(),
        network_card_index: attachment.network_card_index().unwrap_or_default(),
        status: attachment
            .status()
            .map_or(AttachmentStatus::Attached, |status| {
                AttachmentStatus::from_ec2(status.as_str())
            }),
        delete_on_termination: attachment.delete_on_termination().unwrap_or_default(),
    })
}

pub fn instance(instance: &sdk::Instance) -> Instance {
    Instance {
        id: text(instance.instance_id()),
        instance_type: instance
            .instance_type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        availability_zone: text(instance.placement().and_then(|p| p.availability_zone())),
        state: instance
            .state()
            .and_then(|state| state.name())
            .map_or(InstanceState::Other(String::new()), |name| {
                InstanceState::from_ec2(name.as_str())
            }),
        vpc_id: text(instance.vpc_id()),
        interfaces: instance
            .network_interfaces()
            .iter()
            .filter_map(|interface| {
                let attachment = interface.attachment()?;
                Some(InstanceInterface {
                    eni_id: text(interface.network_interface_id()),
                    device_index: attachment.device_index()?,
                    network_card_index: attachment.network_card_index().unwrap_or_default(),
                })
            })
            .collect(),
    }
}

pub fn subnet(subnet: &sdk::Subnet) -> Subnet {
    Subnet {
        id: text(subnet.subnet_id()),
        vpc_id: text(subnet.vpc_id()),
        availability_zone: text(subnet.availability_zone()),
        cidr_block: text(subnet.cidr_block()),
        name: subnet
            .tags()
            .iter()
            .find(|tag| tag.key() == Some("Name"))
            .map(|tag| text(tag.value())),
    }
}

pub fn security_group(group: &sdk::SecurityGroup) -> SecurityGroup {
    SecurityGroup {
        id: text(group.group_id()),
        name: text(group.group_name()),
        vpc_id: text(group.vpc_id()),
    }
}

/// The type's network limits, if DescribeInstanceTypes gave its `NetworkInfo`.
pub fn network_limits(info: &sdk::InstanceTypeInfo) -> Option<NetworkLimits> {
    let nitro = info.hypervisor() == Some(&sdk::InstanceTypeHypervisor::Nitro)
        || info.bare_metal() == Some(true);
    let info = info.network_info()?;
    Some(NetworkLimits {
        maximum_interfaces: info.maximum_network_interfaces().unwrap_or_default(),
        default_network_card_index: info.default_network_card_index().unwrap_or_default(),
        cards: info
            .network_cards()
            .iter()
            .filter_map(|card| {
                Some((
                    card.network_card_index()?,
                    card.maximum_network_interfaces()?,
                ))
            })
            .collect(),
        ipv4_addresses_per_interface: info.ipv4_addresses_per_interface().unwrap_or_default(),
        nitro,
    })
}
