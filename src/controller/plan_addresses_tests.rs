//! Table tests of the pods' addresses in the planner: requested with the ENI, checked against
//! the instance type before any EC2 call, and assigned once when an ENI has fewer.

use std::time::Duration;

use super::tests::{context, eni, owner, running, want};
use super::*;
use crate::controller::addresses::PodAddresses;

fn asking(secondary: i32, prefixes: i32) -> Want {
    Want {
        addresses: PodAddresses {
            secondary_private_ips: secondary,
            ipv4_prefixes: prefixes,
        },
        ..want("n1", "i-1", "subnet-a", 1)
    }
}

/// A described instance whose type takes `per_interface` addresses per interface.
fn typed(per_interface: i32, nitro: bool) -> Context {
    let mut facts = running(&[0], 3);
    let limits = facts.limits.as_mut().unwrap();
    limits.ipv4_addresses_per_interface = per_interface;
    limits.nitro = nitro;
    context(&[("i-1", facts)])
}

fn attached_with(secondary: usize, prefixes: usize) -> Eni {
    Eni {
        secondary_private_ips: (0..secondary)
            .map(|n| format!("10.0.0.{}", n + 10))
            .collect(),
        ipv4_prefixes: (0..prefixes)
            .map(|n| format!("10.0.1.{}/28", n * 16))
            .collect(),
        ..eni(
            "eni-a",
            &owner("n1", "i-1", "subnet-a"),
            Some((1, AttachmentStatus::Attached, true)),
        )
    }
}

#[test]
fn the_counts_go_into_the_create_call() {
    for (wanted, counts) in [(asking(4, 0), (4, 0)), (asking(0, 2), (0, 2))] {
        let planned = plan(&[wanted], &[], &typed(10, true));
        let [Action::Create { new, .. }] = planned.actions.as_slice() else {
            panic!("{:?}", planned.actions)
        };
        assert_eq!(
            (new.secondary_private_ip_count, new.ipv4_prefix_count),
            counts
        );
    }
}

#[test]
fn a_type_that_cannot_hold_the_addresses_fails_the_slot_without_a_call() {
    let slot = owner("n1", "i-1", "subnet-a");
    for (wanted, context, reason) in [
        (
            asking(10, 0),
            typed(10, true),
            reasons::ADDRESS_LIMIT_REACHED,
        ),
        (
            asking(0, 1),
            typed(10, false),
            reasons::PREFIXES_NOT_SUPPORTED,
        ),
    ] {
        let plan = plan(&[wanted], &[], &context);
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        let report = &plan.reports[&slot];
        assert_eq!(report.state, AttachmentState::Failed);
        assert_eq!(report.reason.as_deref(), Some(reason));
    }
}

#[test]
fn an_eni_with_fewer_addresses_gets_the_difference_once() {
    let slot = owner("n1", "i-1", "subnet-a");
    let short = attached_with(2, 0);
    let plan_short = plan(
        &[asking(5, 0)],
        std::slice::from_ref(&short),
        &typed(10, true),
    );
    let [
        Action::AssignAddresses {
            secondary,
            prefixes,
            eni_id,
            ..
        },
    ] = plan_short.actions.as_slice()
    else {
        panic!("{:?}", plan_short.actions)
    };
    assert_eq!((*secondary, *prefixes, eni_id.as_str()), (3, 0, "eni-a"));
    assert_eq!(plan_short.reports[&slot].state, AttachmentState::Attached);

    // Under way, then done: nothing more is asked.
    let mut busy = typed(10, true);
    busy.in_flight.insert(slot.clone());
    let plan_busy = plan(&[asking(5, 0)], std::slice::from_ref(&short), &busy);
    assert!(plan_busy.actions.is_empty());
    assert_eq!(plan_busy.reports[&slot].state, AttachmentState::Attached);
    let full = attached_with(5, 0);
    assert!(
        plan(&[asking(5, 0)], &[full], &typed(10, true))
            .actions
            .is_empty()
    );

    // Prefixes alike.
    let plan_prefix = plan(&[asking(0, 3)], &[attached_with(0, 1)], &typed(10, true));
    assert!(matches!(
        plan_prefix.actions.as_slice(),
        [Action::AssignAddresses {
            secondary: 0,
            prefixes: 2,
            ..
        }]
    ));
}

#[test]
fn growth_waits_for_the_instance_type_and_respects_it() {
    let slot = owner("n1", "i-1", "subnet-a");
    let short = attached_with(2, 0);
    // Not described yet: describe first, assign nothing.
    let unknown = plan(&[asking(5, 0)], std::slice::from_ref(&short), &context(&[]));
    assert!(unknown.actions.is_empty());
    assert!(unknown.describe.contains("i-1"));
    // Past the type's limit: still attached, with the reason, and no call.
    let over = plan(&[asking(12, 0)], &[short], &typed(10, true));
    assert!(over.actions.is_empty());
    let report = &over.reports[&slot];
    assert_eq!(report.state, AttachmentState::Attached);
    assert_eq!(
        report.reason.as_deref(),
        Some(reasons::ADDRESS_LIMIT_REACHED)
    );
}

#[test]
fn a_failed_assign_keeps_the_eni_attached_with_its_reason() {
    let slot = owner("n1", "i-1", "subnet-a");
    let mut context = typed(10, true);
    context.failures.insert(
        slot.clone(),
        Failure {
            reason: reasons::INSUFFICIENT_FREE_ADDRESSES.into(),
            message: "EC2 AssignPrivateIpAddresses failed".into(),
            retry_at: context.now.map(|now| now + Duration::from_mins(1)),
        },
    );
    let plan = plan(&[asking(5, 0)], &[attached_with(2, 0)], &context);
    assert!(plan.actions.is_empty());
    let report = &plan.reports[&slot];
    assert_eq!(report.state, AttachmentState::Attached);
    assert_eq!(
        report.reason.as_deref(),
        Some(reasons::INSUFFICIENT_FREE_ADDRESSES)
    );
}
