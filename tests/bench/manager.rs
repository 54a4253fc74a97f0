//! `just bench-manager`: the node agent (the real binary, as a process of its own) serving a
//! network namespace with 200 ENIs (in its node's ENINode), against a real API server.
//!
//! Links are hot-plugged into the namespace (paced, then all at once); the latency of each
//! is measured from just before its creation to the netlink notification that shows it
//! renamed, at its MTU and up. Then the agent is left idle and its RSS and CPU are read
//! from /proc. Usage: `bench-manager <path to the multi-eni binary>` (root).

#[path = "../support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Api;
use multi_eni::api::ENINode;
use multi_eni::manager::mac::Mac;
use multi_eni::manager::netlink::{self, LinkEvent};
use support::bench::{eninode_with_entries, ms, quantile};
use support::control_plane::{ControlPlane, wait_for};
use support::netns::TestNetns;

const LINKS: usize = 200;
const NODE: &str = "bench-node";
const MTU: u32 = 9001;
/// /proc/<pid>/stat counts CPU time in USER_HZ ticks, 100 per second on Linux.
const TICK: Duration = Duration::from_millis(10);

/// When each MAC's link was created, and when it was seen configured.
#[derive(Default)]
struct Timings {
    created: HashMap<Mac, Instant>,
    configured: HashMap<Mac, Instant>,
}

fn mac(i: usize) -> Mac {
    let [hi, lo] = u16::try_from(i).expect("few links").to_be_bytes();
    Mac([0x02, 0xbe, 0x9c, 0, hi, lo])
}

#[tokio::main]
async fn main() {
    let agent_binary = std::env::args()
        .nth(1)
        .expect("usage: bench-manager <multi-eni binary>");
    let plane = ControlPlane::start().await;
    plane.install_crd().await;
    let macs: Vec<String> = (0..=LINKS).map(|i| mac(i).to_string()).collect();
    eninode_with_entries(&plane, "bench", NODE, &macs, MTU).await;

    let ns = TestNetns::new();
    let timings = Arc::new(Mutex::new(Timings::default()));
    let (_monitor_links, events) = netlink::open(Some(&ns.path())).expect("netlink");
    tokio::spawn(monitor(events, timings.clone()));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = start_agent(&agent_binary, &plane, &ns, dir.path());
    // The agent is serving once a link that was there before it started is configured.
    ns.add_link("warmup", &mac(LINKS).to_string()).await;
    wait_for("the agent to start", || async {
        ns.is_configured(&format!("b{LINKS}"), MTU).await
    })
    .await;

    println!("multi-eni manager: {LINKS} ENIs hot-plugged into a network namespace");
    let ticks = cpu_ticks(agent.id());
    let paced = hot_plug(&ns, &timings, Duration::from_millis(5)).await;
    report(
        "paced, one link every 5 ms",
        &paced,
        cpu_ticks(agent.id()) - ticks,
    );
    unplug(&ns).await;
    let ticks = cpu_ticks(agent.id());
    let burst = hot_plug(&ns, &timings, Duration::ZERO).await;
    report("burst, all at once", &burst, cpu_ticks(agent.id()) - ticks);

    let reported = Instant::now();
    wait_for("every entry reported in the status", || async {
        all_reported(&plane).await
    })
    .await;
    println!(
        "  status of all {LINKS} entries in the API server {:?} after the burst was configured",
        reported.elapsed()
    );
    idle(agent.id());
    agent.kill().expect("stop the agent");
    let _ = agent.wait();
}

fn start_agent(binary: &str, plane: &ControlPlane, ns: &TestNetns, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("agent.log")).expect("log");
    ns.manager_command(Path::new(binary), &plane.kubeconfig, NODE, dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the agent")
}

/// Notes the moment each link is seen renamed, at its MTU and up.
async fn monitor(mut events: netlink::LinkEvents, timings: Arc<Mutex<Timings>>) {
    while let Some(event) = events.next().await {
        let LinkEvent::Changed(link) = event else {
            continue;
        };
        let now = Instant::now();
        let wanted = (0..LINKS)
            .find(|&i| mac(i) == link.mac)
            .map(|i| format!("b{i}"));
        if wanted.as_deref() == Some(link.name.as_str()) && link.up && link.mtu == MTU {
            timings
                .lock()
                .expect("lock")
                .configured
                .entry(link.mac)
                .or_insert(now);
        }
    }
}

/// Adds the links `pause` apart; returns each one's appear-to-configured latency.
async fn hot_plug(ns: &TestNetns, timings: &Mutex<Timings>, pause: Duration) -> Vec<Duration> {
    *timings.lock().expect("lock") = Timings::default();
    for i in 0..LINKS {
        timings
            .lock()
            .expect("lock")
            .created
            .insert(mac(i), Instant::now());
        ns.add_link(&format!("hp{i}"), &mac(i).to_string()).await;
        tokio::time::sleep(pause).await;
    }
    wait_for("every link to be configured", || async {
        timings.lock().expect("lock").configured.len() >= LINKS
    })
    .await;
    let timings = timings.lock().expect("lock");
    let mut latencies: Vec<Duration> = timings
        .created
        .iter()
        .map(|(mac, created)| timings.configured[mac].duration_since(*created))
        .collect();
    latencies.sort();
    latencies
}

async fn unplug(ns: &TestNetns) {
    for i in 0..LINKS {
        ns.delete(&format!("b{i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Prints the latencies and the agent's CPU time (`ticks`) for a phase.
fn report(phase: &str, sorted: &[Duration], ticks: u64) {
    let at = |q| quantile(sorted, q);
    println!(
        "  {phase}: appear-to-configured p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; agent CPU {:.0} ms",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0)),
        ms(TICK * u32::try_from(ticks).expect("few ticks"))
    );
}

/// Leaves the agent alone for a while, then reads its memory and CPU use.
fn idle(pid: u32) {
    std::thread::sleep(Duration::from_secs(3));
    let before = cpu_ticks(pid);
    let window = Duration::from_secs(20);
    std::thread::sleep(window);
    let used = TICK * u32::try_from(cpu_ticks(pid) - before).expect("few ticks");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("agent status");
    let field = |name: &str| {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .expect("field");
        line[name.len()..].trim().to_string()
    };
    println!(
        "  idle: RSS {} (peak {}; anonymous {}, file {}), CPU {:.2}% over {} s",
        field("VmRSS:"),
        field("VmHWM:"),
        field("RssAnon:"),
        field("RssFile:"),
        used.as_secs_f64() / window.as_secs_f64() * 100.0,
        window.as_secs()
    );
}

/// utime + stime of a process, in ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("agent stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

async fn all_reported(plane: &ControlPlane) -> bool {
    let api: Api<ENINode> = Api::all(plane.client().await);
    let eninode = api.get(NODE).await.expect("get");
    let interfaces = eninode.status.map(|s| s.interfaces).unwrap_or_default();
    interfaces
        .iter()
        .filter(|a| a.configured == Some(true))
        .count()
        > LINKS
}
