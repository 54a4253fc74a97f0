//! The agent's RBAC (manifests/manager-rbac.yaml) allows what it needs and nothing more;
//! every agent test runs under it.

use super::agent_client;
use crate::support::control_plane;

#[tokio::test]
async fn the_agent_may_do_only_what_it_needs() {
    agent_client().await;
    let can = |verb: &str, resource: &str, namespace: &str| {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let output = control_plane::shared()
            .kubectl()
            .args(["auth", "can-i", verb, resource, "-n", namespace])
            .arg(format!("--subresource={subresource}"))
            .args([
                "--as",
                "system:serviceaccount:kube-system:multi-eni-manager",
            ])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim() == "yes"
    };
    assert!(can("watch", "nodeenis.networking.k8s.aws", "default"));
    assert!(can(
        "patch",
        "nodeenis.networking.k8s.aws/status",
        "default"
    ));
    assert!(can("deletecollection", "pods", "kube-system"));
    for (verb, resource, namespace) in [
        ("update", "nodeenis.networking.k8s.aws", "default"),
        ("patch", "nodeenis.networking.k8s.aws", "default"),
        ("delete", "nodeenis.networking.k8s.aws", "default"),
        ("list", "pods", "kube-system"),
        ("delete", "pods", "kube-system"),
        ("deletecollection", "pods", "default"),
        ("get", "secrets", "kube-system"),
        ("list", "nodes", "default"),
    ] {
        assert!(
            !can(verb, resource, namespace),
            "may {verb} {resource} in {namespace}"
        );
    }
}
