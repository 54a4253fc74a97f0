//! A pass's writes to the API server: the ENINodes that differ from the plan first (the node
//! agents wait for them), then the NodeENI statuses that differ.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::NodeENI;
use crate::ec2::types::Eni;
use crate::ownership::NODEENI_TAG;

use super::super::eninode::{self, Observed, Source, Write};
use super::super::plan::Plan;
use super::super::status;
use super::{Planned, Reconciler};

/// ENINode writes under way at once: enough to keep up with a convergence of thousands of
/// nodes, few enough not to crowd the API server.
const ENINODE_WRITES_AT_ONCE: usize = 8;

impl Reconciler {
    pub(super) async fn write_objects(
        self: &Arc<Self>,
        nodeenis: &BTreeMap<String, NodeENI>,
        planned: &[Planned],
        plan: &Plan,
    ) -> anyhow::Result<()> {
        let releasing = self.releasing(plan);
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        self.write_eninodes(nodeenis, planned, plan, &releasing, &now)
            .await;
        for item in planned {
            let releasing: Vec<Eni> = releasing
                .iter()
                .filter(|eni| eni.tags.get(NODEENI_TAG) == Some(&item.name))
                .cloned()
                .collect();
            self.write_status(&nodeenis[&item.name], item, plan, &releasing, &now)
                .await?;
        }
        Ok(())
    }

    /// Unwanted ENIs the node agent still holds bound to DPDK: their entries stay, as
    /// Detaching, so that the agent gives the device back before the detach.
    fn releasing(&self, plan: &Plan) -> Vec<Eni> {
        let held = self.memory.lock().expect("memory").held.clone();
        let view = self.view.lock().expect("view");
        plan.orphans
            .iter()
            .filter(|id| held.contains(*id))
            .filter_map(|id| view.enis.get(id))
            .cloned()
            .collect()
    }

    async fn write_eninodes(
        self: &Arc<Self>,
        nodeenis: &BTreeMap<String, NodeENI>,
        planned: &[Planned],
        plan: &Plan,
        releasing: &[Eni],
        now: &Time,
    ) {
        let writes = {
            let cluster = self.cluster.lock().expect("cluster");
            let sources: Vec<Source> = planned
                .iter()
                .map(|item| Source {
                    name: &item.name,
                    spec: &nodeenis[&item.name].spec,
                    slots: &item.desired.slots,
                })
                .collect();
            eninode::writes(&eninode::Input {
                sources: &sources,
                reports: &plan.reports,
                releasing,
                nodes: &cluster.nodes,
                current: &cluster.eninodes,
                now: now.clone(),
            })
        };
        let results: Vec<kube::Result<()>> = futures::stream::iter(writes)
            .map(|write| self.write_eninode(write))
            .buffer_unordered(ENINODE_WRITES_AT_ONCE)
            .collect()
            .await;
        // A failed write is tried again shortly; the rest of the pass goes on.
        if let Some(error) = results.into_iter().find_map(Result::err) {
            tracing::warn!(%error, "writing an ENINode failed; retrying");
            self.wake_at(std::time::Instant::now() + std::time::Duration::from_secs(2));
        }
    }

    /// Makes one ENINode write and keeps its answer, so that the next pass compares with it
    /// rather than with what the watch has not brought yet.
    async fn write_eninode(self: &Arc<Self>, write: Write) -> kube::Result<()> {
        match write {
            Write::Apply { node, uid, spec } => {
                let answer = Observed::new(self.kube.apply_eninode(&node, &uid, &spec).await?);
                let mut cluster = self.cluster.lock().expect("cluster");
                let before = cluster.eninodes.remove(&node);
                let kept = answer.replacing(before.as_ref(), false);
                cluster.eninodes.insert(node, kept);
            }
            Write::Delete { node } => {
                self.kube.delete_eninode(&node).await?;
                self.cluster.lock().expect("cluster").eninodes.remove(&node);
            }
        }
        self.metrics.eninode_writes.inc();
        Ok(())
    }

    async fn write_status(
        &self,
        nodeeni: &NodeENI,
        item: &Planned,
        plan: &Plan,
        releasing: &[Eni],
        now: &Time,
    ) -> anyhow::Result<()> {
        let new = {
            let cluster = self.cluster.lock().expect("cluster");
            status::build(&status::Input {
                name: &item.name,
                generation: nodeeni.metadata.generation,
                desired: &item.desired,
                reports: &plan.reports,
                releasing,
                blocker: item.blocker.clone(),
                eninodes: &cluster.eninodes,
                pod_network: self
                    .nads
                    .lock()
                    .expect("nads")
                    .states
                    .get(&item.name)
                    .cloned(),
                current: nodeeni.status.as_ref(),
                now: now.clone(),
            })
        };
        if status::differs(&new, nodeeni.status.as_ref()) {
            self.kube.apply_status(&item.name, &new).await?;
            self.metrics.status_writes.inc();
        }
        Ok(())
    }
}
