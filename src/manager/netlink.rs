//! [`Links`] over route netlink (rtnetlink), and the link notifications the agent acts on.
//!
//! A netlink socket belongs to the network namespace it was opened in, whatever thread
//! uses it later; [`open`] opens the agent's sockets in a given namespace from a short-lived
//! thread, so the agent can serve a test's (or a simulated node's) namespace unchanged.

use std::fs::File;
use std::io;
use std::path::Path;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use rtnetlink::{LinkUnspec, MulticastGroup};
use tokio::task::JoinHandle;

use crate::manager::links::{LinkError, LinkState, Links};
use crate::manager::mac::Mac;

/// The kernel's receive buffer for link notifications: a burst of hot-plugged devices and
/// the agent's own changes to them fit without an overrun (which costs a full resync).
const EVENT_BUFFER_BYTES: i32 = 4 << 20;

/// [`Links`] over an rtnetlink handle.
pub struct Netlink {
    handle: rtnetlink::Handle,
    _connection: AbortOnDrop,
}

/// Link notifications (RTNLGRP_LINK), as `ip monitor link` shows them.
pub struct LinkEvents {
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    _connection: AbortOnDrop,
}

/// One link notification.
#[derive(Debug)]
pub enum LinkEvent {
    /// A link appeared or changed (RTM_NEWLINK).
    Changed(LinkState),
    /// A link went away (RTM_DELLINK).
    Removed(LinkState),
    /// Notifications were lost (the receive buffer overflowed): re-read every link.
    Overrun,
}

/// Opens a request socket and a link-notification socket in the network namespace at
/// `netns` (e.g. `/run/netns/node-a`), or in the caller's when `None`. Their connection
/// tasks run on the current tokio runtime until the returned values are dropped.
pub fn open(netns: Option<&Path>) -> io::Result<(Netlink, LinkEvents)> {
    let runtime = tokio::runtime::Handle::current();
    let namespace = netns.map(File::open).transpose()?;
    let connect = move || {
        let _runtime = runtime.enter();
        if let Some(namespace) = &namespace {
            setns(namespace, CloneFlags::CLONE_NEWNET)?;
        }
        let requests = rtnetlink::new_connection()?;
        let (mut events, _, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])?;
        events
            .socket_mut()
            .socket_mut()
            .set_rx_buf_sz(EVENT_BUFFER_BYTES)?;
        io::Result::Ok((requests, events, messages))
    };
    // setns changes the calling thread only, so a namespace is entered by a thread of its own.
    let ((requests, handle, _), events, messages) = if netns.is_some() {
        std::thread::spawn(connect)
            .join()
            .map_err(|_| io::Error::other("the netlink thread panicked"))??
    } else {
        connect()?
    };
    let netlink = Netlink {
        handle,
        _connection: AbortOnDrop(tokio::spawn(requests)),
    };
    let events = LinkEvents {
        messages,
        _connection: AbortOnDrop(tokio::spawn(events)),
    };
    Ok((netlink, events))
}

impl Netlink {
    async fn set(&self, operation: String, message: LinkMessage) -> Result<(), LinkError> {
        let result = self.handle.link().set(message).execute().await;
        result.map_err(|error| classify(error, operation))
    }
}

impl Links for Netlink {
    async fn links(&self) -> Result<Vec<LinkState>, LinkError> {
        let mut dump = self.handle.link().get().execute();
        let mut links = Vec::new();
        while let Some(message) = dump.next().await {
            let message = message.map_err(|error| classify(error, "list links".into()))?;
            links.extend(link_state(&message));
        }
        Ok(links)
    }

    async fn link(&self, index: u32) -> Result<Option<LinkState>, LinkError> {
        let mut reply = self.handle.link().get().match_index(index).execute();
        match reply.next().await {
            Some(Ok(message)) => Ok(link_state(&message)),
            None => Ok(None),
            Some(Err(error)) => match classify(error, format!("read link {index}")) {
                LinkError::Gone => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn set_down(&self, index: u32) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(index).down().build();
        self.set(format!("setting link {index} down"), message)
            .await
    }

    async fn set_up(&self, index: u32) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(index).up().build();
        self.set(format!("setting link {index} up"), message).await
    }

    async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.set(format!("setting MTU {mtu} on link {index}"), message)
            .await
    }

    async fn rename(&self, index: u32, name: &str) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(index).name(name).build();
        match self
            .set(format!("renaming link {index} to {name}"), message)
            .await
        {
            Err(LinkError::Refused { source, .. })
                if source.raw_os_error() == Some(Errno::EEXIST as i32) =>
            {
                Err(LinkError::NameTaken { name: name.into() })
            }
            other => other,
        }
    }

    async fn name_taken(&self, name: &str) -> Result<bool, LinkError> {
        let mut reply = self.handle.link().get().match_name(name).execute();
        match reply.next().await {
            Some(Ok(_)) => Ok(true),
            None => Ok(false),
            Some(Err(error)) => match classify(error, format!("read link {name}")) {
                LinkError::Gone => Ok(false),
                other => Err(other),
            },
        }
    }
}

impl LinkEvents {
    /// The next notification; `None` when the socket closed.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            let (message, _) = self.messages.next().await?;
            let event = match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    link_state(&link).map(LinkEvent::Changed)
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    link_state(&link).map(LinkEvent::Removed)
                }
                NetlinkPayload::Overrun(_) => Some(LinkEvent::Overrun),
                _ => None,
            };
            if event.is_some() {
                return event;
            }
        }
    }
}

/// The link as the agent sees it; `None` for links without an Ethernet address and for
/// children of another link (they carry `IFLA_LINK`), which may share the parent's MAC.
fn link_state(message: &LinkMessage) -> Option<LinkState> {
    let (mut name, mut mac, mut mtu) = (None, None, 0);
    let (mut parent, mut parent_elsewhere) = (None, false);
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(value) => name = Some(value.clone()),
            LinkAttribute::Address(bytes) => mac = Mac::from_bytes(bytes),
            LinkAttribute::Mtu(value) => mtu = *value,
            LinkAttribute::Link(index) if *index != message.header.index => parent = Some(*index),
            LinkAttribute::LinkNetNsId(_) => parent_elsewhere = true,
            _ => {}
        }
    }
    // A child of a link of this namespace (ipvlan, VLAN) shares its parent's MAC: it is not
    // the ENI. A link whose other end is in another namespace (a veth) stands alone.
    if parent.is_some() && !parent_elsewhere {
        return None;
    }
    Some(LinkState {
        index: message.header.index,
        name: name?,
        mac: mac?,
        mtu,
        up: message.header.flags.contains(LinkFlags::Up),
    })
}

/// Sorts an rtnetlink error: a vanished link is [`LinkError::Gone`], other kernel answers
/// are refusals with their errno, anything else is the socket's failure.
fn classify(error: rtnetlink::Error, operation: String) -> LinkError {
    match error {
        rtnetlink::Error::NetlinkError(message) => {
            let source = message.to_io();
            if source.raw_os_error() == Some(Errno::ENODEV as i32) {
                LinkError::Gone
            } else {
                LinkError::Refused { operation, source }
            }
        }
        other => LinkError::Netlink(format!("{operation}: {other}")),
    }
}

/// Stops a connection task when its owner goes.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
