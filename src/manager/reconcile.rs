//! The executor: brings links and DPDK devices to the desired state and says what it did.
//! Used by the long-running agent (per event, and for full passes) and by `--once`.

use std::collections::{HashMap, HashSet};

use crate::manager::desired::{Desired, Wanted};
use crate::manager::dpdk::Dpdk;
use crate::manager::imds::{Imds, Lookup};
use crate::manager::links::{LinkError, LinkState, Links, only_link_with};
use crate::manager::mac::Mac;
use crate::manager::outcome::{Outcome, Problem};
use crate::manager::plan::{Change, diff};
use crate::manager::sriov::{DevicePluginConfig, SriovError};

/// Performs the changes, over the links and sysfs it is handed.
pub struct Executor<L> {
    pub links: L,
    pub dpdk: Dpdk,
    pub plugin_config: DevicePluginConfig,
    /// Instance metadata to cross-check MACs with; dropped once found unreachable.
    pub imds: Option<Imds>,
    /// MACs whose ENI metadata has confirmed.
    pub confirmed: HashSet<Mac>,
    pub dry_run: bool,
}

impl<L: Links> Executor<L> {
    /// Serves every wanted entry and releases what is no longer wanted.
    pub async fn pass(&mut self, desired: &Desired) -> Result<Vec<Outcome>, LinkError> {
        let mut by_mac: HashMap<Mac, Vec<LinkState>> = HashMap::new();
        for link in self.links.links().await? {
            by_mac.entry(link.mac).or_default().push(link);
        }
        let mut outcomes = Vec::new();
        for wanted in &desired.serve {
            let candidates = by_mac.remove(&wanted.mac).unwrap_or_default();
            outcomes.push(match only_link_with(candidates, wanted.mac) {
                Ok(link) => self.serve(wanted, link.as_ref()).await,
                Err(error) => Outcome::serving(wanted).with_problem(link_problem(&error)),
            });
        }
        for released in self.dpdk.release_unwanted(desired).await {
            merge_release(&mut outcomes, released);
        }
        Ok(outcomes)
    }

    /// Serves one entry whose link (if any) is `link`.
    pub async fn serve(&mut self, wanted: &Wanted, link: Option<&LinkState>) -> Outcome {
        if let Some(link) = link
            && let Some(problem) = self.cross_check(wanted).await
        {
            let mut outcome = Outcome::serving(wanted).with_problem(problem);
            outcome.interface = Some(link.name.clone());
            return outcome;
        }
        match (&wanted.dpdk, link) {
            (Some(dpdk), _) => self.dpdk.serve(wanted, dpdk, link).await,
            (None, Some(link)) => self.configure(wanted, link).await,
            (None, None) => Outcome::waiting(wanted),
        }
    }

    /// Renames the link, sets its MTU and brings it up, as far as it differs.
    async fn configure(&self, wanted: &Wanted, link: &LinkState) -> Outcome {
        let mut outcome = Outcome::serving(wanted);
        let (mut name, mut mtu) = (link.name.clone(), link.mtu);
        for change in diff(link, wanted) {
            let result = if self.dry_run {
                Ok(())
            } else {
                self.apply(link.index, &change).await
            };
            match result {
                Ok(()) => {
                    match &change {
                        // A dry run reports the interface as it is.
                        _ if self.dry_run => {}
                        Change::Rename { to, .. } => name.clone_from(to),
                        Change::Mtu { to, .. } => mtu = *to,
                        Change::Down | Change::Up => {}
                    }
                    outcome.changes.push(change.to_string());
                }
                Err(LinkError::Gone) => return Outcome::waiting(wanted),
                // Keep going: a failed rename must not leave the link down.
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

    /// Asks instance metadata which ENI is behind the MAC, before touching its interface
    /// for the first time; a problem when it is not the one the status names.
    async fn cross_check(&mut self, wanted: &Wanted) -> Option<Problem> {
        let (Some(imds), Some(eni)) = (&self.imds, &wanted.eni_id) else {
            return None;
        };
        if self.confirmed.contains(&wanted.mac) {
            return None;
        }
        // Boxed: the metadata client's future is large, and rarely awaited.
        match Box::pin(imds.interface_id(wanted.mac)).await {
            Lookup::Eni(id) if id == *eni => {
                self.confirmed.insert(wanted.mac);
                None
            }
            Lookup::Eni(id) => Some(Problem {
                message: format!(
                    "instance metadata says MAC {} is {id}, not {eni} as the status says; the interface is left alone until they agree",
                    wanted.mac
                ),
                label: "imds_mismatch",
                transient: true,
            }),
            Lookup::Unknown => None,
            Lookup::Unreachable(reason) => {
                tracing::info!(
                    "instance metadata is not reachable ({reason}); MACs are taken from the status alone"
                );
                self.imds = None;
                None
            }
        }
    }

    async fn apply(&self, index: u32, change: &Change) -> Result<(), LinkError> {
        match change {
            Change::Down => self.links.set_down(index).await,
            Change::Rename { to, .. } => self.links.rename(index, to).await,
            Change::Mtu { to, .. } => self.links.set_mtu(index, *to).await,
            Change::Up => self.links.set_up(index).await,
        }
    }

    /// Makes the device plugin's config list the bound devices; returns whether it changed.
    pub fn sync_plugin_config(&mut self) -> Result<bool, SriovError> {
        let bound = self.dpdk.bound();
        let wanted = bound.resources();
        if wanted.is_empty() && bound.plugin_resources.is_empty() {
            return Ok(false);
        }
        if self.dry_run {
            return Ok(wanted.keys().ne(bound.plugin_resources.iter()));
        }
        let changed = self.plugin_config.sync(&bound.plugin_resources, &wanted)?;
        if let Err(error) = self.dpdk.set_plugin_resources(wanted.into_keys().collect()) {
            // Not fatal: entries of released resources are then left in the file.
            tracing::warn!(label = error.label(), "{error}");
        }
        Ok(changed)
    }
}

/// A device given back while its entry is still served (the NodeENI dropped DPDK) is
/// reported in that entry's outcome.
fn merge_release(outcomes: &mut Vec<Outcome>, released: Outcome) {
    match outcomes.iter_mut().find(|o| o.key == released.key) {
        Some(served) => {
            served.changes.splice(0..0, released.changes);
            served.dpdk = released.dpdk;
            if let Some(problem) = released.problem {
                served.problem = Some(problem);
            }
        }
        None => outcomes.push(released),
    }
}

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
        transient: error.is_transient(),
    }
}

fn link_problem(error: &LinkError) -> Problem {
    Problem {
        message: error.to_string(),
        label: error.label(),
        transient: error.is_transient(),
    }
}
