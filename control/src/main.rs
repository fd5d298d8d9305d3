//! `vxnet`: the daemon and the command line in one binary. Kept thin: parse, dispatch, turn
//! every failure into one `vxnet: …` line and an exit code.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use vxnet_control::cli::{Cli, Command};
use vxnet_control::{client, daemon};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match cli.command {
        Command::Daemon(args) => match daemon::run(args, cli.socket) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vxnet: {e:#}");
                ExitCode::from(1)
            }
        },
        _ => match client::run(cli) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(f) => {
                eprintln!("vxnet: {}", f.message);
                ExitCode::from(f.exit_code)
            }
        },
    }
}

/// Help and version print as clap formats them; a real usage error becomes one line.
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("vxnet: {first}; see `vxnet --help`");
            ExitCode::from(2)
        }
    }
}
