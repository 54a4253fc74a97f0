//! How multi-eni marks what it owns in EC2: the one place the tag scheme is written down.
//!
//! Every ENI multi-eni creates carries these tags from its creation on (they are part of
//! CreateNetworkInterface's TagSpecifications, so no crash can leave an untagged ENI):
//!
//! | tag | value |
//! |---|---|
//! | `multi-eni.k8s.aws/cluster` | the cluster name (`--cluster-name`) |
//! | `multi-eni.k8s.aws/nodeeni` | the NodeENI's name |
//! | `multi-eni.k8s.aws/node` | the node's name |
//! | `multi-eni.k8s.aws/instance` | the instance ID |
//! | `multi-eni.k8s.aws/subnet` | the subnet ID |
//! | `node.k8s.amazonaws.com/no_manage` | `true`, so that the VPC CNI leaves the ENI alone |
//!
//! multi-eni detaches and deletes only ENIs whose cluster tag is its own cluster name. It
//! finds what exists by these tags, never from memory, so a restart adopts what exists.
//! A CreateNetworkInterface carries a ClientToken derived from the same identity, so a
//! request repeated after a crash or a lost answer returns the ENI created the first time.
//!
//! ## ENIs of aws-multi-eni-controller (the predecessor), adopted
//!
//! With `--adopt-predecessor-enis`, the controller also reads the ENIs the predecessor
//! created. It tags them (aws-multi-eni-controller v1.3.8, `createENIInSubnet`):
//!
//! | tag | value |
//! |---|---|
//! | `kubernetes.io/cluster/managed-by` | `nodeeni-controller` (no cluster name) |
//! | `NodeENI` | the NodeENI's name |
//! | `Node` | the node's name |
//! | `SubnetID` | the subnet ID |
//! | `Name` | `nodeeni-<nodeeni>-<node>-<last 8 characters of the subnet ID>` |
//! | `node.k8s.amazonaws.com/no_manage` | `true` |
//!
//! An ENI is adopted by one CreateTags adding the tags of the table above (the owner being
//! the NodeENI, node and subnet its tags name, and the node's instance); the predecessor's
//! tags stay. Tags are ownership, so from then on it is an ordinary ENI of this cluster: its
//! ClientToken (it had none) never matters, because a slot with an ENI creates nothing. The
//! controller's reconciler decides which ENIs qualify (`controller::adopt`): the predecessor's
//! tags name no cluster, so only ENIs of a NodeENI and a Node of this cluster, attached to
//! that node's instance or available, are candidates.

use std::collections::BTreeMap;

pub const CLUSTER_TAG: &str = "multi-eni.k8s.aws/cluster";
pub const NODEENI_TAG: &str = "multi-eni.k8s.aws/nodeeni";
pub const NODE_TAG: &str = "multi-eni.k8s.aws/node";
pub const INSTANCE_TAG: &str = "multi-eni.k8s.aws/instance";
pub const SUBNET_TAG: &str = "multi-eni.k8s.aws/subnet";
pub const NO_MANAGE_TAG: &str = "node.k8s.amazonaws.com/no_manage";

/// The predecessor's ownership tag, and its one value.
pub const PREDECESSOR_TAG: &str = "kubernetes.io/cluster/managed-by";
pub const PREDECESSOR_VALUE: &str = "nodeeni-controller";
pub const PREDECESSOR_NODEENI_TAG: &str = "NodeENI";
pub const PREDECESSOR_NODE_TAG: &str = "Node";
pub const PREDECESSOR_SUBNET_TAG: &str = "SubnetID";

/// What the predecessor's tags say an ENI was created for (no cluster, no instance).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PredecessorOwner {
    pub nodeeni: String,
    pub node: String,
    pub subnet: String,
}

impl PredecessorOwner {
    /// `None` unless the ENI carries the predecessor's tags and none of multi-eni's complete
    /// ownership (an ENI adopted already is an ENI of ours, or of another cluster).
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Option<PredecessorOwner> {
        if tags.get(PREDECESSOR_TAG).map(String::as_str) != Some(PREDECESSOR_VALUE)
            || Owner::from_tags(tags).is_some()
        {
            return None;
        }
        let tag = |key| tags.get(key).filter(|value| !value.is_empty()).cloned();
        Some(PredecessorOwner {
            nodeeni: tag(PREDECESSOR_NODEENI_TAG)?,
            node: tag(PREDECESSOR_NODE_TAG)?,
            subnet: tag(PREDECESSOR_SUBNET_TAG)?,
        })
    }
}

/// Who an ENI belongs to: one NodeENI's ENI for one instance in one subnet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    pub cluster: String,
    pub nodeeni: String,
    pub node: String,
    pub instance: String,
    pub subnet: String,
}

impl Owner {
    /// The ownership tags, over `extra` (the NodeENI's own tags cannot override them).
    pub fn tags(&self, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut tags = extra.clone();
        for (key, value) in [
            (CLUSTER_TAG, &self.cluster),
            (NODEENI_TAG, &self.nodeeni),
            (NODE_TAG, &self.node),
            (INSTANCE_TAG, &self.instance),
            (SUBNET_TAG, &self.subnet),
        ] {
            tags.insert(key.to_owned(), value.clone());
        }
        tags.insert(NO_MANAGE_TAG.to_owned(), "true".to_owned());
        tags
    }

    /// Reads the owner back from an ENI's tags; `None` for ENIs multi-eni did not create.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Option<Owner> {
        let tag = |key| tags.get(key).cloned();
        Some(Owner {
            cluster: tag(CLUSTER_TAG)?,
            nodeeni: tag(NODEENI_TAG)?,
            node: tag(NODE_TAG)?,
            instance: tag(INSTANCE_TAG)?,
            subnet: tag(SUBNET_TAG)?,
        })
    }

    /// The ClientToken of this owner's ENI. `nodeeni_uid` tells apart a NodeENI deleted and
    /// created again under the same name; `incarnation` changes when an earlier ENI of the
    /// same owner was deleted: EC2 answers a used token with the result of its first request
    /// ("Ensuring idempotency in Amazon EC2 API requests"), i.e. the ENI it created then,
    /// even once that ENI is deleted. The first ENI of an owner is incarnation 0, so that a
    /// restarted controller repeating an interrupted create gets the same ENI; later ones
    /// take [`next_incarnation`].
    pub fn client_token(&self, nodeeni_uid: &str, incarnation: u64) -> String {
        let identity = [&self.cluster, nodeeni_uid, &self.instance, &self.subnet];
        format!("multi-eni-{:016x}-{incarnation}", fnv1a(&identity))
    }
}

/// The incarnation after `previous` (`None`: 0 so far): the time in milliseconds since the
/// Unix epoch, and more than `previous`. Not a counter: a counter restarts with the process,
/// and would meet again the tokens an earlier process used (each a wasted create), whereas
/// no earlier process can have used a value from this very millisecond.
pub fn next_incarnation(previous: Option<u64>, now: std::time::SystemTime) -> u64 {
    let millis = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    previous.map_or(millis, |previous| millis.max(previous.saturating_add(1)))
}

/// FNV-1a over the parts, separated: stable across processes and Rust versions.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.join("\0").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            cluster: "prod".into(),
            nodeeni: "multus".into(),
            node: "ip-10-0-1-5".into(),
            instance: "i-0123456789abcdef0".into(),
            subnet: "subnet-0a1b2c3d".into(),
        }
    }

    #[test]
    fn tags_round_trip_and_win_over_extra_tags() {
        let extra = BTreeMap::from([
            (CLUSTER_TAG.to_owned(), "other".to_owned()),
            ("team".into(), "net".into()),
        ]);
        let tags = owner().tags(&extra);
        assert_eq!(tags[CLUSTER_TAG], "prod");
        assert_eq!(tags["team"], "net");
        assert_eq!(tags[NO_MANAGE_TAG], "true");
        assert_eq!(Owner::from_tags(&tags), Some(owner()));
        assert_eq!(
            Owner::from_tags(&BTreeMap::from([("team".into(), "net".into())])),
            None
        );
    }

    #[test]
    fn the_predecessors_tags_name_an_owner_until_the_eni_is_adopted() {
        let mut tags = BTreeMap::from([
            (PREDECESSOR_TAG.to_owned(), PREDECESSOR_VALUE.to_owned()),
            ("NodeENI".into(), "multus".into()),
            ("Node".into(), "ip-10-0-1-5".into()),
            ("SubnetID".into(), "subnet-0a1b2c3d".into()),
            ("Name".into(), "nodeeni-multus-ip-10-0-1-5-0a1b2c3d".into()),
        ]);
        let predecessor = PredecessorOwner {
            nodeeni: "multus".into(),
            node: "ip-10-0-1-5".into(),
            subnet: "subnet-0a1b2c3d".into(),
        };
        assert_eq!(PredecessorOwner::from_tags(&tags), Some(predecessor));
        let mut other = tags.clone();
        other.insert(PREDECESSOR_TAG.into(), "someone-else".into());
        assert_eq!(PredecessorOwner::from_tags(&other), None);
        other = tags.clone();
        other.remove("Node");
        assert_eq!(PredecessorOwner::from_tags(&other), None);
        // Adopted: ours now, not the predecessor's.
        tags.extend(owner().tags(&BTreeMap::new()));
        assert_eq!(PredecessorOwner::from_tags(&tags), None);
        assert_eq!(Owner::from_tags(&tags), Some(owner()));
    }

    #[test]
    fn client_tokens_are_deterministic_short_and_distinct() {
        let token = owner().client_token("uid-1", 0);
        assert_eq!(token, owner().client_token("uid-1", 0));
        assert!(token.len() <= 64 && token.is_ascii());
        assert_ne!(token, owner().client_token("uid-2", 0));
        assert_ne!(token, owner().client_token("uid-1", 1));
        let other_subnet = Owner {
            subnet: "subnet-0f0f0f0f".into(),
            ..owner()
        };
        assert_ne!(token, other_subnet.client_token("uid-1", 0));
        let now = std::time::SystemTime::now();
        let next = next_incarnation(None, now);
        assert!(next > 0);
        assert!(next_incarnation(Some(next), now) > next, "always more");
        assert!(owner().client_token("uid-1", u64::MAX).len() <= 64);
    }
}
