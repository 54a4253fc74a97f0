//! What the node agent's benchmarks share: a node's ENINode whose spec already holds the
//! controller's entries, and quantiles of measured latencies.

use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use multi_eni::api::ENINode;
use serde_json::json;

use super::control_plane::ControlPlane;

/// The ENINode of `node` with an attached ENI per MAC, in device-index order, named `b0`,
/// `b1`, … at `mtu`: the entries the controller would write for a NodeENI `nodeeni` with
/// interfaceName `b`.
pub async fn eninode_with_entries(
    plane: &ControlPlane,
    nodeeni: &str,
    node: &str,
    macs: &[String],
    mtu: u32,
) {
    let api: Api<ENINode> = Api::all(plane.client().await);
    let interfaces: Vec<_> = (macs.iter().enumerate())
        .map(|(i, mac)| {
            json!({"nodeENI": nodeeni, "subnetID": format!("subnet-bench{i:03}"), "eniID": format!("eni-{i:017}"),
                   "macAddress": mac, "deviceIndex": i + 1, "state": "Attached",
                   "interfaceName": format!("b{i}"), "mtu": mtu})
        })
        .collect();
    let eninode = json!({"apiVersion": "networking.k8s.aws/v1alpha1", "kind": "ENINode",
                         "metadata": {"name": node}, "spec": {"interfaces": interfaces}});
    let params = PatchParams::apply("bench-controller").force();
    api.patch(node, &params, &Patch::Apply(eninode))
        .await
        .expect("the ENINode");
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
