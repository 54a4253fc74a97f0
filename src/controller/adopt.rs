//! Which ENIs of aws-multi-eni-controller (the predecessor) this cluster adopts, for which
//! slot, and which it adopts only to remove them as it removes its own (the tags are in
//! [`crate::ownership`]). Pure; used by the planner when `--adopt-predecessor-enis` is on.
//!
//! The predecessor's tags name no cluster: two clusters of one account may both have a
//! NodeENI `multus` and a node `worker-1`. So an ENI of the predecessor is a candidate only
//! when all of these hold:
//! - its `NodeENI` tag names a NodeENI this controller sees (with its subnets and security
//!   groups resolved), and its `Node` tag a Node of this cluster that has an instance;
//! - it is in the subnet its `SubnetID` tag names, and carries no other cluster's tag;
//! - it is attached (`attached`) to that node's instance, or it is `available`;
//! - its NodeENI is being deleted, or its NodeENI, node and subnet are a slot the NodeENI
//!   wants (the node selected, the subnet one of the NodeENI's in the node's zone).
//!
//! Then a slot without an ENI of ours adopts one candidate (an attached one first). The
//! candidates of a NodeENI being deleted are adopted and removed. Available candidates left
//! over are adopted and deleted once they have stayed available for the grace period: the
//! predecessor attaches an ENI right after creating it, so an ENI that another cluster's
//! running predecessor has just made is attached long before. An attached candidate of a slot
//! that holds an ENI of ours already (multi-eni ran before without the flag, and gave the node
//! a second ENI) is left alone: pods may be using either, so which one goes is the user's call.
//! Every other ENI is left alone too.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::AttachmentState;
use crate::ec2::types::{AttachmentStatus, Eni, EniStatus};
use crate::ownership::{CLUSTER_TAG, Owner, PredecessorOwner};

use super::plan::{Action, Context, NodeEniState, Plan, SlotReport, Want, grace_over, waiting};
use super::reasons;

/// The planner's choice among the predecessor's ENIs.
#[derive(Debug, Default)]
pub struct Adoption<'a> {
    /// The ENI each slot without an ENI of ours adopts.
    pub for_slot: BTreeMap<Owner, &'a Eni>,
    /// ENIs adopted to be removed: those of a NodeENI being deleted, and available left-overs
    /// past their grace period.
    remove: Vec<(Owner, &'a Eni)>,
    /// Available left-overs, whose grace period runs (or is over).
    waiting: Vec<(Owner, &'a Eni)>,
}

/// Chooses what to adopt among `enis` (all that EC2 listed) for the `wants`; `filled` are
/// the slots that have an ENI of ours. Empty unless [`Context::adopt_predecessor`].
pub fn choose<'a>(
    wants: &[Want],
    enis: &'a [Eni],
    filled: &BTreeSet<&Owner>,
    context: &Context,
) -> Adoption<'a> {
    let mut adoption = Adoption::default();
    if !context.adopt_predecessor {
        return adoption;
    }
    let wanted: BTreeSet<&Owner> = wants.iter().map(|want| &want.slot.owner).collect();
    let mut by_owner: BTreeMap<Owner, Vec<&Eni>> = BTreeMap::new();
    for eni in enis {
        if let Some(owner) = candidate(eni, context) {
            by_owner.entry(owner).or_default().push(eni);
        }
    }
    for (owner, mut candidates) in by_owner {
        let deleting = context.nodeenis.get(&owner.nodeeni) == Some(&NodeEniState::Deleting);
        if !deleting && !wanted.contains(&owner) {
            continue;
        }
        candidates.sort_by_key(|eni| (eni.attachment.is_none(), eni.id.clone()));
        let mut rest = candidates.into_iter();
        if !deleting
            && !filled.contains(&owner)
            && let Some(first) = rest.next()
        {
            adoption.for_slot.insert(owner.clone(), first);
        }
        for eni in rest {
            if eni.attachment.is_none() {
                adoption.waiting.push((owner.clone(), eni));
                if grace_over(&eni.id, context) {
                    adoption.remove.push((owner.clone(), eni));
                }
            } else if deleting {
                adoption.remove.push((owner.clone(), eni));
            }
        }
    }
    adoption
}

/// The owner an ENI of the predecessor is adopted as, if it is a candidate.
fn candidate(eni: &Eni, context: &Context) -> Option<Owner> {
    let predecessor = PredecessorOwner::from_tags(&eni.tags)?;
    let other_cluster = eni
        .tags
        .get(CLUSTER_TAG)
        .is_some_and(|cluster| *cluster != context.cluster);
    if other_cluster || eni.subnet_id != predecessor.subnet {
        return None;
    }
    if *context.nodeenis.get(&predecessor.nodeeni)? == NodeEniState::Unresolved {
        return None;
    }
    let instance = context.node_instances.get(&predecessor.node)?;
    let placed = match &eni.attachment {
        Some(attachment) => {
            attachment.instance_id == *instance && attachment.status == AttachmentStatus::Attached
        }
        None => eni.status == EniStatus::Available,
    };
    placed.then(|| Owner {
        cluster: context.cluster.clone(),
        nodeeni: predecessor.nodeeni,
        node: predecessor.node,
        instance: instance.clone(),
        subnet: predecessor.subnet,
    })
}

/// A slot adopts `eni`: tagged with the slot's ownership tags (and the NodeENI's `tags`).
pub fn plan_slot(want: &Want, eni: &Eni, context: &Context, plan: &mut Plan) -> SlotReport {
    let owner = &want.slot.owner;
    plan.adopting.insert(owner.nodeeni.clone());
    if let Some(report) = waiting(owner, Some(eni), context) {
        return report;
    }
    plan.actions.push(Action::Adopt {
        owner: owner.clone(),
        eni_id: eni.id.clone(),
        tags: owner.tags(&want.extra_tags),
    });
    SlotReport {
        state: if eni.attachment.is_some() {
            AttachmentState::Attached
        } else {
            AttachmentState::Created
        },
        eni: Some(eni.clone()),
        reason: Some(reasons::ADOPTING.into()),
        message: Some(format!(
            "adopting {}, made by aws-multi-eni-controller: tagging it as this cluster's",
            eni.id
        )),
    }
}

impl Adoption<'_> {
    /// Adopts the ENIs to remove (the next plans detach and delete them as ours), and lets the
    /// grace period of the waiting ones be tracked.
    pub fn plan_removals(&self, context: &Context, plan: &mut Plan) {
        for (owner, eni) in &self.waiting {
            plan.unseen.push(eni.id.clone());
            plan.adopting.insert(owner.nodeeni.clone());
        }
        for (owner, eni) in &self.remove {
            plan.adopting.insert(owner.nodeeni.clone());
            if waiting(owner, None, context).is_none() {
                plan.actions.push(Action::Adopt {
                    owner: owner.clone(),
                    eni_id: eni.id.clone(),
                    tags: owner.tags(&BTreeMap::new()),
                });
            }
        }
    }
}
