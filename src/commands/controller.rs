//! `multi-eni controller`: reconciles `NodeENI`s against EC2.

use std::process::ExitCode;
use std::time::Duration;

use crate::logging::LogFormat;

/// Creates one ENI per selected node and subnet, attaches it, keeps it attached, and detaches
/// and deletes it when the node stops matching, goes away, or the NodeENI is deleted.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the Kubernetes cluster; every ENI is tagged with it, so it must be unique
    /// among the clusters that share an AWS account and Region.
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,

    /// AWS Region (default: the SDK's chain: AWS_REGION, profile, instance metadata).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// How often the whole state is re-read from EC2 and the API server, e.g. 5m.
    #[arg(long, env = "RESYNC_PERIOD", default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync_period: Duration,

    /// How many nodes are worked on at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,

    /// How long an owned ENI that belongs to nothing may stay `available` before it is deleted.
    #[arg(long, env = "GC_GRACE_PERIOD", default_value = "10m", value_parser = humantime::parse_duration)]
    pub gc_grace_period: Duration,

    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        eprintln!("multi-eni controller is not built yet; arguments parsed: {self:?}");
        Ok(ExitCode::from(3))
    }
}
