//! What the benchmark reads of the API server: the writes it served, by resource and verb
//! (from its own metrics), and the size of the objects as `kubectl get -o json` prints them.

use std::collections::BTreeMap;

use support::sim_cluster::SimCluster;

use crate::support;

/// Write requests the API server has served, by verb and resource, from its own metrics.
pub async fn api_writes(cluster: &SimCluster) -> BTreeMap<String, u64> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = cluster
        .client
        .request_text(request)
        .await
        .expect("kube-apiserver metrics");
    let mut writes = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |name: &str| {
            line.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
        };
        let (resource, subresource, verb) =
            (label("resource"), label("subresource"), label("verb"));
        // Leases are left out: the API server renews its own, and the run has no election.
        let relevant = ["nodeenis", "eninodes", "events"].contains(&resource);
        if relevant && ["POST", "PUT", "PATCH", "APPLY", "DELETE"].contains(&verb) {
            let count: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            let key = format!(
                "{verb} {resource}{}{subresource}",
                if subresource.is_empty() { "" } else { "/" }
            );
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let count = count as u64;
            *writes.entry(key).or_default() += count;
        }
    }
    writes
}

pub fn diff(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(key, n)| (key.clone(), n - before.get(key).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Bytes of `kubectl get <kind> <name> -o json`, without and with `--show-managed-fields`.
fn kubectl_size(cluster: &SimCluster, kind: &str, name: &str) -> (usize, usize) {
    let size = |extra: &[&str]| {
        let output = cluster
            .plane
            .kubectl()
            .args(["get", kind, name, "-o", "json"])
            .args(extra)
            .output()
            .expect("kubectl");
        assert!(output.status.success(), "kubectl get {kind} {name}");
        output.stdout.len()
    };
    (size(&[]), size(&["--show-managed-fields"]))
}

/// Prints the size of the NodeENI and of the largest ENINode (by its JSON with
/// managedFields, as etcd holds it), as kubectl prints them.
pub async fn report_sizes(cluster: &SimCluster, nodeeni: &str) {
    let request = http::Request::get("/apis/networking.k8s.aws/v1alpha1/eninodes")
        .body(Vec::new())
        .expect("request");
    let list = cluster.client.request_text(request).await.expect("list");
    let list: serde_json::Value = serde_json::from_str(&list).expect("JSON");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let largest = items
        .iter()
        .max_by_key(|item| serde_json::to_vec(item).map_or(0, |json| json.len()))
        .and_then(|item| item["metadata"]["name"].as_str());
    println!("\nobject sizes, as `kubectl get -o json` prints them (with --show-managed-fields):");
    let (plain, managed) = kubectl_size(cluster, "nodeeni", nodeeni);
    println!(
        "  NodeENI {nodeeni:<32} {} ({}) (target < 64 KiB)",
        kib(plain),
        kib(managed)
    );
    if let Some(name) = largest {
        let (plain, managed) = kubectl_size(cluster, "eninode", name);
        println!(
            "  largest of {} ENINodes: {name:<16} {} ({}) (target < 256 KiB)",
            items.len(),
            kib(plain),
            kib(managed)
        );
    }
}

#[allow(clippy::cast_precision_loss)]
pub fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}
