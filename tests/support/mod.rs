//! What the integration tests and the local sandbox stand on: real components, started here.
// Each test binary and the sandbox use a different part of this module.
#![allow(dead_code)]

pub mod control_plane;
pub mod fake_sysfs;
pub mod netns;
