//! The EC2 simulator's own throughput (`just bench-ec2 [SECONDS]`): many aws-sdk-ec2 clients
//! on loopback making simple calls (DescribeSubnets and DescribeNetworkInterfaces by ID) with
//! throttling off, so that benchmarks built on the simulator know it is not their bottleneck.

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::ec2sim::{SimConfig, Simulator, ThrottleConfig};

const CLIENTS: usize = 16;
const REQUESTS_PER_CLIENT: usize = 4;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map_or(5, |s| s.parse().expect("SECONDS"));
    let config = SimConfig {
        throttle: ThrottleConfig {
            enabled: false,
            ..ThrottleConfig::default()
        },
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await;
    let vpc = sim.create_vpc("10.0.0.0/16");
    let subnet = sim.create_subnet(&vpc, "us-east-1a", "10.0.0.0/20", "bench");
    let mut enis = Vec::new();
    for _ in 0..10 {
        let created = sim
            .client()
            .create_network_interface()
            .subnet_id(&subnet)
            .send()
            .await;
        let eni = created
            .expect("create an ENI")
            .network_interface
            .expect("the ENI");
        enis.push(eni.network_interface_id.expect("its ID"));
    }

    let calls = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let client = sim.client();
        for _ in 0..REQUESTS_PER_CLIENT {
            let (client, calls) = (client.clone(), Arc::clone(&calls));
            let (subnet, enis) = (subnet.clone(), enis.clone());
            workers.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let subnets = client.describe_subnets().subnet_ids(&subnet).send().await;
                    subnets.expect("DescribeSubnets");
                    let described = client.describe_network_interfaces();
                    let described = described.set_network_interface_ids(Some(enis.clone()));
                    described.send().await.expect("DescribeNetworkInterfaces");
                    calls.fetch_add(2, Ordering::Relaxed);
                }
            }));
        }
    }
    for worker in workers {
        worker.await.expect("a worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let calls = calls.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let rate = calls as f64 / elapsed;
    println!(
        "ec2 simulator: {calls} calls in {elapsed:.1} s = {rate:.0} calls/s \
         ({CLIENTS} SDK clients, {} concurrent requests, throttling off, loopback)",
        CLIENTS * REQUESTS_PER_CLIENT
    );
    let errors: u64 = sim
        .stats()
        .actions
        .values()
        .map(|a| a.errors + a.throttled)
        .sum();
    assert_eq!(errors, 0, "the simulator answered errors");
}
