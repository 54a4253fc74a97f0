//! The SR-IOV network device plugin's config file (`/etc/pcidp/config.json`): one
//! `resourceList` entry per resource, selecting its devices by PCI address and driver (the
//! DPDK driver of a bound device, the kernel driver of one left on it), one selector per
//! driver:
//!
//! ```json
//! {"resourceList": [{"resourceName": "ena_dpdk", "resourcePrefix": "intel.com",
//!                    "selectors": [{"drivers": ["vfio-pci"], "pciAddresses": ["0000:00:06.0"]}]}]}
//! ```
//!
//! `selectors` is written as a list of selector objects: the plugin reads a list since
//! v3.6.0 (its README: "either a single device selector map or a list of maps. The list
//! syntax is preferred"; `parseObjectOrSlice` in its factory), and only a single object
//! before. aws-multi-eni-controller writes the list too.
//!
//! Entries of other resources, and any other field, are left as they are: the file may be
//! shared with an administrator's own resources.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::manager::dpdk_state::Resources;
use crate::manager::files::write_atomically_if_changed;

/// The plugin's prefix for entries that name none (its `--resource-prefix` default).
const DEFAULT_PREFIX: &str = "intel.com";

/// The config file could not be read, understood or written.
#[derive(Debug, thiserror::Error)]
#[error("SR-IOV device plugin config {path}: {reason}")]
pub struct SriovError {
    path: PathBuf,
    reason: String,
}

impl SriovError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        "sriov_config"
    }
}

/// The config file.
#[derive(Clone, Debug)]
pub struct DevicePluginConfig {
    path: PathBuf,
}

impl DevicePluginConfig {
    pub fn new(path: impl Into<PathBuf>) -> DevicePluginConfig {
        DevicePluginConfig { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the file advertise `wanted`, dropping the entries of `owned` resources that are
    /// not wanted any more. Returns whether the file changed (and the plugin must reload it).
    pub fn sync(&self, owned: &BTreeSet<String>, wanted: &Resources) -> Result<bool, SriovError> {
        let existing = match std::fs::read_to_string(&self.path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(self.error(&error)),
        };
        let text = render(existing.as_deref(), owned, wanted).map_err(|e| self.error(&e))?;
        write_atomically_if_changed(&self.path, text.as_bytes()).map_err(|e| self.error(&e))
    }

    fn error(&self, reason: &dyn std::fmt::Display) -> SriovError {
        SriovError {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }
}

/// The config text with `wanted` in place of the agent's entries.
pub fn render(
    existing: Option<&str>,
    owned: &BTreeSet<String>,
    wanted: &Resources,
) -> Result<String, String> {
    let mut config: Map<String, Value> = match existing.map(str::trim) {
        None | Some("") => Map::new(),
        Some(text) => serde_json::from_str(text)
            .map_err(|error| format!("not a JSON object ({error}); fix or remove the file"))?,
    };
    let list = config
        .entry("resourceList")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(entries) = list else {
        return Err("resourceList is not a list; fix or remove the file".into());
    };
    entries.retain(|entry| {
        full_name(entry).is_none_or(|name| !owned.contains(&name) && !wanted.contains_key(&name))
    });
    for (resource, by_driver) in wanted {
        let (prefix, name) = resource
            .split_once('/')
            .unwrap_or((DEFAULT_PREFIX, resource));
        let selectors: Vec<Value> = (by_driver.iter())
            .map(|(driver, pci_addresses)| {
                json!({"drivers": [driver], "pciAddresses": pci_addresses})
            })
            .collect();
        entries.push(json!({
            "resourceName": name,
            "resourcePrefix": prefix,
            "selectors": selectors,
        }));
    }
    let mut text = serde_json::to_string_pretty(&config).expect("JSON serializes");
    text.push('\n');
    Ok(text)
}

/// `prefix/name` of a resourceList entry.
fn full_name(entry: &Value) -> Option<String> {
    let name = entry.get("resourceName")?.as_str()?;
    let prefix = entry
        .get("resourcePrefix")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_PREFIX);
    Some(format!("{prefix}/{name}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::render;

    use crate::manager::dpdk_state::Resources;

    /// Resources of devices on one driver each.
    fn wanted(entries: &[(&str, &str, &[&str])]) -> Resources {
        let mut resources = Resources::new();
        for (name, driver, pcis) in entries {
            let pcis = pcis.iter().map(|p| (*p).into()).collect();
            (resources.entry((*name).into()).or_default()).insert((*driver).into(), pcis);
        }
        resources
    }

    #[test]
    fn a_new_file_lists_each_resource_with_its_devices_by_driver() {
        let text = render(
            None,
            &BTreeSet::new(),
            &wanted(&[
                (
                    "example.com/dpdk",
                    "vfio-pci",
                    &["0000:00:06.0", "0000:00:07.0"],
                ),
                ("example.com/dpdk", "uio_pci_generic", &["0000:00:09.0"]),
                ("example.com/kernel", "ena", &["0000:00:08.0"]),
            ]),
        )
        .unwrap();
        let config: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            config,
            json!({"resourceList": [{
                "resourceName": "dpdk", "resourcePrefix": "example.com",
                "selectors": [{"drivers": ["uio_pci_generic"], "pciAddresses": ["0000:00:09.0"]},
                              {"drivers": ["vfio-pci"], "pciAddresses": ["0000:00:06.0", "0000:00:07.0"]}],
            }, {
                "resourceName": "kernel", "resourcePrefix": "example.com",
                "selectors": [{"drivers": ["ena"], "pciAddresses": ["0000:00:08.0"]}],
            }]})
        );
    }

    #[test]
    fn other_resources_and_fields_are_kept_and_released_ones_removed() {
        let existing = json!({
            "logLevel": 10,
            "resourceList": [
                {"resourceName": "admin_vf", "selectors": {"vendors": ["8086"]}},
                {"resourceName": "old", "resourcePrefix": "example.com", "selectors": {}},
                {"resourceName": "dpdk", "resourcePrefix": "example.com", "selectors": {}},
            ],
        })
        .to_string();
        let owned = BTreeSet::from(["example.com/old".to_string(), "example.com/dpdk".into()]);
        let text = render(
            Some(&existing),
            &owned,
            &wanted(&[("example.com/dpdk", "vfio-pci", &["0000:00:06.0"])]),
        )
        .unwrap();
        let config: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(config["logLevel"], 10);
        let names: Vec<_> = config["resourceList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resourceName"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["admin_vf", "dpdk"]);
        assert_eq!(
            config["resourceList"][1]["selectors"][0]["pciAddresses"],
            json!(["0000:00:06.0"])
        );
    }

    #[test]
    fn a_file_that_is_not_a_config_is_an_error_naming_the_fix() {
        let error = render(Some("[1, 2]"), &BTreeSet::new(), &Resources::new()).unwrap_err();
        assert!(error.contains("fix or remove the file"), "{error}");
        let error = render(
            Some(r#"{"resourceList": 3}"#),
            &BTreeSet::new(),
            &Resources::new(),
        )
        .unwrap_err();
        assert!(error.contains("resourceList"), "{error}");
    }
}
