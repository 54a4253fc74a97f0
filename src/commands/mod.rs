//! One module per subcommand of `multi-eni`.

pub mod controller;
pub mod crd;
pub mod manager;

use std::process::ExitCode;

/// Sets up the logs and runs a long-running command on one thread: the controller and the
/// node agent wait on the network nearly all the time, and stay small.
fn run_on_one_thread(
    log_format: crate::logging::LogFormat,
    serve: impl Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    crate::logging::init(log_format);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve)
}
