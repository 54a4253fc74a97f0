//! Integration tests against real components: one test binary, so that the tests share one
//! control plane and the crate links once.

#[path = "../support/mod.rs"]
mod support;

mod chart;
mod controller;
mod controller_addresses;
mod controller_faults;
mod controller_nads;
mod crd;
mod ec2;
mod ec2sim;
mod image;
mod manager;
mod migration;
mod node_vm;
