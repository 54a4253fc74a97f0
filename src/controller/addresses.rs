//! The pods' addresses of a slot's ENI: whether the instance type can hold what the NodeENI
//! asks for, and what to assign when an ENI has fewer than asked. Pure.
//!
//! Facts used: an interface holds at most the type's Ipv4AddressesPerInterface addresses, the
//! primary included and each /28 prefix counting as one; prefixes only on types built on the
//! Nitro System ("Prefix delegation for Amazon EC2 network interfaces", Considerations).

use crate::api::NodeENISpec;
use crate::ec2::types::{Eni, NetworkLimits};

use super::reasons;

/// How many pod addresses a NodeENI asks for on each ENI (NodeENI
/// `secondaryPrivateIPAddressCount`, `ipv4PrefixCount`; admission allows one of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodAddresses {
    pub secondary_private_ips: i32,
    pub ipv4_prefixes: i32,
}

impl PodAddresses {
    pub fn of(spec: &NodeENISpec) -> PodAddresses {
        PodAddresses {
            secondary_private_ips: spec.secondary_private_ip_address_count,
            ipv4_prefixes: spec.ipv4_prefix_count,
        }
    }

    /// What the ENI lacks of these: (secondary addresses, prefixes) to assign; `None` when
    /// it has them all (or more: nothing is ever taken back).
    pub fn missing_on(self, eni: &Eni) -> Option<(i32, i32)> {
        let have = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let secondary = (self.secondary_private_ips - have(eni.secondary_private_ips.len())).max(0);
        let prefixes = (self.ipv4_prefixes - have(eni.ipv4_prefixes.len())).max(0);
        (secondary > 0 || prefixes > 0).then_some((secondary, prefixes))
    }

    /// Whether the instance type can hold them, else the reason and a message naming the
    /// field and the fix. Checked before any EC2 call.
    pub fn fit(
        self,
        limits: &NetworkLimits,
        instance_type: &str,
    ) -> Result<(), (&'static str, String)> {
        if self.ipv4_prefixes > 0 && !limits.nitro {
            return Err((
                reasons::PREFIXES_NOT_SUPPORTED,
                format!(
                    "spec.ipv4PrefixCount is {}, but instance type {instance_type} is not built on the Nitro System, which IPv4 prefixes need: use secondaryPrivateIPAddressCount, or select nodes of a Nitro instance type",
                    self.ipv4_prefixes
                ),
            ));
        }
        let wanted = 1 + self.secondary_private_ips + self.ipv4_prefixes;
        let limit = limits.ipv4_addresses_per_interface;
        if limit > 0 && wanted > limit {
            let (field, count) = if self.ipv4_prefixes > 0 {
                ("spec.ipv4PrefixCount", self.ipv4_prefixes)
            } else {
                (
                    "spec.secondaryPrivateIPAddressCount",
                    self.secondary_private_ips,
                )
            };
            return Err((
                reasons::ADDRESS_LIMIT_REACHED,
                format!(
                    "{field} is {count}, but instance type {instance_type} takes {limit} IPv4 addresses per interface, the primary included: at most {} (or ipv4PrefixCount, 16 addresses per prefix, on a Nitro type)",
                    limit - 1
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_interface: i32, nitro: bool) -> NetworkLimits {
        NetworkLimits {
            maximum_interfaces: 3,
            ipv4_addresses_per_interface: per_interface,
            nitro,
            ..NetworkLimits::default()
        }
    }

    fn asking(secondary: i32, prefixes: i32) -> PodAddresses {
        PodAddresses {
            secondary_private_ips: secondary,
            ipv4_prefixes: prefixes,
        }
    }

    #[test]
    fn the_primary_and_each_prefix_count_against_the_type() {
        assert!(asking(9, 0).fit(&limits(10, true), "m5.large").is_ok());
        let (reason, message) = asking(10, 0)
            .fit(&limits(10, true), "m5.large")
            .unwrap_err();
        assert_eq!(reason, reasons::ADDRESS_LIMIT_REACHED);
        assert!(
            message.contains("spec.secondaryPrivateIPAddressCount is 10"),
            "{message}"
        );
        assert!(message.contains("at most 9"), "{message}");
        assert!(asking(0, 9).fit(&limits(10, true), "m5.large").is_ok());
        let (_, message) = asking(0, 10)
            .fit(&limits(10, true), "m5.large")
            .unwrap_err();
        assert!(message.contains("spec.ipv4PrefixCount is 10"), "{message}");
        // Unknown limits (0) check nothing: EC2 will say.
        assert!(asking(40, 0).fit(&limits(0, true), "x").is_ok());
    }

    #[test]
    fn prefixes_need_a_nitro_type() {
        let (reason, message) = asking(0, 1)
            .fit(&limits(10, false), "m4.large")
            .unwrap_err();
        assert_eq!(reason, reasons::PREFIXES_NOT_SUPPORTED);
        assert!(message.contains("m4.large") && message.contains("spec.ipv4PrefixCount"));
        assert!(asking(3, 0).fit(&limits(10, false), "m4.large").is_ok());
    }

    #[test]
    fn only_what_is_missing_is_assigned() {
        let eni = Eni {
            secondary_private_ips: vec!["10.0.0.5".into(), "10.0.0.6".into()],
            ipv4_prefixes: vec!["10.0.0.16/28".into()],
            ..Eni::default()
        };
        assert_eq!(asking(5, 0).missing_on(&eni), Some((3, 0)));
        assert_eq!(asking(2, 0).missing_on(&eni), None);
        assert_eq!(asking(1, 0).missing_on(&eni), None);
        assert_eq!(asking(0, 3).missing_on(&eni), Some((0, 2)));
        assert_eq!(asking(0, 0).missing_on(&eni), None);
    }
}
