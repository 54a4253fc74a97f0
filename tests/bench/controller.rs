//! `just bench-controller [N]`: N simulated nodes (default 200) with AWS's throttling on; the
//! time to Ready against the throttling bound, EC2 calls per ENI, API-server writes during
//! and after convergence, and the controller's peak RSS and CPU time.

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use support::ec2sim::{SimConfig, Stats};
use support::sim_cluster::{SimCluster, ZONES};

/// The resync period of the run: steady state is watched for two of them.
const RESYNC: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() {
    let nodes: usize = std::env::args()
        .nth(1)
        .map_or(200, |n| n.parse().expect("N: a number of nodes"));
    let config = SimConfig {
        attach_latency_ms: 500,
        detach_latency_ms: 500,
        ..SimConfig::default()
    };
    let mut cluster = SimCluster::start(config).await;
    println!("creating {nodes} nodes and instances");
    let names: Vec<String> = (0..nodes).map(|i| format!("node-{i:04}")).collect();
    for (chunk, start) in names.chunks(50).zip((0..).step_by(50)) {
        let adds = chunk
            .iter()
            .zip(start..)
            .map(|(name, i)| cluster.add_node(name, ZONES[i % 2], "m5.large", &[("ng", "bench")]));
        futures::future::join_all(adds).await;
    }
    let resync = humantime::format_duration(RESYNC).to_string();
    cluster.start_controller(&["--resync-period", &resync, "--transition-poll", "2s"]);
    let pid = cluster.controller_pid().expect("the controller runs");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before = cluster.sim.stats();
    let writes_before = api_writes(&cluster).await;
    let started = Instant::now();
    let subnets: Vec<&String> = cluster.subnets.values().collect();
    let spec = json!({"nodeSelector": {"ng": "bench"}, "subnetIDs": subnets, "securityGroupIDs": [cluster.security_group]});
    cluster.apply_nodeeni("bench", spec).await;
    cluster
        .wait_nodeeni(
            "bench",
            "every node attached",
            Duration::from_mins(30),
            |n| {
                n.status.as_ref().is_some_and(|s| {
                    usize::try_from(s.attached_nodes).ok() == Some(nodes)
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            },
        )
        .await;
    let converged = started.elapsed();
    let during = cluster.sim.stats();
    let writes_during = api_writes(&cluster).await;

    tokio::time::sleep(RESYNC * 2).await;
    let after = cluster.sim.stats();
    let writes_after = api_writes(&cluster).await;
    let (rss_mib, cpu_seconds) = process_usage(pid);
    cluster.kill_controller();

    report_convergence(nodes, converged, &before, &during);
    let describes = |stats: &Stats| -> u64 {
        stats
            .actions
            .iter()
            .filter(|(a, _)| a.starts_with("Describe"))
            .map(|(_, s)| s.calls)
            .sum()
    };
    println!("\nAPI-server writes during convergence:");
    for (what, count) in diff(&writes_before, &writes_during) {
        println!("  {what:<40} {count}");
    }
    let steady_writes: u64 = diff(&writes_during, &writes_after).values().sum();
    #[allow(clippy::cast_precision_loss)]
    let per_resync = (describes(&after) - describes(&during)) as f64 / 2.0;
    println!("\nsteady state, over two resync periods of {resync}:");
    println!("  API-server writes                        {steady_writes} (target 0)");
    println!("  EC2 describe calls per resync            {per_resync:.1} (target <= 2)");
    println!("\ncontroller: peak RSS {rss_mib:.1} MiB, CPU {cpu_seconds:.2} s");
}

fn report_convergence(nodes: usize, converged: Duration, before: &Stats, during: &Stats) {
    #[allow(clippy::cast_precision_loss)]
    let n = nodes as f64;
    // AWS's buckets: Create and Modify 100 then 5/s, Attach 50 then 5/s, one per action.
    let bound = [(100.0, 5.0), (50.0, 5.0), (100.0, 5.0)]
        .iter()
        .map(|(capacity, refill)| ((n - capacity) / refill).max(0.0))
        .fold(0.0, f64::max);
    let seconds = converged.as_secs_f64();
    println!("\n{nodes} nodes, one ENI each, AWS throttling on");
    println!("  time to Ready                            {seconds:.1} s");
    println!("  throttling bound                         {bound:.1} s");
    if bound > 0.0 {
        println!(
            "  ratio                                    {:.2} (target <= 1.15)",
            seconds / bound
        );
    }
    println!("\nEC2 calls per ENI during convergence:");
    let mut total = 0;
    for (action, stats) in &during.actions {
        let calls = stats.calls - before.action(action).calls;
        let throttled = stats.throttled - before.action(action).throttled;
        total += calls;
        #[allow(clippy::cast_precision_loss)]
        let per_eni = calls as f64 / n;
        println!("  {action:<40} {per_eni:.2} ({calls} calls, {throttled} throttled)");
    }
    #[allow(clippy::cast_precision_loss)]
    let total_per_eni = total as f64 / n;
    println!("  {:<40} {total_per_eni:.2} (target <= 3.2)", "all");
}

/// Write requests the API server has served, by resource and verb, from its own metrics.
async fn api_writes(cluster: &SimCluster) -> BTreeMap<String, u64> {
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
        let relevant = ["nodeenis", "events"].contains(&resource);
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

fn diff(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(key, n)| (key.clone(), n - before.get(key).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Peak resident memory (MiB) and CPU time (s) of a process, from /proc.
fn process_usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    (kib / 1024.0, ticks / 100.0)
}
