//! A pass's NetworkAttachmentDefinitions: synced with what the NodeENIs want when that
//! changes, and once per resync period (so that a missing CRD, a conflict or a refused write
//! is tried again); the conditions and the finalizers follow what the last sync found.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::api::NodeENI;

use super::super::kube_io::Created;
use super::super::nads::{self, Nad, NadState, Problem};
use super::Reconciler;

/// What the last sync did and found.
#[derive(Debug, Default)]
pub(super) struct NadMemory {
    /// What was wanted at the last sync, and when it ran.
    synced: Option<(BTreeSet<Nad>, Instant)>,
    /// The `PodNetworkReady` condition of each NodeENI with a pod network.
    pub states: BTreeMap<String, NadState>,
    /// NodeENIs being deleted that still have NetworkAttachmentDefinitions: their
    /// finalizers stay.
    pub left: BTreeSet<String>,
}

impl Reconciler {
    pub(super) async fn sync_nads(&self, nodeenis: &BTreeMap<String, NodeENI>) {
        let wanted = nads::wanted(nodeenis);
        let due = {
            let memory = self.nads.lock().expect("nads");
            memory.synced.as_ref().is_none_or(|(before, at)| {
                *before != wanted || at.elapsed() >= self.settings.resync
            })
        };
        if !due {
            return;
        }
        let (problems, left) = self.apply_nads(&wanted).await;
        let deleting: BTreeSet<&String> = (nodeenis.iter())
            .filter(|(_, n)| n.metadata.deletion_timestamp.is_some())
            .map(|(name, _)| name)
            .collect();
        let mut memory = self.nads.lock().expect("nads");
        memory.states = nads::states(&wanted, &problems);
        // Unknown (the list failed): every NodeENI being deleted keeps its finalizer.
        memory.left = (deleting.into_iter())
            .filter(|name| left.as_ref().is_none_or(|left| left.contains(*name)))
            .cloned()
            .collect();
        memory.synced = Some((wanted, Instant::now()));
    }

    /// Creates what is wanted and deletes ours that is not; returns the problems met and
    /// the NodeENIs that still have some of ours (`None`: unknown).
    async fn apply_nads(&self, wanted: &BTreeSet<Nad>) -> (Vec<Problem>, Option<BTreeSet<String>>) {
        let ours = match self.kube.our_nads().await {
            Ok(Some(ours)) => ours,
            Ok(None) => return (vec![Problem::CrdMissing], Some(BTreeSet::new())),
            Err(error) => {
                let failed = |nad: &Nad| Problem::Failed {
                    nad: nad.clone(),
                    error: error.to_string(),
                };
                return (wanted.iter().map(failed).collect(), None);
            }
        };
        let (create, delete) = nads::changes(wanted, &ours);
        let mut problems = Vec::new();
        let mut remaining = ours;
        for nad in &delete {
            match self.kube.delete_nad(nad).await {
                Ok(()) => {
                    remaining.remove(nad);
                }
                Err(error) => problems.push(Problem::Failed {
                    nad: nad.clone(),
                    error: error.to_string(),
                }),
            }
        }
        let left = Some(remaining.into_iter().map(|n| n.nodeeni).collect());
        for nad in create {
            match self.kube.create_nad(&nad).await {
                Ok(Created::Created) => {}
                Ok(Created::Taken(owner)) => problems.push(Problem::Taken { nad, owner }),
                Err(error) => problems.push(Problem::Failed {
                    nad,
                    error: error.to_string(),
                }),
            }
        }
        (problems, left)
    }
}
