//! From the replicated state to what this host's dataplane must run: the only place that
//! decides it. [`host_program`] builds it from scratch; [`Programmer`] builds the same thing
//! one change at a time, rebuilding only the networks that changed, so that one connect costs
//! the same however many endpoints the cluster has (README, "Scale").
//!
//! The rules (see also `vxnet_dataplane::host`, which carries the program out):
//! - Every network of the state is in the program, in the state's order; its endpoints are
//!   every endpoint of it cluster-wide, [`Location::Local`] when on this host, else behind
//!   the VTEP address of the host they are on.
//! - Broadcast, multicast and unknown unicast (`flood`) go to the other hosts that have
//!   endpoints in the network and to its static peers; datagrams are accepted (`trusted`)
//!   from every other cluster host and the static peers. This host's own address is never in
//!   either list (hosts are told apart by id). Both are sorted and without duplicates.
//! - An encrypted network carries its keys (epochs that do not fit a byte, or secrets that
//!   are not 32 bytes, are left out: the network then has fewer keys, never a made-up one);
//!   its MTU, fixed at creation, already leaves room for the sealing overhead.
//! - The state machine guarantees every endpoint a six-byte MAC, a known host and a network
//!   with a subnet and a 24-bit VNI. Anything that breaks this is left out of the program
//!   rather than given a made-up value (no `00:00:00:00:00:00` MAC, no guessed prefix).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use vxnet_dataplane::host::publish::{Proto, Publish};
use vxnet_dataplane::host::{
    EndpointProgram, HostProgram, Location, NetworkKey, NetworkProgram, Salts,
};
use vxnet_proto::types::{MacAddr, Vni};
use vxnet_proto::{Endpoint, Host, Network, PortMapping, Protocol, State};

use crate::state::StateMachine;

/// What host `host_id` must run for `state`, built from scratch.
pub fn host_program(state: &State, host_id: &str) -> HostProgram {
    let vteps = vtep_addresses(&state.hosts);
    let mut by_network: BTreeMap<&str, Vec<&Endpoint>> = BTreeMap::new();
    for e in &state.endpoints {
        by_network.entry(e.network_id.as_str()).or_default().push(e);
    }
    HostProgram {
        networks: state
            .networks
            .iter()
            .filter_map(|net| {
                let endpoints = by_network
                    .get(net.id.as_str())
                    .map_or(&[][..], Vec::as_slice);
                network_program(net, endpoints, host_id, &vteps, &state.hosts)
            })
            .map(Arc::new)
            .collect(),
    }
}

/// Builds host programs one change at a time: a network whose version (see
/// [`StateMachine::network_version`]) and host list are as at the last build keeps its
/// program — the same `Arc`, which the dataplane then leaves alone (see
/// `vxnet_dataplane::host::HostProgram`) — and only the others are built again. The result is
/// always equal to [`host_program`] of the same state.
#[derive(Debug)]
pub struct Programmer {
    host_id: String,
    /// The host list's version at the last build; 0 before the first.
    hosts_version: u64,
    /// Network id → the version it was built from and what was built (`None`: left out).
    built: BTreeMap<String, (u64, Option<Arc<NetworkProgram>>)>,
}

impl Programmer {
    pub fn new(host_id: impl Into<String>) -> Programmer {
        Programmer {
            host_id: host_id.into(),
            hosts_version: 0,
            built: BTreeMap::new(),
        }
    }

    /// What this host must run for `machine`'s state (see the type's docs).
    pub fn program(&mut self, machine: &StateMachine) -> HostProgram {
        let networks_by_id = machine.networks_by_id();
        if machine.hosts_version() != self.hosts_version {
            // Every network's flood and trust lists may change with the hosts.
            self.built.clear();
            self.hosts_version = machine.hosts_version();
        }
        let mut vteps = None;
        let mut networks = Vec::with_capacity(networks_by_id.len());
        for net in networks_by_id {
            let version = machine.network_version(&net.id).unwrap_or(0);
            let program = match self.built.get(&net.id) {
                Some((built, program)) if *built == version => program.clone(),
                _ => {
                    let vteps = vteps.get_or_insert_with(|| vtep_addresses(machine.hosts()));
                    let endpoints = machine.endpoints(&net.id);
                    let program =
                        network_program(net, &endpoints, &self.host_id, vteps, machine.hosts())
                            .map(Arc::new);
                    self.built
                        .insert(net.id.clone(), (version, program.clone()));
                    program
                }
            };
            networks.extend(program);
        }
        if self.built.len() > networks_by_id.len() {
            // Networks removed since.
            self.built
                .retain(|id, _| machine.network_version(id).is_some());
        }
        HostProgram { networks }
    }
}

/// Every host's seal salt by VTEP address.
fn seal_salts(hosts: &[Host]) -> Salts {
    Salts(
        hosts
            .iter()
            .map(|h| (Ipv4Addr::from(h.addr), h.seal_salt))
            .collect(),
    )
}

/// Host id → VTEP address.
fn vtep_addresses(hosts: &[Host]) -> BTreeMap<&str, Ipv4Addr> {
    hosts
        .iter()
        .map(|h| (h.id.as_str(), Ipv4Addr::from(h.addr)))
        .collect()
}

/// Network `net` as host `host_id` must run it, given its endpoints.
fn network_program(
    net: &Network,
    endpoints: &[&Endpoint],
    host_id: &str,
    vteps: &BTreeMap<&str, Ipv4Addr>,
    hosts: &[Host],
) -> Option<NetworkProgram> {
    let vni = Vni::new(net.vni)?;
    let prefix_len = u8::try_from(net.subnet.as_ref()?.prefix_len).ok()?;
    let peers: Vec<Ipv4Addr> = net.peers.iter().map(|&p| Ipv4Addr::from(p)).collect();
    let mut flood = BTreeSet::new();
    let endpoints: Vec<EndpointProgram> = endpoints
        .iter()
        .filter_map(|e| {
            let location = if e.host_id == host_id {
                Location::Local
            } else {
                let vtep = *vteps.get(e.host_id.as_str())?;
                flood.insert(vtep);
                Location::Remote(vtep)
            };
            let ipv4 = Ipv4Addr::from(e.ipv4);
            let (ports, target) = match location {
                Location::Local => (
                    e.ports.iter().filter_map(|p| publish(p, ipv4)).collect(),
                    Some(e.target.clone().into()),
                ),
                Location::Remote(_) => (Vec::new(), None),
            };
            Some(EndpointProgram {
                id: e.id.clone(),
                mac: MacAddr::from_slice(&e.mac)?,
                ipv4,
                location,
                ports,
                names: std::iter::once(&e.name)
                    .chain(&e.aliases)
                    .cloned()
                    .collect(),
                target,
            })
        })
        .collect();
    flood.extend(peers.iter().copied());
    let trusted: BTreeSet<Ipv4Addr> = vteps
        .iter()
        .filter(|(id, _)| **id != host_id)
        .map(|(_, &addr)| addr)
        .chain(peers.iter().copied())
        .collect();
    Some(NetworkProgram {
        id: net.id.clone(),
        name: net.name.clone(),
        vni,
        mtu: net.mtu,
        gateway: Ipv4Addr::from(net.gateway),
        prefix_len,
        internal: net.internal,
        encrypted: net.encrypted,
        keys: net
            .keys
            .iter()
            .filter_map(|k| {
                Some(NetworkKey {
                    epoch: u8::try_from(k.epoch).ok()?,
                    secret: k.secret.as_slice().try_into().ok()?,
                })
            })
            .collect(),
        salts: if net.encrypted {
            seal_salts(hosts)
        } else {
            Salts::default()
        },
        endpoints,
        flood: flood.into_iter().collect(),
        trusted: trusted.into_iter().collect(),
        peers,
    })
}

/// A published port of a local endpoint at `container_ip`, as the dataplane takes it.
fn publish(p: &PortMapping, container_ip: Ipv4Addr) -> Option<Publish> {
    let (proto, host_ip, host_port) = host_side(p)?;
    Some(Publish {
        proto,
        host_ip,
        host_port,
        container_ip,
        container_port: u16::try_from(p.container_port).ok()?,
    })
}

/// What a published port takes on its host: protocol, address and port; `None` when
/// malformed (the state machine refuses those).
pub fn host_side(p: &PortMapping) -> Option<(Proto, Ipv4Addr, u16)> {
    let proto = match Protocol::try_from(p.protocol).ok()? {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
    };
    Some((
        proto,
        Ipv4Addr::from(p.host_ip),
        u16::try_from(p.host_port).ok()?,
    ))
}

#[cfg(test)]
mod tests;
