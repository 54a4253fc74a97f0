//! The executor: brings links and DPDK devices to the desired state and says what it did.
//! Used by the long-running agent (per event, and for full passes) and by `--once`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::manager::cni::{self, NetworkReport};
use crate::manager::cni_files::{CniConfDir, CniDirError};
use crate::manager::configure::configure;
use crate::manager::desired::{Desired, EntryKey, Wanted};
use crate::manager::dpdk::Dpdk;
use crate::manager::imds::{Imds, Lookup};
use crate::manager::links::{LinkError, LinkState, Links, only_link_with};
use crate::manager::mac::Mac;
use crate::manager::metrics::AgentMetrics;
use crate::manager::outcome::{Outcome, Problem};
use crate::manager::sriov::{DevicePluginConfig, SriovError};

/// Performs the changes, over the links and sysfs it is handed.
pub struct Executor<L> {
    pub links: L,
    pub dpdk: Dpdk,
    pub plugin_config: DevicePluginConfig,
    pub cni_conf_dir: CniConfDir,
    /// The CNI configurations last made so in the directory (`None`: read it again).
    pub networks_synced: Option<BTreeMap<String, String>>,
    /// Instance metadata to cross-check MACs with; dropped once found unreachable.
    pub imds: Option<Imds>,
    /// MACs whose ENI metadata has confirmed.
    pub confirmed: HashSet<Mac>,
    pub dry_run: bool,
    /// The wanted state and the link each failing entry's last attempt was made on.
    pub failed: HashMap<EntryKey, (Wanted, Option<LinkState>)>,
    pub metrics: AgentMetrics,
}

impl<L: Links> Executor<L> {
    /// Serves every wanted entry and releases what is no longer wanted.
    pub async fn pass(&mut self, desired: &Desired) -> Result<Vec<Outcome>, LinkError> {
        // A full pass also repairs the CNI configuration directory.
        self.networks_synced = None;
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
        self.dpdk.withdraw_unwanted(desired);
        Ok(outcomes)
    }

    /// Serves one entry whose link (if any) is `link`, remembering what a failure was on.
    pub async fn serve(&mut self, wanted: &Wanted, link: Option<&LinkState>) -> Outcome {
        let started = std::time::Instant::now();
        let outcome = self.serve_now(wanted, link).await;
        if !outcome.changes.is_empty() && !self.dry_run {
            let elapsed = started.elapsed().as_secs_f64();
            self.metrics.configure_seconds.observe(elapsed);
        }
        if outcome.problem.is_some() {
            let inputs = (wanted.clone(), link.cloned());
            self.failed.insert(wanted.key.clone(), inputs);
        } else {
            self.failed.remove(&wanted.key);
        }
        outcome
    }

    /// Whether the entry's last attempt failed with this very wanted state and link: the same
    /// attempt would fail again, so only a retry (with backoff) makes it. This is how the
    /// agent's own changes, coming back as notifications, are told from someone else's.
    pub fn failed_on(&self, wanted: &Wanted, link: Option<&LinkState>) -> bool {
        self.failed
            .get(&wanted.key)
            .is_some_and(|(w, l)| w == wanted && l.as_ref() == link)
    }

    async fn serve_now(&mut self, wanted: &Wanted, link: Option<&LinkState>) -> Outcome {
        if let Some(link) = link
            && let Some(problem) = self.cross_check(wanted).await
        {
            let mut outcome = Outcome::serving(wanted).with_problem(problem);
            outcome.interface = Some(link.name.clone());
            return outcome;
        }
        let outcome = match (&wanted.dpdk, link) {
            (Some(dpdk), _) => return self.dpdk.serve(wanted, dpdk, link).await,
            (None, Some(link)) => configure(&self.links, wanted, link, self.dry_run).await,
            (None, None) => Outcome::waiting(wanted),
        };
        match &wanted.resource {
            Some(resource) => self.dpdk.advertise(wanted, resource, link, outcome),
            None => outcome,
        }
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

    /// Writes the pod network of each served entry whose interface is configured (`outcome`
    /// gives an entry's last outcome) and removes the agent's other files; returns each
    /// pod network entry's report, and what changed in the directory or why it could not.
    pub fn sync_networks<'a>(
        &mut self,
        desired: &Desired,
        outcome: impl Fn(&EntryKey) -> Option<&'a Outcome>,
    ) -> (
        BTreeMap<EntryKey, NetworkReport>,
        Result<Vec<String>, CniDirError>,
    ) {
        let served = desired.serve.iter().map(|wanted| {
            let configured = outcome(&wanted.key).filter(|outcome| outcome.configured());
            (wanted, configured.and_then(|o| o.interface.as_deref()))
        });
        let mut networks = cni::networks(served);
        if self.networks_synced.as_ref() == Some(&networks.files) {
            return (networks.reports, Ok(Vec::new()));
        }
        let result = self.cni_conf_dir.sync(&networks.files, self.dry_run);
        match &result {
            Ok(_) => self.networks_synced = Some(networks.files),
            Err(error) => {
                for report in networks.reports.values_mut().filter(|r| r.written) {
                    report.written = false;
                    report.message = Some(error.to_string());
                }
            }
        }
        (networks.reports, result)
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

fn link_problem(error: &LinkError) -> Problem {
    Problem {
        message: error.to_string(),
        label: error.label(),
        transient: error.is_transient(),
    }
}
