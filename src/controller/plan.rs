//! The planner: `plan(wanted, observed) -> actions`, and what to report for every slot.
//! Pure: it sees EC2 only through the data it is given. The predecessor's ENIs that a slot
//! adopts are chosen in [`super::adopt`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::api::AttachmentState;
use crate::ec2::types::{
    AttachmentStatus, Eni, EniStatus, InstanceInterface, InstanceState, NetworkLimits, NewEni,
};
use crate::ownership::Owner;

use super::addresses::PodAddresses;
use super::adopt;
use super::desired::Slot;
use super::reasons;

/// Where the NodeENI wants a slot's ENI, and how it should look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub slot: Slot,
    pub nodeeni_uid: String,
    pub security_group_ids: Vec<String>,
    pub description: String,
    pub extra_tags: BTreeMap<String, String>,
    pub network_card_index: i32,
    pub delete_on_termination: bool,
    pub source_dest_check: Option<bool>,
    /// The pods' addresses each ENI gets: secondary private IPv4 addresses, or /28 prefixes.
    pub addresses: PodAddresses,
    /// Changed when an earlier ENI of this slot was deleted, so that its ClientToken is fresh
    /// (see [`Owner::client_token`]).
    pub incarnation: u64,
}

/// What EC2 says of an instance that has slots to fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceFacts {
    pub instance_type: String,
    pub state: InstanceState,
    pub interfaces: Vec<InstanceInterface>,
    /// `None` when the instance type's limits are unknown.
    pub limits: Option<NetworkLimits>,
}

/// What this process knows of a NodeENI that owned ENIs name in their tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeEniState {
    /// Its slots are all among the wants: its ENIs that no slot wants are unwanted.
    Planned,
    /// Being deleted: every ENI of it goes.
    Deleting,
    /// Its subnets or security groups could not be resolved, so what it wants is unknown:
    /// its ENIs are left as they are.
    Unresolved,
}

/// What is known besides the owned ENIs.
#[derive(Debug, Default)]
pub struct Context {
    /// Only ENIs tagged with this cluster are ever acted on.
    pub cluster: String,
    /// The NodeENIs this process sees (its watch cache, listed after it took the lease). An
    /// owned ENI whose NodeENI is not here belongs to an owner it cannot see: it is removed
    /// only after the grace period.
    pub nodeenis: BTreeMap<String, NodeEniState>,
    /// Instances of the wanted slots, by ID; a missing entry means "not described yet".
    pub instances: BTreeMap<String, InstanceFacts>,
    /// Instances of wanted slots that EC2 does not know (InvalidInstanceID.NotFound).
    pub unknown_instances: BTreeSet<String>,
    /// Slots whose last attempt failed, and until when to leave them alone.
    pub failures: BTreeMap<Owner, Failure>,
    /// Slots with an action under way.
    pub in_flight: BTreeSet<Owner>,
    /// ENIs not to detach yet (the node agent still holds them bound to DPDK).
    pub held: BTreeSet<String>,
    /// ENIs this process detached to remove them: deleted as soon as they are available.
    pub detached_by_us: BTreeSet<String>,
    /// Owned ENIs whose owner this process cannot see, and since when they have been seen so.
    pub orphans_since: BTreeMap<String, Instant>,
    pub gc_grace: Duration,
    pub now: Option<Instant>,
    /// `--adopt-predecessor-enis`: the ENIs of aws-multi-eni-controller among those given to
    /// [`plan`] may be adopted (see [`super::adopt`]); off, they are foreign like any other.
    pub adopt_predecessor: bool,
    /// The instance of every Node of this cluster that has one, by node name.
    pub node_instances: BTreeMap<String, String>,
}

/// A failed attempt at a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub message: String,
    /// `None`: permanent, until the NodeENI or the node changes.
    pub retry_at: Option<Instant>,
}

/// How to attach an ENI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachTo {
    pub instance: String,
    pub device_index: i32,
    pub network_card_index: i32,
    pub delete_on_termination: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create (ClientToken, tags), set source/dest check if asked, attach, set DeleteOnTermination.
    Create {
        slot: Owner,
        new: NewEni,
        source_dest_check: Option<bool>,
        attach: AttachTo,
    },
    /// Attach an existing, available ENI of ours, then set DeleteOnTermination.
    Attach {
        slot: Owner,
        eni_id: String,
        attach: AttachTo,
    },
    SetDeleteOnTermination {
        slot: Owner,
        eni_id: String,
        attachment_id: String,
        value: bool,
    },
    SetSourceDestCheck {
        slot: Owner,
        eni_id: String,
        value: bool,
    },
    /// AssignPrivateIpAddresses: the secondary addresses or prefixes the slot's ENI lacks.
    AssignAddresses {
        slot: Owner,
        eni_id: String,
        secondary: i32,
        prefixes: i32,
    },
    /// Adoption of an ENI of the predecessor: CreateTags with `tags` (this cluster's ownership
    /// tags for `owner`), after which it is an ordinary ENI of ours (the next plan repairs its
    /// DeleteOnTermination, attaches it, or removes it).
    Adopt {
        owner: Owner,
        eni_id: String,
        tags: BTreeMap<String, String>,
    },
    /// Removal of an ENI no slot wants; `owner` is what its tags say.
    Detach {
        owner: Owner,
        eni_id: String,
        attachment_id: String,
    },
    Delete {
        owner: Owner,
        eni_id: String,
    },
}

impl Action {
    /// The slot this action fills, repairs or adopts for (removals have none).
    pub fn slot(&self) -> Option<&Owner> {
        match self {
            Action::Create { slot, .. }
            | Action::Attach { slot, .. }
            | Action::SetDeleteOnTermination { slot, .. }
            | Action::SetSourceDestCheck { slot, .. }
            | Action::AssignAddresses { slot, .. } => Some(slot),
            Action::Adopt { owner, .. } => Some(owner),
            Action::Detach { .. } | Action::Delete { .. } => None,
        }
    }

    /// Whose ENI it acts on: the slot's, or what a removed ENI's tags say.
    pub fn owner(&self) -> &Owner {
        match self {
            Action::Detach { owner, .. } | Action::Delete { owner, .. } => owner,
            other => other.slot().expect("every other action has a slot"),
        }
    }
}

/// What to report for a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotReport {
    pub state: AttachmentState,
    pub eni: Option<Eni>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub reports: BTreeMap<Owner, SlotReport>,
    /// Instances whose facts are needed to go on.
    pub describe: BTreeSet<String>,
    /// Owned ENIs that belong to no wanted slot (those of unresolved NodeENIs aside).
    pub orphans: Vec<String>,
    /// Of the orphans, those whose owner this process cannot see (the grace period's); also
    /// available ENIs of the predecessor waiting for the grace period.
    pub unseen: Vec<String>,
    /// NodeENIs with ENIs of the predecessor still to adopt: their finalizers stay.
    pub adopting: BTreeSet<String>,
}

/// Plans every wanted slot against the ENIs EC2 lists: this cluster's (others are ignored)
/// and, with [`Context::adopt_predecessor`], the predecessor's.
pub fn plan(wants: &[Want], enis: &[Eni], context: &Context) -> Plan {
    let mut plan = Plan::default();
    let mut by_owner: BTreeMap<Owner, Vec<&Eni>> = BTreeMap::new();
    // Indices in use per instance: our own attachments count even before EC2 lists them.
    let mut reserved: BTreeMap<String, Vec<(i32, i32)>> = BTreeMap::new();
    let owned: Vec<&Eni> = enis
        .iter()
        .filter(|eni| {
            Owner::from_tags(&eni.tags).is_some_and(|owner| owner.cluster == context.cluster)
        })
        .collect();
    for eni in &owned {
        if let Some(owner) = Owner::from_tags(&eni.tags) {
            by_owner.entry(owner).or_default().push(*eni);
        }
        if let Some(attachment) = &eni.attachment {
            let taken = reserved.entry(attachment.instance_id.clone()).or_default();
            taken.push((attachment.network_card_index, attachment.device_index));
        }
    }
    let adoption = {
        let filled: BTreeSet<&Owner> = by_owner.keys().collect();
        adopt::choose(wants, enis, &filled, context)
    };
    let gone = |instance: &str| {
        context
            .instances
            .get(instance)
            .is_some_and(|facts| facts.state.is_gone())
    };
    for want in wants {
        let owner = &want.slot.owner;
        let mut enis = by_owner.remove(owner).unwrap_or_default();
        if let Some(facts) = context.instances.get(&owner.instance)
            && facts.state.is_gone()
        {
            plan.orphans.extend(enis.iter().map(|eni| eni.id.clone()));
            let message = format!(
                "instance {} is {}: its ENIs are removed",
                owner.instance,
                facts.state.name()
            );
            let report = SlotReport {
                state: AttachmentState::Deleting,
                eni: None,
                reason: Some(reasons::INSTANCE_TERMINATED.into()),
                message: Some(message),
            };
            plan.reports.insert(owner.clone(), report);
            continue;
        }
        enis.sort_by_key(|eni| keep_rank(eni, &owner.instance));
        if enis.is_empty()
            && let Some(found) = adoption.for_slot.get(owner)
        {
            let report = adopt::plan_slot(want, found, context, &mut plan);
            plan.reports.insert(owner.clone(), report);
            continue;
        }
        let keep = if enis.is_empty() {
            None
        } else {
            Some(enis.remove(0))
        };
        // Duplicates (a create repeated without its ClientToken's protection) go.
        plan.orphans.extend(enis.iter().map(|eni| eni.id.clone()));
        let report = plan_slot(want, keep, context, &mut reserved, &mut plan);
        plan.reports.insert(owner.clone(), report);
    }
    // What an unresolved NodeENI wants is unknown: its ENIs are neither wanted nor unwanted.
    let unresolved =
        |owner: &Owner| context.nodeenis.get(&owner.nodeeni) == Some(&NodeEniState::Unresolved);
    plan.orphans.extend(
        by_owner
            .into_iter()
            .filter(|(owner, _)| !unresolved(owner))
            .flat_map(|(_, enis)| enis.into_iter().map(|eni| eni.id.clone())),
    );
    let orphans: BTreeSet<&String> = plan.orphans.iter().collect();
    for eni in owned.into_iter().filter(|eni| orphans.contains(&eni.id)) {
        let Some(owner) = Owner::from_tags(&eni.tags) else {
            continue;
        };
        let seen = gone(&owner.instance) || context.nodeenis.contains_key(&owner.nodeeni);
        if !seen {
            plan.unseen.push(eni.id.clone());
        }
        if let Some(action) = remove(eni, owner, seen, context) {
            plan.actions.push(action);
        }
    }
    adoption.plan_removals(context, &mut plan);
    plan
}

/// Which of a slot's ENIs to keep: attached here first, then available, then the rest.
fn keep_rank(eni: &Eni, instance: &str) -> u8 {
    match &eni.attachment {
        Some(attachment) if attachment.instance_id == instance => 0,
        None if eni.status == EniStatus::Available => 1,
        _ => 2,
    }
}

fn report(state: AttachmentState, eni: Option<&Eni>) -> SlotReport {
    SlotReport {
        state,
        eni: eni.cloned(),
        reason: None,
        message: None,
    }
}

/// The report of a slot left alone this pass: an action of it is under way, or its last one
/// failed and it waits for its retry (or, permanent, for a change).
pub(super) fn waiting(owner: &Owner, eni: Option<&Eni>, context: &Context) -> Option<SlotReport> {
    // The slot's own ENI, attached here, stays Attached while it gets more addresses.
    let attached_here = eni.is_some_and(|eni| {
        Owner::from_tags(&eni.tags).as_ref() == Some(owner)
            && eni.attachment.as_ref().is_some_and(|a| {
                a.instance_id == owner.instance && a.status == AttachmentStatus::Attached
            })
    });
    if context.in_flight.contains(owner) {
        let state = if attached_here {
            AttachmentState::Attached
        } else if eni.is_some() {
            AttachmentState::Attaching
        } else {
            AttachmentState::Pending
        };
        return Some(report(state, eni));
    }
    let failure = context.failures.get(owner).filter(|failure| {
        failure
            .retry_at
            .is_none_or(|at| context.now.is_some_and(|now| now < at))
    })?;
    let state = if attached_here {
        AttachmentState::Attached
    } else if failure.retry_at.is_none() {
        AttachmentState::Failed
    } else {
        AttachmentState::Pending
    };
    Some(SlotReport {
        state,
        eni: eni.cloned(),
        reason: Some(failure.reason.clone()),
        message: Some(failure.message.clone()),
    })
}

fn plan_slot(
    want: &Want,
    eni: Option<&Eni>,
    context: &Context,
    reserved: &mut BTreeMap<String, Vec<(i32, i32)>>,
    plan: &mut Plan,
) -> SlotReport {
    let owner = &want.slot.owner;
    if let Some(report) = waiting(owner, eni, context) {
        return report;
    }
    match eni.and_then(|eni| eni.attachment.as_ref().map(|attachment| (eni, attachment))) {
        Some((eni, attachment)) if attachment.instance_id == owner.instance => {
            match attachment.status {
                AttachmentStatus::Attaching => report(AttachmentState::Attaching, Some(eni)),
                AttachmentStatus::Detaching | AttachmentStatus::Detached => {
                    report(AttachmentState::Detaching, Some(eni))
                }
                AttachmentStatus::Attached => {
                    if attachment.delete_on_termination != want.delete_on_termination {
                        plan.actions.push(Action::SetDeleteOnTermination {
                            slot: owner.clone(),
                            eni_id: eni.id.clone(),
                            attachment_id: attachment.id.clone(),
                            value: want.delete_on_termination,
                        });
                    }
                    if let Some(value) = want.source_dest_check
                        && eni.source_dest_check != Some(value)
                    {
                        plan.actions.push(Action::SetSourceDestCheck {
                            slot: owner.clone(),
                            eni_id: eni.id.clone(),
                            value,
                        });
                    }
                    let mut attached = report(AttachmentState::Attached, Some(eni));
                    if let Err((reason, message)) = plan_addresses(want, eni, context, plan) {
                        attached.reason = Some(reason.into());
                        attached.message = Some(message);
                    }
                    attached
                }
            }
        }
        // Attached elsewhere (tags say otherwise): leave it; it is no longer this slot's.
        Some((eni, _)) => report(AttachmentState::Pending, Some(eni)),
        None => match eni {
            Some(eni) if eni.status != EniStatus::Available => {
                report(AttachmentState::Detaching, Some(eni))
            }
            _ => plan_attach(want, eni, context, reserved, plan),
        },
    }
}

/// One AssignPrivateIpAddresses for what the slot's attached ENI lacks of its pod addresses
/// (compared with what EC2 lists, so never twice), once the instance type is known to take
/// them; else why not.
fn plan_addresses(
    want: &Want,
    eni: &Eni,
    context: &Context,
    plan: &mut Plan,
) -> Result<(), (&'static str, String)> {
    let Some((secondary, prefixes)) = want.addresses.missing_on(eni) else {
        return Ok(());
    };
    let owner = &want.slot.owner;
    let Some(instance) = context.instances.get(&owner.instance) else {
        plan.describe.insert(owner.instance.clone());
        return Ok(());
    };
    if let Some(limits) = &instance.limits {
        want.addresses.fit(limits, &instance.instance_type)?;
    }
    plan.actions.push(Action::AssignAddresses {
        slot: owner.clone(),
        eni_id: eni.id.clone(),
        secondary,
        prefixes,
    });
    Ok(())
}

/// Attaches the slot's available ENI, or creates one and attaches it.
fn plan_attach(
    want: &Want,
    eni: Option<&Eni>,
    context: &Context,
    reserved: &mut BTreeMap<String, Vec<(i32, i32)>>,
    plan: &mut Plan,
) -> SlotReport {
    let owner = &want.slot.owner;
    let waiting = if eni.is_some() {
        AttachmentState::Created
    } else {
        AttachmentState::Pending
    };
    if context.unknown_instances.contains(&owner.instance) {
        let message = format!(
            "EC2 does not know instance {}, which the node's provider ID names: is the node in this cluster's AWS account and Region?",
            owner.instance
        );
        return SlotReport {
            state: AttachmentState::Failed,
            eni: eni.cloned(),
            reason: Some(reasons::INSTANCE_NOT_FOUND.into()),
            message: Some(message),
        };
    }
    let Some(instance) = context.instances.get(&owner.instance) else {
        plan.describe.insert(owner.instance.clone());
        return report(waiting, eni);
    };
    if instance.state != InstanceState::Running {
        return SlotReport {
            state: waiting,
            eni: eni.cloned(),
            reason: Some(reasons::INSTANCE_NOT_RUNNING.into()),
            message: Some(format!(
                "instance {} is {}; waiting for it to run",
                owner.instance,
                instance.state.name()
            )),
        };
    }
    let fits = (instance.limits.as_ref()).map_or(Ok(()), |limits| {
        want.addresses.fit(limits, &instance.instance_type)
    });
    if let Err((reason, message)) = fits {
        return SlotReport {
            state: AttachmentState::Failed,
            eni: eni.cloned(),
            reason: Some(reason.into()),
            message: Some(message),
        };
    }
    let taken = reserved.entry(owner.instance.clone()).or_default();
    let device_index = match choose_index(want, instance, taken) {
        Ok(index) => index,
        Err((reason, message)) => {
            return SlotReport {
                state: AttachmentState::Failed,
                eni: eni.cloned(),
                reason: Some(reason.into()),
                message: Some(message),
            };
        }
    };
    taken.push((want.network_card_index, device_index));
    let attach = AttachTo {
        instance: owner.instance.clone(),
        device_index,
        network_card_index: want.network_card_index,
        delete_on_termination: want.delete_on_termination,
    };
    plan.actions.push(match eni {
        Some(eni) => Action::Attach {
            slot: owner.clone(),
            eni_id: eni.id.clone(),
            attach,
        },
        None => Action::Create {
            slot: owner.clone(),
            new: NewEni {
                subnet_id: owner.subnet.clone(),
                security_group_ids: want.security_group_ids.clone(),
                description: want.description.clone(),
                tags: owner.tags(&want.extra_tags),
                client_token: owner.client_token(&want.nodeeni_uid, want.incarnation),
                secondary_private_ip_count: want.addresses.secondary_private_ips,
                ipv4_prefix_count: want.addresses.ipv4_prefixes,
            },
            source_dest_check: want.source_dest_check.filter(|check| !check),
            attach,
        },
    });
    report(
        if eni.is_some() {
            AttachmentState::Attaching
        } else {
            AttachmentState::Pending
        },
        eni,
    )
}

/// The slot's preferred index if free on its card, else the next free one; checks the
/// instance type's limit for the card first.
fn choose_index(
    want: &Want,
    instance: &InstanceFacts,
    reserved: &[(i32, i32)],
) -> Result<i32, (&'static str, String)> {
    let card = want.network_card_index;
    let used: BTreeSet<i32> = instance
        .interfaces
        .iter()
        .filter(|interface| interface.network_card_index == card)
        .map(|interface| interface.device_index)
        .chain(
            reserved
                .iter()
                .filter(|(c, _)| *c == card)
                .map(|(_, index)| *index),
        )
        .collect();
    if let Some(limits) = &instance.limits {
        let cards = limits.card_indices();
        if !cards.contains(&card) {
            return Err((
                reasons::NO_SUCH_NETWORK_CARD,
                format!(
                    "spec.networkCardIndex is {card}, but instance type {} has network card{} {}",
                    instance.instance_type,
                    if cards.len() == 1 { "" } else { "s" },
                    span(&cards)
                ),
            ));
        }
        let max = limits.interfaces_on_card(card);
        if i32::try_from(used.len()).unwrap_or(i32::MAX) >= max {
            return Err((
                reasons::INTERFACE_LIMIT_REACHED,
                format!(
                    "instance {} already has {} of the {max} interfaces its type {} allows on network card {card}",
                    want.slot.owner.instance,
                    used.len(),
                    instance.instance_type
                ),
            ));
        }
    }
    (want.slot.preferred_index..=31)
        .find(|index| !used.contains(index))
        .ok_or((
            reasons::NO_FREE_DEVICE_INDEX,
            format!(
                "no device index from {} to 31 is free on network card {card}",
                want.slot.preferred_index
            ),
        ))
}

/// The next step in removing an owned ENI that no slot wants: detach it, then delete it once
/// it is available. It is deleted at once when its owner is `seen` (its NodeENI is in this
/// process's cache, or its instance is gone), or when this process detached it; an ENI whose
/// owner this process cannot see waits for the grace period (it may be adopted meanwhile).
fn remove(eni: &Eni, owner: Owner, seen: bool, context: &Context) -> Option<Action> {
    match (&eni.attachment, &eni.status) {
        (Some(attachment), _)
            if attachment.status == AttachmentStatus::Attached
                && !context.held.contains(&eni.id) =>
        {
            Some(Action::Detach {
                owner,
                eni_id: eni.id.clone(),
                attachment_id: attachment.id.clone(),
            })
        }
        (None, EniStatus::Available) => {
            let now = seen || context.detached_by_us.contains(&eni.id);
            (now || grace_over(&eni.id, context)).then(|| Action::Delete {
                owner,
                eni_id: eni.id.clone(),
            })
        }
        _ => None,
    }
}

/// Whether the ENI has been waiting (in [`Context::orphans_since`]) for the grace period.
pub(super) fn grace_over(eni_id: &str, context: &Context) -> bool {
    match (context.orphans_since.get(eni_id), context.now) {
        (Some(since), Some(now)) => now.saturating_duration_since(*since) >= context.gc_grace,
        _ => false,
    }
}

/// Card indices as `0–3`, or listed when not consecutive.
fn span(cards: &BTreeSet<i32>) -> String {
    let consecutive = cards
        .iter()
        .zip(cards.iter().skip(1))
        .all(|(a, b)| b - a == 1);
    match (cards.first(), cards.last()) {
        (Some(first), Some(last)) if first == last => first.to_string(),
        (Some(first), Some(last)) if consecutive => format!("{first}–{last}"),
        _ => cards
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "adopt_tests.rs"]
mod adopt_tests;

#[cfg(test)]
#[path = "plan_addresses_tests.rs"]
mod addresses_tests;
