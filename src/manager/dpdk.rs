//! DPDK binding: an ENI with `enableDPDK` is found by MAC, its PCI device is bound to the
//! DPDK driver and recorded; when the entry stops being served (the ENI is detaching, the
//! NodeENI is deleted or drops DPDK) the device is given back to its original driver.

use std::collections::HashMap;

use crate::manager::advertise;
use crate::manager::desired::{Desired, DpdkWanted, EntryKey, ResourceWanted, Wanted};
use crate::manager::dpdk_state::{BoundDevice, BoundDevices, StateError, StateFile};
use crate::manager::links::LinkState;
use crate::manager::metrics::AgentMetrics;
use crate::manager::outcome::{DpdkReport, Outcome, Problem};
use crate::manager::sysfs::{Sysfs, SysfsError};

/// The bound devices, their record on disk, and sysfs.
pub struct Dpdk {
    sysfs: Sysfs,
    file: StateFile,
    bound: BoundDevices,
    dry_run: bool,
    /// Binds the kernel refused, by PCI address: not tried again while the driver asked for
    /// and the node's environment ([`Sysfs::bind_environment`]) stay the same, since each
    /// try takes the device (and its interface) away from its driver for a moment.
    refused: HashMap<String, Refusal>,
    metrics: AgentMetrics,
}

struct Refusal {
    driver: String,
    environment: String,
    problem: Problem,
}

impl Dpdk {
    /// Reads the record of a previous run.
    pub fn load(
        sysfs: Sysfs,
        file: StateFile,
        dry_run: bool,
        metrics: AgentMetrics,
    ) -> Result<Dpdk, StateError> {
        let bound = file.load()?;
        Ok(Dpdk {
            sysfs,
            file,
            bound,
            dry_run,
            refused: HashMap::new(),
            metrics,
        })
    }

    pub fn bound(&self) -> &BoundDevices {
        &self.bound
    }

    /// Records which resources the device plugin's config holds.
    pub fn set_plugin_resources(
        &mut self,
        resources: std::collections::BTreeSet<String>,
    ) -> Result<(), StateError> {
        self.bound.plugin_resources = resources;
        self.save()
    }

    /// Brings a served DPDK ENI to bound; `link` is its interface when it has one.
    pub async fn serve(
        &mut self,
        wanted: &Wanted,
        dpdk: &DpdkWanted,
        link: Option<&LinkState>,
    ) -> Outcome {
        let mut outcome = Outcome::serving(wanted);
        let mac = wanted.mac.to_string();
        let recorded = self.bound.devices.iter().find(|(_, d)| d.mac == mac);
        let pci = match recorded.map(|(pci, _)| pci.clone()) {
            Some(pci) if self.present(&pci) => pci,
            recorded => {
                if let Some(gone) = recorded {
                    // The device went away under us (the ENI was detached): forget it.
                    self.bound.devices.remove(&gone);
                }
                match self.find(wanted, dpdk, link) {
                    Ok(pci) => pci,
                    Err(outcome) => return *outcome,
                }
            }
        };
        if let Some(problem) = self.still_refused(&pci, dpdk.driver) {
            outcome.interface = link.map(|link| link.name.clone());
            outcome.dpdk = Some(DpdkReport {
                pci,
                driver: dpdk.driver.into(),
                bound: false,
                resource: dpdk.resource.clone(),
            });
            return outcome.with_problem(problem);
        }
        let device = self
            .bound
            .devices
            .entry(pci.clone())
            .or_insert(BoundDevice {
                mac,
                nodeeni: String::new(),
                subnet_id: String::new(),
                interface: link.map(|link| link.name.clone()),
                original_driver: None,
                driver: String::new(),
                resource_name: None,
            });
        device.nodeeni.clone_from(&wanted.key.nodeeni);
        device.subnet_id.clone_from(&wanted.key.subnet_id);
        device.driver = dpdk.driver.into();
        device.resource_name.clone_from(&dpdk.resource);
        outcome.interface.clone_from(&device.interface);
        let bound = self.bind(&pci, dpdk.driver, &mut outcome).await;
        outcome.dpdk = Some(DpdkReport {
            pci,
            driver: dpdk.driver.into(),
            bound,
            resource: dpdk.resource.clone(),
        });
        outcome
    }

    /// Advertises the device of an entry left on its kernel driver (see [`advertise`]).
    pub fn advertise(
        &mut self,
        wanted: &Wanted,
        resource: &ResourceWanted,
        link: Option<&LinkState>,
        outcome: Outcome,
    ) -> Outcome {
        let mut outcome = advertise::advertise(
            &self.sysfs,
            &mut self.bound,
            wanted,
            resource,
            link,
            outcome,
        );
        self.save_into(&mut outcome);
        outcome
    }

    /// Stops advertising the devices of entries no longer served with a resource on their
    /// kernel driver.
    pub fn withdraw_unwanted(&mut self, desired: &Desired) {
        let withdrawn = advertise::withdraw_unwanted(&mut self.bound, desired);
        if !withdrawn.is_empty() {
            tracing::info!("{}", withdrawn.join(", "));
            if let Err(error) = self.save() {
                tracing::warn!(label = error.label(), "{error}");
            }
        }
    }

    /// Gives back every recorded device whose entry is no longer served with DPDK.
    pub async fn release_unwanted(&mut self, desired: &Desired) -> Vec<Outcome> {
        let keep: Vec<String> = desired
            .serve
            .iter()
            .filter(|wanted| wanted.dpdk.is_some())
            .map(|wanted| wanted.mac.to_string())
            .collect();
        let release: Vec<(String, BoundDevice)> = self
            .bound
            .devices
            .iter()
            .filter(|(_, device)| !keep.contains(&device.mac))
            .map(|(pci, device)| (pci.clone(), device.clone()))
            .collect();
        let mut outcomes = Vec::new();
        for (pci, device) in release {
            outcomes.push(self.release(pci, device).await);
        }
        outcomes
    }

    async fn release(&mut self, pci: String, device: BoundDevice) -> Outcome {
        let original = device.original_driver.as_deref();
        let mut outcome = Outcome {
            key: EntryKey {
                nodeeni: device.nodeeni.clone(),
                subnet_id: device.subnet_id.clone(),
            },
            eni_id: None,
            mac: device.mac.parse().ok(),
            serving: false,
            interface: device.interface.clone(),
            mtu: None,
            dpdk: None,
            resource: None,
            changes: vec![format!(
                "give {pci} back to {}",
                original.unwrap_or("the kernel's choice of driver")
            )],
            problem: None,
        };
        let result = if self.dry_run {
            Ok(())
        } else {
            self.sysfs.restore(&pci, original).await
        };
        if !self.dry_run {
            let label = result.as_ref().err().map_or("ok", SysfsError::label);
            self.metrics.dpdk_bind("release", label);
        }
        let released = match result {
            Ok(()) | Err(SysfsError::NoPciDevice { .. }) => true,
            Err(error) => {
                outcome.problem = Some(sysfs_problem(
                    &error,
                    "giving the device back to its driver",
                ));
                false
            }
        };
        if released && !self.dry_run {
            self.bound.devices.remove(&pci);
            if let Err(error) = self.save() {
                outcome.problem = Some(state_problem(&error));
            }
        }
        outcome.dpdk = Some(DpdkReport {
            pci,
            driver: device.driver,
            bound: !released,
            resource: device.resource_name,
        });
        outcome
    }

    /// The PCI address of a device not bound yet, from the spec or from its interface.
    fn find(
        &self,
        wanted: &Wanted,
        dpdk: &DpdkWanted,
        link: Option<&LinkState>,
    ) -> Result<String, Box<Outcome>> {
        if let Some(pci) = &dpdk.pci_address {
            return Ok(pci.clone());
        }
        let Some(link) = link else {
            return Err(Box::new(Outcome::waiting(wanted)));
        };
        self.sysfs.pci_address(&link.name).map_err(|error| {
            let mut outcome = Outcome::serving(wanted);
            outcome.interface = Some(link.name.clone());
            Box::new(
                outcome.with_problem(sysfs_problem(&error, "finding the interface's PCI device")),
            )
        })
    }

    /// Binds a recorded device; the record is saved first, so that a crash mid-way still
    /// leaves what is needed to give the device back.
    async fn bind(&mut self, pci: &str, driver: &str, outcome: &mut Outcome) -> bool {
        let current = match self.sysfs.driver(pci) {
            Ok(current) => current,
            Err(error) => {
                outcome.problem = Some(sysfs_problem(&error, "reading the device's driver"));
                return false;
            }
        };
        if current.as_deref() == Some(driver) {
            return self.save_into(outcome);
        }
        let device = self.bound.devices.get_mut(pci).expect("recorded above");
        if device.original_driver.is_none() {
            device.original_driver.clone_from(&current);
        }
        outcome.changes.push(format!("bind {pci} to {driver}"));
        if self.dry_run || !self.save_into(outcome) {
            return false;
        }
        let result = self.sysfs.bind(pci, driver).await;
        let label = result.as_ref().err().map_or("ok", SysfsError::label);
        self.metrics.dpdk_bind("bind", label);
        match result {
            Ok(()) => true,
            Err(error) => {
                let problem = sysfs_problem(&error, "binding the device to DPDK");
                if let SysfsError::BindRefused { .. } = error {
                    // Back on its driver: nothing bound to record, nothing to advertise.
                    self.bound.devices.remove(pci);
                    self.save_into(outcome);
                    let refusal = Refusal {
                        driver: driver.into(),
                        environment: self.sysfs.bind_environment(pci),
                        problem: problem.clone(),
                    };
                    self.refused.insert(pci.into(), refusal);
                }
                outcome.problem = Some(problem);
                false
            }
        }
    }

    /// The problem of the kernel's last refusal to bind `pci` to `driver`, when nothing it
    /// depends on has changed since.
    fn still_refused(&mut self, pci: &str, driver: &str) -> Option<Problem> {
        let refusal = self.refused.get(pci)?;
        if refusal.driver == driver && refusal.environment == self.sysfs.bind_environment(pci) {
            return Some(refusal.problem.clone());
        }
        self.refused.remove(pci);
        None
    }

    fn save_into(&self, outcome: &mut Outcome) -> bool {
        match self.save() {
            Ok(()) => true,
            Err(error) => {
                outcome.problem = Some(state_problem(&error));
                false
            }
        }
    }

    fn present(&self, pci: &str) -> bool {
        !matches!(self.sysfs.driver(pci), Err(SysfsError::NoPciDevice { .. }))
    }

    fn save(&self) -> Result<(), StateError> {
        if self.dry_run {
            return Ok(());
        }
        self.file.save(&self.bound)
    }
}

fn sysfs_problem(error: &SysfsError, doing: &str) -> Problem {
    Problem {
        message: format!("{doing} failed: {error}"),
        label: error.label(),
        transient: error.is_transient(),
    }
}

fn state_problem(error: &StateError) -> Problem {
    Problem {
        message: error.to_string(),
        label: error.label(),
        transient: true,
    }
}
