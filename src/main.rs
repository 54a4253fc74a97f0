//! `multi-eni`: one binary for the controller (Deployment), the node agent (DaemonSet) and
//! the CRD generator. Without a subcommand it runs the component named by `COMPONENT`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use multi_eni::commands::{controller, crd, manager};

#[derive(Parser)]
#[command(version, about, long_about = None, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

const AFTER_HELP: &str = "Environment:
  COMPONENT   controller | manager: the command to run when none is given, so that one
              image serves both the Deployment and the DaemonSet.
  RUST_LOG    log filter (default: info), e.g. multi_eni=debug";

#[derive(Subcommand)]
enum Command {
    /// Create, attach, detach and delete ENIs for the nodes NodeENIs select (runs as a Deployment).
    Controller(controller::Args),
    /// Configure the Linux interfaces of this node's ENIs (runs as a DaemonSet on every node).
    Manager(manager::Args),
    /// Work with the CustomResourceDefinitions (NodeENI and ENINode).
    #[command(subcommand)]
    Crd(crd::Command),
}

fn main() -> ExitCode {
    let mut argv: Vec<_> = std::env::args_os().collect();
    let mut cli = Cli::parse_from(&argv);
    if cli.command.is_none() {
        match std::env::var("COMPONENT").as_deref() {
            Ok(component @ ("controller" | "manager")) => {
                argv.insert(1, component.into());
                cli = Cli::parse_from(&argv);
            }
            Ok(other) => {
                eprintln!(
                    "error: COMPONENT={other:?} is not a component; use controller or manager"
                );
                return ExitCode::from(2);
            }
            Err(_) => {
                eprintln!(
                    "error: no command given; name one, or set COMPONENT=controller|manager (see --help)"
                );
                return ExitCode::from(2);
            }
        }
    }
    let result = match cli.command.expect("a command was chosen above") {
        Command::Controller(args) => args.run(),
        Command::Manager(args) => args.run(),
        Command::Crd(command) => command.run(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
