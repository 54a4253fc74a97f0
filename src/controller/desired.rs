//! The desired state: which ENIs should exist, from the NodeENIs, the Nodes and the subnets
//! their names resolve to. Pure: no Kubernetes client, no EC2 client.

use std::collections::BTreeMap;

use crate::api::NodeENISpec;
use crate::ec2::types::Subnet;
use crate::ownership::Owner;

use super::reasons;

/// A node as the controller needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// The Node object's UID, for the owner reference of its ENINode (empty until known).
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// From the provider ID `aws:///<zone>/<instance>`; `None` for non-AWS nodes.
    pub zone: Option<String>,
    pub instance: Option<String>,
    pub deleting: bool,
}

impl NodeInfo {
    pub fn new(
        name: &str,
        labels: BTreeMap<String, String>,
        provider_id: Option<&str>,
        deleting: bool,
    ) -> NodeInfo {
        let (zone, instance) = provider_id.and_then(parse_provider_id).unzip();
        NodeInfo {
            name: name.to_owned(),
            uid: String::new(),
            labels,
            zone,
            instance,
            deleting,
        }
    }

    pub fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        !selector.is_empty()
            && selector
                .iter()
                .all(|(key, value)| self.labels.get(key) == Some(value))
    }
}

/// `aws:///us-east-1a/i-0123…` (or `aws://us-east-1a/i-…`) → (zone, instance).
pub fn parse_provider_id(provider_id: &str) -> Option<(String, String)> {
    let path = provider_id.strip_prefix("aws://")?;
    let mut parts = path.rsplit('/');
    let instance = parts.next().filter(|id| id.starts_with("i-"))?;
    let zone = parts.next().filter(|zone| !zone.is_empty())?;
    Some((zone.to_owned(), instance.to_owned()))
}

/// The NodeENI's subnets and security groups as EC2 knows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// In spec order (subnetID, subnetIDs, subnetName, subnetNames), without duplicates.
    pub subnets: Vec<Subnet>,
    pub security_group_ids: Vec<String>,
}

/// One ENI that should exist and be attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub owner: Owner,
    pub subnet: Subnet,
    /// The index it should take if free: `deviceIndex` + its position among the node's slots.
    pub preferred_index: i32,
}

/// Why a selected node gets no ENI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeProblem {
    pub node: String,
    pub reason: &'static str,
    pub message: String,
}

/// What one NodeENI wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub slots: Vec<Slot>,
    pub problems: Vec<NodeProblem>,
    /// Nodes selected (with or without a problem).
    pub selected_nodes: usize,
}

/// The slots of one NodeENI over all nodes.
pub fn desired(
    cluster: &str,
    nodeeni: &str,
    spec: &NodeENISpec,
    resolved: &Resolved,
    nodes: &[NodeInfo],
) -> Desired {
    let mut desired = Desired::default();
    for node in nodes
        .iter()
        .filter(|node| !node.deleting && node.matches(&spec.node_selector))
    {
        desired.selected_nodes += 1;
        let (Some(zone), Some(instance)) = (&node.zone, &node.instance) else {
            desired.problems.push(NodeProblem {
                node: node.name.clone(),
                reason: reasons::NO_PROVIDER_ID,
                message: "the node has no AWS provider ID (aws:///<zone>/<instance-id>)".into(),
            });
            continue;
        };
        let in_zone: Vec<&Subnet> = resolved
            .subnets
            .iter()
            .filter(|s| &s.availability_zone == zone)
            .collect();
        if in_zone.is_empty() {
            let ids: Vec<&str> = resolved.subnets.iter().map(|s| s.id.as_str()).collect();
            desired.problems.push(NodeProblem {
                node: node.name.clone(),
                reason: reasons::NO_SUBNET_IN_ZONE,
                message: format!(
                    "none of the subnets [{}] is in the node's zone {zone}",
                    ids.join(", ")
                ),
            });
            continue;
        }
        for (position, subnet) in in_zone.into_iter().enumerate() {
            let position = i32::try_from(position).expect("at most 34 subnets");
            desired.slots.push(Slot {
                owner: Owner {
                    cluster: cluster.to_owned(),
                    nodeeni: nodeeni.to_owned(),
                    node: node.name.clone(),
                    instance: instance.clone(),
                    subnet: subnet.id.clone(),
                },
                subnet: subnet.clone(),
                preferred_index: spec.device_index + position,
            });
        }
    }
    desired
}

/// The subnet IDs and names of a spec, in order, without duplicates.
pub fn subnet_refs(spec: &NodeENISpec) -> (Vec<String>, Vec<String>) {
    let mut ids: Vec<String> = spec
        .subnet_id
        .iter()
        .chain(&spec.subnet_ids)
        .cloned()
        .collect();
    let mut names: Vec<String> = spec
        .subnet_name
        .iter()
        .chain(&spec.subnet_names)
        .cloned()
        .collect();
    dedup(&mut ids);
    dedup(&mut names);
    (ids, names)
}

fn dedup(values: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    values.retain(|value| seen.insert(value.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(subnet_ids: &[&str]) -> NodeENISpec {
        serde_json::from_value(serde_json::json!({
            "nodeSelector": {"ng": "multi-eni"},
            "subnetIDs": subnet_ids,
            "securityGroupIDs": ["sg-0123abcd"],
            "deviceIndex": 2,
        }))
        .unwrap()
    }

    fn subnet(id: &str, zone: &str) -> Subnet {
        Subnet {
            id: id.into(),
            availability_zone: zone.into(),
            ..Subnet::default()
        }
    }

    fn node(name: &str, labels: &[(&str, &str)], provider_id: Option<&str>) -> NodeInfo {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        NodeInfo::new(name, labels, provider_id, false)
    }

    #[test]
    fn provider_ids_are_parsed() {
        assert_eq!(
            parse_provider_id("aws:///us-east-1a/i-0123456789abcdef0"),
            Some(("us-east-1a".into(), "i-0123456789abcdef0".into()))
        );
        assert_eq!(
            parse_provider_id("aws://us-east-1a/i-1"),
            Some(("us-east-1a".into(), "i-1".into()))
        );
        assert_eq!(parse_provider_id("aws:///i-1"), None);
        assert_eq!(parse_provider_id("gce://project/zone/vm"), None);
    }

    #[test]
    fn each_subnet_in_the_nodes_zone_gives_a_slot_at_consecutive_indices() {
        let resolved = Resolved {
            subnets: vec![
                subnet("subnet-a1", "a"),
                subnet("subnet-b1", "b"),
                subnet("subnet-a2", "a"),
            ],
            security_group_ids: vec!["sg-0123abcd".into()],
        };
        let nodes = [
            node("n1", &[("ng", "multi-eni")], Some("aws:///a/i-1")),
            node("n2", &[("ng", "multi-eni")], Some("aws:///b/i-2")),
            node("n3", &[("ng", "other")], Some("aws:///a/i-3")),
            node("n4", &[("ng", "multi-eni")], Some("aws:///c/i-4")),
            node("n5", &[("ng", "multi-eni")], None),
        ];
        let desired = desired("prod", "multus", &spec(&[]), &resolved, &nodes);
        let slots: Vec<_> = desired
            .slots
            .iter()
            .map(|s| {
                (
                    s.owner.node.as_str(),
                    s.subnet.id.as_str(),
                    s.preferred_index,
                )
            })
            .collect();
        assert_eq!(
            slots,
            vec![
                ("n1", "subnet-a1", 2),
                ("n1", "subnet-a2", 3),
                ("n2", "subnet-b1", 2)
            ]
        );
        assert_eq!(desired.slots[0].owner.instance, "i-1");
        let problems: Vec<_> = desired
            .problems
            .iter()
            .map(|p| (p.node.as_str(), p.reason))
            .collect();
        assert_eq!(
            problems,
            vec![("n4", "NoSubnetInZone"), ("n5", "NoProviderID")]
        );
        assert_eq!(desired.selected_nodes, 4);
    }

    #[test]
    fn deleting_nodes_want_nothing() {
        let resolved = Resolved {
            subnets: vec![subnet("subnet-a1", "a")],
            ..Resolved::default()
        };
        let mut gone = node("n1", &[("ng", "multi-eni")], Some("aws:///a/i-1"));
        gone.deleting = true;
        assert_eq!(
            desired("prod", "multus", &spec(&[]), &resolved, &[gone]),
            Desired::default()
        );
    }

    #[test]
    fn subnet_references_keep_order_without_duplicates() {
        let mut spec = spec(&["subnet-2", "subnet-1", "subnet-2"]);
        spec.subnet_id = Some("subnet-1".into());
        spec.subnet_names = vec!["b".into(), "a".into(), "b".into()];
        assert_eq!(
            subnet_refs(&spec),
            (
                vec!["subnet-1".into(), "subnet-2".into()],
                vec!["b".into(), "a".into()]
            )
        );
    }
}
