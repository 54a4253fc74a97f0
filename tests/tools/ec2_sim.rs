//! The EC2 simulator on its own (`just ec2-sim ADDR`): serves on ADDR (default
//! 127.0.0.1:4566) until Ctrl-C or SIGTERM, for any EC2 client, boto3 and the aws CLI included.

#[path = "../support/mod.rs"]
mod support;

use std::net::SocketAddr;

use support::ec2sim::{SimConfig, Simulator};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() {
    let addr: SocketAddr = match std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:4566")
        .parse()
    {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("usage: ec2-sim [HOST:PORT]: {error}");
            std::process::exit(2);
        }
    };
    let sim = match Simulator::serve(addr, SimConfig::default()).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("ec2-sim: cannot listen on {addr}: {error}");
            std::process::exit(1);
        }
    };
    println!("EC2 simulator on {}", sim.endpoint_url());
    println!(
        "  AWS_ENDPOINT_URL_EC2={} (any credentials)",
        sim.endpoint_url()
    );
    println!(
        "  control: {}/_sim/stats, /_sim/config, /_sim/faults, /_sim/reset, /_sim/hooks, \
         /_sim/guests, /_sim/release",
        sim.endpoint_url()
    );
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
