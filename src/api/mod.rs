//! The custom resources of `networking.k8s.aws/v1alpha1`, both cluster-scoped:
//! - [`NodeENI`]: what the cluster admin asks for (which nodes get which ENIs), with a status
//!   that stays small at any number of nodes;
//! - [`ENINode`]: one per node that has, or should have, ENIs, named after the node and owned
//!   by it: the controller writes what the node must serve (spec), the node's agent what it did
//!   (status).
//!
//! This module knows serde and schemars only.

mod eninode;
mod nodeeni;

pub use eninode::*;
pub use nodeeni::*;
