//! The node agents' share of the API traffic in the controller benchmark, without N agent
//! processes:
//! - a load generator that writes each node's ENINode status as that node's agent would:
//!   the agent's own pure code decides what to write (every attached ENI's interface
//!   configured, the others waiting for their interface) and whether it differs, and the
//!   write is the agent's server-side apply, made as the agent's ServiceAccount with its
//!   node's name (impersonated), so that RBAC and the admission policy judge it;
//! - one agent's watch (its ENINode, by a field selector on the name), made as that agent,
//!   whose bytes, events and object names are counted.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::core::Request;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use multi_eni::api::{AttachmentState, ENINode};
use multi_eni::manager::desired::desired;
use multi_eni::manager::outcome::Outcome;
use multi_eni::manager::report::{differs, reports, status};
use multi_eni::manager::status::FIELD_MANAGER;
use serde_json::json;

/// The agents' ServiceAccount, as the chart names it for a release `multi-eni`.
const AGENT: &str = "system:serviceaccount:kube-system:multi-eni-manager";
/// Writers working at once, each serving its share of the nodes in order.
const WRITERS: usize = 16;

/// What the agents wrote.
#[derive(Default)]
pub struct AgentWrites {
    pub applied: AtomicU64,
    pub refused: AtomicU64,
}

/// Makes an admin request the agent's of `node`, as its bound token would.
fn as_agent(request: &mut http::Request<Vec<u8>>, node: &str) {
    let headers = request.headers_mut();
    headers.insert("Impersonate-User", AGENT.parse().expect("header value"));
    let extra = "Impersonate-Extra-authentication.kubernetes.io%2fnode-name";
    headers.insert(extra, node.parse().expect("a node name"));
}

/// Writes every node's status as its agent would, for as long as it runs.
pub async fn run(client: Client, writes: Arc<AgentWrites>) {
    let senders: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(write_statuses(
                client.clone(),
                receiver,
                Arc::clone(&writes),
            ));
            sender
        })
        .collect();
    let mut events = watcher(Api::<ENINode>::all(client), watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        if let Ok(watcher::Event::Apply(eninode) | watcher::Event::InitApply(eninode)) = event {
            // One node's objects always go to the same writer, in order.
            let shard = eninode.name_any().bytes().map(usize::from).sum::<usize>() % WRITERS;
            let _ = senders[shard].send(eninode);
        }
    }
}

async fn write_statuses(
    client: Client,
    mut eninodes: tokio::sync::mpsc::UnboundedReceiver<ENINode>,
    writes: Arc<AgentWrites>,
) {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    while let Some(eninode) = eninodes.recv().await {
        let Some(status) = agent_status(&eninode) else {
            continue;
        };
        let node = eninode.name_any();
        let patch = json!({"apiVersion": "networking.k8s.aws/v1alpha1", "kind": "ENINode", "status": status});
        let mut request = Request::new(ENINode::url_path(&(), None))
            .patch_subresource("status", &node, &params, &Patch::Apply(patch))
            .expect("a request");
        as_agent(&mut request, &node);
        match client.request_text(request).await {
            Ok(_) => writes.applied.fetch_add(1, Ordering::Relaxed),
            Err(error) => {
                eprintln!("agent of {node}: {error}");
                writes.refused.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// The status the node's agent would write now, if it differs from what is there.
fn agent_status(eninode: &ENINode) -> Option<multi_eni::api::ENINodeStatus> {
    let desired = desired(Some(eninode));
    let outcomes: Vec<Outcome> = desired
        .serve
        .iter()
        .map(|wanted| {
            let attached = eninode.spec.interfaces.iter().any(|entry| {
                entry.node_eni == wanted.key.nodeeni
                    && entry.subnet_id == wanted.key.subnet_id
                    && entry.state == AttachmentState::Attached
            });
            if !attached {
                return Outcome::waiting(wanted);
            }
            let mut outcome = Outcome::serving(wanted);
            outcome.interface = Some(wanted.name.clone().unwrap_or_else(|| "ens6".into()));
            outcome.mtu = Some(wanted.mtu.unwrap_or(1500));
            outcome
        })
        .collect();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let current = eninode.status.as_ref();
    let wanted = status(
        reports(&desired, &outcomes, &std::collections::BTreeMap::new()),
        eninode.metadata.generation,
        current,
        now,
    );
    differs(current, &wanted).then_some(wanted)
}

/// What one watch received.
#[derive(Default)]
pub struct WatchCount {
    pub bytes: AtomicU64,
    pub events: AtomicU64,
    /// The objects named in the list and the events.
    pub names: Mutex<BTreeSet<String>>,
}

/// Lists, then watches the objects at `path` (e.g. `…/eninodes?fieldSelector=…`) as the
/// agent of `node` would, counting what comes back, until the watch ends (an hour).
pub async fn count_watch(
    client: Client,
    path: String,
    node: Option<String>,
    count: Arc<WatchCount>,
) {
    let separator = if path.contains('?') { '&' } else { '?' };
    let get = |uri: String| {
        let mut request = http::Request::get(uri).body(Vec::new()).expect("request");
        if let Some(node) = &node {
            as_agent(&mut request, node);
        }
        request
    };
    let list = client
        .request_text(get(path.clone()))
        .await
        .expect("the list");
    count.bytes.fetch_add(list.len() as u64, Ordering::Relaxed);
    let list: serde_json::Value = serde_json::from_str(&list).expect("JSON");
    let version = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    for item in list["items"].as_array().into_iter().flatten() {
        note_name(&count, &item["metadata"]["name"]);
    }
    let watch = format!(
        "{path}{separator}watch=true&resourceVersion={version}&allowWatchBookmarks=true&timeoutSeconds=3600"
    );
    let stream = client.request_stream(get(watch)).await.expect("the watch");
    let mut lines = stream.lines();
    while let Some(Ok(line)) = lines.next().await {
        count
            .bytes
            .fetch_add(line.len() as u64 + 1, Ordering::Relaxed);
        count.events.fetch_add(1, Ordering::Relaxed);
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if event["type"] != "BOOKMARK" {
            note_name(&count, &event["object"]["metadata"]["name"]);
        }
    }
}

fn note_name(count: &WatchCount, name: &serde_json::Value) {
    if let Some(name) = name.as_str() {
        count.names.lock().expect("names").insert(name.to_owned());
    }
}
