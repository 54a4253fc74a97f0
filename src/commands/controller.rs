//! `multi-eni controller`: reconciles NodeENIs against EC2.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;

use crate::api::{ENINode, NodeENI};
use crate::controller::kube_io::KubeIo;
use crate::controller::leader::Election;
use crate::controller::metrics::Metrics;
use crate::controller::reconciler::{Reconciler, Settings};
use crate::controller::watch::watch;
use crate::ec2::{Ec2, Ec2Config};
use crate::http::{self, Readiness};
use crate::logging::LogFormat;

/// Creates one ENI per selected node and subnet, attaches it, keeps it attached, and detaches
/// and deletes it when the node stops matching, goes away, or the NodeENI is deleted. Writes
/// each node's ENIs into its ENINode (named after the node) for the node agent, and a summary
/// into each NodeENI's status.
///
/// EC2 credentials and region come from the AWS SDK's usual sources: environment variables,
/// web identity (IRSA), EKS Pod Identity, instance metadata; AWS_ENDPOINT_URL_EC2 overrides
/// the endpoint. The Kubernetes API is found in-cluster or through KUBECONFIG.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the Kubernetes cluster; every ENI is tagged with it, so it must be unique
    /// among the clusters that share an AWS account and Region.
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,

    /// AWS Region (default: the SDK's chain: AWS_REGION, profile, instance metadata).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// How often the whole state is read again from EC2, e.g. 5m (at least 1s).
    #[arg(long, env = "RESYNC_PERIOD", default_value = "5m", value_parser = super::at_least_a_second)]
    pub resync_period: Duration,

    /// How many EC2 actions run at once (at least 1).
    #[arg(long, env = "CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Share of AWS's EC2 request rates (per throttling bucket) to stay within; the rest is
    /// left to other tools of the account. 0 < budget <= 1.
    #[arg(long, env = "EC2_BUDGET", default_value_t = 0.95, value_parser = parse_budget)]
    pub ec2_budget: f64,

    /// How long an owned ENI whose NodeENI this controller does not see may stay `available`
    /// before it is deleted (unwanted ENIs of NodeENIs it sees go as soon as they are).
    #[arg(long, env = "GC_GRACE_PERIOD", default_value = "5m", value_parser = humantime::parse_duration)]
    pub gc_grace_period: Duration,

    /// How often EC2 is asked again while an attach or detach is finishing.
    #[arg(long, env = "TRANSITION_POLL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub transition_poll: Duration,

    /// How long to wait for the node agent to release a DPDK-bound ENI before detaching it.
    #[arg(long, env = "DPDK_RELEASE_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub dpdk_release_timeout: Duration,

    /// Run only while holding the Lease, so that several replicas can run.
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Namespace of the leader election Lease (the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kube-system")]
    pub lease_namespace: String,

    /// This replica's identity in the Lease (the pod's name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,

    /// Migrate from aws-multi-eni-controller (scale it and its agent DaemonSet to zero first):
    /// adopt its ENIs instead of creating new ones, and replace its finalizer with ours. An
    /// ENI it made (tag kubernetes.io/cluster/managed-by=nodeeni-controller) whose NodeENI,
    /// Node and SubnetID tags name a NodeENI and a Node of this cluster and a subnet of that
    /// NodeENI in the node's zone, attached to that node's instance or available, is adopted:
    /// tagged as this cluster's (CreateTags), then DeleteOnTermination set as the spec says;
    /// an available one is attached for its slot, or, when its slot has an ENI already, deleted
    /// after --gc-grace-period. Those of a NodeENI being deleted are adopted and removed. Left
    /// alone: ENIs without its tags, its ENIs naming a NodeENI, node or subnet this cluster
    /// does not have or attached to another instance, and an attached one whose slot has an ENI
    /// of multi-eni already. Off (the default), every ENI it made is foreign. Costs one more
    /// DescribeNetworkInterfaces per refresh; turn it off once every NodeENI is Ready.
    #[arg(long, env = "ADOPT_PREDECESSOR_ENIS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub adopt_predecessor_enis: bool,
}

fn parse_budget(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(budget) if budget > 0.0 && budget <= 1.0 => Ok(budget),
        _ => Err(format!(
            "{value:?} is not a share between 0 (exclusive) and 1, e.g. 0.95"
        )),
    }
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        super::run_on_one_thread(self.log_format, self.serve())
    }

    async fn serve(self) -> anyhow::Result<ExitCode> {
        let cluster = self.cluster_name.clone().filter(|name| !name.is_empty()).context(
            "--cluster-name (CLUSTER_NAME) is required: every ENI is tagged with it to tell this cluster's ENIs apart",
        )?;
        let client = kube::Client::try_default()
            .await
            .context("cannot reach the Kubernetes API")?;
        let ec2 = Ec2::connect(&Ec2Config {
            region: self.region.clone(),
            endpoint_url: None,
            budget: Some(self.ec2_budget),
        })
        .await;
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        ec2.metrics().register(&mut registry);
        metrics.register(&mut registry);
        let readiness = Readiness::default();
        tokio::spawn(http::serve(
            http::bind(self.metrics_addr).await?,
            Arc::new(registry),
            readiness.clone(),
        ));

        let identity = self
            .identity
            .clone()
            .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
        let election = Election {
            namespace: self.lease_namespace.clone(),
            name: "multi-eni-controller".into(),
            identity: identity.clone(),
            lease_duration: Duration::from_secs(15),
        };
        readiness.set(true);
        if self.leader_elect {
            tracing::info!(%identity, "waiting to hold the leader Lease");
            election.acquire(&client).await;
        }
        let settings = Settings {
            cluster,
            resync: self.resync_period,
            concurrency: usize::from(self.concurrency),
            gc_grace: self.gc_grace_period,
            poll: self.transition_poll,
            dpdk_release_timeout: self.dpdk_release_timeout,
            adopt_predecessor: self.adopt_predecessor_enis,
        };
        // With or without adoption: until then, no write to such a NodeENI succeeds.
        crate::controller::migration::clear_unreadable_statuses(&client)
            .await
            .context("clearing NodeENI statuses this version cannot read")?;
        let reconciler = Reconciler::new(
            settings,
            ec2,
            KubeIo::new(client.clone(), identity),
            metrics,
        );
        // Each watch adds a permit when its first list is complete.
        let synced = Arc::new(tokio::sync::Semaphore::new(0));
        tokio::spawn(watch::<NodeENI>(
            client.clone(),
            Arc::clone(&reconciler),
            Arc::clone(&synced),
        ));
        tokio::spawn(watch::<k8s_openapi::api::core::v1::Node>(
            client.clone(),
            Arc::clone(&reconciler),
            Arc::clone(&synced),
        ));
        tokio::spawn(watch::<ENINode>(
            client.clone(),
            Arc::clone(&reconciler),
            Arc::clone(&synced),
        ));
        drop(synced.acquire_many(3).await.expect("never closed"));
        tracing::info!("caches synced; reconciling");
        let work = tokio::spawn(reconciler.run());
        tokio::select! {
            () = async { if self.leader_elect { election.keep(&client).await } else { std::future::pending().await } } => {
                work.abort();
                anyhow::bail!("lost the leader Lease; exiting so that the other replica takes over")
            }
            () = shutdown() => Ok(ExitCode::SUCCESS),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "multi-eni".into(), |h| h.trim().to_owned())
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
