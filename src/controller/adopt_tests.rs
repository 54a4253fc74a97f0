//! Table tests of adoption: which ENIs of aws-multi-eni-controller the planner adopts, for
//! which slot, which it adopts to remove, and which it leaves alone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::tests::{context, eni, owner, running, want};
use super::*;
use crate::ec2::types::EniAttachment;
use crate::ownership::{CLUSTER_TAG, PREDECESSOR_TAG, PREDECESSOR_VALUE};

/// An ENI as the predecessor leaves it: its tags and description, DeleteOnTermination true
/// (its default), attached to `(instance, device index)` or available.
fn theirs(id: &str, nodeeni: &str, node: &str, subnet: &str, on: Option<(&str, i32)>) -> Eni {
    let tags = [
        (PREDECESSOR_TAG, PREDECESSOR_VALUE),
        ("NodeENI", nodeeni),
        ("Node", node),
        ("SubnetID", subnet),
        (
            "Name",
            &format!("nodeeni-{nodeeni}-{node}-{}", &subnet[subnet.len() - 8..]),
        ),
        ("node.k8s.amazonaws.com/no_manage", "true"),
    ];
    Eni {
        id: id.into(),
        subnet_id: subnet.into(),
        status: if on.is_some() {
            EniStatus::InUse
        } else {
            EniStatus::Available
        },
        description: format!("ENI created by nodeeni-controller for node {node}"),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        attachment: on.map(|(instance, device_index)| EniAttachment {
            id: format!("{id}-attach"),
            instance_id: instance.into(),
            device_index,
            network_card_index: 0,
            status: AttachmentStatus::Attached,
            delete_on_termination: true,
        }),
        ..Eni::default()
    }
}

/// The same ENI once adopted for `owner`.
fn adopted(mut eni: Eni, owner: &Owner) -> Eni {
    eni.tags.extend(owner.tags(&BTreeMap::new()));
    eni
}

/// Adoption on; nodes n1 (i-1) and n2 (i-2) in the cluster; i-1 running with the
/// predecessor's ENI at index 1.
fn adopting() -> Context {
    Context {
        adopt_predecessor: true,
        node_instances: BTreeMap::from([
            ("n1".to_owned(), "i-1".to_owned()),
            ("n2".to_owned(), "i-2".to_owned()),
        ]),
        ..context(&[("i-1", running(&[0, 1], 4))])
    }
}

fn touches(plan: &Plan, eni_id: &str) -> bool {
    plan.actions.iter().any(|action| match action {
        Action::Adopt { eni_id: id, .. }
        | Action::Attach { eni_id: id, .. }
        | Action::SetDeleteOnTermination { eni_id: id, .. }
        | Action::SetSourceDestCheck { eni_id: id, .. }
        | Action::AssignAddresses { eni_id: id, .. }
        | Action::Detach { eni_id: id, .. }
        | Action::Delete { eni_id: id, .. } => id == eni_id,
        Action::Create { .. } => false,
    })
}

#[test]
fn an_attached_eni_of_the_predecessor_is_adopted_instead_of_creating_another() {
    let slot = owner("n1", "i-1", "subnet-a");
    let mut wanted = want("n1", "i-1", "subnet-a", 1);
    wanted.extra_tags = BTreeMap::from([("team".to_owned(), "net".to_owned())]);
    let found = theirs("eni-old", "multus", "n1", "subnet-a", Some(("i-1", 1)));
    let plan = plan(&[wanted], std::slice::from_ref(&found), &adopting());
    let [
        Action::Adopt {
            owner,
            eni_id,
            tags,
        },
    ] = plan.actions.as_slice()
    else {
        panic!("expected one adoption: {:?}", plan.actions);
    };
    assert_eq!((owner, eni_id.as_str()), (&slot, "eni-old"));
    assert_eq!(Owner::from_tags(tags).as_ref(), Some(&slot));
    assert_eq!(tags["team"], "net", "the NodeENI's tags too");
    let report = &plan.reports[&slot];
    assert_eq!(report.state, AttachmentState::Attached);
    assert_eq!(report.reason.as_deref(), Some(reasons::ADOPTING));
    assert_eq!(report.eni.as_ref(), Some(&found));
    assert!(plan.adopting.contains("multus"));
}

#[test]
fn with_adoption_off_an_eni_of_the_predecessor_is_foreign_and_a_second_eni_is_created() {
    let found = theirs("eni-old", "multus", "n1", "subnet-a", Some(("i-1", 1)));
    let context = Context {
        adopt_predecessor: false,
        ..adopting()
    };
    let plan = plan(&[want("n1", "i-1", "subnet-a", 1)], &[found], &context);
    let [Action::Create { attach, .. }] = plan.actions.as_slice() else {
        panic!("expected one create: {:?}", plan.actions);
    };
    assert_eq!(attach.device_index, 2, "the next free index");
    assert!(plan.adopting.is_empty() && plan.unseen.is_empty());
}

#[test]
fn enis_of_the_predecessor_that_do_not_match_are_left_alone() {
    let mut other_cluster = theirs("eni-x", "multus", "n1", "subnet-a", Some(("i-1", 1)));
    other_cluster
        .tags
        .insert(CLUSTER_TAG.into(), "another-cluster".into());
    let mut moved = theirs("eni-x", "multus", "n1", "subnet-a", Some(("i-1", 1)));
    moved.subnet_id = "subnet-b".into();
    let mut attaching = theirs("eni-x", "multus", "n1", "subnet-a", Some(("i-1", 1)));
    if let Some(attachment) = &mut attaching.attachment {
        attachment.status = AttachmentStatus::Attaching;
    }
    let cases = [
        (
            "a NodeENI this cluster does not have",
            theirs("eni-x", "storage", "n1", "subnet-a", Some(("i-1", 1))),
        ),
        (
            "a node this cluster does not have",
            theirs("eni-x", "multus", "ghost", "subnet-a", Some(("i-1", 1))),
        ),
        (
            "attached to another instance (a node of the same name elsewhere)",
            theirs("eni-x", "multus", "n1", "subnet-a", Some(("i-9", 1))),
        ),
        (
            "a subnet that is not one of the NodeENI's",
            theirs("eni-x", "multus", "n1", "subnet-z", Some(("i-1", 1))),
        ),
        ("not in the subnet its tag names", moved),
        ("tagged for another cluster", other_cluster),
        ("still attaching", attaching),
        (
            "a node the NodeENI does not select",
            theirs("eni-x", "multus", "n2", "subnet-a", Some(("i-2", 1))),
        ),
        (
            "available, for a node this cluster does not have",
            theirs("eni-x", "multus", "ghost", "subnet-a", None),
        ),
    ];
    for (case, found) in cases {
        let plan = plan(&[want("n1", "i-1", "subnet-a", 1)], &[found], &adopting());
        assert!(!touches(&plan, "eni-x"), "{case}: {:?}", plan.actions);
        assert!(
            matches!(plan.actions.as_slice(), [Action::Create { .. }]),
            "{case}: the slot gets its own ENI: {:?}",
            plan.actions
        );
        assert!(plan.unseen.is_empty() && plan.adopting.is_empty(), "{case}");
    }
    let unselected = [
        theirs("eni-x", "multus", "n2", "subnet-a", None),
        theirs("eni-y", "multus", "n2", "subnet-a", None),
    ];
    let plan_unselected = plan(
        &[want("n1", "i-1", "subnet-a", 1)],
        &unselected,
        &adopting(),
    );
    assert!(
        !touches(&plan_unselected, "eni-x") && !touches(&plan_unselected, "eni-y"),
        "available ones of a node the NodeENI does not select"
    );
    assert!(plan_unselected.unseen.is_empty() && plan_unselected.adopting.is_empty());
    let unresolved = Context {
        nodeenis: BTreeMap::from([("multus".to_owned(), NodeEniState::Unresolved)]),
        ..adopting()
    };
    let found = theirs("eni-x", "multus", "n1", "subnet-a", Some(("i-1", 1)));
    let plan = plan(&[], &[found], &unresolved);
    assert!(
        plan.actions.is_empty(),
        "a NodeENI whose references cannot be resolved"
    );
}

#[test]
fn once_adopted_it_is_an_ordinary_eni_of_ours() {
    let slot = owner("n1", "i-1", "subnet-a");
    let found = adopted(
        theirs("eni-old", "multus", "n1", "subnet-a", Some(("i-1", 1))),
        &slot,
    );
    let mut wanted = want("n1", "i-1", "subnet-a", 1);
    wanted.delete_on_termination = false;
    let plan = plan(&[wanted], &[found], &adopting());
    assert_eq!(
        plan.actions,
        vec![Action::SetDeleteOnTermination {
            slot: slot.clone(),
            eni_id: "eni-old".into(),
            attachment_id: "eni-old-attach".into(),
            value: false,
        }],
        "DeleteOnTermination as the spec says, and nothing else"
    );
    assert_eq!(plan.reports[&slot].state, AttachmentState::Attached);
    assert_eq!(plan.reports[&slot].reason, None);
    assert!(plan.adopting.is_empty());
}

#[test]
fn an_available_eni_of_the_predecessor_is_adopted_for_its_slot_then_attached() {
    let slot = owner("n1", "i-1", "subnet-a");
    let context = Context {
        instances: BTreeMap::from([("i-1".to_owned(), running(&[0], 4))]),
        ..adopting()
    };
    let found = theirs("eni-old", "multus", "n1", "subnet-a", None);
    let first = plan(
        &[want("n1", "i-1", "subnet-a", 1)],
        std::slice::from_ref(&found),
        &context,
    );
    assert!(
        matches!(first.actions.as_slice(), [Action::Adopt { eni_id, .. }] if eni_id == "eni-old"),
        "{:?}",
        first.actions
    );
    assert_eq!(first.reports[&slot].state, AttachmentState::Created);
    let then = plan(
        &[want("n1", "i-1", "subnet-a", 1)],
        &[adopted(found, &slot)],
        &context,
    );
    assert!(
        matches!(then.actions.as_slice(), [Action::Attach { eni_id, attach, .. }] if eni_id == "eni-old" && attach.device_index == 1),
        "{:?}",
        then.actions
    );
}

#[test]
fn a_slot_holding_an_eni_of_ours_leaves_an_attached_one_of_the_predecessor_alone() {
    let slot = owner("n1", "i-1", "subnet-a");
    let ours = eni(
        "eni-ours",
        &slot,
        Some((2, AttachmentStatus::Attached, true)),
    );
    let found = theirs("eni-old", "multus", "n1", "subnet-a", Some(("i-1", 1)));
    let plan = plan(
        &[want("n1", "i-1", "subnet-a", 1)],
        &[ours, found],
        &adopting(),
    );
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(
        plan.reports[&slot].eni.as_ref().map(|e| e.id.as_str()),
        Some("eni-ours")
    );
}

#[test]
fn available_left_overs_are_adopted_and_deleted_after_the_grace_period() {
    let slot = owner("n1", "i-1", "subnet-a");
    let wants = [want("n1", "i-1", "subnet-a", 1)];
    let attached = theirs("eni-old", "multus", "n1", "subnet-a", Some(("i-1", 1)));
    let spare = theirs("eni-spare", "multus", "n1", "subnet-a", None);
    let enis = [attached, spare.clone()];
    let waiting = plan(&wants, &enis, &adopting());
    assert!(
        matches!(waiting.actions.as_slice(), [Action::Adopt { eni_id, .. }] if eni_id == "eni-old"),
        "the attached one for the slot, the available one waits: {:?}",
        waiting.actions
    );
    assert_eq!(waiting.unseen, vec!["eni-spare".to_owned()]);
    let since = Instant::now();
    let later = Context {
        orphans_since: BTreeMap::from([("eni-spare".to_owned(), since)]),
        now: Some(since + Duration::from_mins(5)),
        ..adopting()
    };
    let over = plan(&wants, &enis, &later);
    let spare_adoption = over.actions.iter().find_map(|action| match action {
        Action::Adopt { eni_id, tags, .. } if eni_id == "eni-spare" => Some(tags),
        _ => None,
    });
    assert_eq!(
        spare_adoption.and_then(Owner::from_tags).as_ref(),
        Some(&slot),
        "{:?}",
        over.actions
    );
    // Adopted, it is a duplicate of the slot's ENI, and goes.
    let ours = eni(
        "eni-ours",
        &slot,
        Some((1, AttachmentStatus::Attached, true)),
    );
    let after = plan(&wants, &[ours, adopted(spare, &slot)], &later);
    assert_eq!(
        after.actions,
        vec![Action::Delete {
            owner: slot,
            eni_id: "eni-spare".into()
        }]
    );
}

#[test]
fn the_enis_of_a_nodeeni_being_deleted_are_adopted_then_removed() {
    let deleting = Context {
        nodeenis: BTreeMap::from([("multus".to_owned(), NodeEniState::Deleting)]),
        ..adopting()
    };
    let slot = owner("n1", "i-1", "subnet-a");
    let found = theirs("eni-old", "multus", "n1", "subnet-a", Some(("i-1", 1)));
    let first = plan(&[], std::slice::from_ref(&found), &deleting);
    assert!(
        matches!(first.actions.as_slice(), [Action::Adopt { owner, eni_id, .. }] if *owner == slot && eni_id == "eni-old"),
        "{:?}",
        first.actions
    );
    assert!(first.adopting.contains("multus"), "its finalizer stays");
    let then = plan(&[], &[adopted(found, &slot)], &deleting);
    assert!(
        matches!(then.actions.as_slice(), [Action::Detach { eni_id, .. }] if eni_id == "eni-old"),
        "{:?}",
        then.actions
    );
    assert!(then.adopting.is_empty());
}

#[test]
fn an_adoption_under_way_or_failed_waits() {
    let slot = owner("n1", "i-1", "subnet-a");
    let found = theirs("eni-old", "multus", "n1", "subnet-a", Some(("i-1", 1)));
    let wants = [want("n1", "i-1", "subnet-a", 1)];
    let in_flight = Context {
        in_flight: BTreeSet::from([slot.clone()]),
        ..adopting()
    };
    let plan_in_flight = plan(&wants, std::slice::from_ref(&found), &in_flight);
    assert!(plan_in_flight.actions.is_empty());
    assert_eq!(
        plan_in_flight.reports[&slot].state,
        AttachmentState::Attaching
    );
    let failure = Failure {
        reason: reasons::UNAUTHORIZED.into(),
        message: "UnauthorizedOperation: not allowed to tag".into(),
        retry_at: None,
    };
    let failed = Context {
        failures: BTreeMap::from([(slot.clone(), failure)]),
        ..adopting()
    };
    let plan_failed = plan(&wants, &[found], &failed);
    assert!(plan_failed.actions.is_empty(), "{:?}", plan_failed.actions);
    let report = &plan_failed.reports[&slot];
    assert_eq!(report.state, AttachmentState::Failed);
    assert_eq!(report.reason.as_deref(), Some(reasons::UNAUTHORIZED));
}
