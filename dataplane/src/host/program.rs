//! What the control plane wants this host to run: a pure description, built from the
//! replicated state by the daemon and handed whole to [`super::Host::apply`]. Nothing here
//! does anything; two equal programs mean the same dataplane.
//!
//! Rules a builder follows (the Host relies on them):
//! - `networks` holds every network of the cluster, sorted by id, whether or not it has an
//!   endpoint on this host: the Host runs a sandbox for those with a [`Location::Local`]
//!   endpoint and answers `fdb` for the others from the program alone.
//! - Programs are incremental by sharing: a builder hands the same `Arc` again for a network
//!   that did not change, and a new one for a network that did. The Host reprograms only the
//!   networks whose `Arc` it has not programmed yet, so one change costs the work of the
//!   network it touched, however many others there are. (A new `Arc` with equal contents
//!   is merely programmed again; reusing an `Arc` for changed contents is the one mistake a
//!   builder must not make.)
//! - `endpoints` of a network are every endpoint of it cluster-wide, each placed
//!   [`Location::Local`] (on this host) or [`Location::Remote`] (behind that host's VTEP).
//! - `flood` receives broadcast, multicast and unknown unicast; `trusted` may send to us;
//!   neither contains this host's own address. `peers` (static VTEPs outside the cluster)
//!   are in both.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::publish::Publish;
use crate::core::fdb::{ControlEntry, FdbTarget, VtepSet, DEFAULT_AGING};
use crate::core::forward::NetworkConfig;
pub use crate::core::seal::{NetworkKey, Salts};
use crate::wire::{MacAddr, Vni};

/// Every network of the cluster, as this host must serve it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostProgram {
    /// Sorted by id (see the module docs).
    pub networks: Vec<Arc<NetworkProgram>>,
}

impl HostProgram {
    pub fn network(&self, id: &str) -> Option<&Arc<NetworkProgram>> {
        self.networks
            .binary_search_by(|n| n.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.networks[i])
    }
}

/// One network: its identity, its sandbox's shape, and its forwarding entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkProgram {
    /// The network id (64 hex digits); names the sandbox.
    pub id: String,
    /// For logs only.
    pub name: String,
    pub vni: Vni,
    /// MTU of the overlay: of `br0`, the TAP and every container interface.
    pub mtu: u32,
    /// The address of `br0` on every host, and its prefix length.
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    /// `--internal`: no way out of the overlay (no transit link, no default route).
    pub internal: bool,
    /// `--encrypted`: every datagram sealed with `keys` (see `crate::core::seal`); with no
    /// keys nothing is sent or accepted. `mtu` already leaves room for the overhead.
    pub encrypted: bool,
    pub keys: Vec<NetworkKey>,
    /// An encrypted network's hosts' seal salts by VTEP (this host's among them; see
    /// `crate::core::seal`); empty for a plain network.
    pub salts: Salts,
    pub endpoints: Vec<EndpointProgram>,
    pub flood: Vec<Ipv4Addr>,
    pub trusted: Vec<Ipv4Addr>,
    pub peers: Vec<Ipv4Addr>,
}

impl NetworkProgram {
    /// Whether this host must run the network's sandbox.
    pub fn has_local_endpoint(&self) -> bool {
        self.endpoints.iter().any(|e| e.location == Location::Local)
    }

    pub fn local_endpoints(&self) -> impl Iterator<Item = &EndpointProgram> + '_ {
        self.endpoints
            .iter()
            .filter(|e| e.location == Location::Local)
    }

    /// The forwarding core's settings for this network.
    pub fn plane_config(&self) -> NetworkConfig {
        NetworkConfig {
            vni: self.vni,
            mtu: self.mtu,
            gateway: self.gateway,
            aging: DEFAULT_AGING,
            encrypted: self.encrypted,
        }
    }

    /// The control-plane entries of the network: its endpoints, and its gateway, which
    /// lives on every host's `br0` under the same MAC — local everywhere, so that another
    /// host's gateway can never be learned in its place.
    pub fn control_entries(&self) -> Vec<ControlEntry> {
        let mut entries: Vec<ControlEntry> = self
            .endpoints
            .iter()
            .map(|e| ControlEntry {
                mac: e.mac,
                ipv4: e.ipv4,
                target: match e.location {
                    Location::Local => FdbTarget::Local,
                    Location::Remote(vtep) => FdbTarget::Remote(vtep),
                },
            })
            .collect();
        entries.push(ControlEntry {
            mac: MacAddr::for_ipv4(self.gateway),
            ipv4: self.gateway,
            target: FdbTarget::Local,
        });
        entries
    }

    /// Where floods go and whom datagrams are accepted from.
    pub fn vteps(&self) -> VtepSet {
        VtepSet {
            flood: self.flood.clone(),
            trusted: self.trusted.clone(),
            peers: self.peers.clone(),
        }
    }
}

/// An endpoint as the forwarding tables see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointProgram {
    /// The endpoint id (64 hex digits); names its veth in the sandbox.
    pub id: String,
    pub mac: MacAddr,
    pub ipv4: Ipv4Addr,
    pub location: Location,
    /// Ports published at this host (local endpoints only).
    pub ports: Vec<Publish>,
    /// The endpoint's name, then its aliases: what the network's DNS answers for it.
    pub names: Vec<String>,
    /// The container's namespace file (local endpoints only).
    pub target: Option<std::path::PathBuf>,
}

/// Where an endpoint lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// On this host: the sandbox's bridge delivers to it.
    Local,
    /// On the host with this VTEP address.
    Remote(Ipv4Addr),
}
