//! Runs inside a node VM for `just bench-vm`: prints, in milliseconds since it started (one
//! clock, the guest's), each PCI device the kernel adds (`pci-add <address>`, from the
//! kernel's uevents, as udev hears of hot-plugged devices) and each link notification
//! (`link <name> <mac> <mtu> up|down`, from rtnetlink, as `ip monitor link` shows them).

use std::os::fd::AsRawFd;
use std::time::Instant;

use multi_eni::manager::netlink::{self, LinkEvent};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};

fn main() {
    let start = Instant::now();
    let uevents = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )
    .expect("a uevent socket");
    // Multicast group 1: the kernel's own uevents.
    bind(uevents.as_raw_fd(), &NetlinkAddr::new(0, 1)).expect("bind the uevent socket");
    std::thread::spawn(move || {
        let mut buffer = vec![0; 16 << 10];
        loop {
            let size = recv(uevents.as_raw_fd(), &mut buffer, MsgFlags::empty()).expect("a uevent");
            // "add@/devices/pci0000:00/0000:00:05.0\0ACTION=add\0…SUBSYSTEM=pci\0…"
            let text = String::from_utf8_lossy(&buffer[..size]);
            let mut fields = text.split('\0');
            let header = fields.next().unwrap_or_default();
            if let Some(path) = header.strip_prefix("add@")
                && fields.any(|field| field == "SUBSYSTEM=pci")
            {
                let address = path.rsplit('/').next().unwrap_or_default();
                println!("{:.3} pci-add {address}", millis(start));
            }
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (_links, mut events) = netlink::open(None).expect("netlink");
        while let Some(event) = events.next().await {
            if let LinkEvent::Changed(link) = event {
                let up = if link.up { "up" } else { "down" };
                let (name, mac, mtu) = (link.name, link.mac, link.mtu);
                println!("{:.3} link {name} {mac} {mtu} {up}", millis(start));
            }
        }
    });
}

fn millis(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
