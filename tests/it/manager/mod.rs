//! The node agent against this machine's kernel (links in throwaway network namespaces) and
//! a real API server: what netlink alone decides, faster than in a VM. The controller is
//! played by the tests: they write its status entries through the API under a field manager
//! of their own. DPDK's PCI side runs against real devices in node VMs (`node_vm`).

mod failures;
mod imds;
mod link_ops;
mod links;
mod once;
mod rbac;
mod status;
mod sysfs;

use std::path::Path;

use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use multi_eni::api::{Attachment, NodeENI};
use multi_eni::manager::netlink;
use multi_eni::manager::{self, AgentConfig, AgentError};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::support::control_plane;
use crate::support::netns::TestNetns;

/// The field manager the tests write the controller's fields under.
const CONTROLLER: &str = "test-controller";

/// A running agent, stopped on drop.
pub struct Agent(JoinHandle<Result<(), AgentError>>);

impl Drop for Agent {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts an agent serving the links of `ns`, with no more rights than
/// manifests/manager-rbac.yaml gives it.
pub async fn start_agent(ns: &TestNetns, config: AgentConfig) -> Agent {
    let client = agent_client().await;
    let (links, events) = netlink::open(Some(&ns.path())).expect("netlink in the namespace");
    Agent(tokio::spawn(manager::run(client, links, events, config)))
}

/// A client acting as the agent's ServiceAccount, bound by the checked-in RBAC manifest.
pub async fn agent_client() -> Client {
    let plane = control_plane::shared();
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/manager-rbac.yaml");
    plane.apply(&rbac);
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info.impersonate =
        Some("system:serviceaccount:kube-system:multi-eni-manager".into());
    Client::try_from(config).unwrap()
}

/// The agent's configuration for a test, its files under `dir`.
pub fn config(node: &str, dir: &Path) -> AgentConfig {
    let mut config = AgentConfig::new(node);
    config.sysfs_root = dir.join("sys");
    config.state_file = dir.join("state/dpdk-state.json");
    config.sriov_config = dir.join("pcidp/config.json");
    config
}

pub async fn nodeenis() -> Api<NodeENI> {
    Api::all(control_plane::shared().client().await)
}

/// Creates a NodeENI with a valid base spec and `extra` fields.
pub async fn create_nodeeni(name: &str, extra: &Value) {
    let mut spec = json!({
        "nodeSelector": {"ng": "multi-eni"},
        "subnetIDs": ["subnet-0000000a", "subnet-0000000b"],
        "securityGroupIDs": ["sg-0123456789abcdef0"],
    });
    for (field, value) in extra.as_object().unwrap() {
        spec[field] = value.clone();
    }
    let object: NodeENI = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap();
    nodeenis()
        .await
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

/// A controller entry: the ENI is attached to `node`.
pub fn attached(node: &str, subnet: &str, mac: &str, device_index: i32) -> Value {
    json!({
        "nodeName": node, "subnetID": subnet, "eniID": format!("eni-{}", &mac[12..].replace(':', "")),
        "attachmentID": "eni-attach-0123", "instanceID": "i-0123456789abcdef0",
        "macAddress": mac, "deviceIndex": device_index, "networkCardIndex": 0, "state": "Attached",
    })
}

/// Writes the controller's entries of a NodeENI (all of them: SSA removes the ones left out).
pub async fn controller_writes(nodeeni: &str, entries: &[Value]) {
    let patch = json!({
        "apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI",
        "status": {"attachments": entries},
    });
    nodeenis()
        .await
        .patch_status(
            nodeeni,
            &PatchParams::apply(CONTROLLER).force(),
            &Patch::Apply(patch),
        )
        .await
        .unwrap();
}

/// The status entry of `node` and `subnet`.
pub async fn entry(nodeeni: &str, node: &str, subnet: &str) -> Option<Attachment> {
    let object = nodeenis().await.get(nodeeni).await.unwrap();
    object
        .status?
        .attachments
        .into_iter()
        .find(|entry| entry.node_name == node && entry.subnet_id == subnet)
}

/// Waits until the entry satisfies `check`.
pub async fn wait_for_entry(
    nodeeni: &str,
    node: &str,
    subnet: &str,
    what: &str,
    check: impl Fn(&Attachment) -> bool,
) -> Attachment {
    let last = std::cell::RefCell::new(None);
    let (last_ref, check) = (&last, &check);
    control_plane::wait_for(what, || async move {
        let found = entry(nodeeni, node, subnet).await;
        let done = found.as_ref().is_some_and(check);
        *last_ref.borrow_mut() = found;
        done
    })
    .await;
    last.into_inner().unwrap()
}
