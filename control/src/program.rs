//! From the replicated state to what this host's dataplane must run: a pure function, the
//! only place that decides it.
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

use vxnet_dataplane::host::publish::{Proto, Publish};
use vxnet_dataplane::host::{EndpointProgram, HostProgram, Location, NetworkKey, NetworkProgram};
use vxnet_proto::types::{MacAddr, Vni};
use vxnet_proto::{Network, PortMapping, Protocol, State};

/// What host `host_id` must run for `state`.
pub fn host_program(state: &State, host_id: &str) -> HostProgram {
    let vteps: BTreeMap<&str, Ipv4Addr> = state
        .hosts
        .iter()
        .map(|h| (h.id.as_str(), Ipv4Addr::from(h.addr)))
        .collect();
    HostProgram {
        networks: state
            .networks
            .iter()
            .filter_map(|net| network_program(state, net, host_id, &vteps))
            .collect(),
    }
}

fn network_program(
    state: &State,
    net: &Network,
    host_id: &str,
    vteps: &BTreeMap<&str, Ipv4Addr>,
) -> Option<NetworkProgram> {
    let vni = Vni::new(net.vni)?;
    let prefix_len = u8::try_from(net.subnet.as_ref()?.prefix_len).ok()?;
    let peers: Vec<Ipv4Addr> = net.peers.iter().map(|&p| Ipv4Addr::from(p)).collect();
    let mut flood = BTreeSet::new();
    let endpoints: Vec<EndpointProgram> = state
        .endpoints
        .iter()
        .filter(|e| e.network_id == net.id)
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
