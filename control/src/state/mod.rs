//! The replicated state machine: hosts, overlay networks and their endpoints.
//!
//! Rules a caller relies on:
//! - [`StateMachine::apply`] is pure and deterministic. The same state and the same
//!   [`Command`] give the same result, byte for byte, on every host: no clock, no randomness,
//!   no IO, and no hash-map iteration order anywhere. Choices that must agree everywhere — the
//!   VNI, the default subnet, an endpoint's address and MAC — are made here, inside `apply`,
//!   never by the proposer, so Raft replicates commands as they were proposed and every host
//!   computes the same outcome from them.
//! - A refused command changes nothing: every check runs before the first mutation.
//! - The state is canonical: hosts, networks and endpoints are each kept sorted by id, so two
//!   machines that applied the same commands hold equal [`State`]s with equal prost encodings.
//!   The sorted vectors double as the id index (binary search); names and VNIs have their own
//!   indexes, rebuilt by [`StateMachine::from_state`].
//! - A state that did not come from `apply` (a file, a snapshot) enters only through
//!   [`StateMachine::from_state`], which refuses one that breaks the rules below with an
//!   [`InvalidState`]. Stored data is never patched up: a stored field that does not parse is
//!   an error, never replaced by a default.
//! - Network rules (the flags of `vxnet network create`, see the README's "The command line"):
//!   names are unique and made of `[A-Za-z0-9][A-Za-z0-9_.-]*`; ids are 64 lowercase hex
//!   digits; a VNI is in 1..=16777215 and unique, by default the lowest free one from 256; the
//!   default subnet is the lowest /24 of 10.128.0.0/9 that overlaps no other network's subnet,
//!   while explicit subnets of different networks may overlap; a subnet needs a prefix of /30
//!   or shorter; the gateway (default: the first host address) and the `ip_range` lie inside
//!   the subnet; the MTU is in 576..=9000.
//! - Endpoint rules: an endpoint gets its explicit address or the lowest free one of the
//!   network's `ip_range` (else its subnet) — never the network, broadcast or gateway address,
//!   never one in use — and the MAC `02:42:` + its four address bytes. A target namespace is
//!   identified by (host id, target path): it joins a network at most once, never two networks
//!   whose subnets overlap, and never uses one interface name twice.
//! - A proposal (a command with its proposer's id) is applied at most once:
//!   [`StateMachine::apply_proposal`] answers a proposal applied again with the first outcome
//!   and changes nothing; the memory of outcomes is bounded and replicated (see [`recent`]).
//! - Cluster credentials: the join token's secret is whatever `SetJoinSecret` last carried
//!   (the proposer picks it: a secret is not a choice that must agree, it is data), except that
//!   one marked `only_if_unset` changes nothing once there is a secret; a host that
//!   `RemoveHost` removes has its raft id added to `revoked_raft_ids` (kept sorted, never
//!   shrinking), so its certificate is refused from then on.
//! - Every [`Refusal`] displays as one sentence saying what is wrong and what to do; its
//!   [`Refusal::exit_code`] is 2 for a usage error (a bad argument) and 1 for a conflict with
//!   the current state.
//!
//! Inside: the refusal catalogue, the lookups, one file per kind of command (hosts, networks,
//! endpoints — each with the allocation it makes), the argument checks, the memory of recent
//! proposals, and [`ipam`] for prefixes and address/subnet allocation.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use vxnet_proto::{command, Command, Endpoint, Host, Network, State};

mod endpoint;
mod host;
mod index;
pub mod ipam;
mod network;
mod query;
mod recent;
mod refusal;
mod validate;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use host::JOIN_SECRET_LEN;
pub use ipam::{CidrError, Ipv4Cidr};
pub use recent::REMEMBERED;
pub use refusal::{InvalidState, Refusal};
/// A network name's rule (`[A-Za-z0-9][A-Za-z0-9_.-]*`), for callers outside the state.
pub(crate) use validate::network_name as check_network_name;

use network::Addressing;

/// The only driver vxnet has.
pub const DRIVER: &str = "overlay";

/// What a successful command did; carries the object as it now is (or was, when removed).
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    HostAdded(Host),
    /// The host left; its endpoints, everywhere, went with it.
    HostRemoved {
        host: Host,
        endpoints: Vec<Endpoint>,
    },
    NetworkCreated(Network),
    NetworkRemoved(Network),
    Connected(Endpoint),
    Disconnected(Endpoint),
    /// The endpoint as it is after the update.
    Updated(Endpoint),
    /// The join token's secret changed.
    JoinSecretSet,
    /// The encrypted network with its new key epoch.
    KeyRotated(Network),
}

/// The state of a cluster and the only code that changes it. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct StateMachine {
    /// Hosts and networks, each sorted by id; `endpoints` stays empty (they are in
    /// `endpoints` below, see [`StateMachine::to_state`]).
    state: State,
    /// Every endpoint, by id, by network and by namespace (see [`index`]).
    endpoints: index::Endpoints,
    /// Network name → network id.
    network_by_name: BTreeMap<String, String>,
    /// VNI → network id.
    network_by_vni: BTreeMap<u32, String>,
    /// The outcomes of the latest proposals (see [`recent`]).
    recent: recent::Recent,
    /// What changed, for host programs (see [`index`]).
    versions: index::Versions,
}

/// Two machines are equal when they hold the same replicated state; their orders follow
/// from it (and their versions never agree, see [`index`]).
impl PartialEq for StateMachine {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
            && self.recent == other.recent
            && self.endpoints.len() == other.endpoints.len()
            && self.endpoints.iter().eq(other.endpoints.iter())
    }
}

impl StateMachine {
    /// An empty state: no hosts, no networks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a machine from a state loaded from disk or a snapshot, checking the
    /// invariants `apply` keeps so that a corrupt state is reported rather than served.
    pub fn from_state(mut state: State) -> Result<Self, InvalidState> {
        state.hosts.sort_by(|a, b| a.id.cmp(&b.id));
        state.networks.sort_by(|a, b| a.id.cmp(&b.id));
        state.endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        let broken = |msg: String| Err(InvalidState(msg));

        if let Some(pair) = state.hosts.windows(2).find(|w| w[0].id == w[1].id) {
            return broken(format!("host id {} appears twice", pair[0].id));
        }
        let mut machine = StateMachine::default();
        let mut subnets = BTreeMap::new();
        for (i, net) in state.networks.iter().enumerate() {
            if i > 0 && state.networks[i - 1].id == net.id {
                return broken(format!("network id {} appears twice", net.id));
            }
            subnets.insert(net.id.as_str(), Addressing::of(net)?.subnet);
            if machine
                .network_by_name
                .insert(net.name.clone(), net.id.clone())
                .is_some()
            {
                return broken(format!("network name {} appears twice", net.name));
            }
            if machine
                .network_by_vni
                .insert(net.vni, net.id.clone())
                .is_some()
            {
                return broken(format!("VNI {} appears twice", net.vni));
            }
        }
        let mut addresses = BTreeSet::new();
        for (i, ep) in state.endpoints.iter().enumerate() {
            if i > 0 && state.endpoints[i - 1].id == ep.id {
                return broken(format!("endpoint id {} appears twice", ep.id));
            }
            let Some(subnet) = subnets.get(ep.network_id.as_str()) else {
                return Err(InvalidState::unknown_network(ep));
            };
            if !subnet.contains(ep.ipv4) || !addresses.insert((ep.network_id.as_str(), ep.ipv4)) {
                return broken(format!(
                    "endpoint {} has address {}, outside its subnet or used twice",
                    ep.name,
                    Ipv4Addr::from(ep.ipv4)
                ));
            }
        }
        machine.versions = index::Versions::fresh(state.networks.iter().map(|n| n.id.as_str()));
        for ep in std::mem::take(&mut state.endpoints) {
            machine.endpoints.insert(ep);
        }
        machine.state = state;
        Ok(machine)
    }

    /// The whole state, in canonical order (each list sorted by id): a copy, for snapshots
    /// and tests; lookups go through the methods of [`query`].
    pub fn to_state(&self) -> State {
        State {
            endpoints: self.endpoints.iter().cloned().collect(),
            ..self.state.clone()
        }
    }

    /// The version of network `network_id`: replaced whenever the network or one of its
    /// endpoints changes, never given to other contents (see [`index`]); `None` for a network
    /// that does not exist.
    pub fn network_version(&self, network_id: &str) -> Option<u64> {
        self.versions.network(network_id)
    }

    /// The secret a joining host must show (empty until the first `cluster token`).
    pub fn join_secret(&self) -> &[u8] {
        &self.state.join_secret
    }

    /// The raft ids of removed hosts, sorted: their certificates open no connection.
    pub fn revoked_raft_ids(&self) -> &[u64] {
        &self.state.revoked_raft_ids
    }

    /// The version of the host list, replaced whenever a host comes, goes or changes.
    pub fn hosts_version(&self) -> u64 {
        self.versions.hosts()
    }

    /// Applies one command: the only way the state changes. See the module docs.
    pub fn apply(&mut self, cmd: &Command) -> Result<Applied, Refusal> {
        match &cmd.kind {
            None => Err(Refusal::EmptyCommand),
            Some(command::Kind::AddHost(c)) => self.add_host(c),
            Some(command::Kind::CreateNetwork(c)) => self.create_network(c),
            Some(command::Kind::RemoveNetwork(c)) => self.remove_network(c),
            Some(command::Kind::Connect(c)) => self.connect(c),
            Some(command::Kind::Disconnect(c)) => self.disconnect(c),
            Some(command::Kind::RemoveHost(c)) => self.remove_host(c),
            Some(command::Kind::UpdateEndpoint(c)) => self.update_endpoint(c),
            Some(command::Kind::SetJoinSecret(c)) => self.set_join_secret(c),
            Some(command::Kind::RotateNetworkKey(c)) => self.rotate_network_key(c),
        }
    }
}

/// What the state keeps in lists sorted by id.
trait ById {
    fn id(&self) -> &str;
}

impl ById for Host {
    fn id(&self) -> &str {
        &self.id
    }
}

impl ById for Network {
    fn id(&self) -> &str {
        &self.id
    }
}

impl ById for Endpoint {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Where the item with this id sits in a list sorted by id (`Ok`), or where it belongs
/// (`Err`).
fn locate<T: ById>(items: &[T], id: &str) -> Result<usize, usize> {
    items.binary_search_by(|item| item.id().cmp(id))
}
