//! multi-eni gives Kubernetes nodes extra AWS Elastic Network Interfaces (ENIs), so that
//! Multus CNI can give pods secondary networks.
//!
//! Modules are split by what they may import: [`api`] knows serde and schemars only;
//! [`commands`] holds one module per subcommand, each an args struct with a `run()`;
//! [`manager`] is the node agent, itself split the same way.

pub mod api;
pub mod commands;
pub mod controller;
pub mod ec2;
pub mod http;
pub mod logging;
pub mod manager;
pub mod ownership;
