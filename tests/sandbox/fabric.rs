//! The sandbox's stand-in for EC2 networking: a network namespace per simulated node, and a
//! "VPC" namespace holding a bridge. When the EC2 simulator attaches an ENI, a veth appears in
//! the node's namespace with the ENI's MAC (named `ens<5 + device index>`, as AL2023 names
//! hot-plugged ENIs), its peer plugged into the bridge; when it detaches, the link goes away.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Fabric {
    prefix: String,
    /// Namespace names, by node name.
    nodes: BTreeMap<String, String>,
    vpc: String,
    /// ENI MAC → (namespace, link name), for detaching.
    plugged: Mutex<BTreeMap<String, (String, String)>>,
    next_peer: AtomicU32,
}

impl Fabric {
    /// Namespaces `<prefix>-vpc` (with bridge `br0`) and `<prefix>-<node>` for each node.
    pub fn new(prefix: &str, nodes: &[String]) -> Fabric {
        let vpc = format!("{prefix}-vpc");
        let fabric = Fabric {
            prefix: prefix.to_owned(),
            nodes: nodes
                .iter()
                .map(|node| (node.clone(), format!("{prefix}-{node}")))
                .collect(),
            vpc,
            plugged: Mutex::default(),
            next_peer: AtomicU32::new(0),
        };
        fabric.cleanup();
        ip(&["netns", "add", &fabric.vpc]);
        ip(&["-n", &fabric.vpc, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &fabric.vpc, "link", "set", "br0", "up"]);
        for namespace in fabric.nodes.values() {
            ip(&["netns", "add", namespace]);
            ip(&["-n", namespace, "link", "set", "lo", "up"]);
        }
        fabric
    }

    /// The namespace of a node.
    pub fn namespace(&self, node: &str) -> &str {
        &self.nodes[node]
    }

    /// `/run/netns/<namespace>`: what `multi-eni manager --netns` takes.
    pub fn namespace_path(&self, node: &str) -> String {
        format!("/run/netns/{}", self.nodes[node])
    }

    /// The ENI appears in the node's namespace, wired to the VPC bridge.
    pub fn plug(&self, node: &str, mac: &str, device_index: i64) {
        let namespace = &self.nodes[node];
        let name = format!("ens{}", 5 + device_index);
        let peer = format!(
            "{}p{}",
            short(&self.prefix),
            self.next_peer.fetch_add(1, Ordering::Relaxed)
        );
        ip(&[
            "link", "add", &name, "address", mac, "netns", namespace, "type", "veth", "peer",
            "name", &peer, "netns", &self.vpc,
        ]);
        ip(&["-n", &self.vpc, "link", "set", &peer, "master", "br0", "up"]);
        self.plugged
            .lock()
            .expect("plugged")
            .insert(mac.to_owned(), (namespace.clone(), name));
    }

    /// The ENI's link leaves the node (whatever the node agent renamed it to).
    pub fn unplug(&self, mac: &str) {
        let Some((namespace, _)) = self.plugged.lock().expect("plugged").remove(mac) else {
            return;
        };
        let output = Command::new("ip")
            .args(["-n", &namespace, "-o", "link", "show"])
            .output()
            .expect("ip");
        let text = String::from_utf8_lossy(&output.stdout);
        // "2: multus@if3: <...> ... link/ether 02:..:.. brd ..."
        if let Some(line) = text
            .lines()
            .find(|line| line.contains(&format!("link/ether {mac} ")))
        {
            let name = line
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .split('@')
                .next()
                .unwrap_or("");
            ip(&["-n", &namespace, "link", "del", name]);
        }
    }

    /// `ip -br link` (or any `ip` command) inside a node's namespace.
    pub fn ip_in(&self, node: &str, args: &[&str]) -> String {
        let output = Command::new("ip")
            .args(["-n", &self.nodes[node]])
            .args(args)
            .output()
            .expect("ip");
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    }

    fn cleanup(&self) {
        for namespace in self.nodes.values().chain([&self.vpc]) {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .output();
        }
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// At most 8 characters of the prefix, so that peer names fit IFNAMSIZ.
fn short(prefix: &str) -> &str {
    &prefix[..prefix.len().min(8)]
}

/// Runs `ip` with `args`; panics with its error output when it fails.
pub fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether the kernel can make links of `kind` (ipvlan is missing from some kernels).
pub fn kernel_has(kind: &str) -> bool {
    let name = format!("probe{}", std::process::id() % 100_000);
    let made = Command::new("ip")
        .args([
            "link",
            "add",
            &name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}p"),
        ])
        .status();
    if !made.is_ok_and(|status| status.success()) {
        return false;
    }
    let child = format!("{name}c");
    let ok = Command::new("ip")
        .args(["link", "add", &child, "link", &name, "type", kind])
        .output()
        .is_ok_and(|output| output.status.success());
    let _ = Command::new("ip").args(["link", "del", &name]).output();
    ok
}
