//! A simulated cluster's nodes as VMs on one VPC: the EC2 simulator's attachments become
//! PCI hot-plugs. When the simulator attaches an ENI to an instance, a virtio-net device with
//! the ENI's MAC is hot-plugged into that instance's VM; when it detaches one, the device
//! is unplugged and the guest releases it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{NodeVm, Vpc};
use crate::support::ec2sim::{AttachmentEvent, AttachmentEventKind, Simulator};

pub struct Fabric {
    /// The VMs by node name (dropped, so killed, before the VPC goes).
    nodes: BTreeMap<String, Arc<NodeVm>>,
    /// Node names by instance ID.
    instances: BTreeMap<String, String>,
    /// Attachment events received and not carried out yet.
    pending: AtomicUsize,
    pub vpc: Vpc,
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

    /// Carries out the simulator's attachment events from now on, one at a time and in
    /// order, on the current tokio runtime (for as long as the fabric lives).
    pub fn wire(self: &Arc<Fabric>, sim: &Simulator) {
        let (sender, mut events) = mpsc::unbounded_channel::<AttachmentEvent>();
        let fabric = Arc::downgrade(self);
        let counter = Weak::clone(&fabric);
        sim.on_attachment(Box::new(move |event| {
            if let Some(fabric) = counter.upgrade() {
                fabric.pending.fetch_add(1, Ordering::SeqCst);
                let _ = sender.send(event);
            }
        }));
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Some(fabric) = fabric.upgrade() else {
                    return;
                };
                fabric.carry_out(&event).await;
                fabric.pending.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }

    async fn carry_out(&self, event: &AttachmentEvent) {
        let Some(vm) = (self.instances.get(&event.instance_id)).map(|node| &self.nodes[node])
        else {
            return;
        };
        match event.kind {
            AttachmentEventKind::Attached => {
                let plugged = vm.hot_plug(&self.vpc, &event.mac_address).await;
                println!(
                    "    {}: {} hot-plugged at PCI {} (ENI {}, device index {})",
                    vm.name,
                    event.mac_address,
                    plugged.pci_address,
                    event.network_interface_id,
                    event.device_index
                );
            }
            AttachmentEventKind::Detached => vm.unplug(&self.vpc, &event.mac_address).await,
        }
    }

    /// The VM of a node.
    pub fn vm(&self, node: &str) -> &NodeVm {
        &self.nodes[node]
    }

    /// Waits until every attachment event received so far has been carried out.
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
