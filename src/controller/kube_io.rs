//! The controller's Kubernetes side: finalizers, NodeENI status and ENINode writes
//! (server-side apply), and events. The watches are in [`super::watch`].

use std::sync::Mutex;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::api::{ENINode, ENINodeSpec, NodeENI, NodeENIStatus};
use crate::ec2::Error as Ec2Error;

use super::executor::Step;
use super::plan::Action;
use super::reconciler::Cluster;
use super::status::FIELD_MANAGER;

/// Keeps a NodeENI until its ENIs are gone.
pub const FINALIZER: &str = "multi-eni.k8s.aws/cleanup";

/// aws-multi-eni-controller's finalizer: with `--adopt-predecessor-enis` it is replaced by
/// ours (in one patch), and removed with ours from a NodeENI being deleted.
pub const PREDECESSOR_FINALIZER: &str = "nodeeni.networking.k8s.aws/finalizer";

mod nads;

pub use nads::Created;

pub struct KubeIo {
    client: Client,
    recorder: Recorder,
}

impl KubeIo {
    pub fn new(client: Client, instance: String) -> KubeIo {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(instance),
        };
        KubeIo {
            recorder: Recorder::new(client.clone(), reporter),
            client,
        }
    }

    fn nodeenis(&self) -> Api<NodeENI> {
        Api::all(self.client.clone())
    }

    /// Adds our finalizer and, with `replace_predecessor`, removes the predecessor's in the
    /// same patch (so that it goes only once ours is in place).
    pub async fn ensure_finalizer(
        &self,
        nodeeni: &NodeENI,
        replace_predecessor: bool,
    ) -> kube::Result<()> {
        let current = nodeeni.finalizers();
        let stale = |f: &String| replace_predecessor && f == PREDECESSOR_FINALIZER;
        if current.iter().any(|f| f == FINALIZER) && !current.iter().any(stale) {
            return Ok(());
        }
        let mut finalizers: Vec<String> = current.iter().filter(|f| !stale(f)).cloned().collect();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            finalizers.push(FINALIZER.into());
        }
        self.set_finalizers(nodeeni, finalizers).await.map(drop)
    }

    /// Removes our finalizer (and, with `and_predecessor`, the predecessor's); false when the
    /// object changed since it was read (409), or is gone.
    pub async fn remove_finalizer(
        &self,
        nodeeni: &NodeENI,
        and_predecessor: bool,
    ) -> kube::Result<bool> {
        let finalizers: Vec<String> = nodeeni
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER && !(and_predecessor && *f == PREDECESSOR_FINALIZER))
            .cloned()
            .collect();
        self.set_finalizers(nodeeni, finalizers).await
    }

    /// A merge patch guarded by the resourceVersion, so another writer's finalizer is not lost;
    /// false when the object changed meanwhile (or is gone).
    async fn set_finalizers(
        &self,
        nodeeni: &NodeENI,
        finalizers: Vec<String>,
    ) -> kube::Result<bool> {
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": nodeeni.resource_version()}});
        match self
            .nodeenis()
            .patch(
                &nodeeni.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => Ok(false),
            other => other.map(|_| true),
        }
    }

    /// Writes the controller's fields of the status by server-side apply.
    pub async fn apply_status(&self, name: &str, status: &NodeENIStatus) -> kube::Result<()> {
        let patch = json!({
            "apiVersion": "networking.k8s.aws/v1alpha1",
            "kind": "NodeENI",
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match self
            .nodeenis()
            .patch_status(name, &params, &Patch::Apply(patch))
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            other => other.map(drop),
        }
    }

    /// Creates or updates the ENINode of `node` (server-side apply of the controller's spec,
    /// owned by the Node `uid`, so that the API server's garbage collector deletes it with
    /// the Node); returns it as the API server has it now.
    pub async fn apply_eninode(
        &self,
        node: &str,
        uid: &str,
        spec: &ENINodeSpec,
    ) -> kube::Result<ENINode> {
        let patch = json!({
            "apiVersion": "networking.k8s.aws/v1alpha1",
            "kind": "ENINode",
            "metadata": {
                "name": node,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}],
            },
            "spec": spec,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        Api::<ENINode>::all(self.client.clone())
            .patch(node, &params, &Patch::Apply(patch))
            .await
    }

    /// Deletes the ENINode of `node` (gone already is fine).
    pub async fn delete_eninode(&self, node: &str) -> kube::Result<()> {
        match Api::<ENINode>::all(self.client.clone())
            .delete(node, &DeleteParams::default())
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            other => other.map(drop),
        }
    }

    pub async fn event_for_step(&self, cluster: &Mutex<Cluster>, action: &Action, step: &Step) {
        let (reason, note) = match step {
            Step::Created { eni_id } => ("Created", format!("created {eni_id}")),
            Step::Attached {
                eni_id,
                instance,
                device_index,
            } => (
                "Attached",
                format!("attached {eni_id} to {instance} at device index {device_index}"),
            ),
            // Part of attaching (DeleteOnTermination) or a repair: no event of its own.
            Step::Modified { .. } => return,
            Step::AddressesAssigned {
                eni_id,
                private_ips,
                ipv4_prefixes,
            } => (
                "AddressesAssigned",
                format!(
                    "assigned {private_ips} secondary private addresses and {ipv4_prefixes} prefixes to {eni_id}"
                ),
            ),
            Step::Adopted { eni_id } => (
                "Adopted",
                format!("adopted {eni_id}, made by aws-multi-eni-controller"),
            ),
            Step::Detached { eni_id } => ("Detached", format!("detaching {eni_id}")),
            Step::Deleted { eni_id } => ("Deleted", format!("deleted {eni_id}")),
        };
        self.publish(cluster, action, EventType::Normal, reason, note)
            .await;
    }

    pub async fn event_for_failure(
        &self,
        cluster: &Mutex<Cluster>,
        action: &Action,
        error: &Ec2Error,
    ) {
        self.publish(
            cluster,
            action,
            EventType::Warning,
            super::reasons::failure_reason(action, error),
            error.to_string(),
        )
        .await;
    }

    async fn publish(
        &self,
        cluster: &Mutex<Cluster>,
        action: &Action,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let reference = {
            let cluster = cluster.lock().expect("cluster");
            cluster
                .nodeenis
                .get(&action.owner().nodeeni)
                .map(|nodeeni| nodeeni.object_ref(&()))
        };
        let Some(reference) = reference else { return };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &reference).await {
            tracing::debug!(%error, "could not publish an event");
        }
    }
}
