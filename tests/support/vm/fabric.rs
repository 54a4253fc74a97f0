//! A simulated cluster's nodes as VMs on one VPC: the EC2 simulator's attachments become
//! PCI hot-plugs. When the simulator attaches an ENI to an instance, a virtio-net device with
//! the ENI's MAC is hot-plugged into that instance's VM. The VMs' guests hold their detaches
//! (`Simulator::hold_detaches`): a detach unplugs the device, and EC2's detach completes only
//! once the guest has released it (QEMU's DEVICE_DELETED, then `POST /_sim/release`), as on
//! EC2. A forced detach or a termination, which do not wait for the guest, unplug it after.
//! Each ENI's tap passes only the addresses EC2 has assigned to the ENI ([`Vpc::assign`]),
//! read from the simulator when it is attached and every 200 ms after (an
//! AssignPrivateIpAddresses shows within that), in process: no EC2 call is counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

use super::{NodeVm, Vpc};
use crate::support::ec2sim::{
    AttachmentEvent, AttachmentEventKind, DetachRequest, EniAddresses, Simulator, http_request,
};

pub struct Fabric {
    /// The VMs by node name (dropped, so killed, before the VPC goes).
    nodes: BTreeMap<String, Arc<NodeVm>>,
    /// Node names by instance ID.
    instances: BTreeMap<String, String>,
    /// Events received from the simulator and not carried out yet.
    pending: AtomicUsize,
    /// The attached ENIs' taps and the address blocks they pass, by ENI ID.
    taps: Mutex<BTreeMap<String, (String, Vec<String>)>>,
    pub vpc: Vpc,
}

/// The simulator's in-process reading of an ENI's addresses.
type Addresses = dyn Fn(&str) -> Option<EniAddresses> + Send + Sync;

/// What the simulator asks of the VMs, carried out in the order it asked.
enum Work {
    Attachment(AttachmentEvent),
    Detach(DetachRequest),
}

impl Fabric {
    /// `nodes`: each node's instance ID and VM.
    pub fn new(vpc: Vpc, nodes: Vec<(String, NodeVm)>) -> Arc<Fabric> {
        let instances = (nodes.iter())
            .map(|(instance, vm)| (instance.clone(), vm.name.clone()))
            .collect();
        let nodes = (nodes.into_iter())
            .map(|(_, vm)| (vm.name.clone(), Arc::new(vm)))
            .collect();
        Arc::new(Fabric {
            nodes,
            instances,
            pending: AtomicUsize::new(0),
            taps: Mutex::new(BTreeMap::new()),
            vpc,
        })
    }

    /// Hears the simulator's attachments and holds the VMs' detaches from now on, and
    /// carries them out one at a time, on the current tokio runtime, while the fabric lives.
    pub fn wire(self: &Arc<Fabric>, sim: &Simulator) {
        let (sender, mut work) = mpsc::unbounded_channel::<Work>();
        let counter = Arc::downgrade(self);
        let send = Arc::new(move |item: Work| {
            if let Some(fabric) = counter.upgrade() {
                fabric.pending.fetch_add(1, Ordering::SeqCst);
                let _ = sender.send(item);
            }
        });
        let attachments = Arc::clone(&send);
        sim.on_attachment(Box::new(move |event| attachments(Work::Attachment(event))));
        for instance in self.instances.keys() {
            let detaches = Arc::clone(&send);
            sim.hold_detaches(instance, Some(Box::new(move |r| detaches(Work::Detach(r)))))
                .expect("the node's instance exists");
        }
        let release = format!("{}/_sim/release", sim.endpoint_url());
        let addresses = sim.address_reader();
        let fabric: Weak<Fabric> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut refresh = tokio::time::interval(Duration::from_millis(200));
            loop {
                let item = tokio::select! {
                    item = work.recv() => item,
                    _ = refresh.tick() => {
                        let Some(fabric) = fabric.upgrade() else { return };
                        fabric.refresh_addresses(&addresses);
                        continue;
                    }
                };
                let (Some(item), Some(fabric)) = (item, fabric.upgrade()) else {
                    return;
                };
                fabric.carry_out(item, &release, &addresses).await;
                fabric.pending.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }

    /// Lets each tap pass the addresses its ENI has now.
    fn refresh_addresses(&self, addresses: &Addresses) {
        let mut taps = self.taps.lock().expect("taps");
        for (eni, (tap, passed)) in taps.iter_mut() {
            let now = addresses(eni).map(|a| a.blocks()).unwrap_or_default();
            if now != *passed {
                self.vpc.assign(tap, &now);
                *passed = now;
            }
        }
    }

    async fn carry_out(&self, work: Work, release: &str, addresses: &Addresses) {
        let (instance, mac) = match &work {
            Work::Attachment(event) => (&event.instance_id, event.mac_address.as_str()),
            Work::Detach(request) => (&request.instance_id, request.mac_address.as_str()),
        };
        let Some(vm) = (self.instances.get(instance)).map(|node| &self.nodes[node]) else {
            return;
        };
        match &work {
            Work::Attachment(event) if event.kind == AttachmentEventKind::Attached => {
                let plugged = vm.hot_plug(&self.vpc, mac).await;
                let eni = &event.network_interface_id;
                let blocks = addresses(eni).map(|a| a.blocks()).unwrap_or_default();
                self.vpc.assign(&plugged.tap, &blocks);
                let tap = (plugged.tap.clone(), blocks);
                self.taps.lock().expect("taps").insert(eni.clone(), tap);
                println!(
                    "    {}: {mac} hot-plugged at PCI {} (ENI {}, device index {})",
                    vm.name, plugged.pci_address, event.network_interface_id, event.device_index
                );
            }
            // Forced or at termination (after a held detach the device is gone already).
            Work::Attachment(event) => {
                self.forget(&event.network_interface_id);
                vm.unplug(&self.vpc, mac).await;
            }
            Work::Detach(request) => {
                self.forget(&request.network_interface_id);
                vm.unplug(&self.vpc, mac).await;
                let body = json!({"attachment_id": request.attachment_id}).to_string();
                let answer = http_request("POST", release, &body).await;
                assert!(
                    matches!(answer, Ok((200..=299, _))),
                    "{release} {body}: {answer:?}"
                );
            }
        }
    }

    fn forget(&self, eni: &str) {
        self.taps.lock().expect("taps").remove(eni);
    }

    /// The VM of a node.
    pub fn vm(&self, node: &str) -> &NodeVm {
        &self.nodes[node]
    }

    /// Waits until everything the simulator asked so far has been carried out.
    pub async fn settled(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.pending.load(Ordering::SeqCst) > 0 {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }
}
