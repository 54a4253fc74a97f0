//! The node agent against this machine's kernel (links in throwaway network namespaces) and
//! a real API server: what netlink alone decides, faster than in a VM. The controller is
//! played by the tests: they write each node's ENINode spec through the API under a field
//! manager of their own. The agents run as the chart's ServiceAccount, with its RBAC and
//! admission policy, each with a token bound to a pod on its node, as the kubelet gives one.
//! DPDK's PCI side runs against real devices in node VMs (`node_vm`).

mod endpoint;
mod failures;
mod imds;
mod link_ops;
mod links;
mod once;
mod pod_network;
mod policy;
mod status;
mod sysfs;

use std::path::Path;
use std::sync::OnceLock;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use multi_eni::api::{ENINode, InterfaceStatus};
use multi_eni::manager::netlink;
use multi_eni::manager::{self, AgentConfig, AgentError};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::support::control_plane;
use crate::support::netns::TestNetns;

/// The field manager the tests write the controller's fields under.
const CONTROLLER: &str = "test-controller";
/// The agent's ServiceAccount, as the chart names it for a release `multi-eni`.
const NAMESPACE: &str = "kube-system";
const SERVICE_ACCOUNT: &str = "multi-eni-manager";

/// A running agent, stopped on drop.
pub struct Agent(JoinHandle<Result<(), AgentError>>);

impl Drop for Agent {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts an agent serving the links of `ns` as the agent of `config.node_name`.
pub async fn start_agent(ns: &TestNetns, config: AgentConfig) -> Agent {
    let client = agent_client(&config.node_name).await;
    let (links, events) = netlink::open(Some(&ns.path())).expect("netlink in the namespace");
    Agent(tokio::spawn(manager::run(client, links, events, config)))
}

/// The agent's rights, as the chart sets them up, installed once.
fn install_agent_rights() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| control_plane::shared().install_agent_rights());
}

/// A client with the agent's token as the kubelet gives it to the agent's pod on `node`: a
/// ServiceAccount token bound to that pod (the Node and the Pod are created if missing; no
/// kubelet runs them). The API server puts the node's name in the user's extra info.
pub async fn agent_client(node: &str) -> Client {
    install_agent_rights();
    let admin = control_plane::shared().client().await;
    let node_object: Node = serde_json::from_value(json!({"metadata": {"name": node}})).unwrap();
    created(
        Api::<Node>::all(admin.clone())
            .create(&PostParams::default(), &node_object)
            .await,
    );
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let name = format!("multi-eni-manager-{node}");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "serviceAccountName": SERVICE_ACCOUNT,
                 "containers": [{"name": "agent", "image": "multi-eni"}]},
    }))
    .unwrap();
    created(pods.create(&PostParams::default(), &pod).await);
    let uid = pods.get(&name).await.unwrap().metadata.uid;
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": 3600,
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}},
    }))
    .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(admin, NAMESPACE);
    let token: TokenRequest = accounts
        .create_subresource("token", SERVICE_ACCOUNT, &PostParams::default(), &request)
        .await
        .unwrap();
    let plane = control_plane::shared();
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info = AuthInfo {
        token: Some(token.status.unwrap().token.unwrap().into()),
        ..AuthInfo::default()
    };
    Client::try_from(config).unwrap()
}

/// Created, or there already.
fn created<T>(result: kube::Result<T>) {
    match result {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("{error}"),
    }
}

/// The agent's configuration for a test, its files under `dir`.
pub fn config(node: &str, dir: &Path) -> AgentConfig {
    let mut config = AgentConfig::new(node);
    config.sysfs_root = dir.join("sys");
    config.state_file = dir.join("state/dpdk-state.json");
    config.sriov_config = dir.join("pcidp/config.json");
    config.cni_conf_dir = dir.join("multus/net.d");
    config
}

pub async fn eninodes() -> Api<ENINode> {
    Api::all(control_plane::shared().client().await)
}

/// A controller entry: the ENI is attached, at `device_index`.
pub fn attached(nodeeni: &str, subnet: &str, mac: &str, device_index: i32) -> Value {
    json!({
        "nodeENI": nodeeni, "subnetID": subnet, "eniID": format!("eni-{}", &mac[12..].replace(':', "")),
        "attachmentID": "eni-attach-0123", "macAddress": mac, "deviceIndex": device_index,
        "networkCardIndex": 0, "state": "Attached",
    })
}

/// `entry` with `fields` (interface settings such as `interfaceName`, `mtu`, `enableDPDK`).
pub fn with(mut entry: Value, fields: &Value) -> Value {
    for (field, value) in fields.as_object().unwrap() {
        entry[field] = value.clone();
    }
    entry
}

/// Writes the spec of `node`'s ENINode as the controller would (all its entries).
pub async fn controller_writes(node: &str, entries: &[Value]) {
    let patch = json!({
        "apiVersion": "networking.k8s.aws/v1alpha1", "kind": "ENINode",
        "metadata": {"name": node},
        "spec": {"instanceID": "i-0123456789abcdef0", "interfaces": entries},
    });
    eninodes()
        .await
        .patch(
            node,
            &PatchParams::apply(CONTROLLER).force(),
            &Patch::Apply(patch),
        )
        .await
        .unwrap();
}

/// The agent's status entry of `nodeeni` and `subnet` on `node`.
pub async fn entry(nodeeni: &str, node: &str, subnet: &str) -> Option<InterfaceStatus> {
    let object = eninodes().await.get(node).await.unwrap();
    object
        .status?
        .interfaces
        .into_iter()
        .find(|entry| entry.node_eni == nodeeni && entry.subnet_id == subnet)
}

/// Waits until the entry satisfies `check`.
pub async fn wait_for_entry(
    nodeeni: &str,
    node: &str,
    subnet: &str,
    what: &str,
    check: impl Fn(&InterfaceStatus) -> bool,
) -> InterfaceStatus {
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
