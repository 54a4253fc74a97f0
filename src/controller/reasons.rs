//! Every reason the controller writes (the `Ready` condition, the per-node entries, Warning
//! events), each for one situation, named after what EC2 or the cluster said. README's
//! troubleshooting table lists exactly these (a test compares them). Pure.

use crate::ec2::{Error as Ec2Error, ErrorKind};

use super::plan::Action;

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        $($(#[$doc])* pub const $name: &str = $value;)*
        /// Every reason above.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

reasons! {
    /// Ready: every slot's ENI is attached (and configured, where the agent reports).
    ATTACHED = "Attached",
    /// Ready: no node matches the nodeSelector.
    NO_NODES_SELECTED = "NoNodesSelected",
    /// ENIs are being created or attached.
    PROGRESSING = "Progressing",
    /// The NodeENI is deleted; its ENIs are being removed before the finalizer goes.
    DELETING = "Deleting",
    /// An ENI of aws-multi-eni-controller is being tagged as this cluster's
    /// (`--adopt-predecessor-enis`).
    ADOPTING = "Adopting",
    /// The node agent reports `configured: false`.
    INTERFACE_NOT_CONFIGURED = "InterfaceNotConfigured",
    /// An unwanted ENI stays attached until the node agent gives its device back from DPDK.
    DPDK_RELEASE = "DPDKRelease",
    /// A subnet ID does not exist, or no subnet has a subnetName.
    SUBNET_NOT_FOUND = "SubnetNotFound",
    /// Two subnets in one zone carry a subnetName.
    AMBIGUOUS_SUBNET_NAME = "AmbiguousSubnetName",
    /// The subnets are in more than one VPC.
    SUBNETS_IN_SEVERAL_VPCS = "SubnetsInSeveralVPCs",
    /// A security group ID or name does not exist (in the subnets' VPC).
    SECURITY_GROUP_NOT_FOUND = "SecurityGroupNotFound",
    /// A security group is in another VPC than the subnets.
    SECURITY_GROUP_IN_OTHER_VPC = "SecurityGroupInOtherVPC",
    /// EC2 answered a lookup with an error (throttling or an outage: retried).
    EC2_ERROR = "EC2Error",
    /// EC2 refused the controller's credentials or IAM policy (AuthFailure,
    /// UnauthorizedOperation).
    UNAUTHORIZED = "Unauthorized",
    /// The node has no `aws:///<zone>/<instance-id>` provider ID.
    NO_PROVIDER_ID = "NoProviderID",
    /// None of the subnets is in the node's zone.
    NO_SUBNET_IN_ZONE = "NoSubnetInZone",
    /// EC2 does not know the instance the node's provider ID names.
    INSTANCE_NOT_FOUND = "InstanceNotFound",
    /// The instance is pending, stopping or stopped.
    INSTANCE_NOT_RUNNING = "InstanceNotRunning",
    /// The instance is shutting down or terminated: its ENIs go.
    INSTANCE_TERMINATED = "InstanceTerminated",
    /// The instance type has no network card of spec.networkCardIndex.
    NO_SUCH_NETWORK_CARD = "NoSuchNetworkCard",
    /// The instance type takes no more interfaces on the card.
    INTERFACE_LIMIT_REACHED = "InterfaceLimitReached",
    /// Every device index from deviceIndex to 31 is taken on the card.
    NO_FREE_DEVICE_INDEX = "NoFreeDeviceIndex",
    /// EC2 found the device index taken (by an interface attached meanwhile).
    DEVICE_INDEX_IN_USE = "DeviceIndexInUse",
    /// The instance type takes fewer IPv4 addresses per interface than the NodeENI asks for
    /// (checked before any EC2 call), or EC2 said so (PrivateIpAddressLimitExceeded,
    /// InvalidInterface.IpAddressLimitExceeded).
    ADDRESS_LIMIT_REACHED = "AddressLimitReached",
    /// The NodeENI asks for IPv4 prefixes on an instance type not built on the Nitro System.
    PREFIXES_NOT_SUPPORTED = "PrefixesNotSupported",
    /// The ENI's subnet has too few free addresses (EC2's InsufficientFreeAddressesInSubnet):
    /// retried with backoff.
    INSUFFICIENT_FREE_ADDRESSES = "InsufficientFreeAddressesInSubnet",
    /// The ENI's subnet has no free aligned /28 for a prefix (EC2's InsufficientCidrBlocks):
    /// retried with backoff.
    INSUFFICIENT_CIDR_BLOCKS = "InsufficientCidrBlocks",
    /// An account, subnet or instance limit (e.g. AttachmentLimitExceeded).
    LIMIT_EXCEEDED = "LimitExceeded",
    /// EC2 refused the request as it is (InvalidParameterValue, InvalidParameterCombination…).
    INVALID_PARAMETERS = "InvalidParameters",
    /// A create, attach, modify, detach or delete failed for a reason that passes
    /// (throttling, an outage, a state in transition): retried with backoff.
    CREATE_FAILED = "CreateFailed",
    ATTACH_FAILED = "AttachFailed",
    MODIFY_FAILED = "ModifyFailed",
    DETACH_FAILED = "DetachFailed",
    DELETE_FAILED = "DeleteFailed",
    /// AssignPrivateIpAddresses (more addresses for an existing ENI) failed for a reason that
    /// passes: retried with backoff.
    ASSIGN_FAILED = "AssignFailed",
    /// PodNetworkReady: the NetworkAttachmentDefinitions of the pod network exist in every
    /// namespace listed.
    NETWORK_ATTACHMENT_DEFINITIONS_CREATED = "NetworkAttachmentDefinitionsCreated",
    /// PodNetworkReady False: Multus's NetworkAttachmentDefinition CRD is not installed.
    NETWORK_ATTACHMENT_DEFINITION_CRD_MISSING = "NetworkAttachmentDefinitionCRDMissing",
    /// PodNetworkReady False: a NetworkAttachmentDefinition of the network's name exists in a
    /// listed namespace and is not this NodeENI's (the user's, or another NodeENI's).
    NETWORK_ATTACHMENT_DEFINITION_CONFLICT = "NetworkAttachmentDefinitionConflict",
    /// PodNetworkReady False: the API server refused a create or delete (RBAC, a webhook…).
    NETWORK_ATTACHMENT_DEFINITION_FAILED = "NetworkAttachmentDefinitionFailed",
    /// Tagging an ENI of aws-multi-eni-controller as this cluster's failed (UnauthorizedOperation
    /// is `Unauthorized`: the IAM policy lacks the migration's statement).
    ADOPT_FAILED = "AdoptFailed",
}

/// The reason a failed EC2 call is reported with, when its code says more than the
/// action does (`None`: the action's own reason).
pub fn for_code(error: &Ec2Error) -> Option<&'static str> {
    let code = error.code.as_str();
    Some(match code {
        "AuthFailure" | "UnauthorizedOperation" | "Blocked" | "OptInRequired" => UNAUTHORIZED,
        "PrivateIpAddressLimitExceeded" | "InvalidInterface.IpAddressLimitExceeded" => {
            ADDRESS_LIMIT_REACHED
        }
        "InsufficientFreeAddressesInSubnet" => INSUFFICIENT_FREE_ADDRESSES,
        "InsufficientCidrBlocks" => INSUFFICIENT_CIDR_BLOCKS,
        _ if code.starts_with("InvalidSubnetID") => SUBNET_NOT_FOUND,
        _ if code.starts_with("InvalidGroup") => SECURITY_GROUP_NOT_FOUND,
        _ if code.starts_with("InvalidInstanceID") => INSTANCE_NOT_FOUND,
        _ if code == "IncorrectInstanceState" || error.message.contains("is not 'running'") => {
            INSTANCE_NOT_RUNNING
        }
        _ => return None,
    })
}

/// The reason of a failed action, for events, entries and the condition.
pub fn failure_reason(action: &Action, error: &Ec2Error) -> &'static str {
    if let Some(reason) = for_code(error) {
        return reason;
    }
    match (error.kind, action) {
        (ErrorKind::LimitExceeded, _) => LIMIT_EXCEEDED,
        (ErrorKind::InvalidInput, _) => INVALID_PARAMETERS,
        (ErrorKind::Conflict, Action::Attach { .. } | Action::Create { .. })
            if error.message.contains("device index") =>
        {
            DEVICE_INDEX_IN_USE
        }
        (_, Action::Create { .. }) => CREATE_FAILED,
        (_, Action::Attach { .. }) => ATTACH_FAILED,
        (_, Action::SetDeleteOnTermination { .. } | Action::SetSourceDestCheck { .. }) => {
            MODIFY_FAILED
        }
        (_, Action::Detach { .. }) => DETACH_FAILED,
        (_, Action::Delete { .. }) => DELETE_FAILED,
        (_, Action::Adopt { .. }) => ADOPT_FAILED,
        (_, Action::AssignAddresses { .. }) => ASSIGN_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::ec2::classify;

    /// The reasons README's troubleshooting table names, each in backticks in its first column.
    fn readme_reasons() -> BTreeSet<String> {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("### Troubleshooting by reason")
            .nth(1)
            .expect("README has a troubleshooting section");
        let rows = table.lines().skip_while(|line| !line.starts_with('|'));
        rows.take_while(|line| line.starts_with('|'))
            .skip(2)
            .filter_map(|row| row.split('|').nth(1))
            .flat_map(|cell| cell.split('`').skip(1).step_by(2))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_readme_table_lists_exactly_the_reasons_the_controller_writes() {
        let written: BTreeSet<String> = ALL.iter().map(|r| (*r).to_owned()).collect();
        let documented = readme_reasons();
        let undocumented: Vec<_> = written.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&written).collect();
        assert!(
            undocumented.is_empty() && stale.is_empty(),
            "not in README's table: {undocumented:?}; in the table but never written: {stale:?}"
        );
        assert_eq!(written.len(), ALL.len(), "a reason is listed twice");
    }

    fn error(code: &str, message: &str) -> Ec2Error {
        Ec2Error {
            kind: classify(code, message, Some(400)),
            action: "Test",
            code: code.into(),
            message: message.into(),
        }
    }

    #[test]
    fn failures_are_named_after_what_ec2_said() {
        let delete = Action::Delete {
            owner: crate::ownership::Owner {
                cluster: "c".into(),
                nodeeni: "n".into(),
                node: "node".into(),
                instance: "i-1".into(),
                subnet: "subnet-1".into(),
            },
            eni_id: "eni-1".into(),
        };
        let cases = [
            ("UnauthorizedOperation", "", UNAUTHORIZED),
            ("InvalidSubnetID.NotFound", "", SUBNET_NOT_FOUND),
            ("InvalidGroup.NotFound", "", SECURITY_GROUP_NOT_FOUND),
            ("InvalidInstanceID.NotFound", "", INSTANCE_NOT_FOUND),
            ("IncorrectInstanceState", "", INSTANCE_NOT_RUNNING),
            (
                "InvalidParameterValue",
                "Instance 'i-1' is not 'running'.",
                INSTANCE_NOT_RUNNING,
            ),
            ("AttachmentLimitExceeded", "", LIMIT_EXCEEDED),
            ("PrivateIpAddressLimitExceeded", "", ADDRESS_LIMIT_REACHED),
            (
                "InvalidInterface.IpAddressLimitExceeded",
                "",
                ADDRESS_LIMIT_REACHED,
            ),
            (
                "InsufficientFreeAddressesInSubnet",
                "",
                INSUFFICIENT_FREE_ADDRESSES,
            ),
            ("InsufficientCidrBlocks", "", INSUFFICIENT_CIDR_BLOCKS),
            ("InvalidParameterCombination", "", INVALID_PARAMETERS),
            ("RequestLimitExceeded", "", DELETE_FAILED),
            ("InvalidNetworkInterface.InUse", "", DELETE_FAILED),
        ];
        for (code, message, reason) in cases {
            assert_eq!(
                failure_reason(&delete, &error(code, message)),
                reason,
                "{code}"
            );
        }
    }
}
