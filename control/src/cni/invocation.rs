//! From what the runtime hands the plugin — the `CNI_*` variables and the configuration on
//! stdin — to one typed [`Invocation`], or the CNI error that says what is wrong with it. No IO:
//! the environment is a function, stdin is bytes.
//!
//! The checks run in the order of the reference plugins' `skel`, so a runtime sees the codes it
//! expects: the command and its required variables (4), their values (4), then (not for
//! VERSION) the JSON (6), its `cniVersion` (1, also for CHECK below 0.4.0 and STATUS/GC below
//! 1.1.0), `name` and `network` (7), `ipam` (2), the runtime's capability arguments (7) and
//! `CNI_ARGS` (4).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use vxnet_proto::types::IFNAME_MAX;
use vxnet_proto::{PortMapping, Protocol};

use super::error::{CniError, Code};

/// The spec versions vxnet reads and writes, oldest first. 0.1.0 and 0.2.0 had another result
/// format, which no runtime of this decade asks for.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest spec version, used where the input names none (an error before the JSON is read).
pub const LATEST_VERSION: &str = "1.1.0";
/// The daemon's API socket when the configuration names none (as the CLI's default).
pub const DEFAULT_SOCKET: &str = "/run/vxnet/vxnet.sock";

/// One run of the plugin, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// `cni_version` is the input's, echoed in the answer (the latest when it gave none).
    Version {
        cni_version: String,
    },
    Add {
        conf: NetConf,
        attachment: Attachment,
        netns: PathBuf,
        options: AddOptions,
    },
    Check {
        conf: NetConf,
        attachment: Attachment,
        netns: PathBuf,
    },
    /// `netns` may be missing: the runtime already deleted it.
    Del {
        conf: NetConf,
        attachment: Attachment,
        netns: Option<PathBuf>,
    },
    Status {
        conf: NetConf,
    },
    /// `valid`: the attachments that must stay (`cni.dev/valid-attachments`).
    Gc {
        conf: NetConf,
        valid: Vec<Attachment>,
    },
}

/// What the spec keys an attachment by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

/// The plugin configuration vxnet reads.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    /// The CNI network's name (the configuration list's), not vxnet's.
    pub name: String,
    /// The vxnet network to join: its name or id.
    pub network: String,
    pub socket: PathBuf,
    /// The result of the plugins before this one (ADD), or of the whole chain (CHECK, DEL).
    pub prev_result: Option<Value>,
}

/// What an ADD asks for beyond the defaults, from the runtime's capability arguments and
/// `CNI_ARGS`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AddOptions {
    /// A fixed address: the `ips` capability, else `CNI_ARGS` `IP=`.
    pub ipv4: Option<Ipv4Addr>,
    /// Names the container also answers to on the network's DNS: `CNI_ARGS` `K8S_POD_NAME`
    /// (Podman puts the container's name there) and the `aliases` capability for this network.
    pub aliases: Vec<String>,
    /// The `portMappings` capability.
    pub ports: Vec<PortMapping>,
}

/// The plugin's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// The variables the spec requires for the command (besides `CNI_COMMAND`). `CNI_PATH` is
    /// required for GC and STATUS too, but vxnet runs no other plugin, so it is not insisted on.
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Status | Command::Gc | Command::Version => &[],
        }
    }

    /// The oldest configuration version the command exists in.
    fn since(self) -> &'static str {
        match self {
            Command::Check => "0.4.0",
            Command::Status | Command::Gc => "1.1.0",
            _ => SUPPORTED_VERSIONS[0],
        }
    }
}

/// The invocation that the environment (`env`, a variable's value by name) and stdin describe.
pub fn parse(env: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<Invocation, CniError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let Some(command) = var("CNI_COMMAND") else {
        return Err(invalid_env(
            "required environment variable CNI_COMMAND is missing",
            "CNI_COMMAND is one of ADD, DEL, CHECK, STATUS, GC, VERSION",
        ));
    };
    let command = Command::parse(&command).ok_or_else(|| {
        invalid_env(
            format!("unknown CNI_COMMAND {command:?}"),
            "CNI_COMMAND is one of ADD, DEL, CHECK, STATUS, GC, VERSION",
        )
    })?;
    let missing: Vec<&str> = command
        .required()
        .iter()
        .copied()
        .filter(|name| var(name).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(invalid_env(
            format!(
                "required environment variables [{}] missing",
                missing.join(",")
            ),
            "the runtime sets them; see the CNI spec, section 2",
        ));
    }
    let container_id = var("CNI_CONTAINERID").unwrap_or_default();
    let ifname = var("CNI_IFNAME").unwrap_or_default();
    let netns = var("CNI_NETNS").map(PathBuf::from);
    if command.required().contains(&"CNI_CONTAINERID") {
        check_container_id(&container_id)?;
        check_ifname(&ifname)?;
    }
    if let Some(ns) = &netns {
        if command.required().contains(&"CNI_NETNS") && !ns.is_absolute() {
            return Err(invalid_env(
                format!("CNI_NETNS {:?} is not an absolute path", ns.display()),
                "CNI_NETNS is the path of the container's network namespace, e.g. /run/netns/NAME",
            ));
        }
    }

    if command == Command::Version {
        let cni_version = peek_version(stdin).unwrap_or_else(|| LATEST_VERSION.to_string());
        return Ok(Invocation::Version { cni_version });
    }

    let raw: RawConf = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            Code::Decode,
            "cannot decode the network configuration on stdin",
            e.to_string(),
        )
    })?;
    let cni_version = check_version(raw.cni_version.as_deref(), command)?;
    let name = raw.name.filter(|n| !n.is_empty()).ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "missing network name",
            "the configuration needs \"name\" (the network configuration list's name)",
        )
    })?;
    let network = raw.network.filter(|n| !n.is_empty()).ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "missing \"network\"",
            "\"network\" names the vxnet network to join (made with `vxnet network create NAME`), \
             e.g. {\"type\": \"vxnet\", \"network\": \"NAME\"}",
        )
    })?;
    if let Some(ipam) = raw.ipam {
        return Err(CniError::new(
            Code::UnsupportedField,
            format!("unsupported field \"ipam\": {ipam}"),
            "vxnet gives addresses from the vxnet network's subnet itself; remove \"ipam\" (a \
             fixed address comes from the \"ips\" capability or CNI_ARGS IP=A.B.C.D)",
        ));
    }
    let conf = NetConf {
        cni_version,
        network,
        socket: raw.socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        prev_result: raw.prev_result.filter(|v| !v.is_null()),
        name,
    };
    let attachment = Attachment {
        container_id,
        ifname,
    };
    Ok(match command {
        Command::Add => {
            let runtime = raw.runtime_config.unwrap_or_default();
            let args = parse_cni_args(var("CNI_ARGS").as_deref().unwrap_or(""))?;
            let options = add_options(&conf.name, runtime, args)?;
            Invocation::Add {
                conf,
                attachment,
                netns: netns.unwrap_or_default(),
                options,
            }
        }
        Command::Check => Invocation::Check {
            conf,
            attachment,
            netns: netns.unwrap_or_default(),
        },
        Command::Del => Invocation::Del {
            conf,
            attachment,
            netns,
        },
        Command::Status => Invocation::Status { conf },
        Command::Gc => {
            let valid = raw
                .valid_attachments
                .unwrap_or_default()
                .into_iter()
                .map(|a| Attachment {
                    container_id: a.container_id,
                    ifname: a.ifname,
                })
                .collect();
            Invocation::Gc { conf, valid }
        }
        // Answered before the configuration was read; kept total rather than panicking.
        Command::Version => Invocation::Version {
            cni_version: conf.cni_version,
        },
    })
}

/// The `cniVersion` of a configuration, if it has one, whatever else is wrong with it: the
/// version an error result is written in.
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    Some(v.get("cniVersion")?.as_str()?.to_string()).filter(|s| !s.is_empty())
}

/// The configuration's version if vxnet speaks it and the command exists in it.
fn check_version(given: Option<&str>, command: Command) -> Result<String, CniError> {
    let supported = SUPPORTED_VERSIONS.join(", ");
    // No cniVersion means 0.1.0 (libcni reads it so).
    let version = given.filter(|v| !v.is_empty()).unwrap_or("0.1.0");
    let Some(at) = SUPPORTED_VERSIONS.iter().position(|v| *v == version) else {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            "incompatible CNI versions",
            format!("the configuration is {version}; vxnet supports {supported}"),
        ));
    };
    let since = SUPPORTED_VERSIONS
        .iter()
        .position(|v| *v == command.since())
        .unwrap_or(0);
    if at < since {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!("config version does not allow {}", command.as_str()),
            format!(
                "{} exists from CNI {} on; the configuration is {version}",
                command.as_str(),
                command.since()
            ),
        ));
    }
    Ok(version.to_string())
}

/// The spec's rule for container ids: an alphanumeric, then alphanumerics, `_`, `.` or `-`.
fn check_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Ok(());
    }
    Err(invalid_env(
        format!("invalid CNI_CONTAINERID {id:?}"),
        "a container id starts with a letter or digit, followed by letters, digits, '_', '.' or '-'",
    ))
}

/// Linux's rule for interface names, as the spec repeats it.
fn check_ifname(name: &str) -> Result<(), CniError> {
    let bad = name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if bad {
        return Err(invalid_env(
            format!("invalid CNI_IFNAME {name:?}"),
            format!(
                "an interface name has at most {IFNAME_MAX} characters, is not . or .., and has \
                 no '/', ':' or white space"
            ),
        ));
    }
    Ok(())
}

fn invalid_env(msg: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidEnvironment, msg, details)
}

/// `CNI_ARGS`, the `K=V;K=V` pairs; keys vxnet does not know are ignored (as with
/// `IgnoreUnknown=1`, which runtimes add anyway).
#[derive(Debug, Clone, PartialEq, Default)]
struct CniArgs {
    ip: Option<Ipv4Addr>,
    pod_name: Option<String>,
}

fn parse_cni_args(s: &str) -> Result<CniArgs, CniError> {
    let mut args = CniArgs::default();
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(invalid_env(
                format!("invalid CNI_ARGS pair {pair:?}"),
                "CNI_ARGS is KEY=VALUE pairs separated by ';'",
            ));
        };
        match key {
            "IP" => {
                // host-local's convention allows a prefix length; the subnet decides it here.
                let addr = value.split_once('/').map_or(value, |(a, _)| a);
                args.ip = Some(addr.parse().map_err(|_| {
                    invalid_env(
                        format!("CNI_ARGS IP={value:?} is not an IPv4 address"),
                        "vxnet networks are IPv4",
                    )
                })?);
            }
            "K8S_POD_NAME" if !value.is_empty() => args.pod_name = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(args)
}

fn add_options(
    network_name: &str,
    runtime: RawRuntimeConfig,
    args: CniArgs,
) -> Result<AddOptions, CniError> {
    let mut ipv4 = None;
    // The capability wins over CNI_ARGS, as in host-local; vxnet takes one IPv4 address.
    if let Some(first) = runtime.ips.unwrap_or_default().first() {
        let addr = first.split_once('/').map_or(first.as_str(), |(a, _)| a);
        ipv4 = Some(addr.parse::<Ipv4Addr>().map_err(|_| {
            CniError::new(
                Code::InvalidConfig,
                format!("runtimeConfig ips {first:?} is not an IPv4 address"),
                "vxnet networks are IPv4",
            )
        })?);
    }
    let ipv4 = ipv4.or(args.ip);
    let mut aliases = Vec::new();
    let capability = runtime
        .aliases
        .unwrap_or_default()
        .remove(network_name)
        .unwrap_or_default();
    for alias in args.pod_name.into_iter().chain(capability) {
        // A name with a dot would read as NAME.NETWORK on the network's DNS.
        if is_dns_label(&alias) && !aliases.contains(&alias) {
            aliases.push(alias);
        }
    }
    let ports = runtime
        .port_mappings
        .unwrap_or_default()
        .iter()
        .map(port_mapping)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AddOptions {
        ipv4,
        aliases,
        ports,
    })
}

/// One DNS label: letters, digits and inner hyphens, at most 63.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn port_mapping(raw: &RawPortMapping) -> Result<PortMapping, CniError> {
    let bad = |why: &str| {
        CniError::new(
            Code::InvalidConfig,
            format!(
                "invalid portMappings entry {}",
                serde_json::to_string(raw).unwrap_or_default()
            ),
            why.to_string(),
        )
    };
    let protocol = match raw.protocol.as_deref().unwrap_or("tcp") {
        p if p.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
        p if p.eq_ignore_ascii_case("udp") => Protocol::Udp,
        _ => return Err(bad("vxnet publishes tcp and udp ports")),
    };
    let host_ip = match raw.host_ip.as_deref() {
        None | Some("") => Ipv4Addr::UNSPECIFIED,
        Some(ip) => ip
            .parse()
            .map_err(|_| bad("hostIP is an IPv4 address (vxnet publishes on IPv4)"))?,
    };
    let port = |p: u32| {
        if (1..=u32::from(u16::MAX)).contains(&p) {
            Ok(p)
        } else {
            Err(bad("ports are 1 to 65535"))
        }
    };
    let mut mapping = PortMapping {
        host_ip: u32::from(host_ip),
        host_port: port(raw.host_port)?,
        container_port: port(raw.container_port)?,
        ..Default::default()
    };
    mapping.set_protocol(protocol);
    Ok(mapping)
}

/// The configuration as JSON has it. Every key is optional here: what is required is checked
/// after decoding, with a code that says which. Unknown keys are the runtime's or another
/// plugin's, and ignored.
#[derive(Debug, Deserialize)]
struct RawConf {
    #[serde(rename = "cniVersion")]
    cni_version: Option<String>,
    name: Option<String>,
    network: Option<String>,
    socket: Option<PathBuf>,
    #[serde(rename = "prevResult")]
    prev_result: Option<Value>,
    #[serde(rename = "runtimeConfig")]
    runtime_config: Option<RawRuntimeConfig>,
    ipam: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<RawAttachment>>,
}

/// The capability arguments vxnet declares it can use (`capabilities` in the configuration).
#[derive(Debug, Default, Deserialize)]
struct RawRuntimeConfig {
    ips: Option<Vec<String>>,
    #[serde(rename = "portMappings")]
    port_mappings: Option<Vec<RawPortMapping>>,
    /// Network name → aliases (Podman's `aliases` capability).
    aliases: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct RawPortMapping {
    #[serde(rename = "hostPort")]
    host_port: u32,
    #[serde(rename = "containerPort")]
    container_port: u32,
    protocol: Option<String>,
    #[serde(rename = "hostIP")]
    host_ip: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

#[cfg(test)]
mod tests;
