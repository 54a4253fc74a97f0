//! The "VPC" between node VMs: a bridge in a network namespace of its own on this machine.
//! Each ENI hot-plugged into a VM is backed by a tap that ends on this bridge, so the
//! nodes' ENIs reach each other at layer 2, and nothing else reaches them.
//!
//! As the VPC does with source/destination checking on (EC2's default), the bridge delivers
//! an IPv4 packet or an ARP message to a tap only when its destination address is assigned
//! to that tap's ENI, and takes from a tap only those whose source address is assigned to
//! it: per tap, two ebtables chains (nftables backend, in the VPC namespace) that let the
//! ENI's address blocks through ([`Vpc::assign`]) and drop everything else, from the tap's
//! first packet on; a packet crosses the sender's chain, then the receiver's.

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
    /// a tap may change namespace) and plugs it into the bridge, with no address assigned
    /// yet: nothing passes until [`Vpc::assign`].
    pub fn connect(&self, tap: &str) {
        ip(&["link", "set", tap, "netns", &self.namespace]);
        for (chain, direction) in chains(tap) {
            self.ebtables(&["-N", &chain]);
            self.ebtables(&["-A", &chain, "-j", "DROP"]);
            self.ebtables(&["-A", "FORWARD", direction, tap, "-j", &chain]);
        }
        self.ip(&["link", "set", tap, "master", "br0", "up"]);
    }

    /// Makes `blocks` (`10.0.1.5/32`, `10.0.1.32/28`) the addresses of the tap's ENI: the
    /// only sources taken from it and destinations delivered to it, for IPv4 and ARP alike.
    pub fn assign(&self, tap: &str, blocks: &[String]) {
        for (chain, direction) in chains(tap) {
            let (ip, arp) = if direction == "-i" {
                ("--ip-src", "--arp-ip-src")
            } else {
                ("--ip-dst", "--arp-ip-dst")
            };
            self.ebtables(&["-F", &chain]);
            for block in blocks {
                // RETURN, not ACCEPT: ACCEPT would end FORWARD before the other tap's chain.
                self.ebtables(&["-A", &chain, "-p", "IPv4", ip, block, "-j", "RETURN"]);
                self.ebtables(&["-A", &chain, "-p", "ARP", arp, block, "-j", "RETURN"]);
            }
            self.ebtables(&["-A", &chain, "-j", "DROP"]);
        }
    }

    /// Removes a tap, wherever it is (QEMU has closed it), and its chains.
    pub fn remove(&self, tap: &str) {
        for (chain, direction) in chains(tap) {
            let rule = ["-D", "FORWARD", direction, tap, "-j", &chain];
            if self.ebtables_output(&rule).status.success() {
                // nftables deletes only an empty chain.
                self.ebtables(&["-F", &chain]);
                self.ebtables(&["-X", &chain]);
            }
        }
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

    /// `ebtables <args>` in the VPC namespace (Debian's `iptables` package, nftables backend).
    fn ebtables(&self, args: &[&str]) {
        let output = self.ebtables_output(args);
        assert!(
            output.status.success(),
            "ebtables {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn ebtables_output(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.namespace, "ebtables-nft"])
            .args(args)
            .output()
            .expect("ebtables-nft (Debian's iptables package: just vm-deps)")
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

/// The tap's chains: what it sends (`-i`: in from the tap) and what it is sent (`-o`).
fn chains(tap: &str) -> [(String, &'static str); 2] {
    [(format!("{tap}-from"), "-i"), (format!("{tap}-to"), "-o")]
}

/// Runs `ip` with `args`; panics with its error output when it fails.
fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}
