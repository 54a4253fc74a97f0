//! ENI operations: create, tag, attach, modify, detach, delete, and the list of what we own.

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, NetworkInterfaceAttachmentChanges, ResourceType, Tag,
    TagSpecification,
};

use aws_sdk_ec2::operation::modify_network_interface_attribute::builders::ModifyNetworkInterfaceAttributeFluentBuilder;

use super::limiter::Bucket;
use super::types::{Assigned, Eni, NewEni};
use super::{Ec2, Error, convert};

/// Page size of DescribeNetworkInterfaces (EC2's maximum).
const PAGE: i32 = 1000;

/// Values per filter in one call: EC2 refuses a request with too many (FilterLimitExceeded,
/// "too many filters or too many filter values"); its documentation gives no figure, others
/// report 200, so 100 stays clear of it.
const FILTER_VALUES: usize = 100;

impl Ec2 {
    /// CreateNetworkInterface with the tags in TagSpecifications (tagged atomically with the
    /// creation) and a ClientToken: repeating the same request returns the same ENI. The
    /// pods' secondary addresses or prefixes, if any, come with the ENI in the same call
    /// (`SecondaryPrivateIpAddressCount`, `Ipv4PrefixCount`).
    pub async fn create_eni(&self, new: &NewEni) -> Result<Eni, Error> {
        let tags = new
            .tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect();
        let tag_spec = TagSpecification::builder()
            .resource_type(ResourceType::NetworkInterface)
            .set_tags(Some(tags))
            .build();
        let output = self
            .call("CreateNetworkInterface", Bucket::EniMutation, |counter| {
                self.client
                    .create_network_interface()
                    .subnet_id(&new.subnet_id)
                    .set_groups(Some(new.security_group_ids.clone()))
                    .description(&new.description)
                    .tag_specifications(tag_spec)
                    .client_token(&new.client_token)
                    .set_secondary_private_ip_address_count(positive(
                        new.secondary_private_ip_count,
                    ))
                    .set_ipv4_prefix_count(positive(new.ipv4_prefix_count))
                    .customize()
                    .interceptor(counter)
                    .send()
            })
            .await?;
        Ok(output
            .network_interface()
            .map(convert::eni)
            .unwrap_or_default())
    }

    /// AttachNetworkInterface; returns the attachment ID. Not idempotent: callers check the
    /// ENI's attachment before repeating it.
    pub async fn attach(
        &self,
        eni_id: &str,
        instance_id: &str,
        device_index: i32,
        network_card_index: i32,
    ) -> Result<String, Error> {
        let output = self
            .call("AttachNetworkInterface", Bucket::OtherMutation, |counter| {
                self.client
                    .attach_network_interface()
                    .network_interface_id(eni_id)
                    .instance_id(instance_id)
                    .device_index(device_index)
                    .network_card_index(network_card_index)
                    .customize()
                    .interceptor(counter)
                    .send()
            })
            .await?;
        Ok(output.attachment_id().unwrap_or_default().to_owned())
    }

    /// Sets the attachment's DeleteOnTermination (ModifyNetworkInterfaceAttribute).
    pub async fn set_delete_on_termination(
        &self,
        eni_id: &str,
        attachment_id: &str,
        delete_on_termination: bool,
    ) -> Result<(), Error> {
        let changes = NetworkInterfaceAttachmentChanges::builder()
            .attachment_id(attachment_id)
            .delete_on_termination(delete_on_termination)
            .build();
        self.modify_attribute(eni_id, |modify| modify.attachment(changes))
            .await
    }

    /// Sets the ENI's source/destination check (ModifyNetworkInterfaceAttribute).
    pub async fn set_source_dest_check(&self, eni_id: &str, enabled: bool) -> Result<(), Error> {
        let value = AttributeBooleanValue::builder().value(enabled).build();
        self.modify_attribute(eni_id, |modify| modify.source_dest_check(value))
            .await
    }

    async fn modify_attribute(
        &self,
        eni_id: &str,
        set: impl FnOnce(
            ModifyNetworkInterfaceAttributeFluentBuilder,
        ) -> ModifyNetworkInterfaceAttributeFluentBuilder,
    ) -> Result<(), Error> {
        let modify = set(self
            .client
            .modify_network_interface_attribute()
            .network_interface_id(eni_id));
        self.call(
            "ModifyNetworkInterfaceAttribute",
            Bucket::EniMutation,
            |counter| modify.customize().interceptor(counter).send(),
        )
        .await?;
        Ok(())
    }

    /// CreateTags on one ENI: adds `tags`, overwriting the values of keys it has already and
    /// keeping its other tags. All or nothing for one resource. Charged to the tagging bucket
    /// (CreateTags/DeleteTags: 100, refilled 10 a second).
    pub async fn tag_eni(
        &self,
        eni_id: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let tags = tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect();
        self.call("CreateTags", Bucket::Tags, |counter| {
            self.client
                .create_tags()
                .resources(eni_id)
                .set_tags(Some(tags))
                .customize()
                .interceptor(counter)
                .send()
        })
        .await?;
        Ok(())
    }

    /// AssignPrivateIpAddresses: `secondary` more secondary private addresses, or `prefixes`
    /// more /28 prefixes (not both: EC2 refuses), chosen by EC2 from the ENI's subnet. Not
    /// idempotent: callers compare what DescribeNetworkInterfaces shows with what they want
    /// before asking. Errors: `PrivateIpAddressLimitExceeded` past the instance type's
    /// Ipv4AddressesPerInterface, `InsufficientFreeAddressesInSubnet`,
    /// `InsufficientCidrBlocks` (no free aligned /28), all [`ErrorKind::LimitExceeded`].
    ///
    /// [`ErrorKind::LimitExceeded`]: super::ErrorKind::LimitExceeded
    pub async fn assign_private_ips(
        &self,
        eni_id: &str,
        secondary: i32,
        prefixes: i32,
    ) -> Result<Assigned, Error> {
        let output = self
            .call("AssignPrivateIpAddresses", Bucket::EniMutation, |counter| {
                self.client
                    .assign_private_ip_addresses()
                    .network_interface_id(eni_id)
                    .set_secondary_private_ip_address_count(positive(secondary))
                    .set_ipv4_prefix_count(positive(prefixes))
                    .customize()
                    .interceptor(counter)
                    .send()
            })
            .await?;
        Ok(Assigned {
            private_ips: (output.assigned_private_ip_addresses().iter())
                .filter_map(|a| a.private_ip_address().map(str::to_owned))
                .collect(),
            ipv4_prefixes: (output.assigned_ipv4_prefixes().iter())
                .filter_map(|p| p.ipv4_prefix().map(str::to_owned))
                .collect(),
        })
    }

    /// DetachNetworkInterface. An attachment that no longer exists counts as detached.
    /// `force` is a last resort: it can leave the device index blocked on the instance.
    pub async fn detach(&self, attachment_id: &str, force: bool) -> Result<(), Error> {
        let result = self
            .call("DetachNetworkInterface", Bucket::OtherMutation, |counter| {
                self.client
                    .detach_network_interface()
                    .attachment_id(attachment_id)
                    .force(force)
                    .customize()
                    .interceptor(counter)
                    .send()
            })
            .await;
        already_done_if_not_found(result.map(drop))
    }

    /// DeleteNetworkInterface (the ENI must be `available`). A missing ENI counts as deleted.
    pub async fn delete_eni(&self, eni_id: &str) -> Result<(), Error> {
        let result = self
            .call("DeleteNetworkInterface", Bucket::EniMutation, |counter| {
                self.client
                    .delete_network_interface()
                    .network_interface_id(eni_id)
                    .customize()
                    .interceptor(counter)
                    .send()
            })
            .await;
        already_done_if_not_found(result.map(drop))
    }

    /// Every ENI carrying the tag `key=value`, in as few calls as EC2 allows (1000 a page).
    pub async fn enis_tagged(&self, key: &str, value: &str) -> Result<Vec<Eni>, Error> {
        self.enis_filtered(vec![filter(&format!("tag:{key}"), [value])])
            .await
    }

    /// Whether EC2 knows the ENI (by a filter, so an unknown ID is an empty answer rather
    /// than InvalidNetworkInterfaceID.NotFound).
    pub async fn eni_exists(&self, eni_id: &str) -> Result<bool, Error> {
        Ok(!self.enis_by_id(&[eni_id.to_owned()]).await?.is_empty())
    }

    /// The ENIs of `ids` that exist, by the `network-interface-id` filter (so an unknown ID
    /// is left out of the answer rather than failing it with InvalidNetworkInterfaceID.NotFound),
    /// [`FILTER_VALUES`] IDs a call.
    pub async fn enis_by_id(&self, ids: &[String]) -> Result<Vec<Eni>, Error> {
        let mut enis = Vec::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let filter = filter("network-interface-id", chunk.iter().map(String::as_str));
            enis.extend(self.enis_filtered(vec![filter]).await?);
        }
        Ok(enis)
    }

    /// Every ENI matching all the filters (`Name`, values), paginated.
    pub async fn enis_filtered(&self, filters: Vec<Filter>) -> Result<Vec<Eni>, Error> {
        let mut enis = Vec::new();
        let mut next_token = None;
        loop {
            let output = self
                .call("DescribeNetworkInterfaces", Bucket::Describe, |counter| {
                    self.client
                        .describe_network_interfaces()
                        .set_filters(Some(filters.clone()))
                        .max_results(PAGE)
                        .set_next_token(next_token.take())
                        .customize()
                        .interceptor(counter)
                        .send()
                })
                .await?;
            enis.extend(output.network_interfaces().iter().map(convert::eni));
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(enis),
            }
        }
    }
}

/// An EC2 filter.
pub fn filter<'a>(name: &str, values: impl IntoIterator<Item = &'a str>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(str::to_owned).collect()))
        .build()
}

/// A count worth sending: EC2 takes an absent count as none.
fn positive(count: i32) -> Option<i32> {
    (count > 0).then_some(count)
}

/// Detach and delete treat "not found" as "already done".
fn already_done_if_not_found(result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Err(error) if error.is_not_found() => Ok(()),
        other => other,
    }
}
