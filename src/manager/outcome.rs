//! What the agent found and did for one attachment entry: the source of its status report
//! and of the `--once` table.

use crate::manager::desired::{EntryKey, Wanted};
use crate::manager::mac::Mac;

/// The state of one entry after the agent worked on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub key: EntryKey,
    pub eni_id: Option<String>,
    pub mac: Option<Mac>,
    /// Whether the entry is served (false: released, its DPDK device given back).
    pub serving: bool,
    /// The Linux interface the ENI maps to.
    pub interface: Option<String>,
    pub mtu: Option<u32>,
    pub dpdk: Option<DpdkReport>,
    /// The device plugin resource of a device left on its kernel driver.
    pub resource: Option<ResourceReport>,
    /// What was changed (or, in a dry run, would be), in order.
    pub changes: Vec<String>,
    pub problem: Option<Problem>,
}

/// The DPDK side of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkReport {
    pub pci: String,
    pub driver: String,
    pub bound: bool,
    pub resource: Option<String>,
}

/// A device on its kernel driver advertised as a device plugin resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceReport {
    pub pci: String,
    /// `prefix/name`.
    pub name: String,
    /// Whether a pod holds the device: its interface is in another network namespace
    /// (moved there by the `host-device` CNI plugin), the device still on its driver.
    pub taken: bool,
}

/// Why an entry is not configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// A sentence for `interfaceMessage`, naming what is wrong and the fix.
    pub message: String,
    /// The stable label of the error.
    pub label: &'static str,
    /// Whether the agent retries by itself (with backoff) rather than wait for a change.
    pub transient: bool,
}

impl Outcome {
    /// A served entry, before anything is known of its interface.
    pub fn serving(wanted: &Wanted) -> Outcome {
        Outcome {
            key: wanted.key.clone(),
            eni_id: wanted.eni_id.clone(),
            mac: Some(wanted.mac),
            serving: true,
            interface: None,
            mtu: None,
            dpdk: None,
            resource: None,
            changes: Vec::new(),
            problem: None,
        }
    }

    /// The served entry's interface is not (or no longer) on this node.
    pub fn waiting(wanted: &Wanted) -> Outcome {
        Outcome::serving(wanted).with_problem(Problem {
            message: format!(
                "no interface with MAC {} on this node yet (waiting for the ENI to appear)",
                wanted.mac
            ),
            label: "interface_not_found",
            transient: false,
        })
    }

    #[must_use]
    pub fn with_problem(mut self, problem: Problem) -> Outcome {
        self.problem.get_or_insert(problem);
        self
    }

    /// Whether both say the same in the status (they may differ in the changes made).
    pub fn same_report(&self, other: &Outcome) -> bool {
        // Destructured, so that a new field must be placed on one side or the other.
        let Outcome {
            key,
            eni_id,
            mac,
            serving,
            interface,
            mtu,
            dpdk,
            resource,
            changes: _,
            problem,
        } = self;
        (
            key, eni_id, mac, serving, interface, mtu, dpdk, resource, problem,
        ) == (
            &other.key,
            &other.eni_id,
            &other.mac,
            &other.serving,
            &other.interface,
            &other.mtu,
            &other.dpdk,
            &other.resource,
            &other.problem,
        )
    }

    /// Served, and as the spec asks (an interface a pod took is as the spec asks).
    pub fn configured(&self) -> bool {
        self.serving
            && self.problem.is_none()
            && (self.interface.is_some()
                || self.dpdk.as_ref().is_some_and(|d| d.bound)
                || self.resource.as_ref().is_some_and(|r| r.taken))
    }
}
