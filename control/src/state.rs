//! The replicated state machine: hosts, overlay networks and their endpoints.
//!
//! Rules a caller relies on:
//! - [`StateMachine::apply`] is pure and deterministic. The same state and the same
//!   [`Command`] give the same result, byte for byte, on every host: no clock, no randomness,
//!   no IO, and no hash-map iteration order anywhere. Choices that must agree everywhere — the
//!   VNI, the default subnet, an endpoint's address and MAC — are made here, never by the
//!   proposer. Part 2 feeds the commands through Raft unchanged.
//! - A refused command changes nothing: every check runs before the first mutation.
//! - The state is canonical: hosts, networks and endpoints are each kept sorted by id, so two
//!   machines that applied the same commands hold equal [`State`]s with equal prost encodings.
//!   The sorted vectors double as the id index (binary search); names and VNIs have their own
//!   indexes, rebuilt by [`StateMachine::from_state`].
//! - Network rules (CLI.md): names are unique and made of `[A-Za-z0-9][A-Za-z0-9_.-]*`; ids are
//!   64 lowercase hex digits; a VNI is in 1..=16777215 and unique, by default the lowest free
//!   one from 256; the default subnet is the lowest /24 of 10.128.0.0/9 that overlaps no other
//!   network's subnet, while explicit subnets of different networks may overlap; a subnet needs
//!   a prefix of /30 or shorter; the gateway (default: the first host address) and the
//!   `ip_range` lie inside the subnet; the MTU is in 576..=9000.
//! - Endpoint rules: an endpoint gets its explicit address or the lowest free one of the
//!   network's `ip_range` (else its subnet) — never the network, broadcast or gateway address,
//!   never one in use — and the MAC `02:42:` + its four address bytes. A target namespace is
//!   identified by (host id, target path): it joins a network at most once, never two networks
//!   whose subnets overlap, and never uses one interface name twice.
//! - Every [`Refusal`] displays as one sentence saying what is wrong and what to do; its
//!   [`Refusal::exit_code`] is 2 for a usage error (a bad argument) and 1 for a conflict with
//!   the current state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use vxnet_proto::types::{MacAddr, FIRST_AUTO_VNI, IFNAME_MAX, MTU_MAX, MTU_MIN, VNI_MAX, VNI_MIN};
use vxnet_proto::{
    command, AddHost, Command, Connect, CreateNetwork, Disconnect, Endpoint, Host, Network,
    RemoveHost, RemoveNetwork, State,
};

use crate::ipam::{
    self, CidrError, Ipv4Cidr, DEFAULT_POOL, DEFAULT_SUBNET_PREFIX, MAX_NETWORK_PREFIX,
};

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
}

/// Why a command was refused. Displays as one sentence for `vxnet: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    // ------------------------------------------------ malformed commands (a proposer's bug)
    #[error("the command carries no known change; every host must run the same vxnet version")]
    EmptyCommand,
    #[error("the command lacks its {field}; every host must run the same vxnet version")]
    MissingField { field: &'static str },

    // ------------------------------------------------ usage errors: exit code 2
    #[error("a host id must not be empty; give the host an id")]
    EmptyHostId,
    #[error("a network name must not be empty; give the network a name")]
    EmptyNetworkName,
    #[error(
        "invalid network name {name:?}: use letters, digits, '_', '.' and '-', \
         starting with a letter or a digit"
    )]
    InvalidNetworkName { name: String },
    #[error("invalid {what} id {id:?}: expected 64 lowercase hex digits")]
    InvalidId { what: &'static str, id: String },
    #[error(transparent)]
    InvalidCidr(#[from] CidrError),
    #[error(
        "subnet {subnet} is too small for a network: use a prefix of \
         /{MAX_NETWORK_PREFIX} or shorter"
    )]
    SubnetTooSmall { subnet: Ipv4Cidr },
    #[error("VNI {vni} is out of range: use {VNI_MIN} to {VNI_MAX}")]
    VniOutOfRange { vni: u32 },
    #[error("MTU {mtu} is out of range: use {MTU_MIN} to {MTU_MAX}")]
    MtuOutOfRange { mtu: u32 },
    #[error("a {what} needs an explicit subnet; add --subnet")]
    NeedsSubnet { what: &'static str },
    #[error("gateway {gateway} is outside subnet {subnet}; pick an address inside it")]
    GatewayOutsideSubnet { gateway: Ipv4Addr, subnet: Ipv4Cidr },
    #[error("gateway {gateway} is the {role} of subnet {subnet}; pick a host address")]
    GatewayNotHostAddress {
        gateway: Ipv4Addr,
        subnet: Ipv4Cidr,
        role: &'static str,
    },
    #[error("ip range {range} is outside subnet {subnet}; pick a range inside it")]
    IpRangeOutsideSubnet { range: Ipv4Cidr, subnet: Ipv4Cidr },
    #[error("peer {peer} is not a unicast address; give the underlay address of the VTEP")]
    InvalidPeer { peer: Ipv4Addr },
    #[error("an endpoint name must not be empty; pass --name")]
    EmptyEndpointName,
    #[error("the target namespace must not be empty; give a namespace name, a path or pid:PID")]
    EmptyTarget,
    #[error(
        "invalid interface name {ifname:?}: use 1 to {IFNAME_MAX} characters \
         without '/', ':' or whitespace"
    )]
    InvalidIfname { ifname: String },
    #[error(
        "address {addr} is outside subnet {subnet} of network {network}; \
         pick an address inside it"
    )]
    AddressOutsideSubnet {
        addr: Ipv4Addr,
        subnet: Ipv4Cidr,
        network: String,
    },
    #[error("address {addr} is the {role} of network {network}; pick another address")]
    AddressReserved {
        addr: Ipv4Addr,
        network: String,
        role: &'static str,
    },

    // ------------------------------------------------ conflicts with the state: exit code 1
    #[error("network name {name} is already in use; choose another name")]
    NetworkNameInUse { name: String },
    #[error("network id {id} is already in use; create the network again to get a new id")]
    NetworkIdInUse { id: String },
    #[error(
        "VNI {vni} is already in use by network {network}; choose another VNI or leave --vni out"
    )]
    VniInUse { vni: u32, network: String },
    #[error("no free VNI is left between {FIRST_AUTO_VNI} and {VNI_MAX}; remove a network or pass --vni")]
    NoFreeVni,
    #[error("no free /{DEFAULT_SUBNET_PREFIX} is left in {DEFAULT_POOL}; pass --subnet")]
    NoFreeSubnet,
    #[error("network {network} not found; `vxnet network ls` lists the networks")]
    NoSuchNetwork { network: String },
    #[error("network id prefix {prefix} matches {count} networks; give more digits or the name")]
    AmbiguousNetwork { prefix: String, count: usize },
    #[error(
        "network {network} has active endpoints ({}); disconnect them first",
        .endpoints.join(", ")
    )]
    NetworkHasEndpoints {
        network: String,
        endpoints: Vec<String>,
    },
    #[error(
        "host {host_id} is not a member of the cluster; its daemon must register it \
         before endpoints can be connected there"
    )]
    NoSuchHost { host_id: String },
    #[error("endpoint id {id} is already in use; connect again to get a new id")]
    EndpointIdInUse { id: String },
    #[error("endpoint name {name} is already in use on network {network}; pass --name to choose another")]
    EndpointNameInUse { name: String, network: String },
    #[error("address {addr} is already in use by {endpoint} on network {network}; pick another address or leave --ip out")]
    AddressInUse {
        addr: Ipv4Addr,
        endpoint: String,
        network: String,
    },
    #[error("network {network} has no free address left in {range}; disconnect an endpoint first")]
    NoFreeAddress { network: String, range: Ipv4Cidr },
    #[error(
        "{target} is already connected to network {network} as {endpoint}; disconnect it first"
    )]
    AlreadyConnected {
        target: String,
        network: String,
        endpoint: String,
    },
    #[error(
        "{target} is already connected to network {other_network}, whose subnet \
         {other_subnet} overlaps subnet {subnet} of network {network}; \
         disconnect it from {other_network} first"
    )]
    OverlappingSubnets {
        target: String,
        network: String,
        subnet: Ipv4Cidr,
        other_network: String,
        other_subnet: Ipv4Cidr,
    },
    #[error("interface {ifname} of {target} is already used by network {network}; pick another --ifname")]
    IfnameInUse {
        target: String,
        ifname: String,
        network: String,
    },
    #[error("endpoint {id} not found; it may have been disconnected already")]
    NoSuchEndpoint { id: String },
}

impl Refusal {
    /// Whether the command is wrong in itself (a bad argument, whatever the state), as opposed
    /// to wrong for the network it names (an address outside *that* subnet) or conflicting
    /// with the current state. Decides the CLI's exit code.
    pub fn is_usage_error(&self) -> bool {
        use Refusal::*;
        matches!(
            self,
            EmptyHostId
                | EmptyNetworkName
                | InvalidNetworkName { .. }
                | InvalidId { .. }
                | InvalidCidr(_)
                | SubnetTooSmall { .. }
                | VniOutOfRange { .. }
                | MtuOutOfRange { .. }
                | NeedsSubnet { .. }
                | GatewayOutsideSubnet { .. }
                | GatewayNotHostAddress { .. }
                | IpRangeOutsideSubnet { .. }
                | InvalidPeer { .. }
                | EmptyEndpointName
                | EmptyTarget
                | InvalidIfname { .. }
        )
    }

    /// The CLI's exit code: 2 for a usage error, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.is_usage_error() {
            2
        } else {
            1
        }
    }
}

/// A [`State`] that breaks the invariants `apply` keeps: a corrupt file or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inconsistent state: {0}")]
pub struct InvalidState(String);

/// The state of a cluster and the only code that changes it. See the module docs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateMachine {
    /// Hosts, networks and endpoints, each sorted by id.
    state: State,
    /// Network name → network id.
    network_by_name: BTreeMap<String, String>,
    /// VNI → network id.
    network_by_vni: BTreeMap<u32, String>,
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
        let bad = |msg: String| Err(InvalidState(msg));

        if let Some(pair) = state.hosts.windows(2).find(|w| w[0].id == w[1].id) {
            return bad(format!("host id {} appears twice", pair[0].id));
        }
        let mut machine = StateMachine::default();
        let mut subnets = BTreeMap::new();
        for (i, net) in state.networks.iter().enumerate() {
            if i > 0 && state.networks[i - 1].id == net.id {
                return bad(format!("network id {} appears twice", net.id));
            }
            let Some(subnet) = net.subnet.as_ref() else {
                return bad(format!("network {} has no subnet", net.name));
            };
            let subnet = match Ipv4Cidr::from_proto(subnet, "subnet") {
                Ok(subnet) => subnet,
                Err(e) => return bad(format!("network {}: {e}", net.name)),
            };
            subnets.insert(net.id.as_str(), subnet);
            if machine
                .network_by_name
                .insert(net.name.clone(), net.id.clone())
                .is_some()
            {
                return bad(format!("network name {} appears twice", net.name));
            }
            if machine
                .network_by_vni
                .insert(net.vni, net.id.clone())
                .is_some()
            {
                return bad(format!("VNI {} appears twice", net.vni));
            }
        }
        let mut addresses = BTreeSet::new();
        for (i, ep) in state.endpoints.iter().enumerate() {
            if i > 0 && state.endpoints[i - 1].id == ep.id {
                return bad(format!("endpoint id {} appears twice", ep.id));
            }
            let Some(subnet) = subnets.get(ep.network_id.as_str()) else {
                return bad(format!(
                    "endpoint {} belongs to unknown network {}",
                    ep.name, ep.network_id
                ));
            };
            if !subnet.contains(ep.ipv4) || !addresses.insert((ep.network_id.as_str(), ep.ipv4)) {
                return bad(format!(
                    "endpoint {} has address {}, outside its subnet or used twice",
                    ep.name,
                    Ipv4Addr::from(ep.ipv4)
                ));
            }
        }
        machine.state = state;
        Ok(machine)
    }

    /// The whole state, in canonical order (each list sorted by id).
    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn into_state(self) -> State {
        self.state
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
        }
    }

    // ------------------------------------------------------------------ lookups

    /// A network by exact id, exact name, or unique id prefix (as `docker network inspect`).
    pub fn network(&self, name_or_id: &str) -> Result<&Network, Refusal> {
        let not_found = || Refusal::NoSuchNetwork {
            network: name_or_id.to_owned(),
        };
        if name_or_id.is_empty() {
            return Err(not_found());
        }
        if let Some(net) = self.network_by_id(name_or_id) {
            return Ok(net);
        }
        if let Some(id) = self.network_by_name.get(name_or_id) {
            return self.network_by_id(id).ok_or_else(not_found);
        }
        // Networks are sorted by id, so the ids with this prefix are one contiguous run.
        let start = self
            .state
            .networks
            .partition_point(|n| n.id.as_str() < name_or_id);
        let mut matches = self.state.networks[start..]
            .iter()
            .take_while(|n| n.id.starts_with(name_or_id));
        match (matches.next(), matches.next()) {
            (Some(net), None) => Ok(net),
            (None, _) => Err(not_found()),
            (Some(_), Some(_)) => Err(Refusal::AmbiguousNetwork {
                prefix: name_or_id.to_owned(),
                count: 2 + matches.count(),
            }),
        }
    }

    /// A network by its exact id.
    pub fn network_by_id(&self, id: &str) -> Option<&Network> {
        find_by_id(&self.state.networks, id, |n| &n.id)
    }

    /// Every network, sorted by name.
    pub fn networks(&self) -> Vec<&Network> {
        self.network_by_name
            .values()
            .filter_map(|id| self.network_by_id(id))
            .collect()
    }

    /// The endpoints of a network, sorted by endpoint id.
    pub fn endpoints(&self, network_id: &str) -> Vec<&Endpoint> {
        self.state
            .endpoints
            .iter()
            .filter(|ep| ep.network_id == network_id)
            .collect()
    }

    /// The endpoints in sandboxes on one host, in every network, sorted by endpoint id.
    pub fn endpoints_on_host(&self, host_id: &str) -> Vec<&Endpoint> {
        self.state
            .endpoints
            .iter()
            .filter(|ep| ep.host_id == host_id)
            .collect()
    }

    /// An endpoint by its exact id.
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        find_by_id(&self.state.endpoints, id, |e| &e.id)
    }

    /// The endpoint joining a target namespace to a network. A target path names a namespace
    /// only on its own host, hence the host id.
    pub fn endpoint_by_target(
        &self,
        network_id: &str,
        host_id: &str,
        target: &str,
    ) -> Option<&Endpoint> {
        self.state
            .endpoints
            .iter()
            .find(|ep| ep.network_id == network_id && ep.host_id == host_id && ep.target == target)
    }

    /// The endpoint of a network with this name (names are unique within a network).
    pub fn endpoint_by_name(&self, network_id: &str, name: &str) -> Option<&Endpoint> {
        self.state
            .endpoints
            .iter()
            .find(|ep| ep.network_id == network_id && ep.name == name)
    }

    /// A host by its exact id.
    pub fn host(&self, id: &str) -> Option<&Host> {
        find_by_id(&self.state.hosts, id, |h| &h.id)
    }

    /// Every host, sorted by id.
    pub fn hosts(&self) -> &[Host] {
        &self.state.hosts
    }

    // ------------------------------------------------------------------ commands

    fn add_host(&mut self, c: &AddHost) -> Result<Applied, Refusal> {
        let host = c
            .host
            .as_ref()
            .ok_or(Refusal::MissingField { field: "host" })?;
        if host.id.is_empty() {
            return Err(Refusal::EmptyHostId);
        }
        let hosts = &mut self.state.hosts;
        match hosts.binary_search_by(|h| h.id.as_str().cmp(&host.id)) {
            Ok(i) => hosts[i] = host.clone(),
            Err(i) => hosts.insert(i, host.clone()),
        }
        Ok(Applied::HostAdded(host.clone()))
    }

    fn remove_host(&mut self, c: &RemoveHost) -> Result<Applied, Refusal> {
        let at = self
            .state
            .hosts
            .binary_search_by(|h| h.id.as_str().cmp(&c.host_id))
            .map_err(|_| Refusal::NoSuchHost {
                host_id: c.host_id.clone(),
            })?;
        let host = self.state.hosts.remove(at);
        let (endpoints, kept) = std::mem::take(&mut self.state.endpoints)
            .into_iter()
            .partition(|e| e.host_id == host.id);
        self.state.endpoints = kept;
        Ok(Applied::HostRemoved { host, endpoints })
    }

    fn create_network(&mut self, c: &CreateNetwork) -> Result<Applied, Refusal> {
        // Arguments first (usage errors), then conflicts with the state.
        check_network_name(&c.name)?;
        check_id("network", &c.id)?;
        if let Some(vni) = c.vni {
            if !(VNI_MIN..=VNI_MAX).contains(&vni) {
                return Err(Refusal::VniOutOfRange { vni });
            }
        }
        if !(MTU_MIN..=MTU_MAX).contains(&c.mtu) {
            return Err(Refusal::MtuOutOfRange { mtu: c.mtu });
        }
        let subnet = match &c.subnet {
            Some(subnet) => {
                let subnet = Ipv4Cidr::from_proto(subnet, "subnet")?;
                if subnet.prefix_len() > MAX_NETWORK_PREFIX {
                    return Err(Refusal::SubnetTooSmall { subnet });
                }
                Some(subnet)
            }
            // Docker's rule: a gateway or range only means something inside a chosen subnet.
            None if c.gateway.is_some() => return Err(Refusal::NeedsSubnet { what: "gateway" }),
            None if c.ip_range.is_some() => return Err(Refusal::NeedsSubnet { what: "ip range" }),
            None => None,
        };
        let ip_range = match (&c.ip_range, subnet) {
            (Some(range), Some(subnet)) => {
                let range = Ipv4Cidr::from_proto(range, "ip range")?;
                if !subnet.contains_cidr(range) {
                    return Err(Refusal::IpRangeOutsideSubnet { range, subnet });
                }
                Some(range)
            }
            _ => None,
        };
        if let (Some(gateway), Some(subnet)) = (c.gateway, subnet) {
            let role = if !subnet.contains(gateway) {
                return Err(Refusal::GatewayOutsideSubnet {
                    gateway: Ipv4Addr::from(gateway),
                    subnet,
                });
            } else if gateway == subnet.network() {
                Some("network address")
            } else if gateway == subnet.broadcast() {
                Some("broadcast address")
            } else {
                None
            };
            if let Some(role) = role {
                return Err(Refusal::GatewayNotHostAddress {
                    gateway: Ipv4Addr::from(gateway),
                    subnet,
                    role,
                });
            }
        }
        let mut peers = c.peers.clone();
        if let Some(&peer) = peers.iter().find(|&&p| !is_unicast(p)) {
            return Err(Refusal::InvalidPeer {
                peer: Ipv4Addr::from(peer),
            });
        }
        peers.sort_unstable();
        peers.dedup();

        if self.network_by_name.contains_key(&c.name) {
            return Err(Refusal::NetworkNameInUse {
                name: c.name.clone(),
            });
        }
        if self.network_by_id(&c.id).is_some() {
            return Err(Refusal::NetworkIdInUse { id: c.id.clone() });
        }
        let vni = match c.vni {
            Some(vni) => {
                if let Some(other) = self.network_by_vni.get(&vni) {
                    return Err(Refusal::VniInUse {
                        vni,
                        network: self.network_name(other),
                    });
                }
                vni
            }
            None => self.lowest_free_vni().ok_or(Refusal::NoFreeVni)?,
        };
        let subnet = match subnet {
            Some(subnet) => subnet,
            None => ipam::lowest_free_subnet(
                DEFAULT_POOL,
                DEFAULT_SUBNET_PREFIX,
                self.state.networks.iter().filter_map(network_subnet),
            )
            .ok_or(Refusal::NoFreeSubnet)?,
        };
        let gateway = match c.gateway {
            Some(gateway) => gateway,
            // prefix ≤ 30 here, so the first host address exists and is not the broadcast.
            None => subnet.network() + 1,
        };

        let network = Network {
            id: c.id.clone(),
            name: c.name.clone(),
            driver: DRIVER.to_owned(),
            vni,
            subnet: Some(subnet.to_proto()),
            gateway,
            ip_range: ip_range.map(Ipv4Cidr::to_proto),
            mtu: c.mtu,
            peers,
            labels: c.labels.clone(),
        };
        let networks = &mut self.state.networks;
        let at = networks.partition_point(|n| n.id < network.id);
        networks.insert(at, network.clone());
        self.network_by_name
            .insert(network.name.clone(), network.id.clone());
        self.network_by_vni.insert(vni, network.id.clone());
        Ok(Applied::NetworkCreated(network))
    }

    fn remove_network(&mut self, c: &RemoveNetwork) -> Result<Applied, Refusal> {
        let at = self
            .state
            .networks
            .binary_search_by(|n| n.id.as_str().cmp(&c.network_id))
            .map_err(|_| Refusal::NoSuchNetwork {
                network: c.network_id.clone(),
            })?;
        let mut endpoints: Vec<String> = self
            .endpoints(&c.network_id)
            .into_iter()
            .map(|ep| ep.name.clone())
            .collect();
        if !endpoints.is_empty() {
            endpoints.sort();
            return Err(Refusal::NetworkHasEndpoints {
                network: self.state.networks[at].name.clone(),
                endpoints,
            });
        }
        let network = self.state.networks.remove(at);
        self.network_by_name.remove(&network.name);
        self.network_by_vni.remove(&network.vni);
        Ok(Applied::NetworkRemoved(network))
    }

    fn connect(&mut self, c: &Connect) -> Result<Applied, Refusal> {
        check_id("endpoint", &c.endpoint_id)?;
        if c.name.is_empty() {
            return Err(Refusal::EmptyEndpointName);
        }
        if c.target.is_empty() {
            return Err(Refusal::EmptyTarget);
        }
        check_ifname(&c.ifname)?;
        let network = self
            .network_by_id(&c.network_id)
            .ok_or_else(|| Refusal::NoSuchNetwork {
                network: c.network_id.clone(),
            })?;
        let subnet = network_subnet(network).ok_or(Refusal::MissingField {
            field: "network subnet",
        })?;
        if let Some(addr) = c.ipv4 {
            check_endpoint_address(network, subnet, addr)?;
        }
        if self.host(&c.host_id).is_none() {
            return Err(Refusal::NoSuchHost {
                host_id: c.host_id.clone(),
            });
        }
        if self.endpoint(&c.endpoint_id).is_some() {
            return Err(Refusal::EndpointIdInUse {
                id: c.endpoint_id.clone(),
            });
        }

        let mut used = BTreeSet::new();
        for ep in self.endpoints(&network.id) {
            if ep.host_id == c.host_id && ep.target == c.target {
                return Err(Refusal::AlreadyConnected {
                    target: c.target.clone(),
                    network: network.name.clone(),
                    endpoint: ep.name.clone(),
                });
            }
            if ep.name == c.name {
                return Err(Refusal::EndpointNameInUse {
                    name: c.name.clone(),
                    network: network.name.clone(),
                });
            }
            if c.ipv4 == Some(ep.ipv4) {
                return Err(Refusal::AddressInUse {
                    addr: Ipv4Addr::from(ep.ipv4),
                    endpoint: ep.name.clone(),
                    network: network.name.clone(),
                });
            }
            used.insert(ep.ipv4);
        }
        // The same namespace in other networks: its interface names and routes must not clash.
        let same_target = self
            .state
            .endpoints
            .iter()
            .filter(|ep| ep.host_id == c.host_id && ep.target == c.target);
        for ep in same_target {
            let Some(other) = self.network_by_id(&ep.network_id) else {
                continue; // impossible: from_state and apply keep endpoints' networks
            };
            if ep.ifname == c.ifname {
                return Err(Refusal::IfnameInUse {
                    target: c.target.clone(),
                    ifname: c.ifname.clone(),
                    network: other.name.clone(),
                });
            }
            if let Some(other_subnet) = network_subnet(other) {
                if other_subnet.overlaps(subnet) {
                    return Err(Refusal::OverlappingSubnets {
                        target: c.target.clone(),
                        network: network.name.clone(),
                        subnet,
                        other_network: other.name.clone(),
                        other_subnet,
                    });
                }
            }
        }
        let ipv4 = match c.ipv4 {
            Some(addr) => addr,
            None => {
                let range = network
                    .ip_range
                    .as_ref()
                    .and_then(|r| Ipv4Cidr::from_proto(r, "ip range").ok())
                    .unwrap_or(subnet);
                ipam::lowest_free_address(subnet, range, network.gateway, &used).ok_or_else(
                    || Refusal::NoFreeAddress {
                        network: network.name.clone(),
                        range,
                    },
                )?
            }
        };

        let endpoint = Endpoint {
            id: c.endpoint_id.clone(),
            name: c.name.clone(),
            network_id: network.id.clone(),
            host_id: c.host_id.clone(),
            mac: MacAddr::for_ipv4(Ipv4Addr::from(ipv4)).0.to_vec(),
            ipv4,
            aliases: c.aliases.clone(),
            ifname: c.ifname.clone(),
            target: c.target.clone(),
        };
        let endpoints = &mut self.state.endpoints;
        let at = endpoints.partition_point(|e| e.id < endpoint.id);
        endpoints.insert(at, endpoint.clone());
        Ok(Applied::Connected(endpoint))
    }

    fn disconnect(&mut self, c: &Disconnect) -> Result<Applied, Refusal> {
        let at = self
            .state
            .endpoints
            .binary_search_by(|e| e.id.as_str().cmp(&c.endpoint_id))
            .map_err(|_| Refusal::NoSuchEndpoint {
                id: c.endpoint_id.clone(),
            })?;
        Ok(Applied::Disconnected(self.state.endpoints.remove(at)))
    }

    // ------------------------------------------------------------------ helpers

    fn network_name(&self, id: &str) -> String {
        self.network_by_id(id)
            .map_or_else(|| id.to_owned(), |n| n.name.clone())
    }

    fn lowest_free_vni(&self) -> Option<u32> {
        lowest_free_number(self.network_by_vni.keys().copied(), FIRST_AUTO_VNI, VNI_MAX)
    }
}

/// The lowest number in `first..=last` missing from `used`, which must be sorted ascending.
fn lowest_free_number(used: impl IntoIterator<Item = u32>, first: u32, last: u32) -> Option<u32> {
    let mut candidate = u64::from(first);
    for n in used.into_iter().map(u64::from) {
        if n == candidate {
            candidate += 1;
        } else if n > candidate {
            break;
        }
    }
    (candidate <= u64::from(last)).then_some(candidate as u32)
}

fn find_by_id<'a, T>(items: &'a [T], id: &str, key: impl Fn(&T) -> &String) -> Option<&'a T> {
    items
        .binary_search_by(|item| key(item).as_str().cmp(id))
        .ok()
        .map(|i| &items[i])
}

/// The subnet of a network in the state; `None` only for a state that skipped `apply`.
fn network_subnet(network: &Network) -> Option<Ipv4Cidr> {
    network
        .subnet
        .as_ref()
        .and_then(|s| Ipv4Cidr::from_proto(s, "subnet").ok())
}

fn check_network_name(name: &str) -> Result<(), Refusal> {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return Err(Refusal::EmptyNetworkName);
    };
    let valid = first.is_ascii_alphanumeric()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Refusal::InvalidNetworkName {
            name: name.to_owned(),
        })
    }
}

/// Ids are 64 lowercase hex digits, as Docker's; uppercase would make two spellings of one id.
fn check_id(what: &'static str, id: &str) -> Result<(), Refusal> {
    let valid = id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Refusal::InvalidId {
            what,
            id: id.to_owned(),
        })
    }
}

/// The kernel's `dev_valid_name`: 1..=15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
fn check_ifname(ifname: &str) -> Result<(), Refusal> {
    let valid = !ifname.is_empty()
        && ifname.len() <= IFNAME_MAX
        && ifname != "."
        && ifname != ".."
        && !ifname
            .chars()
            .any(|ch| ch == '/' || ch == ':' || ch.is_whitespace());
    if valid {
        Ok(())
    } else {
        Err(Refusal::InvalidIfname {
            ifname: ifname.to_owned(),
        })
    }
}

fn check_endpoint_address(network: &Network, subnet: Ipv4Cidr, addr: u32) -> Result<(), Refusal> {
    if !subnet.contains(addr) {
        return Err(Refusal::AddressOutsideSubnet {
            addr: Ipv4Addr::from(addr),
            subnet,
            network: network.name.clone(),
        });
    }
    let role = if addr == subnet.network() {
        "network address"
    } else if addr == subnet.broadcast() {
        "broadcast address"
    } else if addr == network.gateway {
        "gateway"
    } else {
        return Ok(());
    };
    Err(Refusal::AddressReserved {
        addr: Ipv4Addr::from(addr),
        network: network.name.clone(),
        role,
    })
}

/// A VTEP must be reachable by unicast: not 0.0.0.0, not multicast, not the limited broadcast.
fn is_unicast(addr: u32) -> bool {
    let addr = Ipv4Addr::from(addr);
    !(addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use prost::Message;
    use vxnet_proto::Cidr;

    use super::*;

    // ------------------------------------------------------------------ fixtures

    fn id(n: u32) -> String {
        format!("{n:064x}")
    }

    fn ip(text: &str) -> u32 {
        u32::from(Ipv4Addr::from_str(text).expect("valid address in test"))
    }

    fn cidr(text: &str) -> Cidr {
        let (addr, len) = text.split_once('/').expect("CIDR in test");
        Cidr {
            addr: ip(addr),
            prefix_len: len.parse().expect("prefix length in test"),
        }
    }

    fn wrap(kind: command::Kind) -> Command {
        Command { kind: Some(kind) }
    }

    fn add_host(host_id: &str, addr: &str) -> Command {
        wrap(command::Kind::AddHost(AddHost {
            host: Some(Host {
                id: host_id.to_owned(),
                name: format!("name-{host_id}"),
                addr: ip(addr),
                ..Default::default()
            }),
        }))
    }

    /// A CreateNetwork with only the required fields; tests set the rest.
    fn create(name: &str, n: u32) -> CreateNetwork {
        CreateNetwork {
            id: id(n),
            name: name.to_owned(),
            mtu: 1450,
            ..Default::default()
        }
    }

    fn create_cmd(c: CreateNetwork) -> Command {
        wrap(command::Kind::CreateNetwork(c))
    }

    fn remove_cmd(n: u32) -> Command {
        wrap(command::Kind::RemoveNetwork(RemoveNetwork {
            network_id: id(n),
        }))
    }

    /// A Connect of endpoint `ep` to network `net`, on host h1, target /run/netns/`name`.
    fn connect(ep: u32, net: u32, name: &str) -> Connect {
        Connect {
            endpoint_id: id(ep),
            network_id: id(net),
            host_id: "h1".to_owned(),
            name: name.to_owned(),
            ipv4: None,
            aliases: vec![],
            ifname: "eth0".to_owned(),
            target: format!("/run/netns/{name}"),
        }
    }

    fn connect_cmd(c: Connect) -> Command {
        wrap(command::Kind::Connect(c))
    }

    fn disconnect_cmd(ep: u32) -> Command {
        wrap(command::Kind::Disconnect(Disconnect {
            endpoint_id: id(ep),
        }))
    }

    /// A machine with hosts h1 and h2.
    fn machine() -> StateMachine {
        let mut m = StateMachine::new();
        ok(&mut m, add_host("h1", "192.168.1.1"));
        ok(&mut m, add_host("h2", "192.168.1.2"));
        m
    }

    /// A machine with hosts h1, h2 and network net1 (id 1, 10.0.0.0/24, VNI 256).
    fn machine_with_net1() -> StateMachine {
        let mut m = machine();
        ok(
            &mut m,
            create_cmd(CreateNetwork {
                subnet: Some(cidr("10.0.0.0/24")),
                ..create("net1", 1)
            }),
        );
        m
    }

    fn ok(m: &mut StateMachine, cmd: Command) -> Applied {
        match m.apply(&cmd) {
            Ok(applied) => applied,
            Err(refusal) => panic!("refused {cmd:?}: {refusal}"),
        }
    }

    fn connected(m: &mut StateMachine, c: Connect) -> Endpoint {
        match ok(m, connect_cmd(c)) {
            Applied::Connected(ep) => ep,
            other => panic!("expected Connected, got {other:?}"),
        }
    }

    fn created(m: &mut StateMachine, c: CreateNetwork) -> Network {
        match ok(m, create_cmd(c)) {
            Applied::NetworkCreated(net) => net,
            other => panic!("expected NetworkCreated, got {other:?}"),
        }
    }

    /// Applies a command that must be refused, and checks that it changed nothing.
    fn refuse(m: &mut StateMachine, cmd: Command) -> Refusal {
        let before = m.clone();
        let before_bytes = m.state().encode_to_vec();
        let refusal = m.apply(&cmd).expect_err("command should be refused");
        assert_eq!(*m, before, "a refused command changed the machine");
        assert_eq!(m.state().encode_to_vec(), before_bytes);
        refusal
    }

    // ------------------------------------------------------------------ AddHost

    #[test]
    fn add_host_inserts_sorted_and_updates_by_id() {
        let mut m = StateMachine::new();
        let applied = ok(&mut m, add_host("h2", "192.168.1.2"));
        assert_eq!(
            applied,
            Applied::HostAdded(Host {
                id: "h2".into(),
                name: "name-h2".into(),
                addr: ip("192.168.1.2"),
                ..Default::default()
            })
        );
        ok(&mut m, add_host("h1", "192.168.1.1"));
        let ids: Vec<&str> = m.hosts().iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["h1", "h2"]);

        // Idempotent: the same command again changes nothing.
        let before = m.clone();
        ok(&mut m, add_host("h1", "192.168.1.1"));
        assert_eq!(m, before);

        // A new address for an existing id replaces the old one.
        ok(&mut m, add_host("h1", "192.168.9.9"));
        assert_eq!(m.hosts().len(), 2);
        assert_eq!(m.host("h1").map(|h| h.addr), Some(ip("192.168.9.9")));
        assert!(m.host("h3").is_none());
    }

    #[test]
    fn add_host_refusals() {
        let mut m = StateMachine::new();
        let r = refuse(&mut m, wrap(command::Kind::AddHost(AddHost { host: None })));
        assert_eq!(r, Refusal::MissingField { field: "host" });
        assert_eq!(r.exit_code(), 1);
        let r = refuse(&mut m, add_host("", "192.168.1.1"));
        assert_eq!(r, Refusal::EmptyHostId);
        assert_eq!(r.exit_code(), 2);
    }

    #[test]
    fn empty_command_is_refused() {
        let mut m = machine();
        let r = refuse(&mut m, Command { kind: None });
        assert_eq!(r, Refusal::EmptyCommand);
        assert_eq!(r.exit_code(), 1);
        assert_eq!(
            r.to_string(),
            "the command carries no known change; every host must run the same vxnet version"
        );
    }

    // ------------------------------------------------------------------ CreateNetwork

    #[test]
    fn create_network_with_defaults() {
        let mut m = machine();
        let net = created(&mut m, create("net1", 1));
        assert_eq!(
            net,
            Network {
                id: id(1),
                name: "net1".into(),
                driver: "overlay".into(),
                vni: 256,
                subnet: Some(cidr("10.128.0.0/24")),
                gateway: ip("10.128.0.1"),
                ip_range: None,
                mtu: 1450,
                peers: vec![],
                labels: BTreeMap::new(),
            }
        );
        assert_eq!(m.state().networks, vec![net.clone()]);
        assert_eq!(m.network("net1"), Ok(&net));

        let net2 = created(&mut m, create("net2", 2));
        assert_eq!(net2.vni, 257);
        assert_eq!(net2.subnet, Some(cidr("10.128.1.0/24")));
        assert_eq!(net2.gateway, ip("10.128.1.1"));
    }

    #[test]
    fn create_network_with_everything_given() {
        let mut m = machine();
        let labels: BTreeMap<String, String> = [("b", "2"), ("a", "1")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let net = created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("192.168.0.0/16")),
                gateway: Some(ip("192.168.0.254")),
                ip_range: Some(cidr("192.168.10.0/24")),
                vni: Some(4096),
                mtu: 9000,
                peers: vec![ip("172.16.0.9"), ip("172.16.0.3"), ip("172.16.0.9")],
                labels: labels.clone(),
                ..create("lab.net-1_x", 1)
            },
        );
        assert_eq!(net.name, "lab.net-1_x");
        assert_eq!(net.vni, 4096);
        assert_eq!(net.subnet, Some(cidr("192.168.0.0/16")));
        assert_eq!(net.gateway, ip("192.168.0.254"));
        assert_eq!(net.ip_range, Some(cidr("192.168.10.0/24")));
        assert_eq!(net.mtu, 9000);
        assert_eq!(net.peers, vec![ip("172.16.0.3"), ip("172.16.0.9")]);
        assert_eq!(net.labels, labels);
    }

    #[test]
    fn create_network_accepts_edge_values() {
        let mut m = machine();
        created(
            &mut m,
            CreateNetwork {
                vni: Some(1),
                mtu: 576,
                ..create("a", 1)
            },
        );
        created(
            &mut m,
            CreateNetwork {
                vni: Some(VNI_MAX),
                mtu: 9000,
                ..create("B9", 2)
            },
        );
        let p30 = created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.0.0.4/30")),
                ..create("9", 3)
            },
        );
        assert_eq!(p30.gateway, ip("10.0.0.5"));
        // Gateway at the last host address; range equal to the subnet.
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.1.0.0/24")),
                gateway: Some(ip("10.1.0.254")),
                ip_range: Some(cidr("10.1.0.0/24")),
                ..create("d", 4)
            },
        );
    }

    #[test]
    fn explicit_subnets_of_different_networks_may_overlap() {
        let mut m = machine_with_net1();
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.0.0.0/24")),
                ..create("net2", 2)
            },
        );
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.0.0.0/8")),
                ..create("net3", 3)
            },
        );
        assert_eq!(m.networks().len(), 3);
    }

    #[test]
    fn default_subnet_avoids_every_existing_subnet() {
        let mut m = machine();
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.128.0.0/16")),
                ..create("big", 1)
            },
        );
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.129.0.128/25")),
                ..create("half", 2)
            },
        );
        let net = created(&mut m, create("auto", 3));
        assert_eq!(net.subnet, Some(cidr("10.129.1.0/24")));
        // Freed subnets are reused first.
        let first = created(&mut m, create("auto2", 4));
        assert_eq!(first.subnet, Some(cidr("10.129.2.0/24")));
        ok(&mut m, remove_cmd(3));
        assert_eq!(
            created(&mut m, create("auto3", 5)).subnet,
            Some(cidr("10.129.1.0/24"))
        );
    }

    #[test]
    fn default_vni_is_the_lowest_free_from_256() {
        let mut m = machine();
        created(
            &mut m,
            CreateNetwork {
                vni: Some(42),
                ..create("low", 1)
            },
        );
        created(
            &mut m,
            CreateNetwork {
                vni: Some(256),
                ..create("n256", 2)
            },
        );
        created(
            &mut m,
            CreateNetwork {
                vni: Some(258),
                ..create("n258", 3)
            },
        );
        assert_eq!(created(&mut m, create("a", 4)).vni, 257);
        assert_eq!(created(&mut m, create("b", 5)).vni, 259);
        ok(&mut m, remove_cmd(2));
        assert_eq!(created(&mut m, create("c", 6)).vni, 256);
    }

    #[test]
    fn lowest_free_number_bounds() {
        assert_eq!(lowest_free_number([], 256, 300), Some(256));
        assert_eq!(
            lowest_free_number([1, 2, 256, 257, 300], 256, 300),
            Some(258)
        );
        assert_eq!(lowest_free_number(256..=300, 256, 300), None);
        assert_eq!(lowest_free_number(256..=299, 256, 300), Some(300));
        assert_eq!(lowest_free_number([u32::MAX], u32::MAX, u32::MAX), None);
    }

    #[test]
    fn create_network_refuses_bad_names() {
        let mut m = machine();
        let r = refuse(&mut m, create_cmd(create("", 1)));
        assert_eq!(r, Refusal::EmptyNetworkName);
        assert_eq!(r.exit_code(), 2);
        for bad in [
            "-net", "_net", ".net", "a b", "net/1", "net:1", "nét", "net\n", "a+b",
        ] {
            let r = refuse(&mut m, create_cmd(create(bad, 1)));
            assert_eq!(r, Refusal::InvalidNetworkName { name: bad.into() }, "{bad}");
            assert_eq!(r.exit_code(), 2);
        }
        assert_eq!(
            refuse(&mut m, create_cmd(create("a b", 1))).to_string(),
            "invalid network name \"a b\": use letters, digits, '_', '.' and '-', \
             starting with a letter or a digit"
        );
    }

    #[test]
    fn create_network_refuses_bad_ids() {
        let mut m = machine();
        let valid = id(1);
        for bad in [
            String::new(),
            "abc".to_owned(),
            format!("{}A", &valid[..63]), // uppercase hex
            format!("{}g", &valid[..63]), // not hex
            format!("{valid}0"),          // 65 digits
            valid[..63].to_owned(),       // 63 digits
        ] {
            let r = refuse(
                &mut m,
                create_cmd(CreateNetwork {
                    id: bad.clone(),
                    ..create("n", 0)
                }),
            );
            assert_eq!(
                r,
                Refusal::InvalidId {
                    what: "network",
                    id: bad
                },
                "{r}"
            );
            assert_eq!(r.exit_code(), 2);
        }
        let r = refuse(
            &mut m,
            create_cmd(CreateNetwork {
                id: "xyz".into(),
                ..create("n", 0)
            }),
        );
        assert_eq!(
            r.to_string(),
            "invalid network id \"xyz\": expected 64 lowercase hex digits"
        );
    }

    #[test]
    fn create_network_refuses_vni_out_of_range() {
        let mut m = machine();
        for vni in [0, VNI_MAX + 1, u32::MAX] {
            let r = refuse(
                &mut m,
                create_cmd(CreateNetwork {
                    vni: Some(vni),
                    ..create("n", 1)
                }),
            );
            assert_eq!(r, Refusal::VniOutOfRange { vni });
            assert_eq!(r.exit_code(), 2);
        }
        assert_eq!(
            Refusal::VniOutOfRange { vni: 0 }.to_string(),
            "VNI 0 is out of range: use 1 to 16777215"
        );
    }

    #[test]
    fn create_network_refuses_mtu_out_of_range() {
        let mut m = machine();
        for mtu in [0, 575, 9001] {
            let r = refuse(
                &mut m,
                create_cmd(CreateNetwork {
                    mtu,
                    ..create("n", 1)
                }),
            );
            assert_eq!(r, Refusal::MtuOutOfRange { mtu });
            assert_eq!(r.exit_code(), 2);
        }
        assert_eq!(
            Refusal::MtuOutOfRange { mtu: 575 }.to_string(),
            "MTU 575 is out of range: use 576 to 9000"
        );
    }

    #[test]
    fn create_network_refuses_bad_subnets() {
        let mut m = machine();
        let r = refuse(
            &mut m,
            create_cmd(CreateNetwork {
                subnet: Some(cidr("10.0.0.1/24")),
                ..create("n", 1)
            }),
        );
        assert_eq!(
            r.to_string(),
            "invalid subnet 10.0.0.1/24: host bits are set; did you mean 10.0.0.0/24?"
        );
        assert_eq!(r.exit_code(), 2);
        let r = refuse(
            &mut m,
            create_cmd(CreateNetwork {
                subnet: Some(cidr("10.0.0.0/33")),
                ..create("n", 1)
            }),
        );
        assert!(
            matches!(r, Refusal::InvalidCidr(CidrError::PrefixTooLong { .. })),
            "{r}"
        );
        assert_eq!(r.exit_code(), 2);
        for small in ["10.0.0.0/31", "10.0.0.1/32"] {
            let r = refuse(
                &mut m,
                create_cmd(CreateNetwork {
                    subnet: Some(cidr(small)),
                    ..create("n", 1)
                }),
            );
            assert!(matches!(r, Refusal::SubnetTooSmall { .. }), "{r}");
            assert_eq!(r.exit_code(), 2);
        }
        assert_eq!(
            refuse(
                &mut m,
                create_cmd(CreateNetwork {
                    subnet: Some(cidr("10.0.0.0/31")),
                    ..create("n", 1)
                })
            )
            .to_string(),
            "subnet 10.0.0.0/31 is too small for a network: use a prefix of /30 or shorter"
        );
    }

    #[test]
    fn create_network_refuses_gateway_and_range_without_subnet() {
        let mut m = machine();
        let r = refuse(
            &mut m,
            create_cmd(CreateNetwork {
                gateway: Some(ip("10.128.0.1")),
                ..create("n", 1)
            }),
        );
        assert_eq!(r, Refusal::NeedsSubnet { what: "gateway" });
        assert_eq!(
            r.to_string(),
            "a gateway needs an explicit subnet; add --subnet"
        );
        assert_eq!(r.exit_code(), 2);
        let r = refuse(
            &mut m,
            create_cmd(CreateNetwork {
                ip_range: Some(cidr("10.128.0.0/25")),
                ..create("n", 1)
            }),
        );
        assert_eq!(r, Refusal::NeedsSubnet { what: "ip range" });
    }

    #[test]
    fn create_network_refuses_bad_gateways() {
        let mut m = machine();
        let with_gw = |gw: &str| {
            create_cmd(CreateNetwork {
                subnet: Some(cidr("10.0.0.0/24")),
                gateway: Some(ip(gw)),
                ..create("n", 1)
            })
        };
        let r = refuse(&mut m, with_gw("10.0.1.1"));
        assert_eq!(
            r.to_string(),
            "gateway 10.0.1.1 is outside subnet 10.0.0.0/24; pick an address inside it"
        );
        assert_eq!(r.exit_code(), 2);
        let r = refuse(&mut m, with_gw("10.0.0.0"));
        assert_eq!(
            r.to_string(),
            "gateway 10.0.0.0 is the network address of subnet 10.0.0.0/24; pick a host address"
        );
        assert_eq!(r.exit_code(), 2);
        let r = refuse(&mut m, with_gw("10.0.0.255"));
        assert_eq!(
            r,
            Refusal::GatewayNotHostAddress {
                gateway: Ipv4Addr::new(10, 0, 0, 255),
                subnet: "10.0.0.0/24".parse().expect("cidr"),
                role: "broadcast address"
            }
        );
    }

    #[test]
    fn create_network_refuses_bad_ip_ranges() {
        let mut m = machine();
        let with_range = |range: &str| {
            create_cmd(CreateNetwork {
                subnet: Some(cidr("10.0.0.0/24")),
                ip_range: Some(cidr(range)),
                ..create("n", 1)
            })
        };
        for outside in ["10.0.1.0/24", "10.0.0.0/23", "0.0.0.0/0"] {
            let r = refuse(&mut m, with_range(outside));
            assert!(matches!(r, Refusal::IpRangeOutsideSubnet { .. }), "{r}");
            assert_eq!(r.exit_code(), 2);
        }
        assert_eq!(
            refuse(&mut m, with_range("10.0.1.0/25")).to_string(),
            "ip range 10.0.1.0/25 is outside subnet 10.0.0.0/24; pick a range inside it"
        );
        assert_eq!(
            refuse(&mut m, with_range("10.0.0.1/25")).to_string(),
            "invalid ip range 10.0.0.1/25: host bits are set; did you mean 10.0.0.0/25?"
        );
    }

    #[test]
    fn create_network_refuses_non_unicast_peers() {
        let mut m = machine();
        for peer in ["0.0.0.0", "224.0.0.1", "239.1.2.3", "255.255.255.255"] {
            let r = refuse(
                &mut m,
                create_cmd(CreateNetwork {
                    peers: vec![ip("172.16.0.1"), ip(peer)],
                    ..create("n", 1)
                }),
            );
            assert_eq!(
                r,
                Refusal::InvalidPeer {
                    peer: Ipv4Addr::from_str(peer).expect("ip")
                }
            );
            assert_eq!(r.exit_code(), 2);
        }
    }

    #[test]
    fn create_network_refuses_conflicts() {
        let mut m = machine_with_net1();
        let r = refuse(&mut m, create_cmd(create("net1", 2)));
        assert_eq!(
            r.to_string(),
            "network name net1 is already in use; choose another name"
        );
        assert_eq!(r.exit_code(), 1);

        let r = refuse(&mut m, create_cmd(create("net2", 1)));
        assert_eq!(r, Refusal::NetworkIdInUse { id: id(1) });
        assert_eq!(r.exit_code(), 1);

        let r = refuse(
            &mut m,
            create_cmd(CreateNetwork {
                vni: Some(256),
                ..create("net2", 2)
            }),
        );
        assert_eq!(
            r.to_string(),
            "VNI 256 is already in use by network net1; choose another VNI or leave --vni out"
        );
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn create_network_refuses_when_the_pool_is_full() {
        let mut m = machine();
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.128.0.0/9")),
                ..create("all", 1)
            },
        );
        let r = refuse(&mut m, create_cmd(create("n", 2)));
        assert_eq!(r, Refusal::NoFreeSubnet);
        assert_eq!(
            r.to_string(),
            "no free /24 is left in 10.128.0.0/9; pass --subnet"
        );
        assert_eq!(r.exit_code(), 1);
        // An explicit subnet still works.
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.0.0.0/24")),
                ..create("n", 2)
            },
        );
    }

    #[test]
    fn no_free_vni_message() {
        let r = Refusal::NoFreeVni;
        assert_eq!(
            r.to_string(),
            "no free VNI is left between 256 and 16777215; remove a network or pass --vni"
        );
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn usage_checks_come_before_conflicts() {
        // Duplicate name and a bad MTU: the argument error is reported.
        let mut m = machine_with_net1();
        let r = refuse(
            &mut m,
            create_cmd(CreateNetwork {
                mtu: 1,
                ..create("net1", 1)
            }),
        );
        assert_eq!(r, Refusal::MtuOutOfRange { mtu: 1 });
    }

    // ------------------------------------------------------------------ RemoveNetwork

    #[test]
    fn remove_network_frees_name_vni_and_subnet() {
        let mut m = machine();
        let net = created(&mut m, create("net1", 1));
        assert_eq!(
            ok(&mut m, remove_cmd(1)),
            Applied::NetworkRemoved(net.clone())
        );
        assert!(m.state().networks.is_empty());
        assert!(m.network("net1").is_err());
        assert_eq!(m, machine());
        // Name, VNI and subnet are free again: a re-create gets the same ones.
        let again = created(&mut m, create("net1", 2));
        assert_eq!((again.vni, again.subnet), (net.vni, net.subnet));
    }

    #[test]
    fn remove_network_refusals() {
        let mut m = machine_with_net1();
        let r = refuse(&mut m, remove_cmd(9));
        assert_eq!(r, Refusal::NoSuchNetwork { network: id(9) });
        assert_eq!(r.exit_code(), 1);

        connected(&mut m, connect(11, 1, "c2"));
        connected(&mut m, connect(10, 1, "c1"));
        let r = refuse(&mut m, remove_cmd(1));
        assert_eq!(
            r.to_string(),
            "network net1 has active endpoints (c1, c2); disconnect them first"
        );
        assert_eq!(r.exit_code(), 1);

        ok(&mut m, disconnect_cmd(10));
        ok(&mut m, disconnect_cmd(11));
        ok(&mut m, remove_cmd(1));
    }

    // ------------------------------------------------------------------ Connect

    #[test]
    fn connect_allocates_lowest_addresses_and_macs() {
        let mut m = machine_with_net1();
        let c1 = connected(
            &mut m,
            Connect {
                aliases: vec!["web".into(), "www".into()],
                ..connect(10, 1, "c1")
            },
        );
        assert_eq!(
            c1,
            Endpoint {
                id: id(10),
                name: "c1".into(),
                network_id: id(1),
                host_id: "h1".into(),
                mac: vec![0x02, 0x42, 10, 0, 0, 2],
                ipv4: ip("10.0.0.2"),
                aliases: vec!["web".into(), "www".into()],
                ifname: "eth0".into(),
                target: "/run/netns/c1".into(),
            }
        );
        let c2 = connected(
            &mut m,
            Connect {
                host_id: "h2".into(),
                ..connect(11, 1, "c2")
            },
        );
        assert_eq!(c2.ipv4, ip("10.0.0.3"));
        assert_eq!(c2.mac, vec![0x02, 0x42, 10, 0, 0, 3]);
        assert_eq!(m.endpoints(&id(1)), vec![&c1, &c2]);
    }

    #[test]
    fn connect_with_explicit_address() {
        let mut m = machine_with_net1();
        let c1 = connected(
            &mut m,
            Connect {
                ipv4: Some(ip("10.0.0.2")),
                ..connect(10, 1, "c1")
            },
        );
        assert_eq!(c1.ipv4, ip("10.0.0.2"));
        let c2 = connected(
            &mut m,
            Connect {
                ipv4: Some(ip("10.0.0.254")),
                ..connect(11, 1, "c2")
            },
        );
        assert_eq!(c2.mac, vec![0x02, 0x42, 10, 0, 0, 254]);
        // Allocation skips explicit addresses.
        assert_eq!(connected(&mut m, connect(12, 1, "c3")).ipv4, ip("10.0.0.3"));
    }

    #[test]
    fn connect_allocates_from_the_ip_range() {
        let mut m = machine();
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.0.0.0/24")),
                ip_range: Some(cidr("10.0.0.252/30")),
                ..create("net1", 1)
            },
        );
        assert_eq!(
            connected(&mut m, connect(10, 1, "c1")).ipv4,
            ip("10.0.0.252")
        );
        assert_eq!(
            connected(&mut m, connect(11, 1, "c2")).ipv4,
            ip("10.0.0.253")
        );
        assert_eq!(
            connected(&mut m, connect(12, 1, "c3")).ipv4,
            ip("10.0.0.254")
        );
        // .255 is the broadcast address: the range is full.
        let r = refuse(&mut m, connect_cmd(connect(13, 1, "c4")));
        assert_eq!(
            r.to_string(),
            "network net1 has no free address left in 10.0.0.252/30; disconnect an endpoint first"
        );
        assert_eq!(r.exit_code(), 1);
        // An explicit address outside the range but inside the subnet is fine.
        assert_eq!(
            connected(
                &mut m,
                Connect {
                    ipv4: Some(ip("10.0.0.9")),
                    ..connect(13, 1, "c4")
                }
            )
            .ipv4,
            ip("10.0.0.9")
        );
    }

    #[test]
    fn connect_refuses_when_the_subnet_is_full() {
        let mut m = machine();
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.0.0.4/30")),
                ..create("tiny", 1)
            },
        );
        assert_eq!(connected(&mut m, connect(10, 1, "c1")).ipv4, ip("10.0.0.6"));
        let r = refuse(&mut m, connect_cmd(connect(11, 1, "c2")));
        assert_eq!(
            r,
            Refusal::NoFreeAddress {
                network: "tiny".into(),
                range: "10.0.0.4/30".parse().expect("cidr")
            }
        );
    }

    #[test]
    fn disconnect_frees_the_address_for_reuse() {
        let mut m = machine_with_net1();
        connected(&mut m, connect(10, 1, "c1"));
        let c2 = connected(&mut m, connect(11, 1, "c2"));
        connected(&mut m, connect(12, 1, "c3"));
        assert_eq!(
            ok(&mut m, disconnect_cmd(11)),
            Applied::Disconnected(c2.clone())
        );
        assert!(m.endpoint(&id(11)).is_none());
        // The freed address is the lowest free one; the target and name may come back.
        let again = connected(&mut m, connect(13, 1, "c2"));
        assert_eq!(again.ipv4, c2.ipv4);
        assert_eq!(again.mac, c2.mac);
        // An explicit request for a freed address works too.
        ok(&mut m, disconnect_cmd(13));
        let explicit = connected(
            &mut m,
            Connect {
                ipv4: Some(c2.ipv4),
                ..connect(14, 1, "c9")
            },
        );
        assert_eq!(explicit.ipv4, c2.ipv4);
    }

    #[test]
    fn disconnect_refuses_unknown_endpoints() {
        let mut m = machine_with_net1();
        let r = refuse(&mut m, disconnect_cmd(10));
        assert_eq!(r, Refusal::NoSuchEndpoint { id: id(10) });
        assert_eq!(r.exit_code(), 1);
        connected(&mut m, connect(10, 1, "c1"));
        ok(&mut m, disconnect_cmd(10));
        refuse(&mut m, disconnect_cmd(10));
    }

    #[test]
    fn connect_refuses_malformed_arguments() {
        let mut m = machine_with_net1();
        let r = refuse(
            &mut m,
            connect_cmd(Connect {
                endpoint_id: "e1".into(),
                ..connect(0, 1, "c1")
            }),
        );
        assert_eq!(
            r,
            Refusal::InvalidId {
                what: "endpoint",
                id: "e1".into()
            }
        );
        assert_eq!(r.exit_code(), 2);

        let r = refuse(
            &mut m,
            connect_cmd(Connect {
                name: String::new(),
                ..connect(10, 1, "c1")
            }),
        );
        assert_eq!(r, Refusal::EmptyEndpointName);
        assert_eq!(r.exit_code(), 2);

        let r = refuse(
            &mut m,
            connect_cmd(Connect {
                target: String::new(),
                ..connect(10, 1, "c1")
            }),
        );
        assert_eq!(r, Refusal::EmptyTarget);
        assert_eq!(r.exit_code(), 2);

        for bad in [
            "",
            ".",
            "..",
            "eth/0",
            "eth:0",
            "eth 0",
            "eth\t0",
            "sixteen_chars_xx",
        ] {
            let r = refuse(
                &mut m,
                connect_cmd(Connect {
                    ifname: bad.into(),
                    ..connect(10, 1, "c1")
                }),
            );
            assert_eq!(r, Refusal::InvalidIfname { ifname: bad.into() });
            assert_eq!(r.exit_code(), 2);
        }
        connected(
            &mut m,
            Connect {
                ifname: "fifteen_chars_x".into(),
                ..connect(10, 1, "c1")
            },
        );
    }

    #[test]
    fn connect_refuses_unknown_network_and_host() {
        let mut m = machine_with_net1();
        let r = refuse(&mut m, connect_cmd(connect(10, 9, "c1")));
        assert_eq!(r, Refusal::NoSuchNetwork { network: id(9) });
        assert_eq!(r.exit_code(), 1);

        let r = refuse(
            &mut m,
            connect_cmd(Connect {
                host_id: "h9".into(),
                ..connect(10, 1, "c1")
            }),
        );
        assert_eq!(
            r.to_string(),
            "host h9 is not a member of the cluster; its daemon must register it before \
             endpoints can be connected there"
        );
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn connect_refuses_reserved_and_outside_addresses() {
        let mut m = machine_with_net1();
        let with_ip = |addr: &str| {
            connect_cmd(Connect {
                ipv4: Some(ip(addr)),
                ..connect(10, 1, "c1")
            })
        };
        let r = refuse(&mut m, with_ip("10.0.1.5"));
        assert_eq!(
            r.to_string(),
            "address 10.0.1.5 is outside subnet 10.0.0.0/24 of network net1; pick an address inside it"
        );
        assert_eq!(r.exit_code(), 1);
        for (addr, role) in [
            ("10.0.0.0", "network address"),
            ("10.0.0.255", "broadcast address"),
            ("10.0.0.1", "gateway"),
        ] {
            let r = refuse(&mut m, with_ip(addr));
            assert_eq!(
                r,
                Refusal::AddressReserved {
                    addr: Ipv4Addr::from_str(addr).expect("ip"),
                    network: "net1".into(),
                    role
                }
            );
            assert_eq!(r.exit_code(), 1);
        }
        assert_eq!(
            refuse(&mut m, with_ip("10.0.0.1")).to_string(),
            "address 10.0.0.1 is the gateway of network net1; pick another address"
        );
    }

    #[test]
    fn connect_refuses_an_address_in_use() {
        let mut m = machine_with_net1();
        connected(
            &mut m,
            Connect {
                ipv4: Some(ip("10.0.0.5")),
                ..connect(10, 1, "c1")
            },
        );
        let r = refuse(
            &mut m,
            connect_cmd(Connect {
                ipv4: Some(ip("10.0.0.5")),
                host_id: "h2".into(),
                ..connect(11, 1, "c2")
            }),
        );
        assert_eq!(
            r.to_string(),
            "address 10.0.0.5 is already in use by c1 on network net1; pick another address \
             or leave --ip out"
        );
        assert_eq!(r.exit_code(), 1);
        // The same address on another network (an overlapping subnet) is fine.
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.0.0.0/24")),
                ..create("net2", 2)
            },
        );
        connected(
            &mut m,
            Connect {
                ipv4: Some(ip("10.0.0.5")),
                ..connect(11, 2, "c2")
            },
        );
    }

    #[test]
    fn connect_refuses_duplicate_ids_names_and_targets() {
        let mut m = machine_with_net1();
        connected(&mut m, connect(10, 1, "c1"));

        let r = refuse(&mut m, connect_cmd(connect(10, 1, "c2")));
        assert_eq!(r, Refusal::EndpointIdInUse { id: id(10) });
        assert_eq!(r.exit_code(), 1);

        let r = refuse(
            &mut m,
            connect_cmd(Connect {
                name: "other".into(),
                ..connect(11, 1, "c1")
            }),
        );
        assert_eq!(
            r.to_string(),
            "/run/netns/c1 is already connected to network net1 as c1; disconnect it first"
        );
        assert_eq!(r.exit_code(), 1);

        let r = refuse(
            &mut m,
            connect_cmd(Connect {
                target: "/run/netns/x".into(),
                ..connect(11, 1, "c1")
            }),
        );
        assert_eq!(
            r.to_string(),
            "endpoint name c1 is already in use on network net1; pass --name to choose another"
        );
        assert_eq!(r.exit_code(), 1);

        // The same target path on another host is another namespace.
        connected(
            &mut m,
            Connect {
                host_id: "h2".into(),
                name: "c1-h2".into(),
                ..connect(11, 1, "c1")
            },
        );
    }

    #[test]
    fn connect_refuses_overlapping_subnets_and_reused_ifnames_in_one_namespace() {
        let mut m = machine_with_net1();
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.0.0.0/16")),
                ..create("wide", 2)
            },
        );
        created(
            &mut m,
            CreateNetwork {
                subnet: Some(cidr("10.9.0.0/24")),
                ..create("other", 3)
            },
        );
        connected(&mut m, connect(10, 1, "c1"));

        let r = refuse(
            &mut m,
            connect_cmd(Connect {
                ifname: "eth1".into(),
                ..connect(11, 2, "c1")
            }),
        );
        assert_eq!(
            r.to_string(),
            "/run/netns/c1 is already connected to network net1, whose subnet 10.0.0.0/24 \
             overlaps subnet 10.0.0.0/16 of network wide; disconnect it from net1 first"
        );
        assert_eq!(r.exit_code(), 1);

        let r = refuse(&mut m, connect_cmd(connect(11, 3, "c1")));
        assert_eq!(
            r.to_string(),
            "interface eth0 of /run/netns/c1 is already used by network net1; pick another --ifname"
        );
        assert_eq!(r.exit_code(), 1);

        connected(
            &mut m,
            Connect {
                ifname: "eth1".into(),
                ..connect(11, 3, "c1")
            },
        );
        // Another namespace may join the overlapping network; so may c1 on another host.
        connected(&mut m, connect(12, 2, "c2"));
        connected(
            &mut m,
            Connect {
                host_id: "h2".into(),
                ..connect(13, 2, "c1")
            },
        );
        // Once c1 leaves net1, it may join the overlapping network.
        ok(&mut m, disconnect_cmd(10));
        connected(
            &mut m,
            Connect {
                name: "c1-again".into(),
                ..connect(14, 2, "c1")
            },
        );
    }

    // ------------------------------------------------------------------ lookups

    #[test]
    fn network_lookup_by_id_name_and_prefix() {
        let mut m = machine();
        let a = created(
            &mut m,
            CreateNetwork {
                id: format!("ab{}", "0".repeat(62)),
                ..create("alpha", 0)
            },
        );
        let b = created(
            &mut m,
            CreateNetwork {
                id: format!("ac{}", "0".repeat(62)),
                ..create("beta", 0)
            },
        );
        // A network whose name looks like the other's id prefix: exact name wins over prefix.
        let c = created(
            &mut m,
            CreateNetwork {
                id: format!("ff{}", "0".repeat(62)),
                ..create("ab", 0)
            },
        );

        assert_eq!(m.network(&a.id), Ok(&a));
        assert_eq!(m.network("beta"), Ok(&b));
        assert_eq!(m.network("ac"), Ok(&b));
        assert_eq!(m.network("f"), Ok(&c));
        assert_eq!(m.network("ab"), Ok(&c));
        assert_eq!(m.network("ab0"), Ok(&a));

        let r = m.network("a").expect_err("ambiguous");
        assert_eq!(
            r,
            Refusal::AmbiguousNetwork {
                prefix: "a".into(),
                count: 2
            }
        );
        assert_eq!(
            r.to_string(),
            "network id prefix a matches 2 networks; give more digits or the name"
        );
        assert_eq!(r.exit_code(), 1);

        for missing in ["", "gamma", "b", "abc"] {
            let r = m.network(missing).expect_err("missing");
            assert_eq!(
                r,
                Refusal::NoSuchNetwork {
                    network: missing.into()
                }
            );
        }
        assert_eq!(
            m.network("gamma").expect_err("missing").to_string(),
            "network gamma not found; `vxnet network ls` lists the networks"
        );
        assert_eq!(m.network_by_id(&a.id), Some(&a));
        assert_eq!(m.network_by_id("ab"), None);
    }

    #[test]
    fn networks_are_listed_by_name() {
        let mut m = machine();
        created(&mut m, create("zeta", 1));
        created(&mut m, create("Alpha", 3));
        created(&mut m, create("mid", 2));
        let names: Vec<&str> = m.networks().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["Alpha", "mid", "zeta"]);
        let ids: Vec<&str> = m.state().networks.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, [id(1), id(2), id(3)]);
    }

    #[test]
    fn endpoint_lookups() {
        let mut m = machine_with_net1();
        created(&mut m, create("net2", 2));
        let c1 = connected(&mut m, connect(10, 1, "c1"));
        let c2 = connected(
            &mut m,
            Connect {
                host_id: "h2".into(),
                ..connect(11, 1, "c2")
            },
        );
        let c1b = connected(
            &mut m,
            Connect {
                ifname: "eth1".into(),
                ..connect(12, 2, "c1")
            },
        );

        assert_eq!(m.endpoints(&id(1)), vec![&c1, &c2]);
        assert_eq!(m.endpoints(&id(2)), vec![&c1b]);
        assert!(m.endpoints(&id(9)).is_empty());
        assert_eq!(m.endpoint(&id(11)), Some(&c2));
        assert_eq!(
            m.endpoint_by_target(&id(1), "h1", "/run/netns/c1"),
            Some(&c1)
        );
        assert_eq!(
            m.endpoint_by_target(&id(2), "h1", "/run/netns/c1"),
            Some(&c1b)
        );
        assert_eq!(m.endpoint_by_target(&id(1), "h2", "/run/netns/c1"), None);
        assert_eq!(m.endpoint_by_name(&id(1), "c2"), Some(&c2));
        assert_eq!(m.endpoint_by_name(&id(2), "c2"), None);
        assert_eq!(m.endpoints_on_host("h1"), vec![&c1, &c1b]);
        assert_eq!(m.endpoints_on_host("h2"), vec![&c2]);
    }

    // ------------------------------------------------------------------ determinism, snapshots

    /// A command sequence with creates, connects, refusals, disconnects and removals, in an id
    /// order that differs from the apply order.
    fn scenario() -> Vec<Command> {
        let labels: BTreeMap<String, String> = [("z", "1"), ("a", "2"), ("m", "3")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        vec![
            add_host("h2", "192.168.1.2"),
            add_host("h1", "192.168.1.1"),
            create_cmd(CreateNetwork {
                labels,
                peers: vec![ip("172.16.0.2"), ip("172.16.0.1")],
                ..create("net9", 9)
            }),
            create_cmd(create("net3", 3)),
            create_cmd(create("net3", 4)), // refused: name in use
            create_cmd(CreateNetwork {
                subnet: Some(cidr("10.0.0.0/24")),
                vni: Some(7),
                ..create("net5", 5)
            }),
            connect_cmd(connect(30, 9, "c3")),
            connect_cmd(Connect {
                host_id: "h2".into(),
                ..connect(20, 9, "c2")
            }),
            connect_cmd(Connect {
                ifname: "eth1".into(),
                ..connect(10, 3, "c3")
            }),
            connect_cmd(connect(40, 9, "c3")), // refused: already connected
            disconnect_cmd(30),
            connect_cmd(connect(50, 9, "c5")),
            remove_cmd(5),
            add_host("h1", "192.168.1.11"),
        ]
    }

    #[test]
    fn two_machines_applying_the_same_commands_agree_byte_for_byte() {
        let mut a = StateMachine::new();
        let mut b = StateMachine::new();
        for cmd in scenario() {
            assert_eq!(a.apply(&cmd), b.apply(&cmd));
        }
        assert_eq!(a, b);
        assert_eq!(a.state().encode_to_vec(), b.state().encode_to_vec());
        // The lists are in id order whatever the apply order was.
        let ids: Vec<&str> = a.state().endpoints.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, [id(10), id(20), id(50)]);
        assert_eq!(a.state().hosts[0].id, "h1");
        // A re-encoding of a decoded state is the same bytes (BTreeMap labels, sorted lists).
        let bytes = a.state().encode_to_vec();
        let decoded = State::decode(bytes.as_slice()).expect("decode");
        assert_eq!(decoded.encode_to_vec(), bytes);
    }

    #[test]
    fn from_state_rebuilds_an_equal_machine() {
        let mut a = StateMachine::new();
        for cmd in scenario() {
            let _ = a.apply(&cmd);
        }
        let bytes = a.state().encode_to_vec();
        let mut b = StateMachine::from_state(State::decode(bytes.as_slice()).expect("decode"))
            .expect("valid state");
        assert_eq!(a, b);
        // And both keep agreeing after the reload.
        let next = [
            create_cmd(create("after", 11)),
            connect_cmd(connect(60, 11, "c6")),
            create_cmd(create("net9", 12)),
        ];
        for cmd in next {
            assert_eq!(a.apply(&cmd), b.apply(&cmd));
        }
        assert_eq!(a.state().encode_to_vec(), b.state().encode_to_vec());
        assert_eq!(b.network("net9").map(|n| n.id.clone()), Ok(id(9)));
    }

    #[test]
    fn from_state_sorts_an_unsorted_state() {
        let mut a = StateMachine::new();
        for cmd in scenario() {
            let _ = a.apply(&cmd);
        }
        let mut shuffled = a.state().clone();
        shuffled.hosts.reverse();
        shuffled.networks.reverse();
        shuffled.endpoints.reverse();
        assert_eq!(StateMachine::from_state(shuffled).expect("valid"), a);
    }

    #[test]
    fn from_state_rejects_inconsistent_states() {
        let mut m = machine_with_net1();
        connected(&mut m, connect(10, 1, "c1"));
        let good = m.state().clone();
        assert!(StateMachine::from_state(good.clone()).is_ok());

        let mut cases: Vec<(&str, State)> = Vec::new();
        let mut s = good.clone();
        s.hosts.push(s.hosts[0].clone());
        cases.push(("host id", s));
        let mut s = good.clone();
        s.networks.push(s.networks[0].clone());
        cases.push(("network id", s));
        let mut s = good.clone();
        s.networks.push(Network {
            id: id(2),
            vni: 999,
            ..s.networks[0].clone()
        });
        cases.push(("network name", s));
        let mut s = good.clone();
        s.networks.push(Network {
            id: id(2),
            name: "x".into(),
            ..s.networks[0].clone()
        });
        cases.push(("VNI", s));
        let mut s = good.clone();
        s.networks[0].subnet = None;
        cases.push(("no subnet", s));
        let mut s = good.clone();
        s.networks[0].subnet = Some(cidr("10.0.0.1/24"));
        cases.push(("host bits", s));
        let mut s = good.clone();
        s.endpoints.push(s.endpoints[0].clone());
        cases.push(("endpoint id", s));
        let mut s = good.clone();
        s.endpoints.push(Endpoint {
            id: id(11),
            ..s.endpoints[0].clone()
        });
        cases.push(("used twice", s));
        let mut s = good.clone();
        s.endpoints[0].ipv4 = ip("10.9.9.9");
        cases.push(("outside", s));
        let mut s = good;
        s.endpoints[0].network_id = id(9);
        cases.push(("unknown network", s));

        for (what, state) in cases {
            let err = StateMachine::from_state(state).expect_err(what);
            assert!(err.to_string().starts_with("inconsistent state: "), "{err}");
            assert!(err.to_string().contains(what), "{what}: {err}");
        }
    }

    #[test]
    fn exit_codes_split_usage_errors_from_conflicts() {
        let usage = [
            Refusal::EmptyHostId,
            Refusal::EmptyNetworkName,
            Refusal::SubnetTooSmall {
                subnet: "10.0.0.0/31".parse().expect("cidr"),
            },
            Refusal::InvalidPeer {
                peer: Ipv4Addr::UNSPECIFIED,
            },
        ];
        assert!(usage
            .iter()
            .all(|r| r.exit_code() == 2 && r.is_usage_error()));
        let conflicts = [
            Refusal::EmptyCommand,
            Refusal::NoFreeVni,
            Refusal::NoFreeSubnet,
            Refusal::NetworkHasEndpoints {
                network: "n".into(),
                endpoints: vec!["c".into()],
            },
        ];
        assert!(conflicts
            .iter()
            .all(|r| r.exit_code() == 1 && !r.is_usage_error()));
    }

    #[test]
    fn remove_host_takes_its_endpoints_everywhere_and_nothing_else() {
        let mut m = machine_with_net1();
        ok(&mut m, add_host("h2", "192.168.1.2"));
        let on_h1 = connected(&mut m, connect(10, 1, "c1"));
        let on_h2 = connected(
            &mut m,
            Connect {
                host_id: "h2".into(),
                target: "/run/netns/c2".into(),
                ..connect(11, 1, "c2")
            },
        );
        let applied = ok(
            &mut m,
            wrap(command::Kind::RemoveHost(RemoveHost {
                host_id: "h2".into(),
            })),
        );
        let Applied::HostRemoved { host, endpoints } = applied else {
            panic!("not HostRemoved: {applied:?}");
        };
        assert_eq!(host.id, "h2");
        assert_eq!(endpoints, vec![on_h2.clone()]);
        assert!(m.host("h2").is_none());
        assert_eq!(m.endpoints(&id(1)), vec![&on_h1]);
        // Its address is free again.
        let again = connected(&mut m, connect(12, 1, "c3"));
        assert_eq!(again.ipv4, on_h2.ipv4);
        // Removing it twice is refused, and changes nothing.
        let r = refuse(
            &mut m,
            wrap(command::Kind::RemoveHost(RemoveHost {
                host_id: "h2".into(),
            })),
        );
        assert!(matches!(r, Refusal::NoSuchHost { .. }), "{r}");
        assert_eq!(r.exit_code(), 1);
    }
}
