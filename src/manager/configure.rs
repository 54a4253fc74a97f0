//! Configuring one link (name, MTU, up) over any [`Links`], in the order [`diff`] gives.
//!
//! A failed change never leaves a link down: an up link is renamed as it is, and only on a
//! kernel that refuses that (EBUSY, before Linux 6.2) is it taken down for the rename, after
//! checking that the name is free, and brought up again whatever the rename's result. The
//! other changes go on after one fails, so a refused rename still gets the MTU applied and
//! the link up.

use crate::manager::desired::Wanted;
use crate::manager::links::{LinkError, LinkState, Links};
use crate::manager::outcome::{Outcome, Problem};
use crate::manager::plan::{Change, diff, rename_while_down};

/// Brings `link` to `wanted` (or, with `dry_run`, says what that would change).
pub async fn configure<L: Links>(
    links: &L,
    wanted: &Wanted,
    link: &LinkState,
    dry_run: bool,
) -> Outcome {
    let mut outcome = Outcome::serving(wanted);
    let (mut name, mut mtu) = (link.name.clone(), link.mtu);
    for change in diff(link, wanted) {
        if dry_run {
            // A dry run reports the interface as it is.
            outcome.changes.push(change.to_string());
            continue;
        }
        let result = match &change {
            Change::Rename { from, to } if link.up => {
                rename_up_link(links, link.index, from, to, &mut outcome.changes).await
            }
            _ => apply(links, link.index, &change, &mut outcome.changes).await,
        };
        match result {
            Ok(()) => match &change {
                Change::Rename { to, .. } => name.clone_from(to),
                Change::Mtu { to, .. } => mtu = *to,
                Change::Down | Change::Up => {}
            },
            Err(LinkError::Gone) => return Outcome::waiting(wanted),
            Err(error) => {
                outcome
                    .problem
                    .get_or_insert(change_problem(&change, &name, &error));
            }
        }
    }
    outcome.interface = Some(name);
    outcome.mtu = Some(mtu);
    outcome
}

/// Renames an up link in place. On a kernel that refuses (EBUSY: it checks that before the
/// name), the link goes down for the rename only when no link holds the name, and comes up
/// again even when the rename fails.
async fn rename_up_link<L: Links>(
    links: &L,
    index: u32,
    from: &str,
    to: &str,
    done: &mut Vec<String>,
) -> Result<(), LinkError> {
    let [down, rename, up] = rename_while_down(from, to);
    match apply(links, index, &rename, done).await {
        Err(error) if error.is_busy() => {}
        other => return other,
    }
    if links.name_taken(to).await? {
        return Err(LinkError::NameTaken { name: to.into() });
    }
    apply(links, index, &down, done).await?;
    let renamed = apply(links, index, &rename, done).await;
    let brought_up = apply(links, index, &up, done).await;
    renamed.and(brought_up)
}

/// Performs one change, noting it in `done` when it succeeded.
async fn apply<L: Links>(
    links: &L,
    index: u32,
    change: &Change,
    done: &mut Vec<String>,
) -> Result<(), LinkError> {
    match change {
        Change::Down => links.set_down(index).await,
        Change::Rename { to, .. } => links.rename(index, to).await,
        Change::Mtu { to, .. } => links.set_mtu(index, *to).await,
        Change::Up => links.set_up(index).await,
    }?;
    done.push(change.to_string());
    Ok(())
}

/// A refused change, with the fix where there is one. It is tried again with backoff: what
/// the kernel refused for (a name in use, a port held by a socket, a lower device's MTU) can
/// go away without a notification about this link.
fn change_problem(change: &Change, name: &str, error: &LinkError) -> Problem {
    let fix = match (change, error) {
        (Change::Rename { .. }, LinkError::NameTaken { .. }) => {
            "; rename the other interface or change spec.interfaceName"
        }
        (Change::Mtu { .. }, LinkError::Refused { .. }) => {
            "; the device may not support it: change spec.mtu"
        }
        _ => "",
    };
    Problem {
        message: format!("{change} on {name} failed: {error}{fix}"),
        label: error.label(),
        transient: true,
    }
}

#[cfg(test)]
#[path = "configure_tests.rs"]
mod tests;
