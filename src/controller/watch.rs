//! The watches that feed the reconciler: what each keeps of its objects in the reconciler's
//! [`Cluster`], and which changes wake it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::api::{ENINode, NodeENI};

use super::desired::NodeInfo;
use super::eninode::Observed;
use super::reconciler::{Cluster, Reconciler};

/// What a watch keeps of its objects in the reconciler's [`Cluster`], by name, and which
/// changes wake the reconciler.
pub trait Kept:
    Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static
{
    type Value;
    fn keep(self) -> Self::Value;
    /// What to keep when `after` (from a watch event) replaces `before`: `after` unless the
    /// kind says otherwise.
    fn merge(before: Option<&Self::Value>, after: Self::Value) -> Self::Value {
        let _ = before;
        after
    }
    fn map(cluster: &mut Cluster) -> &mut BTreeMap<String, Self::Value>;
    fn map_ref(cluster: &Cluster) -> &BTreeMap<String, Self::Value>;
    /// Whether `before` becoming `after` (`None`: absent) can change a plan or a status.
    fn matters(
        cluster: &Cluster,
        before: Option<&Self::Value>,
        after: Option<&Self::Value>,
    ) -> bool;
}

/// NodeENIs wake the reconciler on spec, deletion or finalizer changes (the controller's own
/// status writes do not). managedFields are dropped.
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

/// Nodes are kept small (name, UID, labels, provider ID, deletion) and wake the reconciler
/// only when one of those changes on a node that a NodeENI selects or selected.
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

/// ENINodes are kept as the controller's spec, owner and the agent's reports; they wake the
/// reconciler when an agent's report changes (`configured`, `message`, `dpdkBound`, the
/// interface name) or when one is deleted (to be written again if still wanted), not when
/// the controller's own writes come back.
impl Kept for ENINode {
    type Value = Observed;

    fn keep(self) -> Observed {
        Observed::new(self)
    }

    fn merge(before: Option<&Observed>, after: Observed) -> Observed {
        after.replacing(before, true)
    }

    fn map(cluster: &mut Cluster) -> &mut BTreeMap<String, Observed> {
        &mut cluster.eninodes
    }

    fn map_ref(cluster: &Cluster) -> &BTreeMap<String, Observed> {
        &cluster.eninodes
    }

    fn matters(_: &Cluster, before: Option<&Observed>, after: Option<&Observed>) -> bool {
        match (before, after) {
            (Some(before), Some(after)) => before.agent != after.agent,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Puts `object`, from a watch event, into the cluster; whether the change matters.
fn observe<K: Kept>(cluster: &Mutex<Cluster>, object: K) -> bool {
    let (name, value) = (object.name_any(), object.keep());
    let mut cluster = cluster.lock().expect("cluster");
    let before = K::map(&mut cluster).remove(&name);
    let after = K::merge(before.as_ref(), value);
    K::map(&mut cluster).insert(name.clone(), after);
    K::matters(&cluster, before.as_ref(), K::map_ref(&cluster).get(&name))
}

/// Removes the object `name` of kind `K` from the cluster; whether that matters.
fn forget<K: Kept>(cluster: &Mutex<Cluster>, name: &str) -> bool {
    let mut cluster = cluster.lock().expect("cluster");
    let before = K::map(&mut cluster).remove(name);
    K::matters(&cluster, before.as_ref(), None)
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
            Ok(watcher::Event::Apply(object)) => observe(&reconciler.cluster, object),
            Ok(watcher::Event::Delete(object)) => {
                forget::<K>(&reconciler.cluster, &object.name_any())
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
    json!([
        nodeeni.metadata.generation,
        nodeeni.metadata.deletion_timestamp,
        nodeeni.metadata.finalizers,
    ])
}

fn node_info(node: &Node) -> NodeInfo {
    let provider_id = node
        .spec
        .as_ref()
        .and_then(|spec| spec.provider_id.as_deref());
    let mut info = NodeInfo::new(
        &node.name_any(),
        node.labels().clone(),
        provider_id,
        node.metadata.deletion_timestamp.is_some(),
    );
    info.uid = node.uid().unwrap_or_default();
    info
}
