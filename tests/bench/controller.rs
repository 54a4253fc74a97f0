//! `just bench-controller [N]`: N simulated nodes (default 200) with AWS's throttling on; the
//! time to Ready against the throttling bound, EC2 calls per ENI, API-server writes during
//! and after convergence, the controller's peak RSS and CPU time, and the objects: the size
//! of the NodeENI and of the largest ENINode, and what one node agent's watch received.
//! The node agents' writes are made too (see [`agents`]), so that every writer and reader
//! production has is in the figures.
//!
//! `just bench-objects [N]` (`--objects`): the same with the simulator's throttling off; the
//! controller still keeps to AWS's published rates (`--ec2-budget 1`).
//!
//! `--addresses K`: the NodeENI asks for K secondary private addresses per ENI and a pod
//! network (in the same CreateNetworkInterface: the calls per ENI should not change); the run
//! checks that every ENI and its ENINode entry have them.

#[path = "../support/mod.rs"]
mod support;

mod agents;
mod objects;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use support::ec2sim::{SimConfig, Stats};
use support::sim_cluster::{SimCluster, ZONES};

use agents::{AgentWrites, WatchCount};
use objects::{api_writes, diff};

/// The resync period of the run: steady state is watched for two of them.
const RESYNC: Duration = Duration::from_secs(15);
/// The node whose agent's watch is counted.
const WATCHED_NODE: &str = "node-0000";

#[tokio::main]
async fn main() {
    let Args {
        nodes,
        objects_only,
        addresses,
    } = Args::parse();
    let mut config = SimConfig {
        attach_latency_ms: 500,
        detach_latency_ms: 500,
        ..SimConfig::default()
    };
    config.throttle.enabled = !objects_only;
    let mut cluster = SimCluster::start(config).await;
    cluster.plane.install_agent_rights();
    create_nodes(&cluster, nodes).await;
    let resync = humantime::format_duration(RESYNC).to_string();
    let mut flags = vec!["--resync-period", &resync, "--transition-poll", "2s"];
    if objects_only {
        flags.extend(["--ec2-budget", "1"]);
    }
    cluster.start_controller(&flags);
    let pid = cluster.controller_pid().expect("the controller runs");
    let agent_writes = Arc::new(AgentWrites::default());
    tokio::spawn(agents::run(
        cluster.client.clone(),
        Arc::clone(&agent_writes),
    ));
    let watches = start_watches(&cluster);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before = cluster.sim.stats();
    let writes_before = api_writes(&cluster).await;
    let started = Instant::now();
    let subnets: Vec<&String> = cluster.subnets.values().collect();
    let spec = bench_spec(&subnets, &cluster.security_group, addresses);
    cluster.apply_nodeeni("bench", spec).await;
    let count = |n: i32| usize::try_from(n).ok() == Some(nodes);
    cluster
        .wait_nodeeni(
            "bench",
            "every node attached",
            Duration::from_mins(30),
            |n| {
                n.status.as_ref().is_some_and(|s| {
                    count(s.attached_nodes)
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            },
        )
        .await;
    let converged = started.elapsed();
    let during = cluster.sim.stats();
    cluster
        .wait_nodeeni(
            "bench",
            "every interface configured",
            Duration::from_mins(5),
            |n| n.status.as_ref().is_some_and(|s| count(s.configured_nodes)),
        )
        .await;
    let configured = started.elapsed();
    let writes_during = api_writes(&cluster).await;

    tokio::time::sleep(RESYNC * 2).await;
    let after = cluster.sim.stats();
    let writes_after = api_writes(&cluster).await;
    let (rss_mib, cpu_seconds) = process_usage(pid);

    report_convergence(nodes, !objects_only, converged, &before, &during);
    if addresses > 0 {
        report_addresses(&cluster, addresses).await;
    }
    println!(
        "  every interface configured (agents' reports in) {:.1} s",
        configured.as_secs_f64()
    );
    let describes = |stats: &Stats| -> u64 {
        stats
            .actions
            .iter()
            .filter(|(a, _)| a.starts_with("Describe"))
            .map(|(_, s)| s.calls)
            .sum()
    };
    println!("\nAPI-server writes until every interface was configured (controller and agents):");
    for (what, count) in diff(&writes_before, &writes_during) {
        println!("  {what:<40} {count}");
    }
    let refused = agent_writes.refused.load(Ordering::Relaxed);
    println!("  agents' status writes refused           {refused} (target 0)");
    let steady_writes: u64 = diff(&writes_during, &writes_after).values().sum();
    #[allow(clippy::cast_precision_loss)]
    let per_resync = (describes(&after) - describes(&during)) as f64 / 2.0;
    report_steady_state(&resync, steady_writes, per_resync, nodes);
    println!("\ncontroller: peak RSS {rss_mib:.1} MiB, CPU {cpu_seconds:.2} s");
    objects::report_sizes(&cluster, "bench").await;
    report_watches(&watches);
    cluster.kill_controller();
}

/// What the controller did over two resyncs once everything was configured.
fn report_steady_state(resync: &str, writes: u64, describes_per_resync: f64, nodes: usize) {
    println!("\nsteady state, over two resync periods of {resync}:");
    println!("  API-server writes                        {writes} (target 0)");
    println!("  EC2 describe calls per resync            {describes_per_resync:.1} (target <= 2)");
    // One listing of N ENIs takes ceil(N / 1000) calls: 1000 is DescribeNetworkInterfaces'
    // largest page (MaxResults).
    let pages = nodes.div_ceil(1000);
    #[allow(clippy::cast_precision_loss)]
    let listings = describes_per_resync / pages as f64;
    println!(
        "    listings of every ENI per resync       {listings:.1} ({pages} pages of at most 1000 each)"
    );
}

/// The command line: N, `--objects`, `--addresses K`.
struct Args {
    nodes: usize,
    objects_only: bool,
    addresses: i32,
}

impl Args {
    fn parse() -> Args {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let addresses = args
            .iter()
            .position(|arg| arg == "--addresses")
            .map_or(0, |i| {
                args.get(i + 1)
                    .and_then(|k| k.parse().ok())
                    .expect("--addresses K: a number of addresses per ENI")
            });
        // N comes first, before the flags.
        let nodes = args
            .first()
            .filter(|arg| !arg.starts_with("--"))
            .map_or(200, |n| n.parse().expect("N: a number of nodes"));
        Args {
            nodes,
            objects_only: args.iter().any(|arg| arg == "--objects"),
            addresses,
        }
    }
}

/// The benchmark's NodeENI: every node, every subnet; with `addresses`, that many secondary
/// addresses per ENI and a pod network.
fn bench_spec(subnets: &[&String], security_group: &str, addresses: i32) -> serde_json::Value {
    let mut spec = json!({"nodeSelector": {"ng": "bench"}, "subnetIDs": subnets, "securityGroupIDs": [security_group]});
    if addresses > 0 {
        spec["secondaryPrivateIPAddressCount"] = json!(addresses);
        spec["podNetwork"] = json!({"name": "bench", "namespaces": ["default"]});
    }
    spec
}

/// `nodes` Nodes labelled for the benchmark, each with an instance, in both zones.
async fn create_nodes(cluster: &SimCluster, nodes: usize) {
    println!("creating {nodes} nodes and instances");
    let names: Vec<String> = (0..nodes).map(|i| format!("node-{i:04}")).collect();
    for (chunk, start) in names.chunks(50).zip((0..).step_by(50)) {
        let adds = chunk
            .iter()
            .zip(start..)
            .map(|(name, i)| cluster.add_node(name, ZONES[i % 2], "m5.large", &[("ng", "bench")]));
        futures::future::join_all(adds).await;
    }
}

/// One agent's watch of its ENINode, and a watch of the NodeENIs for comparison (what every
/// agent received when each watched them all).
fn start_watches(cluster: &SimCluster) -> [(String, Arc<WatchCount>); 2] {
    let eninode = format!(
        "/apis/networking.k8s.aws/v1alpha1/eninodes?fieldSelector=metadata.name%3D{WATCHED_NODE}"
    );
    let watches = [
        (
            format!("the agent of {WATCHED_NODE}: its ENINode"),
            eninode,
            Some(WATCHED_NODE.to_owned()),
        ),
        (
            "a watch of every NodeENI".to_owned(),
            "/apis/networking.k8s.aws/v1alpha1/nodeenis".to_owned(),
            None,
        ),
    ];
    watches.map(|(what, path, node)| {
        let count = Arc::new(WatchCount::default());
        tokio::spawn(agents::count_watch(
            cluster.client.clone(),
            path,
            node,
            Arc::clone(&count),
        ));
        (what, count)
    })
}

fn report_watches(watches: &[(String, Arc<WatchCount>)]) {
    println!("\nwatch traffic over the whole run (list and events):");
    for (what, count) in watches {
        let names = count.names.lock().expect("names");
        let names: Vec<&String> = names.iter().collect();
        println!(
            "  {what:<40} {} in {} events; objects: {names:?}",
            objects::kib(
                usize::try_from(count.bytes.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
            ),
            count.events.load(Ordering::Relaxed),
        );
    }
}

fn report_convergence(
    nodes: usize,
    throttled: bool,
    converged: Duration,
    before: &Stats,
    during: &Stats,
) {
    #[allow(clippy::cast_precision_loss)]
    let n = nodes as f64;
    // AWS's buckets: Create and Modify 100 then 5/s, Attach 50 then 5/s, one per action.
    let bound = [(100.0, 5.0), (50.0, 5.0), (100.0, 5.0)]
        .iter()
        .map(|(capacity, refill)| ((n - capacity) / refill).max(0.0))
        .fold(0.0, f64::max);
    let seconds = converged.as_secs_f64();
    let throttling = if throttled {
        "AWS's throttling on"
    } else {
        "the simulator's throttling off, the controller at AWS's rates (--ec2-budget 1)"
    };
    println!("\n{nodes} nodes, one ENI each, {throttling}");
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

/// How many ENIs, and ENINode entries, carry the K addresses asked for.
async fn report_addresses(cluster: &SimCluster, addresses: i32) {
    let wanted = usize::try_from(addresses).unwrap_or_default();
    let enis = cluster.owned_enis().await;
    let with = enis
        .iter()
        .filter(|eni| eni.secondary_private_ips.len() == wanted)
        .count();
    let eninodes = cluster
        .eninodes()
        .list(&kube::api::ListParams::default())
        .await
        .expect("list the ENINodes");
    let entries: Vec<_> = (eninodes.items.iter())
        .flat_map(|e| &e.spec.interfaces)
        .collect();
    let written = entries
        .iter()
        .filter(|i| i.ipv4_addresses.len() == wanted)
        .count();
    println!(
        "
pod addresses, {addresses} per ENI (with the create):"
    );
    println!(
        "  ENIs that have them                      {with} of {}",
        enis.len()
    );
    println!(
        "  ENINode entries that list them           {written} of {}",
        entries.len()
    );
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
