//! A simulated cluster's nodes as VMs on one VPC: the EC2 simulator's attachments become
//! PCI hot-plugs. When the simulator attaches an ENI to an instance, a virtio-net device with
//! the ENI's MAC is hot-plugged into that instance's VM. The VMs' guests hold their detaches
//! (`Simulator::hold_detaches`): a detach unplugs the device, and EC2's detach completes only
//! once the guest has released it (QEMU's DEVICE_DELETED, then `POST /_sim/release`), as on
//! EC2. A forced detach or a termination, which do not wait for the guest, unplug it after.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

use super::{NodeVm, Vpc};
use crate::support::ec2sim::{
    AttachmentEvent, AttachmentEventKind, DetachRequest, Simulator, http_request,
};

pub struct Fabric {
    /// The VMs by node name (dropped, so killed, before the VPC goes).
    nodes: BTreeMap<String, Arc<NodeVm>>,
    /// Node names by instance ID.
    instances: BTreeMap<String, String>,
    /// Events received from the simulator and not carried out yet.
    pending: AtomicUsize,
    pub vpc: Vpc,
}

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
        let fabric: Weak<Fabric> = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(item) = work.recv().await {
                let Some(fabric) = fabric.upgrade() else {
                    return;
                };
                fabric.carry_out(item, &release).await;
                fabric.pending.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }

    async fn carry_out(&self, work: Work, release: &str) {
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
                println!(
                    "    {}: {mac} hot-plugged at PCI {} (ENI {}, device index {})",
                    vm.name, plugged.pci_address, event.network_interface_id, event.device_index
                );
            }
            // Forced or at termination (after a held detach the device is gone already).
            Work::Attachment(_) => vm.unplug(&self.vpc, mac).await,
            Work::Detach(request) => {
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
