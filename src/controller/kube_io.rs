//! The controller's Kubernetes side: watches that feed the reconciler, finalizers, status
//! writes (server-side apply) and events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::api::{NodeENI, NodeENIStatus};
use crate::ec2::{Error as Ec2Error, ErrorKind};

use super::desired::NodeInfo;
use super::executor::Step;
use super::plan::Action;
use super::reconciler::{Cluster, Reconciler};
use super::status::FIELD_MANAGER;

/// Keeps a NodeENI until its ENIs are gone.
pub const FINALIZER: &str = "multi-eni.k8s.aws/cleanup";

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

    pub async fn ensure_finalizer(&self, nodeeni: &NodeENI) -> kube::Result<()> {
        if nodeeni.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let mut finalizers = nodeeni.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        self.set_finalizers(nodeeni, finalizers).await
    }

    pub async fn remove_finalizer(&self, nodeeni: &NodeENI) -> kube::Result<()> {
        let finalizers: Vec<String> = nodeeni
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        self.set_finalizers(nodeeni, finalizers).await
    }

    /// A merge patch guarded by the resourceVersion, so another writer's finalizer is not lost.
    async fn set_finalizers(&self, nodeeni: &NodeENI, finalizers: Vec<String>) -> kube::Result<()> {
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
            // Changed meanwhile (or gone): the watch brings the new object and another pass.
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => Ok(()),
            other => other.map(drop),
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
            failure_reason(action, error),
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
                .get(nodeeni_of(action))
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

fn nodeeni_of(action: &Action) -> &str {
    match action {
        Action::Create { slot, .. }
        | Action::Attach { slot, .. }
        | Action::SetDeleteOnTermination { slot, .. }
        | Action::SetSourceDestCheck { slot, .. } => &slot.nodeeni,
        Action::Detach { nodeeni, .. } | Action::Delete { nodeeni, .. } => nodeeni,
    }
}

/// The reason of a failed action, for events, status and conditions.
pub fn failure_reason(action: &Action, error: &Ec2Error) -> &'static str {
    match (error.kind, action) {
        (ErrorKind::LimitExceeded, _) => "LimitExceeded",
        (ErrorKind::InvalidInput, _) => "InvalidParameters",
        (ErrorKind::Conflict, Action::Attach { .. } | Action::Create { .. })
            if error.message.contains("device index") =>
        {
            "DeviceIndexInUse"
        }
        (_, Action::Create { .. }) => "CreateFailed",
        (_, Action::Attach { .. }) => "AttachFailed",
        (_, Action::SetDeleteOnTermination { .. } | Action::SetSourceDestCheck { .. }) => {
            "ModifyFailed"
        }
        (_, Action::Detach { .. }) => "DetachFailed",
        (_, Action::Delete { .. }) => "DeleteFailed",
    }
}

/// Feeds NodeENIs into the reconciler; wakes it on spec, deletion, finalizer or node-agent
/// changes (the controller's own status writes alone do not wake it).
pub async fn watch_nodeenis(
    client: Client,
    reconciler: Arc<Reconciler>,
    synced: Arc<tokio::sync::Semaphore>,
) {
    // managedFields are the bulk of a NodeENI with many entries, and of no use here.
    let mut events = watcher(Api::<NodeENI>::all(client), watcher::Config::default())
        .map_ok(|event| event.modify(|nodeeni| nodeeni.metadata.managed_fields = None))
        .boxed();
    let mut initial = BTreeMap::new();
    while let Some(event) = events.next().await {
        let changed = match event {
            Ok(watcher::Event::Init) => {
                initial.clear();
                false
            }
            Ok(watcher::Event::InitApply(nodeeni)) => {
                initial.insert(nodeeni.name_any(), nodeeni);
                false
            }
            Ok(watcher::Event::InitDone) => {
                reconciler.cluster.lock().expect("cluster").nodeenis = std::mem::take(&mut initial);
                synced.add_permits(1);
                true
            }
            Ok(watcher::Event::Apply(nodeeni)) => {
                let mut cluster = reconciler.cluster.lock().expect("cluster");
                let before = cluster.nodeenis.insert(nodeeni.name_any(), nodeeni.clone());
                before.is_none_or(|before| fingerprint(&before) != fingerprint(&nodeeni))
            }
            Ok(watcher::Event::Delete(nodeeni)) => {
                reconciler
                    .cluster
                    .lock()
                    .expect("cluster")
                    .nodeenis
                    .remove(&nodeeni.name_any());
                true
            }
            Err(error) => {
                tracing::warn!(%error, "NodeENI watch failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                false
            }
        };
        if changed {
            reconciler.wake.notify_one();
        }
    }
}

/// What of a NodeENI can change the plan or the status.
fn fingerprint(nodeeni: &NodeENI) -> serde_json::Value {
    let agent: Vec<_> = nodeeni
        .status
        .iter()
        .flat_map(|s| &s.attachments)
        .map(|a| (&a.node_name, &a.subnet_id, a.configured, a.dpdk_bound))
        .collect();
    json!([
        nodeeni.metadata.generation,
        nodeeni.metadata.deletion_timestamp,
        nodeeni.metadata.finalizers,
        agent
    ])
}

/// Feeds Nodes into the reconciler, kept small (name, labels, provider ID, deletion); wakes it
/// only when one of those changes on a node that a NodeENI selects or selected.
pub async fn watch_nodes(
    client: Client,
    reconciler: Arc<Reconciler>,
    synced: Arc<tokio::sync::Semaphore>,
) {
    let mut events = watcher(Api::<Node>::all(client), watcher::Config::default()).boxed();
    let mut initial = BTreeMap::new();
    while let Some(event) = events.next().await {
        let changed = match event {
            Ok(watcher::Event::Init) => {
                initial.clear();
                false
            }
            Ok(watcher::Event::InitApply(node)) => {
                initial.insert(node.name_any(), node_info(&node));
                false
            }
            Ok(watcher::Event::InitDone) => {
                reconciler.cluster.lock().expect("cluster").nodes = std::mem::take(&mut initial);
                synced.add_permits(1);
                true
            }
            Ok(watcher::Event::Apply(node)) => {
                let info = node_info(&node);
                let mut cluster = reconciler.cluster.lock().expect("cluster");
                let before = cluster.nodes.insert(info.name.clone(), info.clone());
                before.as_ref() != Some(&info) && selected(&cluster, before.as_ref(), &info)
            }
            Ok(watcher::Event::Delete(node)) => {
                let mut cluster = reconciler.cluster.lock().expect("cluster");
                let before = cluster.nodes.remove(&node.name_any());
                before.is_some_and(|before| selected(&cluster, None, &before))
            }
            Err(error) => {
                tracing::warn!(%error, "Node watch failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                false
            }
        };
        if changed {
            reconciler.wake.notify_one();
        }
    }
}

fn node_info(node: &Node) -> NodeInfo {
    let provider_id = node
        .spec
        .as_ref()
        .and_then(|spec| spec.provider_id.as_deref());
    NodeInfo::new(
        &node.name_any(),
        node.labels().clone(),
        provider_id,
        node.metadata.deletion_timestamp.is_some(),
    )
}

/// Whether any NodeENI selects the node now or selected it before.
fn selected(cluster: &Cluster, before: Option<&NodeInfo>, after: &NodeInfo) -> bool {
    cluster.nodeenis.values().any(|nodeeni| {
        let selector = &nodeeni.spec.node_selector;
        after.matches(selector) || before.is_some_and(|before| before.matches(selector))
    })
}
