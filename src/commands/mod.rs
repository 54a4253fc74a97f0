//! One module per subcommand of `multi-eni`.

pub mod controller;
pub mod crd;
pub mod manager;
