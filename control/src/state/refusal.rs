//! Why the state machine refuses a command: the catalogue of [`Refusal`]s, and
//! [`InvalidState`] for a stored state that breaks the machine's rules.
//!
//! Rules a caller relies on:
//! - Every [`Refusal`] displays as one sentence for `vxnet: <message>`, saying what is wrong
//!   and what to do. The messages are part of the CLI's contract: change none lightly.
//! - [`Refusal::exit_code`] is 2 for a usage error (a bad argument, whatever the state) and 1
//!   for anything else: a conflict with the current state, a malformed command, a broken
//!   state.

use std::net::Ipv4Addr;

use vxnet_proto::types::{FIRST_AUTO_VNI, IFNAME_MAX, MTU_MAX, MTU_MIN, VNI_MAX, VNI_MIN};
use vxnet_proto::{Endpoint, ErrorCode};

use super::ipam::{CidrError, Ipv4Cidr, DEFAULT_POOL, DEFAULT_SUBNET_PREFIX, MAX_NETWORK_PREFIX};

/// Why a command was refused. Displays as one sentence for `vxnet: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    // ------------------------------------------------ malformed commands (a proposer's bug)
    #[error("the command carries no known change; every host must run the same vxnet version")]
    EmptyCommand,
    #[error("the command lacks its {field}; every host must run the same vxnet version")]
    MissingField { field: &'static str },
    #[error(
        "the network key must be 32 bytes of epoch 0; every host must run the same vxnet version"
    )]
    MalformedNetworkKey,

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
    #[error(
        "an encrypted network cannot have static peers: a kernel VTEP cannot open sealed \
         datagrams; leave out --peer or --encrypted"
    )]
    EncryptedWithPeers,
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
    #[error("invalid published port {mapping}: {reason}")]
    InvalidPort {
        mapping: String,
        reason: &'static str,
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
    #[error("network {network} is not encrypted: it has no key to rotate")]
    NotEncrypted { network: String },
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
    #[error(
        "network {network} is --internal: nothing reaches in or out, so it cannot publish ports; \
         use a network without --internal"
    )]
    PublishOnInternal { network: String },
    #[error(
        "host port {port} is already published on that host by {endpoint} on network \
         {network}; choose another host port"
    )]
    HostPortInUse {
        port: String,
        endpoint: String,
        network: String,
    },
    #[error("endpoint {id} not found; it may have been disconnected already")]
    NoSuchEndpoint { id: String },

    // ------------------------------------------------ a broken state: exit code 1
    /// The machine's own state breaks a rule `from_state` and `apply` keep. Unreachable unless
    /// vxnet has a bug; refusing is what keeps every host computing the same thing anyway.
    #[error("{0}; this is a bug in vxnet, please report it")]
    Inconsistent(#[from] InvalidState),

    // ------------------------------------------------ a retried proposal
    /// The answer to a proposal applied again: the first copy was refused with this sentence
    /// and code (the state machine remembers the outcome, not the refusal's fields).
    #[error("{message}")]
    Repeated { message: String, code: ErrorCode },
}

impl Refusal {
    /// Whether the command is wrong in itself (a bad argument, whatever the state), as opposed
    /// to wrong for the network it names (an address outside *that* subnet) or conflicting
    /// with the current state. Decides the CLI's exit code.
    pub fn is_usage_error(&self) -> bool {
        use Refusal::*;
        if let Repeated { code, .. } = self {
            return *code == ErrorCode::Usage;
        }
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
                | EncryptedWithPeers
                | EmptyEndpointName
                | EmptyTarget
                | InvalidIfname { .. }
                | InvalidPort { .. }
        )
    }

    /// What kind of failure this is, for the API's clients.
    pub fn code(&self) -> ErrorCode {
        use Refusal::*;
        match self {
            Repeated { code, .. } => *code,
            _ if self.is_usage_error() => ErrorCode::Usage,
            NoSuchNetwork { .. }
            | AmbiguousNetwork { .. }
            | NoSuchHost { .. }
            | NoSuchEndpoint { .. } => ErrorCode::NotFound,
            NetworkNameInUse { .. }
            | NetworkIdInUse { .. }
            | VniInUse { .. }
            | NetworkHasEndpoints { .. }
            | EndpointIdInUse { .. }
            | EndpointNameInUse { .. }
            | AddressInUse { .. }
            | AlreadyConnected { .. }
            | OverlappingSubnets { .. }
            | IfnameInUse { .. }
            | HostPortInUse { .. } => ErrorCode::Conflict,
            NoFreeVni | NoFreeSubnet | NoFreeAddress { .. } => ErrorCode::Exhausted,
            EmptyCommand | MissingField { .. } | MalformedNetworkKey | Inconsistent(_) => {
                ErrorCode::Internal
            }
            _ => ErrorCode::Refused,
        }
    }

    /// The CLI's exit code: 2 for a usage error, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        self.code().exit_code()
    }
}

/// A state that breaks the rules `apply` keeps: a corrupt file or snapshot, refused by
/// `StateMachine::from_state` rather than repaired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inconsistent state: {0}")]
pub struct InvalidState(pub(super) String);

impl InvalidState {
    /// An endpoint whose network is not in the state.
    pub(super) fn unknown_network(endpoint: &Endpoint) -> Self {
        Self(format!(
            "endpoint {} belongs to unknown network {}",
            endpoint.name, endpoint.network_id
        ))
    }
}

#[cfg(test)]
mod tests;
