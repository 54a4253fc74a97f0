//! The node agent on a node with a real kernel: a VM booted from Debian's cloud kernel, the
//! agent binary inside as on a node, ENIs hot-plugged as virtio-net PCI devices when the
//! EC2 simulator attaches them (and unplugged when it detaches them), the real controller.
//! What needs a kernel is proven here: PCI hot-plug, driver binding for DPDK, the device
//! given back, pods on the ENIs with ipvlan. (Netlink-only behaviour is tested faster in network namespaces: `manager`.)

mod bind_refused;
mod dpdk;
mod kernel_resource;
mod pod_network;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kube::api::DeleteParams;
use multi_eni::api::{InterfaceSpec, InterfaceStatus};
use serde_json::{Value, json};

use crate::support::ec2sim::SimConfig;
use crate::support::sim_cluster::{SimCluster, ZONES, multi_eni_binary};
use crate::support::vm::{Fabric, NodeImage, NodeVm, NodeVmConfig, Vpc, tail};

/// A simulated cluster with nodes in one zone, each a VM whose agent starts at boot.
pub struct VmCluster {
    pub cluster: SimCluster,
    pub fabric: Arc<Fabric>,
    /// The first node.
    pub node: &'static str,
}

impl VmCluster {
    /// One node; the agent runs with `agent_env` added to its environment.
    pub async fn start(node: &'static str, agent_env: &[(&str, &str)]) -> VmCluster {
        VmCluster::start_nodes(&[node], agent_env).await
    }

    /// Several nodes of one zone (their VMs boot at once), all labelled `ng=<first node>`.
    pub async fn start_nodes(nodes: &[&'static str], agent_env: &[(&str, &str)]) -> VmCluster {
        static VPCS: AtomicU32 = AtomicU32::new(0);
        let mut cluster = SimCluster::start(SimConfig::default()).await;
        let mut instances = Vec::new();
        for node in nodes {
            let labels = [("ng", nodes[0])];
            instances.push(cluster.add_node(node, ZONES[0], "m5.xlarge", &labels).await);
        }
        let image = NodeImage::build(cluster.plane.dir(), &multi_eni_binary(), &[]);
        let mut env = vec![("RUST_LOG", "multi_eni=debug,info")];
        env.extend_from_slice(agent_env);
        let kubeconfig = cluster.plane.guest_kubeconfig();
        let boots = nodes.iter().map(|node| {
            let config = NodeVmConfig {
                name: node,
                image: &image,
                kubeconfig: kubeconfig.clone(),
                start_agent: true,
                agent_env: &env,
                dir: cluster.plane.dir(),
            };
            async move { NodeVm::boot(&config).await }
        });
        let vms = futures::future::join_all(boots).await;
        let vpc = Vpc::new(&format!(
            "mv{}x{}",
            std::process::id() % 10_000,
            VPCS.fetch_add(1, Ordering::Relaxed)
        ));
        let fabric = Fabric::new(vpc, instances.into_iter().zip(vms).collect());
        fabric.wire(&cluster.sim);
        cluster.start_controller(&[]);
        VmCluster {
            cluster,
            fabric,
            node: nodes[0],
        }
    }

    pub fn vm(&self) -> &NodeVm {
        self.fabric.vm(self.node)
    }

    /// Applies a NodeENI selecting this node, in its zone's subnet, with `extra` fields.
    pub async fn apply_nodeeni(&self, name: &str, extra: &Value) {
        let mut spec = json!({
            "nodeSelector": {"ng": self.node},
            "subnetIDs": [self.cluster.subnets[ZONES[0]]],
            "securityGroupIDs": [self.cluster.security_group],
        });
        for (field, value) in extra.as_object().expect("fields") {
            spec[field] = value.clone();
        }
        self.cluster.apply_nodeeni(name, spec).await;
    }

    /// Waits until the first node's interface of a NodeENI satisfies `check`; panics with
    /// the agent's log too.
    pub async fn wait_entry(
        &self,
        nodeeni: &str,
        what: &str,
        check: impl Fn(&Interface) -> bool,
    ) -> Interface {
        self.wait_entry_on(self.node, nodeeni, what, check).await
    }

    /// Waits until `node`'s interface of a NodeENI satisfies `check`; panics with the agent's
    /// log too.
    pub async fn wait_entry_on(
        &self,
        node: &str,
        nodeeni: &str,
        what: &str,
        check: impl Fn(&Interface) -> bool,
    ) -> Interface {
        let vm = self.fabric.vm(node);
        let found = tokio::time::timeout(Duration::from_mins(2), async {
            loop {
                if let Some(entry) = self.entry_on(node, nodeeni).await
                    && check(&entry)
                {
                    return entry;
                }
                vm.check_alive();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        match found.await {
            Ok(entry) => entry,
            Err(tokio::time::error::Elapsed { .. }) => panic!(
                "timed out waiting for {what}: {:#?}\nthe agent's log:\n{}\nthe controller's log:\n{}",
                self.entry_on(node, nodeeni).await,
                tail(&vm.agent_log(), 40),
                self.cluster.controller_log()
            ),
        }
    }

    /// Deletes a NodeENI and waits until the guest has released the device at `pci` (its
    /// ENI detached).
    pub async fn delete_until_unplugged(&self, nodeeni: &str, pci: &str) {
        self.cluster
            .nodeenis()
            .delete(nodeeni, &DeleteParams::default())
            .await
            .expect("delete the NodeENI");
        self.vm()
            .wait_until(
                "the device unplugged",
                &format!("! test -e /sys/bus/pci/devices/{pci}"),
                Duration::from_mins(1),
            )
            .await;
    }

    /// The first node's interface of a NodeENI, from its ENINode.
    pub async fn entry(&self, nodeeni: &str) -> Option<Interface> {
        self.entry_on(self.node, nodeeni).await
    }

    /// `node`'s interface of a NodeENI, from its ENINode.
    pub async fn entry_on(&self, node: &str, nodeeni: &str) -> Option<Interface> {
        let eninode = self.cluster.eninodes().get_opt(node).await.ok()??;
        let spec = (eninode.spec.interfaces.into_iter()).find(|i| i.node_eni == nodeeni)?;
        let reports = eninode.status.into_iter().flat_map(|s| s.interfaces);
        let status = reports
            .into_iter()
            .find(|r| r.node_eni == nodeeni && r.subnet_id == spec.subnet_id)
            .unwrap_or_default();
        Some(Interface { spec, status })
    }
}

/// Kills the node's agent (SIGKILL: no chance to finish anything) and starts it again; returns
/// two seconds after it has started, time for its first pass.
pub async fn restart_agent(vm: &NodeVm) {
    let starts = || vm.agent_log().matches("multi-eni manager starting").count();
    let before = starts();
    vm.kill_agent().await;
    vm.start_agent().await;
    while starts() == before {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// A node's interface of a NodeENI: the controller's spec entry, and the agent's report
/// (empty until it reports).
#[derive(Debug)]
pub struct Interface {
    pub spec: InterfaceSpec,
    pub status: InterfaceStatus,
}
