//! The "VPC" between node VMs: a bridge in a network namespace of its own on this machine.
//! Each ENI hot-plugged into a VM is backed by a tap that ends on this bridge, so the
//! nodes' ENIs reach each other at layer 2, and nothing else reaches them.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::process::run;

pub struct Vpc {
    namespace: String,
    /// Tap names are `<prefix>t<n>`: unique on this machine while the test lives.
    prefix: String,
    next_tap: AtomicU32,
}

impl Vpc {
    /// Namespace `<prefix>-vpc` with bridge `br0` (a leftover of the same name is removed).
    pub fn new(prefix: &str) -> Vpc {
        let vpc = Vpc {
            namespace: format!("{prefix}-vpc"),
            prefix: prefix[..prefix.len().min(8)].to_owned(),
            next_tap: AtomicU32::new(0),
        };
        let _ = Command::new("ip")
            .args(["netns", "del", &vpc.namespace])
            .output();
        ip(&["netns", "add", &vpc.namespace]);
        vpc.ip(&["link", "add", "br0", "type", "bridge"]);
        vpc.ip(&["link", "set", "br0", "up"]);
        vpc
    }

    /// A new persistent tap in this machine's namespace, for QEMU to open by name
    /// (`netdev_add tap,ifname=…`); [`Vpc::connect`] then moves it onto the bridge.
    pub fn create_tap(&self) -> String {
        let n = self.next_tap.fetch_add(1, Ordering::Relaxed);
        let tap = format!("{}t{n}", self.prefix);
        ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]);
        tap
    }

    /// Moves an opened tap into the VPC namespace (QEMU's file descriptor keeps working:
    /// a tap may change namespace) and plugs it into the bridge.
    pub fn connect(&self, tap: &str) {
        ip(&["link", "set", tap, "netns", &self.namespace]);
        self.ip(&["link", "set", tap, "master", "br0", "up"]);
    }

    /// Removes a tap, wherever it is (QEMU has closed it).
    pub fn remove(&self, tap: &str) {
        for namespace in [self.namespace.as_str(), ""] {
            let mut command = Command::new("ip");
            if !namespace.is_empty() {
                command.args(["-n", namespace]);
            }
            if command
                .args(["link", "del", tap])
                .output()
                .is_ok_and(|output| output.status.success())
            {
                return;
            }
        }
    }

    /// `ip -n <vpc namespace> <args>`.
    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.namespace.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for Vpc {
    fn drop(&mut self) {
        // Taps still in it go with the namespace.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .output();
    }
}

/// Runs `ip` with `args`; panics with its error output when it fails.
fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}
