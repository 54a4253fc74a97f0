//! ENIs left on their kernel driver and advertised to the SR-IOV device plugin
//! (`dpdkResourceName` without `enableDPDK`, as aws-multi-eni-controller v1.3.5 and later
//! do): a pod takes the whole ENI through the `host-device` CNI plugin, to which Multus
//! passes the PCI address the device plugin allocated to the pod.
//!
//! While no pod has it, the interface stays configured on the node (name, MTU, up).
//! host-device moves it into the pod's network namespace: the node's netlink then shows the
//! link removed, while its PCI device is still there, on its driver. The agent does not
//! fight that: it keeps advertising the device and reports the entry configured, without an
//! interface. When the pod goes, host-device moves the link back (down, under the name it
//! had) and the agent configures it as any link that appears. The record of advertised
//! devices is kept on disk (see [`crate::manager::dpdk_state`]), so that a restarted agent
//! knows the devices pods hold: nothing else on the node says which PCI device an interface
//! in another namespace is.

use crate::manager::desired::{Desired, ResourceWanted, Wanted};
use crate::manager::dpdk_state::{AdvertisedDevice, BoundDevices};
use crate::manager::links::LinkState;
use crate::manager::outcome::{Outcome, Problem, ResourceReport};
use crate::manager::sysfs::{Sysfs, SysfsError};

/// Records `wanted`'s device as advertised as `resource`, and reports it. `link` is its
/// interface on the node, `outcome` what configuring it gave (or, without a link, waiting
/// for one). Without a link, a recorded device still present on its driver is taken by a
/// pod; one never seen is waited for, and one gone (the ENI detached) is forgotten.
pub fn advertise(
    sysfs: &Sysfs,
    record: &mut BoundDevices,
    wanted: &Wanted,
    resource: &ResourceWanted,
    link: Option<&LinkState>,
    outcome: Outcome,
) -> Outcome {
    let mac = wanted.mac.to_string();
    let recorded = (record.advertised.iter())
        .find(|(_, device)| device.mac == mac)
        .map(|(pci, device)| (pci.clone(), device.driver.clone()));
    let known = (resource.pci_address.clone()).or_else(|| {
        recorded
            .as_ref()
            .filter(|_| link.is_none())
            .map(|(pci, _)| pci.clone())
    });
    let pci = match (known, link) {
        (Some(pci), _) => pci,
        (None, Some(link)) => match sysfs.pci_address(&link.name) {
            Ok(pci) => pci,
            Err(error) => return outcome.with_problem(problem(&error)),
        },
        (None, None) => return outcome,
    };
    if let Some((stale, _)) = recorded.as_ref().filter(|(stale, _)| *stale != pci) {
        record.advertised.remove(stale);
    }
    let driver = match sysfs.driver(&pci) {
        Ok(Some(driver)) => driver,
        Ok(None) => {
            record.advertised.remove(&pci);
            return outcome.with_problem(Problem {
                message: format!(
                    "PCI device {pci} has no driver, so it is not advertised; give it back to its network driver"
                ),
                label: "no_driver",
                transient: false,
            });
        }
        Err(SysfsError::NoPciDevice { .. }) if link.is_none() => {
            record.advertised.remove(&pci);
            return outcome;
        }
        Err(error) => {
            record.advertised.remove(&pci);
            return outcome.with_problem(problem(&error));
        }
    };
    let taken = link.is_none();
    let mut outcome = match (taken, &recorded) {
        // Moved out of the node's namespace on the driver it had: a pod holds it.
        (true, Some((known, known_driver))) if *known == pci && *known_driver == driver => {
            Outcome::serving(wanted)
        }
        (true, _) => {
            record.advertised.remove(&pci);
            return outcome;
        }
        (false, _) => outcome,
    };
    let device = AdvertisedDevice {
        mac,
        nodeeni: wanted.key.nodeeni.clone(),
        subnet_id: wanted.key.subnet_id.clone(),
        driver,
        resource_name: resource.name.clone(),
    };
    if record.advertised.get(&pci) != Some(&device) {
        let change = format!("advertise {pci} on {} as {}", device.driver, resource.name);
        outcome.changes.push(change);
        record.advertised.insert(pci.clone(), device);
    }
    outcome.resource = Some(ResourceReport {
        pci,
        name: resource.name.clone(),
        taken,
    });
    outcome
}

/// Stops advertising the devices of entries no longer served with a resource on their
/// kernel driver (the resource name removed, DPDK turned on, the ENI detaching or gone).
/// Returns what was withdrawn, for the log.
pub fn withdraw_unwanted(record: &mut BoundDevices, desired: &Desired) -> Vec<String> {
    let keep: Vec<String> = (desired.serve.iter())
        .filter(|wanted| wanted.resource.is_some())
        .map(|wanted| wanted.mac.to_string())
        .collect();
    let mut withdrawn = Vec::new();
    record.advertised.retain(|pci, device| {
        let kept = keep.contains(&device.mac);
        if !kept {
            withdrawn.push(format!("withdraw {pci} from {}", device.resource_name));
        }
        kept
    });
    withdrawn
}

fn problem(error: &SysfsError) -> Problem {
    Problem {
        message: format!("finding the interface's PCI device failed: {error}"),
        label: error.label(),
        transient: error.is_transient(),
    }
}
