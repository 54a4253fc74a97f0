//! The controller's Kubernetes side: watches that feed the reconciler, finalizers, status
//! writes (server-side apply) and events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::api::{NodeENI, NodeENIStatus};
use crate::ec2::Error as Ec2Error;

use super::desired::NodeInfo;
use super::executor::Step;
use super::plan::Action;
use super::reconciler::{Cluster, Reconciler};
use super::status::FIELD_MANAGER;

/// Keeps a NodeENI until its ENIs are gone.
pub const FINALIZER: &str = "multi-eni.k8s.aws/cleanup";

/// aws-multi-eni-controller's finalizer: with `--adopt-predecessor-enis` it is replaced by
/// ours (in one patch), and removed with ours from a NodeENI being deleted.
pub const PREDECESSOR_FINALIZER: &str = "nodeeni.networking.k8s.aws/finalizer";

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

/// What a watch keeps of its objects in the reconciler's [`Cluster`], by name, and which
/// changes wake the reconciler.
pub trait Kept:
    Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static
{
    type Value;
    fn keep(self) -> Self::Value;
    fn map(cluster: &mut Cluster) -> &mut BTreeMap<String, Self::Value>;
    fn map_ref(cluster: &Cluster) -> &BTreeMap<String, Self::Value>;
    /// Whether `before` becoming `after` (`None`: absent) can change a plan or a status.
    fn matters(
        cluster: &Cluster,
        before: Option<&Self::Value>,
        after: Option<&Self::Value>,
    ) -> bool;
}

/// NodeENIs wake the reconciler on spec, deletion, finalizer or node-agent changes (the
/// controller's own status writes alone do not). managedFields, the bulk of a NodeENI with
/// many entries, are dropped.
impl Kept for NodeENI {
    type Value = NodeENI;

    fn keep(mut self) -> NodeENI {
        self.metadata.managed_fields = None;
        self
    }

    fn map(cluster: &mut Cluster) -> &mut BTreeMap<String, NodeENI> {
        &mut cluster.nodeenis
    }

    fn map_ref(cluster: &Cluster) -> &BTreeMap<String, NodeENI> {
        &cluster.nodeenis
    }

    fn matters(_: &Cluster, before: Option<&NodeENI>, after: Option<&NodeENI>) -> bool {
        before.map(fingerprint) != after.map(fingerprint)
    }
}

/// Nodes are kept small (name, labels, provider ID, deletion) and wake the reconciler only
/// when one of those changes on a node that a NodeENI selects or selected.
impl Kept for Node {
    type Value = NodeInfo;

    fn keep(self) -> NodeInfo {
        node_info(&self)
    }

    fn map(cluster: &mut Cluster) -> &mut BTreeMap<String, NodeInfo> {
        &mut cluster.nodes
    }

    fn map_ref(cluster: &Cluster) -> &BTreeMap<String, NodeInfo> {
        &cluster.nodes
    }

    fn matters(cluster: &Cluster, before: Option<&NodeInfo>, after: Option<&NodeInfo>) -> bool {
        before != after
            && cluster.nodeenis.values().any(|nodeeni| {
                let selector = &nodeeni.spec.node_selector;
                before
                    .into_iter()
                    .chain(after)
                    .any(|node| node.matches(selector))
            })
    }
}

/// Feeds the objects of kind `K` into the reconciler; adds a permit to `synced` when the
/// first list is complete.
pub async fn watch<K: Kept>(
    client: Client,
    reconciler: Arc<Reconciler>,
    synced: Arc<tokio::sync::Semaphore>,
) {
    let mut events = watcher(Api::<K>::all(client), watcher::Config::default()).boxed();
    let mut initial = BTreeMap::new();
    while let Some(event) = events.next().await {
        let changed = match event {
            Ok(watcher::Event::Init) => {
                initial.clear();
                false
            }
            Ok(watcher::Event::InitApply(object)) => {
                initial.insert(object.name_any(), object.keep());
                false
            }
            Ok(watcher::Event::InitDone) => {
                *K::map(&mut reconciler.cluster.lock().expect("cluster")) =
                    std::mem::take(&mut initial);
                synced.add_permits(1);
                true
            }
            Ok(watcher::Event::Apply(object)) => {
                let (name, value) = (object.name_any(), object.keep());
                let mut cluster = reconciler.cluster.lock().expect("cluster");
                let before = K::map(&mut cluster).insert(name.clone(), value);
                K::matters(&cluster, before.as_ref(), K::map_ref(&cluster).get(&name))
            }
            Ok(watcher::Event::Delete(object)) => {
                let mut cluster = reconciler.cluster.lock().expect("cluster");
                let before = K::map(&mut cluster).remove(&object.name_any());
                K::matters(&cluster, before.as_ref(), None)
            }
            Err(error) => {
                tracing::warn!(%error, kind = K::kind(&()).as_ref(), "watch failed; retrying");
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
