//! A simulated cluster: a real control plane of its own, the EC2 simulator with a VPC, a
//! subnet per zone and a security group, Nodes backed by simulated instances, and the real
//! `multi-eni controller` binary as a child process (so that tests can kill it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use multi_eni::api::{ENINode, NodeENI};
use multi_eni::ec2::Ec2;
use multi_eni::ec2::types::Eni;
use multi_eni::ownership::CLUSTER_TAG;
use serde_json::json;

use super::control_plane::ControlPlane;
use super::ec2sim::{SimConfig, Simulator};
use super::process::{Process, free_port};

pub const ZONES: [&str; 2] = ["us-east-1a", "us-east-1b"];

pub struct SimCluster {
    pub sim: Simulator,
    pub client: kube::Client,
    pub ec2: Ec2,
    pub vpc: String,
    /// One subnet per zone, named `multus-<zone>`; a second one in the first zone.
    pub subnets: BTreeMap<&'static str, String>,
    pub extra_subnet: String,
    pub security_group: String,
    pub cluster_name: String,
    /// Running controllers, oldest first, with their metrics ports.
    controllers: Vec<(Process, u16)>,
    controller_runs: usize,
    pub plane: ControlPlane,
}

impl SimCluster {
    pub async fn start(config: SimConfig) -> SimCluster {
        let plane = ControlPlane::start().await;
        plane.install_crd().await;
        let client = plane.client().await;
        let sim = Simulator::start(config).await;
        let ec2 = Ec2::new(sim.client(), None);
        let vpc = sim.create_vpc("10.0.0.0/16");
        // A /18 per zone: the benchmarks' nodes (up to 5,000, half in each zone) take an
        // address there for their instance and one for their ENI.
        let subnets = ZONES
            .iter()
            .enumerate()
            .map(|(i, zone)| {
                (
                    *zone,
                    sim.create_subnet(
                        &vpc,
                        zone,
                        &format!("10.0.{}.0/18", i * 64),
                        &format!("multus-{zone}"),
                    ),
                )
            })
            .collect();
        let extra_subnet = sim.create_subnet(&vpc, ZONES[0], "10.0.128.0/20", "storage");
        let security_group = sim.create_security_group(&vpc, "multus");
        SimCluster {
            sim,
            client,
            ec2,
            vpc,
            subnets,
            extra_subnet,
            security_group,
            cluster_name: "test-cluster".into(),
            controllers: Vec::new(),
            controller_runs: 0,
            plane,
        }
    }

    /// A running instance in `zone` and its Node, labelled `labels` (plus zone and type).
    pub async fn add_node(
        &self,
        name: &str,
        zone: &str,
        instance_type: &str,
        labels: &[(&str, &str)],
    ) -> String {
        let instance = self
            .sim
            .run_instances(&self.subnets[zone], instance_type, 1)
            .remove(0);
        let mut all: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        all.insert("topology.kubernetes.io/zone".into(), zone.into());
        all.insert(
            "node.kubernetes.io/instance-type".into(),
            instance_type.into(),
        );
        self.create_node(name, &all, &format!("aws:///{zone}/{instance}"))
            .await;
        instance
    }

    /// A Node object alone, with these labels and provider ID.
    pub async fn create_node(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        provider_id: &str,
    ) {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"providerID": provider_id},
        }))
        .expect("a Node");
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await
            .expect("create the Node");
    }

    /// Someone else's ENI (no tags of ours), attached to `instance` at `device_index`.
    pub async fn attach_foreign_eni(
        &self,
        instance: &str,
        zone: &str,
        device_index: i32,
    ) -> String {
        let sdk = self.sim.client();
        let created = sdk
            .create_network_interface()
            .subnet_id(&self.subnets[zone])
            .send()
            .await
            .expect("create");
        let eni = created
            .network_interface()
            .and_then(|e| e.network_interface_id())
            .expect("an ENI ID")
            .to_owned();
        let attach = sdk
            .attach_network_interface()
            .network_interface_id(&eni)
            .instance_id(instance);
        attach
            .device_index(device_index)
            .send()
            .await
            .expect("attach the foreign ENI");
        eni
    }

    pub async fn label_node(&self, name: &str, key: &str, value: Option<&str>) {
        let patch = json!({"metadata": {"labels": {key: value}}});
        let nodes = Api::<Node>::all(self.client.clone());
        nodes
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .expect("label the Node");
    }

    pub async fn delete_node(&self, name: &str) {
        Api::<Node>::all(self.client.clone())
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete the Node");
    }

    pub async fn apply_nodeeni(&self, name: &str, spec: serde_json::Value) {
        let object = json!({"apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI", "metadata": {"name": name}, "spec": spec});
        let params = PatchParams::apply("test").force();
        self.nodeenis()
            .patch(name, &params, &Patch::Apply(object))
            .await
            .expect("apply the NodeENI");
    }

    pub fn nodeenis(&self) -> Api<NodeENI> {
        Api::all(self.client.clone())
    }

    pub fn eninodes(&self) -> Api<ENINode> {
        Api::all(self.client.clone())
    }

    /// Starts `multi-eni controller` against this cluster, with short test timings (and no
    /// leader election unless `extra_args` asks for it).
    pub fn start_controller(&mut self, extra_args: &[&str]) {
        let port = free_port();
        let mut command = self.controller_command(extra_args, port);
        self.spawn_controller(&mut command, port);
    }

    /// The command line `start_controller` runs (arguments and environment), serving metrics
    /// on 127.0.0.1:`port`.
    pub fn controller_command(&self, extra_args: &[&str], port: u16) -> Command {
        let mut command = Command::new(multi_eni_binary());
        command
            .args(["controller", "--cluster-name", &self.cluster_name])
            .args(test_timings(extra_args))
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(extra_args)
            .env("KUBECONFIG", &self.plane.kubeconfig)
            .env("AWS_ENDPOINT_URL_EC2", self.sim.endpoint_url())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "multi_eni=debug,info");
        command
    }

    /// Starts `command` (a controller, e.g. `controller_command` run in a container) as the
    /// newest controller of this cluster, its metrics on `port`.
    pub fn spawn_controller(&mut self, command: &mut Command, port: u16) {
        self.controller_runs += 1;
        let name = format!("controller-{}", self.controller_runs);
        self.controllers
            .push((Process::spawn(&name, command, self.plane.dir()), port));
    }

    pub fn controller_pid(&self) -> Option<u32> {
        self.controllers.first().map(|(process, _)| process.pid())
    }

    /// The metrics port of the newest controller.
    pub fn metrics_port(&self) -> Option<u16> {
        self.controllers.last().map(|(_, port)| *port)
    }

    /// SIGKILL to every controller: no chance to finish anything.
    pub fn kill_controller(&mut self) {
        self.controllers.clear();
    }

    /// SIGKILL to the oldest controller only.
    pub fn kill_oldest_controller(&mut self) {
        self.controllers.remove(0);
    }

    /// The ENIs that carry this cluster's tag, as EC2 has them.
    pub async fn owned_enis(&self) -> Vec<Eni> {
        self.ec2
            .enis_tagged(CLUSTER_TAG, &self.cluster_name)
            .await
            .expect("describe owned ENIs")
    }

    /// Waits up to `timeout` for `check` on the NodeENI; panics with `what` and the controller's log.
    pub async fn wait_nodeeni(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&NodeENI) -> bool,
    ) -> NodeENI {
        let found = self
            .wait_object(&self.nodeenis(), name, what, timeout, |n| {
                n.is_some_and(&check)
            })
            .await;
        found.expect("checked")
    }

    /// Waits up to `timeout` for `check` on the ENINode of `node` (`None`: there is none).
    pub async fn wait_eninode(
        &self,
        node: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(Option<&ENINode>) -> bool,
    ) -> Option<ENINode> {
        self.wait_object(&self.eninodes(), node, what, timeout, check)
            .await
    }

    async fn wait_object<K>(
        &self,
        api: &Api<K>,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(Option<&K>) -> bool,
    ) -> Option<K>
    where
        K: Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(object) = api.get_opt(name).await
                && check(object.as_ref())
            {
                return object;
            }
            for (controller, _) in &self.controllers {
                controller.check_alive();
            }
            if Instant::now() > deadline {
                let object = api.get_opt(name).await.ok().flatten();
                panic!(
                    "timed out waiting for {what}; {name}: {object:#?}\n{}",
                    self.controller_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `timeout` for the NodeENI to be gone (its finalizer removed).
    pub async fn wait_nodeeni_gone(&self, name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.nodeenis().get_opt(name).await.unwrap().is_some() {
            assert!(
                Instant::now() < deadline,
                "the finalizer of {name} stayed for {timeout:?}; EC2 has {:?}\n{}",
                self.owned_enis().await,
                self.controller_log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until EC2's owned ENIs satisfy `check`.
    pub async fn wait_enis(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Eni]) -> bool,
    ) -> Vec<Eni> {
        let deadline = Instant::now() + timeout;
        loop {
            let enis = self.owned_enis().await;
            if check(&enis) {
                return enis;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {enis:#?}\n{}",
                self.controller_log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end of the current controller's log.
    pub fn controller_log(&self) -> String {
        let log = self
            .plane
            .dir()
            .join(format!("controller-{}.log", self.controller_runs));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Short timings for tests, unless `extra_args` sets them.
fn test_timings(extra_args: &[&str]) -> Vec<&'static str> {
    [
        ("--transition-poll", "200ms"),
        ("--gc-grace-period", "2s"),
        ("--resync-period", "30s"),
        ("--leader-elect", "false"),
    ]
    .into_iter()
    .filter(|(flag, _)| !extra_args.iter().any(|arg| arg.starts_with(flag)))
    .flat_map(|(flag, value)| [flag, value])
    .collect()
}

/// The `multi-eni` binary cargo built for these tests.
pub fn multi_eni_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_multi-eni") {
        return path.into();
    }
    // Examples live in target/<profile>/examples/, the binary one level up.
    let me = std::env::current_exe().expect("own path");
    me.parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>")
        .join("multi-eni")
}
