//! Table tests of the planner: every state a slot's ENI can be in, and every orphan.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::ec2::types::{EniAttachment, Subnet};

const CLUSTER: &str = "prod";

pub(super) fn owner(node: &str, instance: &str, subnet: &str) -> Owner {
    Owner {
        cluster: CLUSTER.into(),
        nodeeni: "multus".into(),
        node: node.into(),
        instance: instance.into(),
        subnet: subnet.into(),
    }
}

pub(super) fn want(node: &str, instance: &str, subnet: &str, preferred_index: i32) -> Want {
    let owner = owner(node, instance, subnet);
    Want {
        slot: Slot {
            subnet: Subnet {
                id: subnet.into(),
                availability_zone: "us-east-1a".into(),
                ..Subnet::default()
            },
            owner,
            preferred_index,
        },
        nodeeni_uid: "uid-1".into(),
        security_group_ids: vec!["sg-0123abcd".into()],
        description: "multus".into(),
        extra_tags: BTreeMap::new(),
        network_card_index: 0,
        delete_on_termination: true,
        source_dest_check: None,
        addresses: PodAddresses::default(),
        incarnation: 0,
    }
}

pub(super) fn eni(
    id: &str,
    owner: &Owner,
    attachment: Option<(i32, AttachmentStatus, bool)>,
) -> Eni {
    Eni {
        id: id.into(),
        subnet_id: owner.subnet.clone(),
        status: if attachment.is_some() {
            EniStatus::InUse
        } else {
            EniStatus::Available
        },
        tags: owner.tags(&BTreeMap::new()),
        attachment: attachment.map(
            |(device_index, status, delete_on_termination)| EniAttachment {
                id: format!("{id}-attach"),
                instance_id: owner.instance.clone(),
                device_index,
                network_card_index: 0,
                status,
                delete_on_termination,
            },
        ),
        ..Eni::default()
    }
}

pub(super) fn running(indices: &[i32], max: i32) -> InstanceFacts {
    InstanceFacts {
        instance_type: "m5.large".into(),
        state: InstanceState::Running,
        interfaces: indices
            .iter()
            .map(|&device_index| InstanceInterface {
                eni_id: format!("eni-{device_index}"),
                device_index,
                network_card_index: 0,
            })
            .collect(),
        limits: Some(NetworkLimits {
            maximum_interfaces: max,
            cards: BTreeMap::from([(0, max)]),
            ..NetworkLimits::default()
        }),
    }
}

/// The NodeENI "multus" seen and planned, and these instances described.
pub(super) fn context(instances: &[(&str, InstanceFacts)]) -> Context {
    Context {
        cluster: CLUSTER.into(),
        nodeenis: BTreeMap::from([("multus".to_owned(), NodeEniState::Planned)]),
        instances: instances
            .iter()
            .map(|(id, facts)| ((*id).to_owned(), facts.clone()))
            .collect(),
        gc_grace: Duration::from_mins(5),
        now: Some(Instant::now()),
        ..Context::default()
    }
}

fn attach_index(action: &Action) -> i32 {
    match action {
        Action::Create { attach, .. } | Action::Attach { attach, .. } => attach.device_index,
        other => panic!("not an attach: {other:?}"),
    }
}

#[test]
fn an_unknown_instance_is_described_before_anything_else() {
    let plan = plan(&[want("n1", "i-1", "subnet-a", 1)], &[], &context(&[]));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.describe, BTreeSet::from(["i-1".to_owned()]));
    assert_eq!(
        plan.reports[&owner("n1", "i-1", "subnet-a")].state,
        AttachmentState::Pending
    );
}

#[test]
fn a_missing_eni_is_created_tagged_with_a_client_token_and_attached_at_the_preferred_index() {
    let plan = plan(
        &[want("n1", "i-1", "subnet-a", 2)],
        &[],
        &context(&[("i-1", running(&[0], 3))]),
    );
    let [
        Action::Create {
            slot,
            new,
            source_dest_check,
            attach,
        },
    ] = plan.actions.as_slice()
    else {
        panic!("expected one create: {:?}", plan.actions);
    };
    assert_eq!(slot, &owner("n1", "i-1", "subnet-a"));
    assert_eq!(new.subnet_id, "subnet-a");
    assert_eq!(Owner::from_tags(&new.tags).as_ref(), Some(slot));
    assert_eq!(new.client_token, slot.client_token("uid-1", 0));
    assert_eq!(*source_dest_check, None);
    assert_eq!(
        attach,
        &AttachTo {
            instance: "i-1".into(),
            device_index: 2,
            network_card_index: 0,
            delete_on_termination: true
        }
    );
}

#[test]
fn a_taken_index_moves_the_new_eni_to_the_next_free_one() {
    let wants = [
        want("n1", "i-1", "subnet-a", 1),
        want("n1", "i-1", "subnet-b", 2),
    ];
    // A foreign ENI holds index 2.
    let plan = plan(&wants, &[], &context(&[("i-1", running(&[0, 2], 8))]));
    let indices: Vec<i32> = plan.actions.iter().map(attach_index).collect();
    assert_eq!(indices, vec![1, 3]);
}

#[test]
fn an_instance_at_its_interface_limit_gets_a_reason_not_a_call() {
    let plan = plan(
        &[want("n1", "i-1", "subnet-a", 1)],
        &[],
        &context(&[("i-1", running(&[0, 1, 2], 3))]),
    );
    assert!(plan.actions.is_empty());
    let report = &plan.reports[&owner("n1", "i-1", "subnet-a")];
    assert_eq!(report.state, AttachmentState::Failed);
    assert_eq!(report.reason.as_deref(), Some("InterfaceLimitReached"));
}

#[test]
fn an_available_eni_of_ours_is_adopted_not_created_again() {
    let slot = owner("n1", "i-1", "subnet-a");
    let plan = plan(
        &[want("n1", "i-1", "subnet-a", 1)],
        &[eni("eni-ours", &slot, None)],
        &context(&[("i-1", running(&[0], 3))]),
    );
    assert!(
        matches!(plan.actions.as_slice(), [Action::Attach { eni_id, .. }] if eni_id == "eni-ours")
    );
    assert_eq!(plan.reports[&slot].state, AttachmentState::Attaching);
}

#[test]
fn an_attached_eni_gets_delete_on_termination_once_and_is_never_moved() {
    let slot = owner("n1", "i-1", "subnet-a");
    // Attached at 5 though 1 is preferred: it stays at 5.
    let without = [eni(
        "eni-1",
        &slot,
        Some((5, AttachmentStatus::Attached, false)),
    )];
    let plan_without = plan(&[want("n1", "i-1", "subnet-a", 1)], &without, &context(&[]));
    assert_eq!(
        plan_without.actions,
        vec![Action::SetDeleteOnTermination {
            slot: slot.clone(),
            eni_id: "eni-1".into(),
            attachment_id: "eni-1-attach".into(),
            value: true
        }]
    );
    let with = [eni(
        "eni-1",
        &slot,
        Some((5, AttachmentStatus::Attached, true)),
    )];
    let steady = plan(&[want("n1", "i-1", "subnet-a", 1)], &with, &context(&[]));
    assert!(steady.actions.is_empty() && steady.describe.is_empty());
    assert_eq!(steady.reports[&slot].state, AttachmentState::Attached);
}

#[test]
fn delete_on_termination_false_is_applied_too() {
    let slot = owner("n1", "i-1", "subnet-a");
    let mut keep = want("n1", "i-1", "subnet-a", 1);
    keep.delete_on_termination = false;
    let attached = [eni(
        "eni-1",
        &slot,
        Some((1, AttachmentStatus::Attached, true)),
    )];
    let plan = plan(&[keep], &attached, &context(&[]));
    assert!(matches!(
        plan.actions.as_slice(),
        [Action::SetDeleteOnTermination { value: false, .. }]
    ));
}

#[test]
fn source_dest_check_is_set_at_creation_and_repaired() {
    let slot = owner("n1", "i-1", "subnet-a");
    let mut router = want("n1", "i-1", "subnet-a", 1);
    router.source_dest_check = Some(false);
    let created = plan(
        std::slice::from_ref(&router),
        &[],
        &context(&[("i-1", running(&[0], 3))]),
    );
    assert!(matches!(
        created.actions.as_slice(),
        [Action::Create {
            source_dest_check: Some(false),
            ..
        }]
    ));
    let mut attached = eni("eni-1", &slot, Some((1, AttachmentStatus::Attached, true)));
    attached.source_dest_check = Some(true);
    let repaired = plan(&[router], &[attached], &context(&[]));
    assert!(matches!(
        repaired.actions.as_slice(),
        [Action::SetSourceDestCheck { value: false, .. }]
    ));
}

#[test]
fn transitions_in_progress_are_waited_for() {
    let slot = owner("n1", "i-1", "subnet-a");
    for (status, state) in [
        (AttachmentStatus::Attaching, AttachmentState::Attaching),
        (AttachmentStatus::Detaching, AttachmentState::Detaching),
    ] {
        let enis = [eni("eni-1", &slot, Some((1, status, true)))];
        let plan = plan(&[want("n1", "i-1", "subnet-a", 1)], &enis, &context(&[]));
        assert!(plan.actions.is_empty(), "{status:?}");
        assert_eq!(plan.reports[&slot].state, state);
    }
}

#[test]
fn a_slot_with_an_action_under_way_is_left_alone() {
    let slot = owner("n1", "i-1", "subnet-a");
    let mut context = context(&[("i-1", running(&[0], 3))]);
    context.in_flight.insert(slot.clone());
    let plan = plan(&[want("n1", "i-1", "subnet-a", 1)], &[], &context);
    assert!(plan.actions.is_empty());
}

#[test]
fn failures_wait_for_their_time_or_for_a_change() {
    let slot = owner("n1", "i-1", "subnet-a");
    let mut context = context(&[("i-1", running(&[0], 3))]);
    let failure = |retry_at| Failure {
        reason: "SubnetNotFound".into(),
        message: "gone".into(),
        retry_at,
    };
    context.failures.insert(slot.clone(), failure(None));
    let permanent = plan(&[want("n1", "i-1", "subnet-a", 1)], &[], &context);
    assert!(permanent.actions.is_empty());
    assert_eq!(permanent.reports[&slot].state, AttachmentState::Failed);
    assert_eq!(
        permanent.reports[&slot].reason.as_deref(),
        Some("SubnetNotFound")
    );

    let now = context.now.unwrap();
    context
        .failures
        .insert(slot.clone(), failure(Some(now + Duration::from_secs(1))));
    let backing_off = plan(&[want("n1", "i-1", "subnet-a", 1)], &[], &context);
    assert!(backing_off.actions.is_empty());
    assert_eq!(backing_off.reports[&slot].state, AttachmentState::Pending);

    context.failures.insert(slot, failure(Some(now)));
    assert_eq!(
        plan(&[want("n1", "i-1", "subnet-a", 1)], &[], &context)
            .actions
            .len(),
        1
    );
}

#[test]
fn an_instance_not_running_is_waited_for() {
    let mut facts = running(&[0], 3);
    facts.state = InstanceState::Pending;
    let plan = plan(
        &[want("n1", "i-1", "subnet-a", 1)],
        &[],
        &context(&[("i-1", facts)]),
    );
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.reports[&owner("n1", "i-1", "subnet-a")]
            .reason
            .as_deref(),
        Some("InstanceNotRunning")
    );
}

#[test]
fn the_enis_of_a_terminated_instance_are_deleted_and_not_recreated() {
    let slot = owner("n1", "i-1", "subnet-a");
    let mut facts = running(&[], 3);
    facts.state = InstanceState::Terminated;
    let plan = plan(
        &[want("n1", "i-1", "subnet-a", 1)],
        &[eni("eni-1", &slot, None)],
        &context(&[("i-1", facts)]),
    );
    assert_eq!(
        plan.actions,
        vec![Action::Delete {
            owner: slot.clone(),
            eni_id: "eni-1".into()
        }]
    );
    let report = &plan.reports[&slot];
    assert_eq!(report.reason.as_deref(), Some("InstanceTerminated"));
    assert_eq!(report.state, AttachmentState::Deleting);
    assert_eq!(
        report.message.as_deref(),
        Some("instance i-1 is terminated: its ENIs are removed")
    );
}

#[test]
fn an_instance_ec2_does_not_know_gets_its_own_reason_and_keeps_its_enis() {
    let slot = owner("n1", "i-1", "subnet-a");
    let mut context = context(&[]);
    context.unknown_instances.insert("i-1".into());
    let plan = plan(
        &[want("n1", "i-1", "subnet-a", 1)],
        &[eni("eni-1", &slot, None)],
        &context,
    );
    assert!(plan.actions.is_empty() && plan.describe.is_empty());
    assert!(plan.orphans.is_empty(), "not removed as if terminated");
    let report = &plan.reports[&slot];
    assert_eq!(report.state, AttachmentState::Failed);
    assert_eq!(report.reason.as_deref(), Some("InstanceNotFound"));
    assert!(
        report
            .message
            .as_deref()
            .unwrap()
            .contains("does not know instance i-1")
    );
    assert_eq!(report.eni.as_ref().map(|e| e.id.as_str()), Some("eni-1"));
}

#[test]
fn a_network_card_the_instance_type_lacks_gets_its_own_reason() {
    let mut on_card_9 = want("n1", "i-1", "subnet-a", 1);
    on_card_9.network_card_index = 9;
    let mut facts = running(&[0], 4);
    facts.instance_type = "p4d.24xlarge".into();
    facts.limits.as_mut().unwrap().cards = (0..4).map(|card| (card, 15)).collect();
    let plan = plan(&[on_card_9], &[], &context(&[("i-1", facts)]));
    assert!(plan.actions.is_empty());
    let report = &plan.reports[&owner("n1", "i-1", "subnet-a")];
    assert_eq!(
        (report.state, report.reason.as_deref()),
        (AttachmentState::Failed, Some("NoSuchNetworkCard"))
    );
    assert_eq!(
        report.message.as_deref(),
        Some("spec.networkCardIndex is 9, but instance type p4d.24xlarge has network cards 0–3")
    );
}

#[test]
fn unwanted_enis_are_detached_then_deleted() {
    let gone = owner("n2", "i-2", "subnet-a");
    let attached = [eni(
        "eni-2",
        &gone,
        Some((1, AttachmentStatus::Attached, true)),
    )];
    let detach = plan(&[], &attached, &context(&[]));
    assert_eq!(
        detach.actions,
        vec![Action::Detach {
            owner: gone.clone(),
            eni_id: "eni-2".into(),
            attachment_id: "eni-2-attach".into()
        }]
    );

    // Available, whoever detached it: its NodeENI is seen and no slot of it wants the ENI
    // (node gone or unselected, subnet dropped), or the NodeENI is being deleted.
    for state in [NodeEniState::Planned, NodeEniState::Deleting] {
        let mut context = context(&[]);
        context.nodeenis.insert("multus".into(), state);
        let delete = plan(&[], &[eni("eni-2", &gone, None)], &context);
        assert_eq!(
            delete.actions,
            vec![Action::Delete {
                owner: gone.clone(),
                eni_id: "eni-2".into()
            }],
            "{state:?}"
        );
        assert!(delete.unseen.is_empty());
    }
}

#[test]
fn the_enis_of_a_nodeeni_whose_references_cannot_be_resolved_are_left_alone() {
    let slot = owner("n1", "i-1", "subnet-a");
    let mut context = context(&[]);
    context
        .nodeenis
        .insert("multus".into(), NodeEniState::Unresolved);
    context.gc_grace = Duration::ZERO;
    let enis = [
        eni("eni-1", &slot, Some((1, AttachmentStatus::Attached, true))),
        eni("eni-2", &owner("n2", "i-2", "subnet-a"), None),
    ];
    let plan = plan(&[], &enis, &context);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert!(plan.orphans.is_empty());
}

#[test]
fn a_dpdk_bound_eni_is_not_detached_while_held() {
    let gone = owner("n2", "i-2", "subnet-a");
    let mut context = context(&[]);
    context.held.insert("eni-2".into());
    let attached = [eni(
        "eni-2",
        &gone,
        Some((1, AttachmentStatus::Attached, true)),
    )];
    assert!(plan(&[], &attached, &context).actions.is_empty());
}

#[test]
fn enis_whose_nodeeni_is_not_seen_are_collected_after_the_grace_period() {
    let gone = owner("n2", "i-2", "subnet-a");
    let mut context = context(&[]);
    context.nodeenis.clear();
    let now = context.now.unwrap();
    let orphan = [eni("eni-2", &gone, None)];
    let first = plan(&[], &orphan, &context);
    assert!(first.actions.is_empty(), "not seen before: wait");
    assert_eq!(first.unseen, ["eni-2"]);
    context.orphans_since.insert("eni-2".into(), now);
    context.now = Some(now + Duration::from_mins(4));
    assert!(
        plan(&[], &orphan, &context).actions.is_empty(),
        "within the grace period"
    );
    context.now = Some(now + Duration::from_mins(5));
    assert_eq!(
        plan(&[], &orphan, &context).actions,
        vec![Action::Delete {
            owner: gone,
            eni_id: "eni-2".into()
        }]
    );
}

#[test]
fn a_duplicate_is_removed_and_the_attached_one_kept() {
    let slot = owner("n1", "i-1", "subnet-a");
    let context = context(&[]);
    let enis = [
        eni("eni-dup", &slot, None),
        eni("eni-1", &slot, Some((1, AttachmentStatus::Attached, true))),
    ];
    let plan = plan(&[want("n1", "i-1", "subnet-a", 1)], &enis, &context);
    assert_eq!(
        plan.actions,
        vec![Action::Delete {
            owner: slot.clone(),
            eni_id: "eni-dup".into()
        }]
    );
    assert_eq!(
        plan.reports[&slot].eni.as_ref().map(|e| e.id.as_str()),
        Some("eni-1")
    );
}

#[test]
fn enis_of_other_clusters_or_untagged_are_never_touched() {
    let theirs = Owner {
        cluster: "other".into(),
        ..owner("n1", "i-1", "subnet-a")
    };
    let mut untagged = eni(
        "eni-untagged",
        &owner("n1", "i-1", "subnet-a"),
        Some((2, AttachmentStatus::Attached, false)),
    );
    untagged.tags.clear();
    let enis = [
        eni(
            "eni-theirs",
            &theirs,
            Some((1, AttachmentStatus::Attached, false)),
        ),
        untagged,
    ];
    let mut context = context(&[]);
    context
        .detached_by_us
        .extend(["eni-theirs".to_owned(), "eni-untagged".to_owned()]);
    context.gc_grace = Duration::ZERO;
    let plan = plan(&[], &enis, &context);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert!(plan.orphans.is_empty());
}
