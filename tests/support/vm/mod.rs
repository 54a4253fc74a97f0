//! Nodes as small VMs with a real Linux kernel: Debian's cloud kernel under QEMU (TCG: no
//! hardware virtualization needed), the node agent inside as on a node, and ENIs as virtio-net
//! PCI devices hot-plugged with the ENI's MAC address.
//!
//! A VM has three ways in and out: a management link (QEMU user networking: the guest
//! reaches this machine's loopback at 10.0.2.2, so the agent reaches the test's API server,
//! and the test reaches a command channel in the guest through a forwarded port), a QMP
//! socket (hot-plug), and two serial ports captured to files (the kernel's console and the
//! agent's output). Everything is killed with the test process.

mod fabric;
mod image;
pub mod pods;
mod qmp;
mod vpc;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use fabric::Fabric;
pub use image::NodeImage;
pub use qmp::Qmp;
pub use vpc::Vpc;

use super::process::{Process, free_port};

/// How long a VM may take to boot (TCG on two shared cores: about 5 s alone, 10 to 16 s for
/// three at once).
const BOOT_TIMEOUT: Duration = Duration::from_mins(2);
/// How long the guest may take to release an unplugged device.
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(30);
/// The management NIC's PCI slot; ENIs go to other free slots of bus 0.
const MANAGEMENT_SLOT: u8 = 3;

/// What a node VM is booted with.
pub struct NodeVmConfig<'a> {
    /// The node's name (`--node-name` of its agent, its hostname).
    pub name: &'a str,
    pub image: &'a NodeImage,
    /// A kubeconfig the guest can use: the API server at 10.0.2.2 (see
    /// [`super::control_plane::ControlPlane::guest_kubeconfig`]).
    pub kubeconfig: String,
    /// Whether the boot starts the agent (else the test does, with [`NodeVm::start_agent`]).
    pub start_agent: bool,
    /// More environment of the agent (e.g. `RUST_LOG`, `SRIOV_PLUGIN_SELECTOR`).
    pub agent_env: &'a [(&'a str, &'a str)],
    /// Where the VM's files and logs go.
    pub dir: &'a Path,
}

/// A running node VM; QEMU is killed when it drops.
pub struct NodeVm {
    pub name: String,
    qmp: Qmp,
    command_port: u16,
    dir: PathBuf,
    /// ENIs plugged, by MAC: their PCI slot and tap.
    plugged: Mutex<BTreeMap<String, (u8, String)>>,
    /// When QEMU was started and when the guest's boot script was done.
    pub started: Instant,
    pub booted: Instant,
    qemu: Process,
}

/// A device hot-plugged into a VM.
#[derive(Clone, Debug)]
pub struct Plugged {
    /// `0000:00:<slot>.0`.
    pub pci_address: String,
    /// The tap on the VPC bridge.
    pub tap: String,
}

impl NodeVm {
    /// Boots a node VM and waits until its command channel answers.
    pub async fn boot(config: &NodeVmConfig<'_>) -> NodeVm {
        let dir = config.dir.join(config.name);
        std::fs::create_dir_all(&dir).expect("the VM's directory");
        let env = guest_env(config);
        std::fs::write(dir.join("env"), env).expect("write the guest's env");
        std::fs::write(dir.join("kubeconfig"), &config.kubeconfig).expect("write kubeconfig");
        let qmp_socket = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&qmp_socket);
        let command_port = free_port();
        let started = Instant::now();
        let qemu = Process::spawn(
            &format!("qemu-{}", config.name),
            &mut qemu_command(config.image, &dir, &qmp_socket, command_port),
            &dir,
        );
        let qmp = Qmp::connect(&qmp_socket, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("QMP of {}: {e}", config.name));
        let mut vm = NodeVm {
            name: config.name.to_owned(),
            qmp,
            command_port,
            dir,
            plugged: Mutex::default(),
            started,
            booted: started,
            qemu,
        };
        vm.wait_booted().await;
        vm
    }

    async fn wait_booted(&mut self) {
        let deadline = self.started + BOOT_TIMEOUT;
        loop {
            self.qemu.check_alive();
            if let Ok(Ok((0, _))) =
                tokio::time::timeout(Duration::from_secs(5), self.try_sh("true")).await
            {
                self.booted = Instant::now();
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node VM {} did not boot in {BOOT_TIMEOUT:?}; its console:\n{}",
                self.name,
                self.console_log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a shell script in the guest (busybox sh, as root); its exit code and output
    /// (stdout and stderr). Errs when the command channel does not answer.
    pub async fn try_sh(&self, script: &str) -> std::io::Result<(i32, String)> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.command_port)).await?;
        let wrapped = format!("exec 2>&1 </dev/null\n{script}\necho \"__exit=$?\"\n");
        stream.write_all(wrapped.as_bytes()).await?;
        stream.shutdown().await?;
        let mut output = String::new();
        stream.read_to_string(&mut output).await?;
        let (output, code) = output
            .rsplit_once("__exit=")
            .ok_or_else(|| std::io::Error::other("the guest's shell did not answer"))?;
        let code = code.trim().parse().map_err(std::io::Error::other)?;
        Ok((code, output.to_owned()))
    }

    /// Runs a shell script in the guest; its output. Panics if it fails.
    pub async fn sh(&self, script: &str) -> String {
        let (code, output) = tokio::time::timeout(Duration::from_mins(1), self.try_sh(script))
            .await
            .unwrap_or_else(|_| panic!("{}: `{script}` did not finish in 1 min", self.name))
            .unwrap_or_else(|e| panic!("{}: `{script}`: {e}", self.name));
        assert_eq!(code, 0, "{}: `{script}` failed:\n{output}", self.name);
        output
    }

    /// Starts the node agent (`/bin/start-agent` in the guest).
    pub async fn start_agent(&self) {
        self.sh("/bin/start-agent").await;
    }

    /// SIGKILL to the node agent: no chance to finish anything.
    pub async fn kill_agent(&self) {
        self.sh(
            "kill -9 $(pidof multi-eni) && while pidof multi-eni >/dev/null; do sleep 0.05; done",
        )
        .await;
    }

    /// Hot-plugs a virtio-net PCI device with `mac` into a free slot of bus 0 chosen at
    /// random (so neither the slot nor the kernel's name follows the ENI's device index),
    /// backed by a tap on the VPC bridge. Returns when QEMU has added it; the guest sees
    /// it through ACPI hot-plug about half a second later.
    pub async fn hot_plug(&self, vpc: &Vpc, mac: &str) -> Plugged {
        let slot = self.free_slot();
        let tap = vpc.create_tap();
        let id = device_id(mac);
        self.qmp(
            "netdev_add",
            json!({"type": "tap", "id": format!("net-{id}"), "ifname": tap, "script": "no", "downscript": "no"}),
        )
        .await;
        vpc.connect(&tap);
        self.qmp(
            "device_add",
            json!({"driver": "virtio-net-pci", "id": id, "netdev": format!("net-{id}"), "mac": mac,
                   "addr": format!("{slot:#04x}"), "romfile": ""}),
        )
        .await;
        (self.plugged.lock().expect("plugged")).insert(mac.to_owned(), (slot, tap.clone()));
        Plugged {
            pci_address: self.pci_address(mac).expect("just plugged"),
            tap,
        }
    }

    /// Unplugs the device with `mac` (ACPI eject) and returns once the guest has released
    /// it (QEMU's DEVICE_DELETED event), as EC2's detach completes once the instance has
    /// released the ENI. Does nothing for a MAC that is not plugged.
    pub async fn unplug(&self, vpc: &Vpc, mac: &str) {
        let Some((_, tap)) = self.plugged.lock().expect("plugged").remove(mac) else {
            return;
        };
        let id = device_id(mac);
        let mut events = self.qmp.events();
        self.qmp("device_del", json!({"id": id})).await;
        let released = tokio::time::timeout(UNPLUG_TIMEOUT, async {
            while let Ok(event) = events.recv().await {
                if event["event"] == "DEVICE_DELETED" && event["data"]["device"] == id.as_str() {
                    return;
                }
            }
        });
        released.await.unwrap_or_else(|_| {
            panic!(
                "{}: the guest did not release {mac} in {UNPLUG_TIMEOUT:?}",
                self.name
            )
        });
        self.qmp("netdev_del", json!({"id": format!("net-{id}")}))
            .await;
        vpc.remove(&tap);
    }

    /// The MACs plugged now.
    pub fn plugged(&self) -> Vec<String> {
        (self.plugged.lock().expect("plugged"))
            .keys()
            .cloned()
            .collect()
    }

    /// The PCI address of the device plugged with `mac`.
    pub fn pci_address(&self, mac: &str) -> Option<String> {
        let plugged = self.plugged.lock().expect("plugged");
        (plugged.get(mac)).map(|(slot, _)| format!("0000:00:{slot:02x}.0"))
    }

    /// Waits until `condition` (a shell script) succeeds in the guest, polling; panics
    /// naming `what`, with the agent's log, after `timeout`.
    pub async fn wait_until(&self, what: &str, condition: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !matches!(self.try_sh(condition).await, Ok((0, _))) {
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {what} (`{condition}`); the agent's log:\n{}",
                self.name,
                tail(&self.agent_log(), 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn qmp(&self, command: &str, arguments: Value) -> Value {
        self.qmp
            .execute(command, arguments)
            .await
            .unwrap_or_else(|e| panic!("{}: QMP {e}", self.name))
    }

    fn free_slot(&self) -> u8 {
        let plugged = self.plugged.lock().expect("plugged");
        let used: Vec<u8> = plugged.values().map(|(slot, _)| *slot).collect();
        // Slots 0 and 1 hold the host bridge and the PIIX3 functions.
        let free: Vec<u8> = (2..32)
            .filter(|slot| *slot != MANAGEMENT_SLOT && !used.contains(slot))
            .collect();
        *fastrand::choice(&free).expect("a free PCI slot")
    }

    /// The kernel's console (first serial port).
    pub fn console_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    /// The agent's output, from every start (second serial port).
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Panics with the consoles' ends if QEMU exited.
    pub fn check_alive(&self) {
        self.qemu.check_alive();
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// QMP IDs start with a letter: `eni` and the MAC's hex digits.
fn device_id(mac: &str) -> String {
    format!("eni{}", mac.replace(':', ""))
}

/// The node's settings, as shell assignments for the guest's scripts and the agent.
fn guest_env(config: &NodeVmConfig<'_>) -> String {
    let start = if config.start_agent { "yes" } else { "no" };
    let mut env = format!(
        "NODE_NAME='{}'\nSTART_AGENT={start}\nIMDS_ENDPOINT=none\n",
        config.name
    );
    for (name, value) in config.agent_env {
        let _ = writeln!(env, "{name}='{value}'");
    }
    env
}

fn qemu_command(image: &NodeImage, dir: &Path, qmp: &Path, command_port: u16) -> Command {
    let mut command = Command::new("qemu-system-x86_64");
    let file = |name: &str| dir.join(name).display().to_string();
    command
        .args([
            "-accel", "tcg", "-cpu", "max", "-M", "pc", "-m", "512", "-smp", "1",
        ])
        .args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initramfs)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .args(["-serial", &format!("file:{}", file("console.log"))])
        .args(["-serial", &format!("file:{}", file("agent.log"))])
        .args([
            "-qmp",
            &format!("unix:{},server=on,wait=off", qmp.display()),
        ])
        .args([
            "-netdev",
            &format!("user,id=mgmt,hostfwd=tcp:127.0.0.1:{command_port}-:7000"),
        ])
        .args([
            "-device",
            &format!("virtio-net-pci,netdev=mgmt,addr={MANAGEMENT_SLOT:#04x},romfile="),
        ])
        .args([
            "-fw_cfg",
            &format!("name=opt/multi-eni/env,file={}", file("env")),
        ])
        .args([
            "-fw_cfg",
            &format!("name=opt/multi-eni/kubeconfig,file={}", file("kubeconfig")),
        ]);
    command
}
