//! The agent's record of the devices it bound to DPDK drivers, and of those it advertises to
//! the SR-IOV device plugin on their kernel driver.
//!
//! A device bound to a DPDK driver has no network interface any more, so nothing in
//! netlink says it is an ENI or which driver it came from; nor does an interface a pod took
//! (moved into the pod's network namespace). The record, kept in a small JSON file on the
//! node, is what lets a restarted agent give devices back to their driver and keep
//! advertising the devices pods hold.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manager::files::write_atomically_if_changed;

/// The record, as stored.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BoundDevices {
    /// Devices bound by the agent, by PCI address.
    #[serde(default)]
    pub devices: BTreeMap<String, BoundDevice>,
    /// Resources the agent has written into the SR-IOV device plugin's config (so that it
    /// removes them, and only them, when their devices are gone).
    #[serde(default)]
    pub plugin_resources: BTreeSet<String>,
    /// Devices advertised to the device plugin on their kernel driver, by PCI address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub advertised: BTreeMap<String, AdvertisedDevice>,
}

/// A device on its kernel driver, advertised as a device plugin resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AdvertisedDevice {
    /// The ENI's MAC, lower case.
    pub mac: String,
    pub nodeeni: String,
    #[serde(rename = "subnetID")]
    pub subnet_id: String,
    /// The kernel driver (`ena`; `virtio-pci` in a VM).
    pub driver: String,
    pub resource_name: String,
}

/// One device bound to a DPDK driver.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BoundDevice {
    /// The ENI's MAC, lower case.
    pub mac: String,
    pub nodeeni: String,
    #[serde(rename = "subnetID")]
    pub subnet_id: String,
    /// The interface's name before it was bound.
    pub interface: Option<String>,
    /// The driver to give it back to (`None`: let the kernel choose).
    pub original_driver: Option<String>,
    pub driver: String,
    pub resource_name: Option<String>,
}

/// Resources (`prefix/name`) to the PCI addresses of their devices, by driver.
pub type Resources = BTreeMap<String, BTreeMap<String, Vec<String>>>;

impl BoundDevices {
    /// The resources to advertise: the bound devices with a resource name, and the devices
    /// advertised on their kernel driver.
    pub fn resources(&self) -> Resources {
        let mut resources = Resources::new();
        let bound = (self.devices.iter())
            .filter_map(|(pci, d)| Some((pci, d.resource_name.as_ref()?, &d.driver)));
        let advertised =
            (self.advertised.iter()).map(|(pci, d)| (pci, &d.resource_name, &d.driver));
        for (pci, resource, driver) in bound.chain(advertised) {
            (resources.entry(resource.clone()).or_default())
                .entry(driver.clone())
                .or_default()
                .push(pci.clone());
        }
        resources
    }
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("DPDK state file {path}: {reason}")]
pub struct StateError {
    path: PathBuf,
    reason: String,
}

impl StateError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        "state_file"
    }
}

/// Where the record lives.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> StateFile {
        StateFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record; empty when the file does not exist yet.
    pub fn load(&self) -> Result<BoundDevices, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| self.error(&error)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(BoundDevices::default()),
            Err(error) => Err(self.error(&error)),
        }
    }

    /// Stores the record (atomically, and only when it changed).
    pub fn save(&self, devices: &BoundDevices) -> Result<(), StateError> {
        let mut json = serde_json::to_vec_pretty(devices).expect("the record serializes");
        json.push(b'\n');
        write_atomically_if_changed(&self.path, &json)
            .map(drop)
            .map_err(|error| self.error(&error))
    }

    fn error(&self, reason: &dyn std::fmt::Display) -> StateError {
        StateError {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }
}
