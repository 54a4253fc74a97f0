//! PCI driver binding through sysfs, as `dpdk-devbind.py` does it, under a configurable root
//! (`/sys` on a node, a directory tree in tests).
//!
//! Every attribute is read before it is written, and every step is checked in the tree
//! before the next: the kernel binds synchronously, but a driver may probe asynchronously,
//! so a check waits (with the intervals handed in) instead of assuming.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often, and how many times, a step's effect is looked for before it counts as failed.
#[derive(Clone, Copy, Debug)]
pub struct Settle {
    pub interval: Duration,
    pub attempts: u32,
}

impl Default for Settle {
    fn default() -> Settle {
        Settle {
            interval: Duration::from_millis(10),
            attempts: 100,
        }
    }
}

/// A sysfs operation that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    /// The interface has no PCI device (a virtual link, or not a PCI NIC).
    #[error("interface {interface} has no PCI device ({path} is missing); set spec.dpdkPCIAddress")]
    NoDevice { interface: String, path: PathBuf },
    /// The PCI device is not (or no longer) present.
    #[error("PCI device {pci} is not present ({path} is missing)")]
    NoPciDevice { pci: String, path: PathBuf },
    /// The driver is not loaded, so there is nothing to bind to.
    #[error(
        "driver {driver} is not loaded on this node ({path} is missing): load it (modprobe {driver}) or choose another spec.dpdkDriver"
    )]
    DriverNotLoaded { driver: String, path: PathBuf },
    /// The kernel refused to bind the device to the driver (its probe failed: vfio-pci
    /// without an IOMMU or its no-IOMMU mode answers EINVAL); the device was given back to
    /// the driver it had.
    #[error("the kernel refused to bind {pci} to {driver} ({source}); {restored}. {fix}")]
    BindRefused {
        pci: String,
        driver: String,
        source: io::Error,
        /// What became of the device: given back to its driver, or why not.
        restored: String,
        /// What to do about it, for this driver.
        fix: &'static str,
    },
    /// The kernel did not carry out the step in time.
    #[error("PCI device {pci} did not {step} (its driver is {current})")]
    NotSettled {
        pci: String,
        step: String,
        current: String,
    },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl SysfsError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            SysfsError::NoDevice { .. } => "no_pci_device_for_interface",
            SysfsError::NoPciDevice { .. } => "pci_device_missing",
            SysfsError::DriverNotLoaded { .. } => "driver_not_loaded",
            SysfsError::BindRefused { .. } => "bind_refused",
            SysfsError::NotSettled { .. } => "bind_not_settled",
            SysfsError::Io { .. } => "sysfs_io",
        }
    }

    /// Whether trying again later may succeed without anything else changing.
    pub fn is_transient(&self) -> bool {
        matches!(self, SysfsError::NotSettled { .. } | SysfsError::Io { .. })
    }
}

/// The PCI side of sysfs under a root.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
    settle: Settle,
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>, settle: Settle) -> Sysfs {
        Sysfs {
            root: root.into(),
            settle,
        }
    }

    /// The PCI address of a network interface: the nearest PCI device among the device
    /// behind `/sys/class/net/<interface>/device` and its parents (`readlink -f`, then up).
    /// On ENA the interface's device is the PCI function itself; on virtio-net it is the
    /// virtio device (`virtio0`), whose parent is the PCI function (Linux's sysfs device
    /// model: a PCI device directory is named by its address, `0000:00:06.0`).
    pub fn pci_address(&self, interface: &str) -> Result<String, SysfsError> {
        let path = self.root.join("class/net").join(interface).join("device");
        let no_device = || SysfsError::NoDevice {
            interface: interface.into(),
            path: path.clone(),
        };
        let device = match std::fs::canonicalize(&path) {
            Ok(device) => device,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(no_device()),
            Err(source) => return Err(SysfsError::Io { path, source }),
        };
        device
            .ancestors()
            .map(file_name)
            .find(|name| is_pci_address(name))
            .ok_or_else(no_device)
    }

    /// The driver a device is bound to, `None` when unbound:
    /// `basename $(readlink /sys/bus/pci/devices/<pci>/driver)`.
    pub fn driver(&self, pci: &str) -> Result<Option<String>, SysfsError> {
        let device = self.device(pci);
        if !device.exists() {
            return Err(SysfsError::NoPciDevice {
                pci: pci.into(),
                path: device,
            });
        }
        let path = device.join("driver");
        match std::fs::read_link(&path) {
            Ok(target) => Ok(Some(file_name(&target))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SysfsError::Io { path, source }),
        }
    }

    /// Binds the device to `driver`: `echo <driver> > driver_override`, unbind from the
    /// current driver, `echo <pci> > /sys/bus/pci/drivers/<driver>/bind`. The override
    /// stays, so that a later probe (a module reload) cannot hand the device back. When the
    /// kernel refuses the bind (the write fails: the driver's probe failed), the device is
    /// given back to the driver it had at once ([`Sysfs::restore`]) and the error is
    /// [`SysfsError::BindRefused`].
    pub async fn bind(&self, pci: &str, driver: &str) -> Result<(), SysfsError> {
        let current = self.driver(pci)?;
        let bind = self.driver_dir(driver)?.join("bind");
        Self::write_if_different(&self.device(pci).join("driver_override"), driver)?;
        if current.as_deref() == Some(driver) {
            return Ok(());
        }
        self.unbind(pci, current.as_deref()).await?;
        if let Err(source) = std::fs::write(&bind, pci) {
            let restored = match self.restore(pci, current.as_deref()).await {
                Ok(()) => match &current {
                    Some(original) => format!("it is back on {original}"),
                    None => "it is back without a driver, as it was".into(),
                },
                Err(error) => format!("giving it back failed too: {error}"),
            };
            return Err(SysfsError::BindRefused {
                pci: pci.into(),
                driver: driver.into(),
                source,
                restored,
                fix: bind_fix(driver),
            });
        }
        self.wait_for_driver(pci, Some(driver), &format!("bind to {driver}"))
            .await
    }

    /// What a refused bind depends on besides the spec: the loaded modules, vfio's no-IOMMU
    /// mode and whether the device is in an IOMMU group. A bind refused under the same
    /// environment would be refused again.
    pub fn bind_environment(&self, pci: &str) -> String {
        let mut modules: Vec<String> = std::fs::read_dir(self.root.join("module"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        modules.sort();
        let noiommu = self
            .root
            .join("module/vfio/parameters/enable_unsafe_noiommu_mode");
        let noiommu = std::fs::read_to_string(noiommu).unwrap_or_default();
        let group = self.device(pci).join("iommu_group").exists();
        format!(
            "{} noiommu={} group={group}",
            modules.join(","),
            noiommu.trim()
        )
    }

    /// Gives the device back: clears `driver_override`, unbinds it, and binds it to
    /// `original` (`drivers/<original>/bind`), or lets the kernel pick (`drivers_probe`)
    /// when it had no driver.
    pub async fn restore(&self, pci: &str, original: Option<&str>) -> Result<(), SysfsError> {
        let current = self.driver(pci)?;
        // A newline clears the override (an empty write is refused by the kernel).
        Self::write_if_different(&self.device(pci).join("driver_override"), "\n")?;
        if current.is_some() && current.as_deref() == original {
            return Ok(());
        }
        self.unbind(pci, current.as_deref()).await?;
        match original {
            Some(driver) => {
                write(&self.driver_dir(driver)?.join("bind"), pci)?;
                let step = format!("return to {driver}");
                self.wait_for_driver(pci, Some(driver), &step).await
            }
            None => write(&self.root.join("bus/pci/drivers_probe"), pci),
        }
    }

    async fn unbind(&self, pci: &str, current: Option<&str>) -> Result<(), SysfsError> {
        let Some(current) = current else {
            return Ok(());
        };
        let unbind = self
            .root
            .join("bus/pci/drivers")
            .join(current)
            .join("unbind");
        write(&unbind, pci)?;
        self.wait_for_driver(pci, None, &format!("unbind from {current}"))
            .await
    }

    async fn wait_for_driver(
        &self,
        pci: &str,
        wanted: Option<&str>,
        step: &str,
    ) -> Result<(), SysfsError> {
        let mut current = self.driver(pci)?;
        for _ in 0..self.settle.attempts {
            if current.as_deref() == wanted {
                return Ok(());
            }
            tokio::time::sleep(self.settle.interval).await;
            current = self.driver(pci)?;
        }
        if current.as_deref() == wanted {
            return Ok(());
        }
        Err(SysfsError::NotSettled {
            pci: pci.into(),
            step: step.into(),
            current: current.unwrap_or_else(|| "none".into()),
        })
    }

    fn write_if_different(path: &Path, value: &str) -> Result<(), SysfsError> {
        let current = std::fs::read_to_string(path).map_err(|source| SysfsError::Io {
            path: path.into(),
            source,
        })?;
        // The kernel shows an unset override as "(null)".
        let current = current.trim();
        let unset = current.is_empty() || current == "(null)";
        if current == value.trim() || (unset && value.trim().is_empty()) {
            return Ok(());
        }
        write(path, value)
    }

    fn device(&self, pci: &str) -> PathBuf {
        self.root.join("bus/pci/devices").join(pci)
    }

    fn driver_dir(&self, driver: &str) -> Result<PathBuf, SysfsError> {
        let path = self.root.join("bus/pci/drivers").join(driver);
        if path.is_dir() {
            Ok(path)
        } else {
            Err(SysfsError::DriverNotLoaded {
                driver: driver.into(),
                path,
            })
        }
    }
}

/// The fix for a driver the kernel refused a device to.
fn bind_fix(driver: &str) -> &'static str {
    match driver {
        "vfio-pci" => {
            "vfio-pci needs an IOMMU (an instance type and kernel with one enabled, e.g. intel_iommu=on) or vfio's no-IOMMU mode (a kernel built with CONFIG_VFIO_NOIOMMU: echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode); or set spec.dpdkDriver to uio_pci_generic"
        }
        _ => {
            "The kernel's log (dmesg) says why the driver's probe failed; choose another spec.dpdkDriver"
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), SysfsError> {
    std::fs::write(path, value).map_err(|source| SysfsError::Io {
        path: path.into(),
        source,
    })
}

/// `dddd:bb:dd.f` in hex digits: domain, bus, device and function.
fn is_pci_address(name: &str) -> bool {
    let hex =
        |part: &str, len: usize| part.len() == len && part.chars().all(|c| c.is_ascii_hexdigit());
    match name.split([':', '.']).collect::<Vec<_>>()[..] {
        [domain, bus, device, function] => {
            hex(domain, 4) && hex(bus, 2) && hex(device, 2) && hex(function, 1)
        }
        _ => false,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}
