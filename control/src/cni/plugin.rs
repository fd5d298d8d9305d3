//! The six commands, each a few requests to the daemon through [`PluginIo`] — the one door to
//! the daemon's API and to the container's namespace — so that tests run them against a fake.
//!
//! Rules (see also the module docs of [`super`]):
//! - An attachment `(CNI_CONTAINERID, CNI_IFNAME)` is the vxnet endpoint whose id is
//!   [`endpoint_id`]: DEL, CHECK and GC find it from those two values alone, and the plugin
//!   keeps no state of its own.
//! - Its name is [`endpoint_name`], `cni-` and 12 lowercase hex digits: GC takes an endpoint
//!   for one the plugin made only when its name has exactly that shape.
//! - ADD refuses an attachment that already exists (the spec: an interface that already exists
//!   is an error); DEL of one that does not exist, or of a network that does not, succeeds.
//! - GC removes only endpoints of this host — those the daemon's forwarding table for the
//!   network lists as `local` — and the daemon itself disconnects by id only endpoints of its
//!   own host.

use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use vxnet_proto::types::MacAddr;
use vxnet_proto::{
    request, ClusterMembersRequest, Endpoint, ErrorCode, FdbRequest, NetworkConnectRequest,
    NetworkDisconnectRequest, NetworkInspectRequest, NetworkView, Response,
};

use super::error::{CniError, Code, DaemonError};
use super::invocation::{AddOptions, Attachment, Invocation, NetConf};
use super::result::{self, AddResult};

/// What the plugin needs from its host: the daemon's API and a look into namespaces.
pub trait PluginIo {
    /// Sends one request to the daemon listening on `socket`, giving up after `timeout` (the
    /// daemon is told too, and answers "unavailable" a little before); `Ok` only for an
    /// answer without an error.
    fn call(
        &mut self,
        socket: &Path,
        kind: request::Kind,
        timeout: Duration,
    ) -> Result<Response, DaemonError>;
    /// What the file at `path` is.
    fn netns(&mut self, path: &Path) -> Netns;
    /// The interface `ifname` in the network namespace at `netns`, `None` if there is none.
    fn interface(&mut self, netns: &Path, ifname: &str) -> io::Result<Option<Interface>>;
}

/// What a `CNI_NETNS` path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Netns {
    Missing,
    /// The plugin's own network namespace: attaching it would configure the host.
    Own,
    Other,
}

/// An interface as seen inside its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    pub mac: Option<MacAddr>,
    /// Its IPv4 addresses and their prefix lengths.
    pub addresses: Vec<(Ipv4Addr, u32)>,
}

/// What a successful command prints.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Json(Value),
    Nothing,
}

/// How long one request to the daemon may take (the CLI's default `--timeout`): runtimes give
/// a plugin minutes, but a cluster without quorum must not hold a container start that long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// STATUS's bound: runtimes ask it often, and a cluster that cannot answer within it cannot
/// serve ADD well either.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Marks endpoint ids made by the plugin, so that no other digest of the same two strings
/// collides with them.
const ID_DOMAIN: &[u8] = b"vxnet-cni\0";
/// What every endpoint name the plugin gives starts with.
pub const NAME_PREFIX: &str = "cni-";
/// How many hex digits follow [`NAME_PREFIX`] (as many as `podman ps` and `docker ps` show).
const NAME_DIGITS: usize = 12;

/// The vxnet endpoint id of an attachment: SHA-256 of the container id and interface name, in
/// lowercase hex (64 digits, like every vxnet id).
pub fn endpoint_id(a: &Attachment) -> String {
    let mut h = Sha256::new();
    h.update(ID_DOMAIN);
    h.update(a.container_id.as_bytes());
    h.update(b"\0");
    h.update(a.ifname.as_bytes());
    hex(&h.finalize())
}

/// The endpoint name of a container: `cni-` and the first 12 digits of its id when that is
/// hex, as the ids of Podman, containerd and CRI-O are (so it matches what `podman ps`
/// shows); else the first 12 digits of the id's SHA-256, so that two hand-made ids with a
/// common beginning (`test-1`, `test-2`) still get two names. Unique per network: a namespace
/// joins a vxnet network once, whatever the interface name.
pub fn endpoint_name(container_id: &str) -> String {
    let id = container_id.to_ascii_lowercase();
    let digits = if id.len() >= NAME_DIGITS && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id[..NAME_DIGITS].to_string()
    } else {
        hex(&Sha256::digest(container_id.as_bytes()))[..NAME_DIGITS].to_string()
    };
    format!("{NAME_PREFIX}{digits}")
}

/// Whether `name` has the shape [`endpoint_name`] gives.
pub fn is_plugin_endpoint_name(name: &str) -> bool {
    name.strip_prefix(NAME_PREFIX).is_some_and(|d| {
        d.len() == NAME_DIGITS && d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one invocation.
pub fn execute(invocation: Invocation, io: &mut impl PluginIo) -> Result<Output, CniError> {
    match invocation {
        Invocation::Version { cni_version } => Ok(Output::Json(result::version_json(&cni_version))),
        Invocation::Add {
            conf,
            attachment,
            netns,
            options,
        } => add(&conf, &attachment, &netns, options, io),
        Invocation::Check {
            conf,
            attachment,
            netns,
        } => check(&conf, &attachment, &netns, io),
        Invocation::Del {
            conf, attachment, ..
        } => del(&conf, &attachment, io),
        Invocation::Status { conf } => status(&conf, io),
        Invocation::Gc { conf, valid } => gc(&conf, &valid, io),
    }
}

fn add(
    conf: &NetConf,
    a: &Attachment,
    netns: &Path,
    options: AddOptions,
    io: &mut impl PluginIo,
) -> Result<Output, CniError> {
    check_netns(netns, io)?;
    let what = format!(
        "attach container {} to vxnet network {}",
        a.container_id, conf.network
    );
    let view = inspect(conf, io, &what)?.ok_or_else(|| no_such_network(conf))?;
    let network = view.network.unwrap_or_default();
    let id = endpoint_id(a);
    if let Some(ep) = view.endpoints.iter().find(|e| e.id == id) {
        return Err(CniError::new(
            Code::Conflict,
            format!(
                "container {} already has {} on vxnet network {}",
                a.container_id, a.ifname, conf.network
            ),
            format!(
                "endpoint {} ({}) is there from an earlier ADD; DEL it first",
                ep.name,
                Ipv4Addr::from(ep.ipv4)
            ),
        ));
    }
    let connected = io
        .call(
            &conf.socket,
            request::Kind::NetworkConnect(NetworkConnectRequest {
                // By id: the network found above, even should a name be reused meanwhile.
                network: network.id.clone(),
                target: netns.to_string_lossy().into_owned(),
                ipv4: options.ipv4.map(u32::from),
                aliases: options.aliases,
                ifname: Some(a.ifname.clone()),
                name: Some(endpoint_name(&a.container_id)),
                ports: options.ports,
                endpoint_id: Some(id),
                hand_over: false,
            }),
            REQUEST_TIMEOUT,
        )
        .map_err(|e| e.into_cni(&what))?;
    let ep = connected
        .endpoint
        .ok_or_else(|| malformed(&what, "the daemon's answer to connect has no endpoint"))?;
    let mac = MacAddr::from_slice(&ep.mac)
        .ok_or_else(|| malformed(&what, "the connected endpoint has a malformed MAC"))?;
    let result = AddResult {
        ifname: ep.ifname.clone(),
        mac,
        mtu: network.mtu,
        sandbox: netns.to_path_buf(),
        address: Ipv4Addr::from(ep.ipv4),
        prefix_len: network.subnet.map_or(32, |s| s.prefix_len),
        gateway: Ipv4Addr::from(network.gateway),
        default_route: !network.internal,
    };
    Ok(Output::Json(
        result.to_json(&conf.cni_version, conf.prev_result.as_ref()),
    ))
}

/// Refuses a namespace that is missing or is the plugin's own.
fn check_netns(netns: &Path, io: &mut impl PluginIo) -> Result<(), CniError> {
    match io.netns(netns) {
        Netns::Other => Ok(()),
        Netns::Missing => Err(CniError::new(
            Code::InvalidEnvironment,
            format!("CNI_NETNS {} does not exist", netns.display()),
            "the runtime makes the container's network namespace before ADD and CHECK",
        )),
        Netns::Own => Err(own_netns(netns)),
    }
}

fn own_netns(netns: &Path) -> CniError {
    CniError::new(
        Code::InvalidEnvironment,
        format!(
            "CNI_NETNS {} is the plugin's own network namespace",
            netns.display()
        ),
        "a container's namespace is never the runtime's; attaching it would configure the host",
    )
}

fn del(conf: &NetConf, a: &Attachment, io: &mut impl PluginIo) -> Result<Output, CniError> {
    let what = format!(
        "detach container {} from vxnet network {}",
        a.container_id, conf.network
    );
    // By id alone: the namespace may be gone, and the daemon answers success for an id it
    // does not have.
    let answer = io.call(
        &conf.socket,
        request::Kind::NetworkDisconnect(NetworkDisconnectRequest {
            network: conf.network.clone(),
            endpoint_id: endpoint_id(a),
            ..Default::default()
        }),
        REQUEST_TIMEOUT,
    );
    match answer {
        Ok(_) => Ok(Output::Nothing),
        // No network, no endpoint of it: nothing is held.
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(Output::Nothing),
        Err(e) => Err(e.into_cni(&what)),
    }
}

fn check(
    conf: &NetConf,
    a: &Attachment,
    netns: &Path,
    io: &mut impl PluginIo,
) -> Result<Output, CniError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "CHECK needs prevResult",
            "the runtime passes the result of the ADD it checks as \"prevResult\"",
        )
    })?;
    let failed = |msg: String, details: String| CniError::new(Code::CheckFailed, msg, details);
    let expected = result::expected(prev, &a.ifname, netns).ok_or_else(|| {
        failed(
            format!(
                "prevResult lists no interface {} in {}",
                a.ifname,
                netns.display()
            ),
            "CHECK compares the attachment with the result of its ADD".into(),
        )
    })?;
    let what = format!(
        "check container {} on vxnet network {}",
        a.container_id, conf.network
    );
    let view = inspect(conf, io, &what)?.ok_or_else(|| no_such_network(conf))?;
    let network = view.network.unwrap_or_default();
    let ep = find_endpoint(&view.endpoints, a).ok_or_else(|| {
        failed(
            format!(
                "container {} has no {} on vxnet network {}",
                a.container_id, a.ifname, conf.network
            ),
            format!(
                "no endpoint {} ({}); was it disconnected?",
                endpoint_name(&a.container_id),
                endpoint_id(a)
            ),
        )
    })?;
    if Path::new(&ep.target) != netns {
        return Err(failed(
            format!("endpoint {} is in another namespace", ep.name),
            format!(
                "vxnet has it in {}, CNI_NETNS is {}",
                ep.target,
                netns.display()
            ),
        ));
    }
    let addr = Ipv4Addr::from(ep.ipv4);
    if !expected.addresses.is_empty() && !expected.addresses.iter().any(|(a, _)| *a == addr) {
        return Err(failed(
            format!("endpoint {} has address {addr}", ep.name),
            format!("prevResult says {:?}", expected.addresses),
        ));
    }
    match io.netns(netns) {
        Netns::Other => {}
        Netns::Missing => {
            return Err(failed(
                format!("CNI_NETNS {} does not exist", netns.display()),
                "the container's network namespace is gone".into(),
            ))
        }
        Netns::Own => return Err(own_netns(netns)),
    }
    let iface = io
        .interface(netns, &a.ifname)
        .map_err(|e| {
            CniError::new(
                Code::HostFailed,
                format!("cannot look into {}", netns.display()),
                e.to_string(),
            )
        })?
        .ok_or_else(|| {
            failed(
                format!("no interface {} in {}", a.ifname, netns.display()),
                format!("endpoint {} exists but its interface is gone", ep.name),
            )
        })?;
    // A later plugin (tuning) may change the MAC; the chain's result then says so.
    let mac = expected
        .mac
        .or_else(|| MacAddr::from_slice(&ep.mac))
        .unwrap_or_default();
    if iface.mac != Some(mac) {
        return Err(failed(
            format!("{} has MAC {:?}, not {mac}", a.ifname, iface.mac),
            format!("endpoint {}", ep.name),
        ));
    }
    let prefix_len = network.subnet.map_or(32, |s| s.prefix_len);
    if !iface.addresses.contains(&(addr, prefix_len)) {
        return Err(failed(
            format!("{} does not have {addr}/{prefix_len}", a.ifname),
            format!("it has {:?}", iface.addresses),
        ));
    }
    Ok(Output::Nothing)
}

fn status(conf: &NetConf, io: &mut impl PluginIo) -> Result<Output, CniError> {
    let down = |why: String| {
        CniError::new(
            Code::NotAvailableDegraded,
            "the vxnet daemon does not answer",
            format!("{why}; until it is back, no ADD or DEL can be served and this host's containers have no overlay forwarding"),
        )
    };
    let unavailable =
        |msg: String, details: String| CniError::new(Code::NotAvailable, msg, details);
    let members = match io.call(
        &conf.socket,
        request::Kind::ClusterMembers(ClusterMembersRequest {}),
        STATUS_TIMEOUT,
    ) {
        Ok(r) => r.members,
        Err(DaemonError::Unreachable(why)) => return Err(down(why)),
        Err(e) => {
            return Err(unavailable(
                "cannot read the vxnet cluster's members".into(),
                e.to_string(),
            ))
        }
    };
    if !members.iter().any(|m| m.leader) {
        return Err(unavailable(
            "the vxnet cluster has no leader".into(),
            format!(
                "{} member(s), none of them leading: a majority of the voters must be up and \
                 reach each other before networks can change (`vxnet cluster members`)",
                members.len()
            ),
        ));
    }
    // What the leader hears from: a leader cut off from most voters still calls itself leader
    // for an election timeout, and a read through it would wait for the request's timeout.
    let voters: Vec<&vxnet_proto::Member> = members.iter().filter(|m| m.role == "voter").collect();
    let reachable = voters.iter().filter(|m| m.reachable).count();
    if reachable * 2 <= voters.len() {
        return Err(unavailable(
            "the vxnet cluster has no quorum".into(),
            format!(
                "the leader hears from {reachable} of {} voters; a majority must be up and \
                 reach each other before networks can change (`vxnet cluster members`)",
                voters.len()
            ),
        ));
    }
    match io.call(
        &conf.socket,
        request::Kind::NetworkInspect(NetworkInspectRequest {
            networks: vec![conf.network.clone()],
        }),
        STATUS_TIMEOUT,
    ) {
        Ok(_) => Ok(Output::Nothing),
        Err(DaemonError::Unreachable(why)) => Err(down(why)),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Err(unavailable(
            format!("vxnet network {:?} does not exist", conf.network),
            format!(
                "{e}; create it with `vxnet network create {}`",
                conf.network
            ),
        )),
        Err(e) => Err(unavailable(
            format!("cannot read vxnet network {}", conf.network),
            e.to_string(),
        )),
    }
}

fn gc(conf: &NetConf, valid: &[Attachment], io: &mut impl PluginIo) -> Result<Output, CniError> {
    let what = format!(
        "collect stale attachments of vxnet network {}",
        conf.network
    );
    // No network, nothing of it to collect.
    let Some(view) = inspect(conf, io, &what)? else {
        return Ok(Output::Nothing);
    };
    let network = view.network.unwrap_or_default();
    let fdb = io
        .call(
            &conf.socket,
            request::Kind::Fdb(FdbRequest {
                network: network.id.clone(),
            }),
            REQUEST_TIMEOUT,
        )
        .map_err(|e| e.into_cni(&what))?
        .fdb;
    let local: BTreeSet<&[u8]> = fdb
        .iter()
        .filter(|row| row.kind == "local")
        .map(|row| row.mac.as_slice())
        .collect();
    let keep: BTreeSet<String> = valid.iter().map(endpoint_id).collect();
    let stale: Vec<&Endpoint> = view
        .endpoints
        .iter()
        .filter(|e| is_plugin_endpoint_name(&e.name))
        .filter(|e| local.contains(e.mac.as_slice()))
        .filter(|e| !keep.contains(&e.id))
        .collect();
    let mut failures = Vec::new();
    for ep in &stale {
        let answer = io.call(
            &conf.socket,
            request::Kind::NetworkDisconnect(NetworkDisconnectRequest {
                network: network.id.clone(),
                endpoint_id: ep.id.clone(),
                ..Default::default()
            }),
            REQUEST_TIMEOUT,
        );
        // Keep going: the spec asks GC to remove as much as it can, then report.
        if let Err(e) = answer {
            if e.code() != Some(ErrorCode::NotFound) {
                failures.push((ep.name.clone(), e));
            }
        }
    }
    let Some((_, first)) = failures.first() else {
        return Ok(Output::Nothing);
    };
    let code = first.clone().into_cni(&what).code;
    let details = failures
        .iter()
        .map(|(name, e)| format!("{name}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(CniError::new(
        code,
        format!(
            "could not remove {} of {} stale endpoints of vxnet network {}",
            failures.len(),
            stale.len(),
            conf.network
        ),
        details,
    ))
}

/// The network as the daemon sees it, `None` if it does not exist.
fn inspect(
    conf: &NetConf,
    io: &mut impl PluginIo,
    what: &str,
) -> Result<Option<NetworkView>, CniError> {
    let answer = io.call(
        &conf.socket,
        request::Kind::NetworkInspect(NetworkInspectRequest {
            networks: vec![conf.network.clone()],
        }),
        REQUEST_TIMEOUT,
    );
    match answer {
        Ok(r) => r
            .networks
            .into_iter()
            .next()
            .filter(|v| v.network.is_some())
            .map(Some)
            .ok_or_else(|| malformed(what, "the daemon's answer to inspect has no network")),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(e.into_cni(what)),
    }
}

fn find_endpoint<'a>(endpoints: &'a [Endpoint], a: &Attachment) -> Option<&'a Endpoint> {
    let id = endpoint_id(a);
    endpoints.iter().find(|e| e.id == id)
}

fn no_such_network(conf: &NetConf) -> CniError {
    CniError::new(
        Code::InvalidConfig,
        format!("vxnet network {:?} does not exist", conf.network),
        format!(
            "\"network\" in the CNI configuration {:?} names it; create it with `vxnet network \
             create {}` on any host of the cluster",
            conf.name, conf.network
        ),
    )
}

fn malformed(what: &str, why: &str) -> CniError {
    DaemonError::Malformed(why.to_string()).into_cni(what)
}

#[cfg(test)]
mod tests;
