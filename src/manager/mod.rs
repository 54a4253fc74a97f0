//! The node agent (`multi-eni manager`): finds each of this node's ENIs by MAC address,
//! configures its interface (name, MTU, up) or binds it to DPDK, and reports in the
//! NodeENI's status.
//!
//! Modules by what they may import:
//! - pure, no I/O: [`mac`], [`desired`] (NodeENIs to wanted interfaces), [`plan`] (observed
//!   link to changes), [`outcome`], [`report`] (outcomes to status entries);
//! - OS boundary: [`links`] (the trait of link operations).

pub mod desired;
pub mod links;
pub mod mac;
pub mod outcome;
pub mod plan;
pub mod report;
