//! One module per subcommand of `multi-eni`.

pub mod controller;
pub mod crd;
pub mod manager;

use std::process::ExitCode;
use std::time::Duration;

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

/// A resync period: a duration of at least a second (a shorter one would be a busy loop).
pub fn at_least_a_second(text: &str) -> Result<Duration, String> {
    let period = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if period < Duration::from_secs(1) {
        return Err(format!(
            "{text} is too short: at least 1s (the default is 5m)"
        ));
    }
    Ok(period)
}
