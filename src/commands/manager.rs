//! `multi-eni manager`: the node agent.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::logging::LogFormat;
use crate::manager::{self, AgentConfig, PluginPods, netlink};

/// Finds each attached ENI's Linux interface on this node by MAC address, brings it up, sets
/// its MTU and name, binds it to DPDK when asked, and reports back in the NodeENI's status.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of this node (from the downward API: spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// Make one pass, print what was (or would be) changed, and exit: non-zero if anything
    /// could not be configured.
    #[arg(long)]
    pub once: bool,

    /// With --once: change nothing, only print what would be changed.
    #[arg(long, requires = "once")]
    pub dry_run: bool,

    /// How often interfaces are re-checked for drift, e.g. 5m, at least 1s (netlink events act
    /// at once).
    #[arg(long, env = "RESYNC_PERIOD", default_value = "5m", value_parser = super::at_least_a_second)]
    pub resync_period: Duration,

    /// Root of the sysfs tree (for DPDK binding).
    #[arg(long, env = "SYSFS_ROOT", default_value = "/sys")]
    pub sysfs_root: PathBuf,

    /// Where the agent records the devices it bound to DPDK drivers and those it advertises
    /// on their kernel driver, so that a restarted agent can give them back or keep
    /// advertising them (keep it on a hostPath volume).
    #[arg(
        long,
        env = "STATE_FILE",
        default_value = "/var/lib/multi-eni/dpdk-state.json"
    )]
    pub state_file: PathBuf,

    /// The SR-IOV device plugin's config file, kept in step with the devices the agent
    /// advertises (DPDK-bound, and those on their kernel driver with a resource name).
    #[arg(long, env = "SRIOV_CONFIG", default_value = "/etc/pcidp/config.json")]
    pub sriov_config: PathBuf,

    /// Multus's node-local CNI configuration directory (its `confDir`): the agent writes
    /// there, for each pod network of this node's ENIs, `multi-eni-<network>.conf`, which
    /// Multus loads for a NetworkAttachmentDefinition of that name without `spec.config`.
    /// Other files there are never touched.
    #[arg(long, env = "CNI_CONF_DIR", default_value = "/etc/cni/multus/net.d")]
    pub cni_conf_dir: PathBuf,

    /// Label selector of the SR-IOV device plugin's pods (e.g. app=sriovdp): when its config
    /// changes, the plugin's pod on this node is deleted so that its DaemonSet starts one
    /// that reads the new config. Unset: the plugin is left alone.
    #[arg(long, env = "SRIOV_PLUGIN_SELECTOR")]
    pub sriov_plugin_selector: Option<String>,

    /// Namespace of the SR-IOV device plugin's pods.
    #[arg(long, env = "SRIOV_PLUGIN_NAMESPACE", default_value = "kube-system")]
    pub sriov_plugin_namespace: String,

    /// Instance metadata (IMDSv2), asked which ENI is behind each MAC before its interface
    /// is first touched; `none` skips the check. Where metadata does not answer, the MACs
    /// in the status are used alone.
    #[arg(long, env = "IMDS_ENDPOINT", default_value = "http://169.254.169.254")]
    pub imds_endpoint: String,

    /// Serve the links of this network namespace (e.g. /run/netns/node-a) instead of the
    /// agent's own.
    #[arg(long, env = "NETNS")]
    pub netns: Option<PathBuf>,

    /// Address of the /metrics, /healthz and /readyz endpoint (`IP:port`; an IPv6 address
    /// with or without brackets). The agent runs in the node's network: the default,
    /// loopback, keeps the endpoint off every network, the ENIs' included (the kubelet
    /// probes it at 127.0.0.1); to let Prometheus scrape /metrics, give the node's own
    /// address (the downward API's status.hostIP), not 0.0.0.0, which would also listen on
    /// the interfaces of the ENIs. Port 0: any free port (logged). Not served with --once.
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9810", value_parser = parse_addr)]
    pub metrics_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// `IP:port`, the IPv6 address with or without brackets (`fd00::5:9810`, as
/// `$(HOST_IP):9810` expands on an IPv6 node).
fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    let bare = value.rsplit_once(':').and_then(|(ip, port)| {
        Some(SocketAddr::new(
            ip.parse::<IpAddr>().ok()?,
            port.parse().ok()?,
        ))
    });
    value.parse().ok().or(bare).ok_or_else(|| {
        format!("{value:?} is not an address and port, e.g. 127.0.0.1:9810 or [fd00::5]:9810")
    })
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        super::run_on_one_thread(self.log_format, self.serve())
    }

    async fn serve(self) -> anyhow::Result<ExitCode> {
        let config = self.config()?;
        let client = kube::Client::try_default()
            .await
            .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
        let (links, events) =
            netlink::open(self.netns.as_deref()).with_context(|| match &self.netns {
                Some(netns) => format!("opening netlink sockets in --netns {}", netns.display()),
                None => "opening netlink sockets".into(),
            })?;
        if self.once {
            drop(events);
            let pass = manager::once::once(client, links, &config, self.dry_run).await?;
            print!("{}", manager::once::table(&pass, self.dry_run));
            return Ok(if pass.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        let endpoint =
            manager::metrics::serve(self.metrics_addr, &config.metrics, config.readiness.clone())
                .await?;
        tracing::info!(
            node = config.node_name,
            %endpoint,
            "multi-eni manager starting (/metrics, /healthz, /readyz on the endpoint)"
        );
        manager::run(client, links, events, config).await?;
        Ok(ExitCode::SUCCESS)
    }

    fn config(&self) -> anyhow::Result<AgentConfig> {
        let node = self.node_name.as_deref().filter(|name| !name.is_empty()).context(
            "no node name: set --node-name or NODE_NAME (in a DaemonSet, from the downward API: fieldRef spec.nodeName)",
        )?;
        let mut config = AgentConfig::new(node);
        config.resync_period = self.resync_period;
        config.sysfs_root.clone_from(&self.sysfs_root);
        config.state_file.clone_from(&self.state_file);
        config.sriov_config.clone_from(&self.sriov_config);
        config.cni_conf_dir.clone_from(&self.cni_conf_dir);
        config.plugin = self
            .sriov_plugin_selector
            .as_ref()
            .map(|selector| PluginPods {
                namespace: self.sriov_plugin_namespace.clone(),
                selector: selector.clone(),
            });
        Ok(config)
    }
}
