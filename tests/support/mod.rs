//! What the integration tests and the local sandbox stand on: real components, started here.
// Each test binary and the sandbox use a different part of this module (and of its re-exports).
#![allow(dead_code, unused_imports)]

pub mod bench;
pub mod chart;
pub mod control_plane;
pub mod ec2sim;
pub mod moto;
pub mod netns;
pub mod process;
pub mod sim_cluster;
pub mod vm;

/// A path inside the repository.
pub fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}
