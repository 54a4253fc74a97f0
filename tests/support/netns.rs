//! Throwaway network namespaces for tests (root is required): each one is created by a
//! thread that unshares its network namespace, kept alive by an open file, and gone when
//! the [`TestNetns`] and every socket opened in it are dropped.

use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::TryStreamExt;
use multi_eni::manager::links::{LinkState, Links};
use multi_eni::manager::mac::Mac;
use multi_eni::manager::netlink::{self, Netlink};
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns, unshare};
use rtnetlink::{LinkDummy, LinkIfb, LinkMessageBuilder, LinkUnspec, LinkVxlan};

/// A network namespace with a netlink handle inside it.
pub struct TestNetns {
    file: File,
    handle: rtnetlink::Handle,
    links: Netlink,
    connection: tokio::task::JoinHandle<()>,
}

impl TestNetns {
    /// A new, empty namespace (only `lo`); its netlink connection runs on the current
    /// tokio runtime.
    pub fn new() -> TestNetns {
        let file = std::thread::spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare a network namespace (run as root)");
            File::open("/proc/thread-self/ns/net").expect("open the namespace")
        })
        .join()
        .expect("namespace thread");
        let runtime = tokio::runtime::Handle::current();
        let namespace = file.try_clone().expect("dup");
        let (connection, handle, _) = std::thread::spawn(move || {
            let _runtime = runtime.enter();
            setns(&namespace, CloneFlags::CLONE_NEWNET).expect("setns");
            rtnetlink::new_connection().expect("netlink")
        })
        .join()
        .expect("netlink thread");
        let connection = tokio::spawn(connection);
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let (links, _) = netlink::open(Some(&path)).expect("open netlink in the namespace");
        TestNetns {
            file,
            handle,
            links,
            connection,
        }
    }

    /// The namespace as a path that `netlink::open` and `--netns` accept.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// The namespace for another process (`--netns` of a child).
    fn path_for_children(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.file.as_raw_fd()
        ))
    }

    /// `multi-eni manager` (the binary at `binary`) for `node`, serving this namespace
    /// from a child process, with its files under `dir` and the API server of `kubeconfig`.
    pub fn manager_command(
        &self,
        binary: &Path,
        kubeconfig: &Path,
        node: &str,
        dir: &Path,
    ) -> Command {
        let mut command = Command::new(binary);
        command
            .args(["manager", "--node-name", node, "--netns"])
            .arg(self.path_for_children())
            .arg("--sysfs-root")
            .arg(dir.join("sys"))
            .arg("--state-file")
            .arg(dir.join("state.json"))
            .arg("--sriov-config")
            .arg(dir.join("pcidp.json"))
            .args(["--imds-endpoint", "none"])
            // Any free port: agents of several tests share this machine's loopback.
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env("KUBECONFIG", kubeconfig);
        command
    }

    /// `ip link add <name> address <mac> type dummy` (down, MTU 1500), or `type ifb` on a
    /// kernel built without the dummy driver: both are standalone Ethernet links with no
    /// parent, which is what an ENI's interface looks like to the agent.
    pub async fn add_link(&self, name: &str, mac: &str) {
        static DUMMY_MISSING: AtomicBool = AtomicBool::new(false);
        let mac: Mac = mac.parse().expect("a MAC");
        if !DUMMY_MISSING.load(Ordering::Relaxed) {
            let dummy = LinkDummy::new(name).address(mac.0.to_vec()).build();
            match self.handle.link().add(dummy).execute().await {
                Err(rtnetlink::Error::NetlinkError(e))
                    if e.raw_code() == -(Errno::EOPNOTSUPP as i32) =>
                {
                    DUMMY_MISSING.store(true, Ordering::Relaxed);
                }
                result => return result.unwrap_or_else(|e| panic!("add dummy {name}: {e}")),
            }
        }
        let ifb = LinkIfb::new(name).address(mac.0.to_vec()).build();
        let result = self.handle.link().add(ifb).execute().await;
        result.unwrap_or_else(|e| panic!("add ifb {name}: {e}"));
    }

    /// `ip link add <name> address <mac> type vxlan id <vni> dstport <port> [dev <lower>]`
    /// (down): a standalone Ethernet link to the agent, whose MTU is bounded by the lower
    /// device's and which cannot be set up while a socket holds its UDP port.
    pub async fn add_vxlan(&self, name: &str, mac: &str, vni: u32, port: u16, lower: Option<&str>) {
        let mac: Mac = mac.parse().expect("a MAC");
        let mut vxlan = LinkVxlan::new(name, vni).port(port);
        if let Some(lower) = lower {
            vxlan = vxlan.dev(self.index(lower).await);
        }
        let message = vxlan.address(mac.0.to_vec()).build();
        let result = self.handle.link().add(message).execute().await;
        result.unwrap_or_else(|e| panic!("add vxlan {name}: {e}"));
    }

    /// A UDP socket bound to `port` on every address of the namespace.
    pub fn bind_udp(&self, port: u16) -> UdpSocket {
        let namespace = self.file.try_clone().expect("dup");
        std::thread::spawn(move || {
            setns(&namespace, CloneFlags::CLONE_NEWNET).expect("setns");
            UdpSocket::bind(("0.0.0.0", port)).expect("bind the UDP port")
        })
        .join()
        .expect("socket thread")
    }

    /// `ip link del <name>`.
    pub async fn delete(&self, name: &str) {
        let index = self.index(name).await;
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .expect("delete link");
    }

    /// `ip link set <name> mtu <mtu>`.
    pub async fn set_mtu(&self, name: &str, mtu: u32) {
        self.set(name, |link| link.mtu(mtu)).await;
    }

    /// `ip link set <name> up`.
    pub async fn set_up(&self, name: &str) {
        self.set(name, LinkMessageBuilder::up).await;
    }

    /// `ip link set <name> name <new>`.
    pub async fn rename(&self, name: &str, new: &str) {
        self.set(name, |link| link.name(new)).await;
    }

    /// `ip link set <name> down`.
    pub async fn set_down(&self, name: &str) {
        self.set(name, LinkMessageBuilder::down).await;
    }

    async fn set(
        &self,
        name: &str,
        change: impl FnOnce(LinkMessageBuilder<LinkUnspec>) -> LinkMessageBuilder<LinkUnspec>,
    ) {
        let message = change(LinkUnspec::new_with_index(self.index(name).await)).build();
        let result = self.handle.link().set(message).execute().await;
        result.unwrap_or_else(|e| panic!("change link {name}: {e}"));
    }

    /// The link named `name`, if any.
    pub async fn link(&self, name: &str) -> Option<LinkState> {
        self.links()
            .await
            .into_iter()
            .find(|link| link.name == name)
    }

    pub async fn links(&self) -> Vec<LinkState> {
        self.links.links().await.expect("list links")
    }

    /// Whether `name` is up with `mtu`.
    pub async fn is_configured(&self, name: &str, mtu: u32) -> bool {
        self.link(name)
            .await
            .is_some_and(|link| link.up && link.mtu == mtu)
    }

    async fn index(&self, name: &str) -> u32 {
        let mut reply = self.handle.link().get().match_name(name).execute();
        let link = reply
            .try_next()
            .await
            .expect("get link")
            .expect("the link exists");
        link.header.index
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
