//! What the node agent's benchmarks share: a NodeENI whose status already holds the
//! controller's entries for one node, and quantiles of measured latencies.

use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use multi_eni::api::NodeENI;
use serde_json::json;

use super::control_plane::ControlPlane;

/// NodeENI `name` (interfaceName `b`, `mtu`) with an attached ENI for `node` per MAC, in
/// device-index order: the entries the controller would write, so the agent names the
/// links `b0`, `b1`, … in that order.
pub async fn nodeeni_with_entries(
    plane: &ControlPlane,
    name: &str,
    node: &str,
    macs: &[String],
    mtu: u32,
) {
    let api: Api<NodeENI> = Api::all(plane.client().await);
    let nodeeni: NodeENI = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI", "metadata": {"name": name},
        "spec": {"nodeSelector": {"ng": "bench"}, "subnetIDs": ["subnet-00000001", "subnet-00000002"],
                 "securityGroupIDs": ["sg-00000001"], "interfaceName": "b", "mtu": mtu},
    }))
    .expect("a NodeENI");
    api.create(&PostParams::default(), &nodeeni)
        .await
        .expect("create");
    let entries: Vec<_> = (macs.iter().enumerate())
        .map(|(i, mac)| {
            json!({"nodeName": node, "subnetID": format!("subnet-bench{i:03}"), "eniID": format!("eni-{i:017}"),
                   "macAddress": mac, "deviceIndex": i + 1, "state": "Attached"})
        })
        .collect();
    let patch = json!({"apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI", "status": {"attachments": entries}});
    let params = PatchParams::apply("bench-controller").force();
    api.patch_status(name, &params, &Patch::Apply(patch))
        .await
        .expect("status");
}

/// The `q` quantile (0 to 1) of sorted latencies, by the nearest-rank method.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds, for printing.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
