//! Makes the running SR-IOV device plugin reload its config.
//!
//! The plugin reads its config file once, at start, so the agent restarts it: it deletes
//! the plugin's pod on this node (its DaemonSet creates a new one, which reads the new
//! file). One request, `deletecollection` of pods in the plugin's namespace with the
//! plugin's label selector and `spec.nodeName=<node>`: the only permission it needs is that
//! verb on pods in that one namespace.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};

/// The plugin's pods: where they run and how they are labelled.
#[derive(Clone, Debug)]
pub struct PluginPods {
    pub namespace: String,
    pub selector: String,
}

/// The plugin could not be restarted.
#[derive(Debug, thiserror::Error)]
#[error(
    "restarting the SR-IOV device plugin (pods {selector} in namespace {namespace}) so it reads its new config: {source}"
)]
pub struct PluginError {
    namespace: String,
    selector: String,
    source: kube::Error,
}

impl PluginError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        "plugin_restart"
    }
}

/// Deletes the plugin's pods on `node`; returns how many there were.
pub async fn restart(
    client: kube::Client,
    pods: &PluginPods,
    node: &str,
) -> Result<usize, PluginError> {
    let api: Api<Pod> = Api::namespaced(client, &pods.namespace);
    let selection = ListParams::default()
        .labels(&pods.selector)
        .fields(&format!("spec.nodeName={node}"));
    let deleted = api
        .delete_collection(&DeleteParams::default(), &selection)
        .await
        .map_err(|source| PluginError {
            namespace: pods.namespace.clone(),
            selector: pods.selector.clone(),
            source,
        })?;
    Ok(deleted.left().map_or(0, |list| list.items.len()))
}
