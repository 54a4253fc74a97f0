//! The NetworkAttachmentDefinitions of the pod networks: for every NodeENI with a
//! `podNetwork`, one in each namespace it lists, named after the network, with no
//! `spec.config` (Multus then loads the node-local CNI configuration of the same name, which
//! the node agent writes). Ours carry [`MANAGED_BY_LABEL`] and [`NODEENI_LABEL`]; one without
//! them is the user's and is never touched. Pure: what to create and delete, and the
//! condition each NodeENI gets.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::NodeENI;

use super::reasons;

/// `app.kubernetes.io/managed-by: multi-eni` on every NetworkAttachmentDefinition we made.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "multi-eni";
/// The NodeENI a NetworkAttachmentDefinition of ours is for.
pub const NODEENI_LABEL: &str = "multi-eni.k8s.aws/nodeeni";

/// Multus's CRD: group, version, kind and plural.
pub const GROUP: &str = "k8s.cni.cncf.io";
pub const VERSION: &str = "v1";
pub const KIND: &str = "NetworkAttachmentDefinition";
pub const PLURAL: &str = "network-attachment-definitions";

/// One NetworkAttachmentDefinition: where, its name, and the NodeENI it is (to be) for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nad {
    pub namespace: String,
    pub name: String,
    pub nodeeni: String,
}

/// The NetworkAttachmentDefinitions the NodeENIs want (those being deleted want none).
pub fn wanted(nodeenis: &BTreeMap<String, NodeENI>) -> BTreeSet<Nad> {
    let mut wanted = BTreeSet::new();
    for (nodeeni, object) in nodeenis {
        if object.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(network) = &object.spec.pod_network else {
            continue;
        };
        let name = network.name_in(nodeeni);
        for namespace in &network.namespaces {
            wanted.insert(Nad {
                namespace: namespace.clone(),
                name: name.clone(),
                nodeeni: nodeeni.clone(),
            });
        }
    }
    wanted
}

/// What to create (wanted, not among ours) and delete (ours, not wanted).
pub fn changes(wanted: &BTreeSet<Nad>, ours: &BTreeSet<Nad>) -> (Vec<Nad>, Vec<Nad>) {
    let create = wanted.difference(ours).cloned().collect();
    let delete = ours.difference(wanted).cloned().collect();
    (create, delete)
}

/// How a NodeENI's NetworkAttachmentDefinitions stand: the `PodNetworkReady` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NadState {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What a sync found that keeps a NetworkAttachmentDefinition from being ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Multus's CRD is not installed.
    CrdMissing,
    /// One of that name exists already, not ours (or another NodeENI's).
    Taken { nad: Nad, owner: Option<String> },
    /// The API server refused a create or delete.
    Failed { nad: Nad, error: String },
}

/// The condition of each NodeENI with a pod network, from what the sync found.
pub fn states(wanted: &BTreeSet<Nad>, problems: &[Problem]) -> BTreeMap<String, NadState> {
    let nodeenis: BTreeSet<&String> = wanted.iter().map(|nad| &nad.nodeeni).collect();
    let mut states = BTreeMap::new();
    for nodeeni in nodeenis {
        let mine: Vec<&Nad> = wanted.iter().filter(|n| &n.nodeeni == nodeeni).collect();
        let problem = problems.iter().find(|p| match p {
            Problem::CrdMissing => true,
            Problem::Taken { nad, .. } | Problem::Failed { nad, .. } => &nad.nodeeni == nodeeni,
        });
        let state = match problem {
            None => NadState {
                ready: true,
                reason: reasons::NETWORK_ATTACHMENT_DEFINITIONS_CREATED,
                message: format!(
                    "NetworkAttachmentDefinition {} in {}",
                    mine[0].name,
                    mine.iter()
                        .map(|n| n.namespace.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            Some(problem) => not_ready(problem),
        };
        states.insert(nodeeni.clone(), state);
    }
    states
}

fn not_ready(problem: &Problem) -> NadState {
    let (reason, message) = match problem {
        Problem::CrdMissing => (
            reasons::NETWORK_ATTACHMENT_DEFINITION_CRD_MISSING,
            format!(
                "the API server has no {KIND} ({GROUP}/{VERSION}): install Multus, whose CRD it is; tried again every resync period"
            ),
        ),
        Problem::Taken { nad, owner } => (
            reasons::NETWORK_ATTACHMENT_DEFINITION_CONFLICT,
            format!(
                "{KIND} {}/{} exists and is {}: it is left alone; rename podNetwork.name or remove it",
                nad.namespace,
                nad.name,
                owner.as_ref().map_or_else(
                    || "not multi-eni's".to_owned(),
                    |owner| format!("NodeENI {owner}'s")
                )
            ),
        ),
        Problem::Failed { nad, error } => (
            reasons::NETWORK_ATTACHMENT_DEFINITION_FAILED,
            format!(
                "{KIND} {}/{}: {error}; tried again every resync period",
                nad.namespace, nad.name
            ),
        ),
    };
    NadState {
        ready: false,
        reason,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nodeeni(network: Option<serde_json::Value>) -> NodeENI {
        let mut spec = serde_json::json!({
            "nodeSelector": {"ng": "multi-eni"},
            "subnetID": "subnet-0a1b2c3d",
            "securityGroupIDs": ["sg-0123abcd"],
        });
        if let Some(network) = network {
            spec["podNetwork"] = network;
        }
        NodeENI::new("ignored", serde_json::from_value(spec).unwrap())
    }

    fn nad(namespace: &str, name: &str, nodeeni: &str) -> Nad {
        Nad {
            namespace: namespace.into(),
            name: name.into(),
            nodeeni: nodeeni.into(),
        }
    }

    #[test]
    fn one_per_namespace_named_after_the_network_and_kept_in_step() {
        let nodeenis = BTreeMap::from([
            (
                "multus".to_owned(),
                nodeeni(Some(json!({"namespaces": ["a", "b"]}))),
            ),
            (
                "other".to_owned(),
                nodeeni(Some(json!({"name": "pods", "namespaces": ["a"]}))),
            ),
            ("plain".to_owned(), nodeeni(None)),
        ]);
        let wanted = wanted(&nodeenis);
        assert_eq!(
            wanted,
            BTreeSet::from([
                nad("a", "multus", "multus"),
                nad("b", "multus", "multus"),
                nad("a", "pods", "other"),
            ])
        );
        // A namespace dropped, a network renamed: delete those, create the new name.
        let ours = BTreeSet::from([
            nad("a", "multus", "multus"),
            nad("c", "multus", "multus"),
            nad("a", "old", "other"),
        ]);
        let (create, delete) = changes(&wanted, &ours);
        assert_eq!(
            create,
            [nad("a", "pods", "other"), nad("b", "multus", "multus")]
        );
        assert_eq!(
            delete,
            [nad("a", "old", "other"), nad("c", "multus", "multus")]
        );
    }

    #[test]
    fn a_deleted_nodeeni_wants_none() {
        let mut deleting = nodeeni(Some(json!({"namespaces": ["a"]})));
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        let nodeenis = BTreeMap::from([("multus".to_owned(), deleting)]);
        assert!(wanted(&nodeenis).is_empty());
    }

    #[test]
    fn problems_become_the_nodeenis_condition() {
        let wanted = BTreeSet::from([nad("a", "multus", "multus"), nad("a", "pods", "other")]);
        let taken = Problem::Taken {
            nad: nad("a", "pods", "other"),
            owner: None,
        };
        let states = states(&wanted, &[taken]);
        assert!(states["multus"].ready);
        assert_eq!(
            states["multus"].message,
            "NetworkAttachmentDefinition multus in a"
        );
        assert!(!states["other"].ready);
        assert_eq!(
            states["other"].reason,
            reasons::NETWORK_ATTACHMENT_DEFINITION_CONFLICT
        );
        assert!(
            states["other"].message.contains("a/pods"),
            "{}",
            states["other"].message
        );
        let missing = super::states(&wanted, &[Problem::CrdMissing]);
        assert!(missing.values().all(|s| {
            !s.ready && s.reason == reasons::NETWORK_ATTACHMENT_DEFINITION_CRD_MISSING
        }));
        assert!(missing["multus"].message.contains("install Multus"));
    }
}
