//! The node agent (`multi-eni manager`): finds each of this node's ENIs by MAC address,
//! configures its interface (name, MTU, up) or binds it to DPDK, and reports in the status
//! of the node's ENINode. It reads and writes that one object, nothing else of the API.
//!
//! Modules by what they may import:
//! - pure, no I/O: [`mac`], [`desired`] (the ENINode to wanted interfaces), [`plan`] (observed
//!   link to changes), [`outcome`], [`report`] (outcomes to status entries), [`cni`] (the pod
//!   networks' CNI configurations);
//! - OS boundary: [`links`] (the trait), [`netlink`] (its rtnetlink implementation and link
//!   notifications), [`sysfs`] (PCI driver binding), [`files`], [`dpdk_state`], [`sriov`]
//!   (the device plugin's config file), [`cni_files`] (Multus's configuration directory);
//! - devices: [`dpdk`] (binding and giving back), [`advertise`] (devices left on their
//!   kernel driver as device plugin resources);
//! - Kubernetes and EC2: [`status`] (server-side apply), [`plugin`] (device plugin restart),
//!   [`imds`] (instance metadata, to cross-check MACs);
//! - [`metrics`]: the agent's metrics and its `/metrics`, `/healthz`, `/readyz` endpoint;
//! - the executor and the loops: [`configure`] (one link, over the [`links`] trait),
//!   [`reconcile`], [`agent`], [`tasks`], [`once`].

pub mod advertise;
pub mod agent;
pub mod cni;
pub mod cni_files;
pub mod configure;
pub mod desired;
pub mod dpdk;
pub mod dpdk_state;
pub mod files;
pub mod imds;
pub mod links;
pub mod mac;
pub mod metrics;
pub mod netlink;
pub mod once;
pub mod outcome;
pub mod plan;
pub mod plugin;
pub mod reconcile;
pub mod report;
pub mod sriov;
pub mod status;
pub mod sysfs;
pub mod tasks;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

pub use agent::{Retry, run};
pub use plugin::PluginPods;
pub use sysfs::Settle;

use crate::http::Readiness;
use crate::manager::cni_files::CniConfDir;
use crate::manager::dpdk::Dpdk;
use crate::manager::dpdk_state::{StateError, StateFile};
use crate::manager::imds::Imds;
use crate::manager::links::{LinkError, Links};
use crate::manager::metrics::AgentMetrics;
use crate::manager::reconcile::Executor;
use crate::manager::sriov::DevicePluginConfig;
use crate::manager::sysfs::Sysfs;

/// Everything the agent needs besides its Kubernetes client and its netlink sockets.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The node whose entries the agent serves.
    pub node_name: String,
    /// How often every interface is re-checked for drift.
    pub resync_period: Duration,
    /// Root of the sysfs tree (`/sys`), for DPDK binding.
    pub sysfs_root: PathBuf,
    pub settle: Settle,
    /// The record of devices bound to DPDK.
    pub state_file: PathBuf,
    /// The SR-IOV device plugin's config file.
    pub sriov_config: PathBuf,
    /// Multus's node-local CNI configuration directory, where pod networks are written.
    pub cni_conf_dir: PathBuf,
    /// The device plugin's pods to restart after its config changed (`None`: leave it).
    pub plugin: Option<PluginPods>,
    /// Instance metadata to cross-check MACs with (`http://169.254.169.254` on EC2).
    pub imds_endpoint: Option<String>,
    pub retry: Retry,
    /// Where the agent counts what it does (served by [`metrics::serve`]).
    pub metrics: AgentMetrics,
    /// Turns true once the ENINode watch has synced (the netlink socket is open before the
    /// agent starts; the agent ends when it closes).
    pub readiness: Readiness,
}

impl AgentConfig {
    /// The defaults of `multi-eni manager` for `node_name`, except that instance metadata
    /// is not consulted (it exists on EC2 only).
    pub fn new(node_name: &str) -> AgentConfig {
        AgentConfig {
            node_name: node_name.into(),
            resync_period: Duration::from_mins(5),
            sysfs_root: "/sys".into(),
            settle: Settle::default(),
            state_file: "/var/lib/multi-eni/dpdk-state.json".into(),
            sriov_config: "/etc/pcidp/config.json".into(),
            cni_conf_dir: "/etc/cni/multus/net.d".into(),
            plugin: None,
            imds_endpoint: None,
            retry: Retry::default(),
            metrics: AgentMetrics::default(),
            readiness: Readiness::default(),
        }
    }

    fn executor<L: Links>(&self, links: L, dry_run: bool) -> Result<Executor<L>, AgentError> {
        let sysfs = Sysfs::new(&self.sysfs_root, self.settle);
        let imds = self.imds_endpoint.as_deref().map(Imds::new).transpose();
        let state = StateFile::new(&self.state_file);
        Ok(Executor {
            links,
            dpdk: Dpdk::load(sysfs, state, dry_run, self.metrics.clone())?,
            plugin_config: DevicePluginConfig::new(&self.sriov_config),
            cni_conf_dir: CniConfDir::new(&self.cni_conf_dir),
            networks_synced: None,
            imds: imds.map_err(AgentError::Imds)?,
            confirmed: HashSet::new(),
            dry_run,
            failed: HashMap::new(),
            metrics: self.metrics.clone(),
        })
    }
}

/// Why the agent stopped (or `--once` could not make its pass).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("reading the node's ENINode: {0}")]
    Read(#[source] kube::Error),
    #[error(transparent)]
    Links(#[from] LinkError),
    #[error("{0}")]
    Imds(String),
    #[error("the ENINode watch or the status writer stopped")]
    WatchEnded,
    #[error("the netlink notification socket closed")]
    NetlinkClosed,
}

impl AgentError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AgentError::State(error) => error.label(),
            AgentError::Read(_) => "read_eninode",
            AgentError::Links(error) => error.label(),
            AgentError::Imds(_) => "imds_endpoint",
            AgentError::WatchEnded => "watch_ended",
            AgentError::NetlinkClosed => "netlink_closed",
        }
    }
}
