//! What the agent may do, as the chart sets it up: RBAC (read ENINodes, write their status,
//! nothing on NodeENIs) and the admission policy, against the real API server with real
//! tokens bound to a pod on the node: an agent writes its own node's ENINode status and is
//! refused any other node's, and any spec.

use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use multi_eni::api::ENINode;
use serde_json::json;

use super::{NAMESPACE, SERVICE_ACCOUNT, agent_client, attached, controller_writes};
use crate::support::control_plane::{self, wait_for};

#[tokio::test]
async fn the_agent_may_do_only_what_it_needs() {
    agent_client("rbac-node").await;
    let user = format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}");
    let can = |request: &str| control_plane::shared().can_i(&user, request);
    let eninodes = "eninodes.networking.k8s.aws";
    let nodeenis = "nodeenis.networking.k8s.aws";
    for allowed in [
        format!("get {eninodes}"),
        format!("list {eninodes}"),
        format!("watch {eninodes}"),
        format!("patch {eninodes} --subresource=status"),
        "deletecollection pods -n kube-system".into(),
    ] {
        assert!(can(&allowed), "may not {allowed}");
    }
    for refused in [
        format!("patch {eninodes}"),
        format!("update {eninodes}"),
        format!("create {eninodes}"),
        format!("delete {eninodes}"),
        format!("list {nodeenis}"),
        format!("watch {nodeenis}"),
        format!("patch {nodeenis} --subresource=status"),
        "list pods -n kube-system".into(),
        "delete pods -n kube-system".into(),
        "deletecollection pods -n default".into(),
        "get secrets -n kube-system".into(),
        "list nodes".into(),
    ] {
        assert!(!can(&refused), "may {refused}");
    }
}

/// The agent's status write to `node`'s ENINode, through `client`.
async fn report(client: &Client, node: &str) -> kube::Result<ENINode> {
    let status = json!({
        "apiVersion": "networking.k8s.aws/v1alpha1", "kind": "ENINode",
        "status": {"interfaces": [{"nodeENI": "policy", "subnetID": "subnet-0000000a", "configured": true}]},
    });
    let params = PatchParams::apply("multi-eni-manager").force();
    Api::<ENINode>::all(client.clone())
        .patch_status(node, &params, &Patch::Apply(status))
        .await
}

fn refusal(result: kube::Result<ENINode>) -> String {
    match result {
        Err(kube::Error::Api(status)) => format!("{} {}", status.code, status.message),
        Err(error) => panic!("{error}"),
        Ok(_) => "accepted".into(),
    }
}

#[tokio::test]
async fn an_agent_writes_its_own_nodes_status_and_nothing_else() {
    let (own, other) = ("policy-node-a", "policy-node-b");
    for node in [own, other] {
        controller_writes(
            node,
            &[attached(
                "policy",
                "subnet-0000000a",
                "02:00:00:00:0f:01",
                1,
            )],
        )
        .await;
    }
    let agent = agent_client(own).await;
    report(&agent, own).await.expect("its own node's status");

    // Another node's: refused by the admission policy (once the API server has loaded it).
    let expected = format!("its token is bound to node {own}, not {other}");
    let last = std::cell::RefCell::new(String::new());
    wait_for("the policy to refuse another node's ENINode", || async {
        *last.borrow_mut() = refusal(report(&agent, other).await);
        last.borrow().contains(&expected)
    })
    .await;
    let message = last.into_inner();
    assert!(message.starts_with("403 "), "{message}");
    assert!(
        message.contains("the node agent may write only the ENINode of its own node"),
        "{message}"
    );

    // The spec, even of its own node: refused (RBAC allows the status subresource only).
    let spec = json!({"apiVersion": "networking.k8s.aws/v1alpha1", "kind": "ENINode",
                      "spec": {"interfaces": []}});
    let params = PatchParams::apply("multi-eni-manager").force();
    let written = Api::<ENINode>::all(agent.clone())
        .patch(own, &params, &Patch::Apply(spec))
        .await;
    let message = refusal(written);
    assert!(message.starts_with("403 "), "{message}");

    // The ServiceAccount without a node in its credentials (here: impersonated) is refused
    // even its "own" node.
    let plane = control_plane::shared();
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(format!(
        "system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
    ));
    let impersonated = Client::try_from(config).unwrap();
    let message = refusal(report(&impersonated, own).await);
    assert!(message.contains("its token names no node"), "{message}");
}
