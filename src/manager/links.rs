//! The OS boundary for network links: a small trait of domain operations.
//!
//! The agent is written against [`Links`]; [`super::netlink`] implements it over a
//! route-netlink handle that the caller opens (in the host's namespace, or in a test's).
//! Every operation names the `ip` command it is equivalent to.

use std::future::Future;

use nix::errno::Errno;

use crate::manager::mac::Mac;

/// The label of [`LinkError::NameTaken`].
pub const NAME_TAKEN: &str = "name_taken";

/// What the agent needs to know of one link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub mac: Mac,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`), whatever the carrier.
    pub up: bool,
}

/// A link operation that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The link went away during the operation (ENODEV): not a failure, the link's next
    /// appearance is configured from its netlink event.
    #[error("the interface disappeared")]
    Gone,
    /// The rename target is the name of another link (EEXIST).
    #[error("the name {name} is taken by another interface")]
    NameTaken { name: String },
    /// The kernel refused the request, e.g. an MTU above the device's maximum (EINVAL).
    #[error("{operation} was refused by the kernel: {source}")]
    Refused {
        operation: String,
        source: std::io::Error,
    },
    /// The netlink socket itself failed.
    #[error("netlink request failed: {0}")]
    Netlink(String),
    /// Several links carry the MAC (a device and a child sharing it can't be told apart).
    #[error("several interfaces carry MAC {mac}: {names}; remove the extra ones")]
    Ambiguous { mac: Mac, names: String },
}

impl LinkError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            LinkError::Gone => "link_gone",
            LinkError::NameTaken { .. } => NAME_TAKEN,
            LinkError::Refused { .. } => "kernel_refused",
            LinkError::Netlink(_) => "netlink",
            LinkError::Ambiguous { .. } => "ambiguous_mac",
        }
    }

    /// The kernel answered EBUSY: for a rename, the link is up on a kernel before 6.2.
    pub fn is_busy(&self) -> bool {
        matches!(self, LinkError::Refused { source, .. } if source.raw_os_error() == Some(Errno::EBUSY as i32))
    }

    /// Whether the same request may succeed later without anything else changing. A taken
    /// name counts: the other link may be one of this node's ENIs on its way to another name.
    pub fn is_transient(&self) -> bool {
        match self {
            LinkError::Netlink(_) | LinkError::NameTaken { .. } => true,
            LinkError::Refused { source, .. } => matches!(
                source.raw_os_error().map(Errno::from_raw),
                Some(Errno::EBUSY | Errno::EAGAIN)
            ),
            LinkError::Gone | LinkError::Ambiguous { .. } => false,
        }
    }
}

/// The link operations of the node agent. Links that are children of another link (VLAN,
/// macvlan, ipvlan, veth: they may share the parent's MAC) are never reported.
pub trait Links: Send + Sync {
    /// Every link: `ip link show`.
    fn links(&self) -> impl Future<Output = Result<Vec<LinkState>, LinkError>> + Send;

    /// One link, `None` once it is gone: `ip link show dev <name>`.
    fn link(&self, index: u32)
    -> impl Future<Output = Result<Option<LinkState>, LinkError>> + Send;

    /// `ip link set dev <name> down`.
    fn set_down(&self, index: u32) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// `ip link set dev <name> up`.
    fn set_up(&self, index: u32) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// `ip link set dev <name> mtu <mtu>`.
    fn set_mtu(&self, index: u32, mtu: u32) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// `ip link set dev <name> name <new>`. Linux 6.2 and later rename an up link; older
    /// kernels refuse with EBUSY unless it is down (see [`LinkError::is_busy`]).
    fn rename(&self, index: u32, name: &str) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// Whether a link of any kind (children included) carries `name`: `ip link show dev <name>`.
    fn name_taken(&self, name: &str) -> impl Future<Output = Result<bool, LinkError>> + Send;

    /// The one link with this MAC: `ip -br link | grep <mac>`.
    fn link_by_mac(
        &self,
        mac: Mac,
    ) -> impl Future<Output = Result<Option<LinkState>, LinkError>> + Send {
        async move { only_link_with(self.links().await?, mac) }
    }
}

/// The link carrying `mac` among `links`; an error when several do.
pub fn only_link_with(links: Vec<LinkState>, mac: Mac) -> Result<Option<LinkState>, LinkError> {
    let mut matching: Vec<LinkState> = links.into_iter().filter(|link| link.mac == mac).collect();
    if matching.len() > 1 {
        let names: Vec<_> = matching.iter().map(|link| link.name.as_str()).collect();
        return Err(LinkError::Ambiguous {
            mac,
            names: names.join(", "),
        });
    }
    Ok(matching.pop())
}
