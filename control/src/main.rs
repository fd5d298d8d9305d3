//! `vxnet`: the daemon and the command line in one binary. Kept thin: parse, dispatch, turn
//! every failure into one `vxnet: …` line and an exit code.

use std::process::ExitCode;

use std::io::IsTerminal;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::Parser;
use vxnet_control::cli::{client, Cli, Command, DaemonArgs};
use vxnet_control::daemon::{self, DaemonConfig};

fn main() -> ExitCode {
    // In a CNI bin dir `vxnet` is the CNI plugin: the runtime says so with CNI_COMMAND.
    if std::env::var_os(vxnet_control::cni::COMMAND_ENV).is_some() {
        return vxnet_control::cni::main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match cli.command {
        Command::Daemon(args) => match run_daemon(args, cli.socket) {
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

/// Sets up logging (the one place that does), then runs the daemon.
fn run_daemon(args: DaemonArgs, socket: std::path::PathBuf) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).with_context(|| {
        format!(
            "--log-level {:?} is not a level (use trace, debug, info, warn or error)",
            args.log_level
        )
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    daemon::run(DaemonConfig {
        advertise_addr: args.advertise_addr,
        data_dir: args.data_dir,
        socket,
        vxlan_port: args.vxlan_port,
        cluster_port: args.cluster_port,
        name: args.name,
        voters: args.voters as usize,
        offloads: !args.no_offloads,
        kernel: args.kernel,
        busy_poll: std::time::Duration::from_micros(u64::from(args.busy_poll)),
        queues: args.queues.map(usize::from),
        key_rotation: (args.key_rotation > 0)
            .then(|| std::time::Duration::from_secs(args.key_rotation)),
        force_new_cluster: args.force_new_cluster,
        dns: args.dns,
        docker_plugin: args.docker_plugin,
        docker_host: args.docker_host,
        metrics_addr: args.metrics_addr,
        api_group: args.api_group,
    })?;
    Ok(())
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
