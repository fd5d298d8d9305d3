//! The CLI side of every command but `daemon`: build a request, send it to the local daemon,
//! print the answer. One request per connection; the whole exchange is bounded by `--timeout`.
//! `version`, `completions` and `man` answer by themselves ([`super::generate`]), `cni install`
//! too ([`crate::cni::install`]).

use std::path::Path;
use std::time::Duration;

use vxnet_proto::{
    request, ClusterJoinRequest, ClusterLeaveRequest, ClusterMembersRequest, ClusterRemoveRequest,
    ClusterTokenRequest, FdbRequest, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkInspectRequest, NetworkListRequest, NetworkPruneRequest,
    NetworkRemoveRequest, Request, Response, StatsRequest,
};

use super::render;
use super::{Cli, ClusterCommand, CniCommand, Command, Format, NetworkCommand};
use crate::api;

/// A failed command: the line to print after `vxnet: `, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit_code: u8,
}

impl Failure {
    pub fn new(message: impl Into<String>, exit_code: u8) -> Failure {
        Failure {
            message: message.into(),
            exit_code,
        }
    }
}

/// The join token: given (`--token T`), read from standard input (`--token -`, through
/// `stdin`) or from a file (`--token-file F`); surrounding whitespace (a file's newline) is not
/// part of it.
pub fn read_token(
    token: Option<&str>,
    file: Option<&Path>,
    stdin: impl FnOnce() -> std::io::Result<String>,
) -> Result<String, Failure> {
    let (text, from) = match (token, file) {
        (Some("-"), _) => (
            stdin().map_err(|e| {
                Failure::new(format!("cannot read the token from standard input: {e}"), 1)
            })?,
            "standard input".to_string(),
        ),
        (Some(token), _) => (token.to_string(), "--token".to_string()),
        (None, Some(file)) => (
            std::fs::read_to_string(file).map_err(|e| {
                Failure::new(
                    format!("cannot read the token file {}: {e}", file.display()),
                    1,
                )
            })?,
            file.display().to_string(),
        ),
        (None, None) => {
            return Err(Failure::new(
                "cluster join needs the token: --token T, --token - or --token-file F",
                2,
            ))
        }
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(Failure::new(
            format!(
                "the token from {from} is empty; print it with `vxnet cluster token` on a member"
            ),
            2,
        ));
    }
    Ok(token.to_string())
}

/// Runs a client command; `Ok` holds what to print on stdout.
pub fn run(cli: Cli) -> Result<String, Failure> {
    let Cli {
        socket,
        timeout,
        command,
    } = cli;
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let call = |kind: request::Kind| {
        call(
            &socket,
            timeout,
            Request {
                kind: Some(kind),
                timeout_ms,
            },
        )
    };
    match command {
        Command::Daemon(_) => Err(Failure::new("internal: daemon is not a client command", 1)),
        Command::Version | Command::Completions { .. } | Command::Man(_) => {
            super::generate::run(command).map_err(|e| Failure::new(e.to_string(), 1))
        }
        Command::Cni(CniCommand::Install(args)) => {
            let written = crate::cni::install::install(&crate::cni::install::Install {
                bin_dir: args.bin_dir,
                conf_dir: args.conf_dir,
                network: args.network,
                socket,
            })
            .map_err(|e| Failure::new(e, 1))?;
            Ok(written
                .iter()
                .map(|p| format!("{}\n", p.display()))
                .collect())
        }
        Command::Network(cmd) => network(cmd, call),
        Command::Fdb(args) => {
            let r = call(request::Kind::Fdb(FdbRequest {
                network: args.network,
            }))?;
            Ok(match args.format {
                Format::Json => render::fdb_json(&r.fdb),
                Format::Table => render::fdb_table(&r.fdb),
            })
        }
        Command::Stats(args) => {
            let r = call(request::Kind::Stats(StatsRequest {}))?;
            let stats = r.stats.unwrap_or_default();
            Ok(match args.format {
                Format::Json => render::stats_json(&stats),
                Format::Table => render::stats_table(&stats),
            })
        }
        Command::Cluster(cmd) => match cmd {
            ClusterCommand::Token { rotate } => {
                let r = call(request::Kind::ClusterToken(ClusterTokenRequest { rotate }))?;
                Ok(format!("{}\n", r.token))
            }
            ClusterCommand::Join {
                addr,
                token,
                token_file,
            } => {
                let token = read_token(token.as_deref(), token_file.as_deref(), || {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
                })?;
                call(request::Kind::ClusterJoin(ClusterJoinRequest {
                    addr,
                    token,
                }))?;
                Ok(String::new())
            }
            ClusterCommand::Leave => {
                call(request::Kind::ClusterLeave(ClusterLeaveRequest {}))?;
                Ok(String::new())
            }
            ClusterCommand::Remove { host, force } => {
                call(request::Kind::ClusterRemove(ClusterRemoveRequest {
                    host,
                    force,
                }))?;
                Ok(String::new())
            }
            ClusterCommand::Members(args) => {
                let r = call(request::Kind::ClusterMembers(ClusterMembersRequest {}))?;
                Ok(match args.format {
                    Format::Json => render::members_json(&r.members),
                    Format::Table => render::members_table(&r.members),
                })
            }
        },
    }
}

fn network(
    cmd: NetworkCommand,
    call: impl Fn(request::Kind) -> Result<Response, Failure>,
) -> Result<String, Failure> {
    match cmd {
        NetworkCommand::Create(a) => {
            if a.driver != "overlay" {
                return Err(Failure::new(
                    format!(
                        "unknown driver {:?}: vxnet has one driver, `overlay`",
                        a.driver
                    ),
                    2,
                ));
            }
            let r = call(request::Kind::NetworkCreate(NetworkCreateRequest {
                name: a.name,
                driver: a.driver,
                subnet: a.subnet.map(Into::into),
                gateway: a.gateway.map(u32::from),
                ip_range: a.ip_range.map(Into::into),
                vni: a.vni,
                mtu: a.mtu,
                peers: a.peers.into_iter().map(u32::from).collect(),
                labels: a.labels.into_iter().collect(),
                internal: a.internal,
                encrypted: a.encrypted,
            }))?;
            Ok(lines(&r.names))
        }
        NetworkCommand::Ls(a) => {
            let r = call(request::Kind::NetworkList(NetworkListRequest {}))?;
            Ok(if a.quiet {
                let ids: Vec<String> = r
                    .networks
                    .iter()
                    .filter_map(|v| v.network.as_ref())
                    .map(|n| n.id.clone())
                    .collect();
                lines(&ids)
            } else {
                match a.format {
                    Format::Json => render::networks_json(&r.networks),
                    Format::Table => render::networks_table(&r.networks),
                }
            })
        }
        NetworkCommand::Inspect { networks } => {
            let r = call(request::Kind::NetworkInspect(NetworkInspectRequest {
                networks,
            }))?;
            Ok(render::networks_json(&r.networks))
        }
        NetworkCommand::Rm { networks } => {
            let r = call(request::Kind::NetworkRemove(NetworkRemoveRequest {
                networks,
            }))?;
            Ok(lines(&r.names))
        }
        NetworkCommand::Prune => {
            let r = call(request::Kind::NetworkPrune(NetworkPruneRequest {}))?;
            Ok(lines(&r.names))
        }
        NetworkCommand::Connect(a) => {
            call(request::Kind::NetworkConnect(NetworkConnectRequest {
                network: a.network,
                target: a.target,
                ipv4: a.ip.map(u32::from),
                aliases: a.aliases,
                ifname: a.ifname,
                name: a.name,
                ports: a.ports,
                ..Default::default()
            }))?;
            Ok(String::new())
        }
        NetworkCommand::Disconnect { network, target } => {
            call(request::Kind::NetworkDisconnect(NetworkDisconnectRequest {
                network,
                target,
                ..Default::default()
            }))?;
            Ok(String::new())
        }
    }
}

fn lines(items: &[String]) -> String {
    items.iter().map(|s| format!("{s}\n")).collect()
}

fn call(socket: &Path, timeout: Duration, request: Request) -> Result<Response, Failure> {
    let response = api::call_blocking(socket, &request, timeout).map_err(|e| match e {
        api::CallError::Runtime(e) => {
            Failure::new(format!("cannot start the client runtime: {e}"), 1)
        }
        api::CallError::Unreachable(api::ApiError::Io(e))
            if e.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Failure::new(
                format!(
                    "permission denied on {}: only root and the members of the daemon's \
                     --api-group may use the vxnet API",
                    socket.display()
                ),
                1,
            )
        }
        api::CallError::Unreachable(e) => Failure::new(
            format!(
                "cannot reach the vxnet daemon at {} ({e}); is it running? start it with `vxnet daemon --advertise-addr IP`, or point --socket at it",
                socket.display()
            ),
            1,
        ),
        api::CallError::Malformed(e) => {
            Failure::new(format!("the daemon did not answer properly: {e}"), 1)
        }
        api::CallError::TimedOut => Failure::new(
            format!(
                "the daemon at {} did not answer within {:?}; check that it is healthy (its log), or raise --timeout",
                socket.display(),
                timeout
            ),
            1,
        ),
    })?;
    if response.error.is_empty() {
        Ok(response)
    } else {
        // An error without a code (a daemon that sets none) is still a failure.
        let code = response.code().exit_code().max(1);
        Err(Failure::new(response.error, code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_stdin() -> std::io::Result<String> {
        panic!("standard input read without --token -")
    }

    #[test]
    fn the_token_comes_from_the_flag_stdin_or_a_file_without_surrounding_whitespace() {
        assert_eq!(
            read_token(Some("vxnet-abc"), None, no_stdin).expect("flag"),
            "vxnet-abc"
        );
        let piped = read_token(Some("-"), None, || Ok("vxnet-def\n".into())).expect("stdin");
        assert_eq!(piped, "vxnet-def");
        let file = std::env::temp_dir().join(format!("vxnet-token-{}", std::process::id()));
        std::fs::write(&file, "  vxnet-ghi\n").expect("write");
        assert_eq!(
            read_token(None, Some(&file), no_stdin).expect("file"),
            "vxnet-ghi"
        );
        std::fs::write(&file, "\n").expect("write");
        let empty = read_token(None, Some(&file), no_stdin).expect_err("empty");
        assert_eq!(empty.exit_code, 2);
        assert!(empty.message.contains("is empty"), "{}", empty.message);
        std::fs::remove_file(&file).expect("remove");
        let missing = read_token(None, Some(&file), no_stdin).expect_err("missing");
        assert!(
            missing.message.starts_with("cannot read the token file"),
            "{}",
            missing.message
        );
    }
}
