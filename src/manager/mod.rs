//! The node agent (`multi-eni manager`): finds each of this node's ENIs by MAC address,
//! configures its interface (name, MTU, up) or binds it to DPDK, and reports in the
//! NodeENI's status.
//!
//! Modules by what they may import:
//! - pure, no I/O: [`mac`], [`desired`] (NodeENIs to wanted interfaces), [`plan`] (observed
//!   link to changes), [`outcome`], [`report`] (outcomes to status entries);
//! - OS boundary: [`links`] (the trait), [`netlink`] (its rtnetlink implementation and link
//!   notifications), [`sysfs`] (PCI driver binding), [`files`], [`dpdk_state`], [`sriov`]
//!   (the device plugin's config file);
//! - EC2: [`imds`] (instance metadata, to cross-check MACs);
//! - the executor: [`reconcile`], [`dpdk`].

pub mod desired;
pub mod dpdk;
pub mod dpdk_state;
pub mod files;
pub mod imds;
pub mod links;
pub mod mac;
pub mod netlink;
pub mod outcome;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod sriov;
pub mod sysfs;
