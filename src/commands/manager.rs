//! `multi-eni manager`: the node agent.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::logging::LogFormat;

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

    /// How often interfaces are re-checked for drift (netlink events act at once).
    #[arg(long, env = "RESYNC_PERIOD", default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync_period: Duration,

    /// Root of the sysfs tree (for DPDK binding).
    #[arg(long, env = "SYSFS_ROOT", default_value = "/sys")]
    pub sysfs_root: PathBuf,

    /// The SR-IOV device plugin's config file, kept in step with DPDK-bound devices.
    #[arg(long, env = "SRIOV_CONFIG", default_value = "/etc/pcidp/config.json")]
    pub sriov_config: PathBuf,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        eprintln!("multi-eni manager is not built yet; arguments parsed: {self:?}");
        Ok(ExitCode::from(3))
    }
}
