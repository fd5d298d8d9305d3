//! Fixtures shared by the state machine's tests: ids, addresses, one small builder per
//! command, machines with hosts and a network, and the apply helpers that check what a
//! command must (not) change.

use std::net::Ipv4Addr;
use std::str::FromStr;

use prost::Message;
use vxnet_proto::{
    command, AddHost, Cidr, Command, Connect, CreateNetwork, Disconnect, Endpoint, Host, Network,
    RemoveHost, RemoveNetwork,
};

use super::{Applied, Refusal, StateMachine};

/// The id numbered `n`: 64 hex digits.
pub(super) fn id(n: u32) -> String {
    format!("{n:064x}")
}

pub(super) fn ip(text: &str) -> u32 {
    u32::from(Ipv4Addr::from_str(text).expect("valid address in test"))
}

/// A protobuf prefix, taken as written: host bits may be set, to build bad commands.
pub(super) fn cidr(text: &str) -> Cidr {
    let (addr, len) = text.split_once('/').expect("CIDR in test");
    Cidr {
        addr: ip(addr),
        prefix_len: len.parse().expect("prefix length in test"),
    }
}

pub(super) fn wrap(kind: command::Kind) -> Command {
    Command { kind: Some(kind) }
}

/// Host `host_id`, named `name-<host_id>`, at `addr`.
pub(super) fn add_host(host_id: &str, addr: &str) -> Command {
    wrap(command::Kind::AddHost(AddHost {
        host: Some(Host {
            id: host_id.to_owned(),
            name: format!("name-{host_id}"),
            addr: ip(addr),
            ..Default::default()
        }),
    }))
}

pub(super) fn remove_host(host_id: &str) -> Command {
    wrap(command::Kind::RemoveHost(RemoveHost {
        host_id: host_id.to_owned(),
    }))
}

pub(super) fn remove_network(n: u32) -> Command {
    wrap(command::Kind::RemoveNetwork(RemoveNetwork {
        network_id: id(n),
    }))
}

pub(super) fn disconnect(ep: u32) -> Command {
    wrap(command::Kind::Disconnect(Disconnect {
        endpoint_id: id(ep),
    }))
}

/// A `CreateNetwork` being built: [`create`] sets the required fields, the methods the rest.
#[derive(Debug, Clone)]
pub(super) struct NewNetwork(CreateNetwork);

/// Network `name` with id `n`, MTU 1450 and nothing else given.
pub(super) fn create(name: &str, n: u32) -> NewNetwork {
    NewNetwork(CreateNetwork {
        id: id(n),
        name: name.to_owned(),
        mtu: 1450,
        ..Default::default()
    })
}

impl NewNetwork {
    pub(super) fn id(mut self, id: impl Into<String>) -> Self {
        self.0.id = id.into();
        self
    }

    pub(super) fn subnet(mut self, subnet: &str) -> Self {
        self.0.subnet = Some(cidr(subnet));
        self
    }

    pub(super) fn gateway(mut self, gateway: &str) -> Self {
        self.0.gateway = Some(ip(gateway));
        self
    }

    pub(super) fn ip_range(mut self, range: &str) -> Self {
        self.0.ip_range = Some(cidr(range));
        self
    }

    pub(super) fn vni(mut self, vni: u32) -> Self {
        self.0.vni = Some(vni);
        self
    }

    pub(super) fn mtu(mut self, mtu: u32) -> Self {
        self.0.mtu = mtu;
        self
    }

    pub(super) fn peers(mut self, peers: &[&str]) -> Self {
        self.0.peers = peers.iter().map(|p| ip(p)).collect();
        self
    }

    pub(super) fn internal(mut self) -> Self {
        self.0.internal = true;
        self
    }

    /// Encrypted, with `key` as its epoch-0 key (as the proposer chose it).
    pub(super) fn encrypted(mut self, key: Option<vxnet_proto::NetworkKey>) -> Self {
        self.0.encrypted = true;
        self.key(key)
    }

    pub(super) fn key(mut self, key: Option<vxnet_proto::NetworkKey>) -> Self {
        self.0.key = key;
        self
    }

    pub(super) fn labels(mut self, labels: &[(&str, &str)]) -> Self {
        self.0.labels = labels
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        self
    }
}

impl From<NewNetwork> for Command {
    fn from(net: NewNetwork) -> Command {
        wrap(command::Kind::CreateNetwork(net.0))
    }
}

/// A `Connect` being built: [`connect`] sets every field, the methods change some.
#[derive(Debug, Clone)]
pub(super) struct NewEndpoint(Connect);

/// Endpoint `ep` joining network `net` as `name`, from `/run/netns/<name>` on host h1, as
/// eth0, with no explicit address.
pub(super) fn connect(ep: u32, net: u32, name: &str) -> NewEndpoint {
    NewEndpoint(Connect {
        endpoint_id: id(ep),
        network_id: id(net),
        host_id: "h1".to_owned(),
        name: name.to_owned(),
        ipv4: None,
        aliases: vec![],
        ifname: "eth0".to_owned(),
        target: format!("/run/netns/{name}"),
        ports: Vec::new(),
    })
}

impl NewEndpoint {
    pub(super) fn endpoint_id(mut self, id: &str) -> Self {
        self.0.endpoint_id = id.to_owned();
        self
    }

    pub(super) fn name(mut self, name: &str) -> Self {
        self.0.name = name.to_owned();
        self
    }

    pub(super) fn host(mut self, host_id: &str) -> Self {
        self.0.host_id = host_id.to_owned();
        self
    }

    pub(super) fn target(mut self, target: &str) -> Self {
        self.0.target = target.to_owned();
        self
    }

    pub(super) fn ifname(mut self, ifname: &str) -> Self {
        self.0.ifname = ifname.to_owned();
        self
    }

    pub(super) fn ipv4(mut self, addr: u32) -> Self {
        self.0.ipv4 = Some(addr);
        self
    }

    pub(super) fn aliases(mut self, aliases: &[&str]) -> Self {
        self.0.aliases = aliases.iter().map(|&a| a.to_owned()).collect();
        self
    }

    /// `--publish` arguments, parsed as the CLI does.
    pub(super) fn publish(mut self, ports: &[&str]) -> Self {
        self.0.ports = ports
            .iter()
            .map(|p| vxnet_proto::PortMapping::parse(p).expect("a valid --publish"))
            .collect();
        self
    }

    /// Ports as given, unchecked (as a buggy or hostile proposer could send them).
    pub(super) fn raw_ports(mut self, ports: Vec<vxnet_proto::PortMapping>) -> Self {
        self.0.ports = ports;
        self
    }
}

impl From<NewEndpoint> for Command {
    fn from(ep: NewEndpoint) -> Command {
        wrap(command::Kind::Connect(ep.0))
    }
}

/// A machine with hosts h1 and h2.
pub(super) fn machine() -> StateMachine {
    let mut m = StateMachine::new();
    ok(&mut m, add_host("h1", "192.168.1.1"));
    ok(&mut m, add_host("h2", "192.168.1.2"));
    m
}

/// A machine with hosts h1, h2 and network net1 (id 1, 10.0.0.0/24, VNI 256).
pub(super) fn machine_with_net1() -> StateMachine {
    let mut m = machine();
    ok(&mut m, create("net1", 1).subnet("10.0.0.0/24"));
    m
}

/// Applies a command that must succeed.
pub(super) fn ok(m: &mut StateMachine, cmd: impl Into<Command>) -> Applied {
    let cmd = cmd.into();
    match m.apply(&cmd) {
        Ok(applied) => applied,
        Err(refusal) => panic!("refused {cmd:?}: {refusal}"),
    }
}

pub(super) fn created(m: &mut StateMachine, net: NewNetwork) -> Network {
    match ok(m, net) {
        Applied::NetworkCreated(net) => net,
        other => panic!("expected NetworkCreated, got {other:?}"),
    }
}

pub(super) fn connected(m: &mut StateMachine, ep: NewEndpoint) -> Endpoint {
    match ok(m, ep) {
        Applied::Connected(ep) => ep,
        other => panic!("expected Connected, got {other:?}"),
    }
}

/// Applies a command that must be refused, and checks that it changed nothing.
pub(super) fn refuse(m: &mut StateMachine, cmd: impl Into<Command>) -> Refusal {
    let cmd = cmd.into();
    let before = m.clone();
    let before_bytes = m.to_state().encode_to_vec();
    let refusal = m.apply(&cmd).expect_err("command should be refused");
    assert_eq!(*m, before, "a refused command changed the machine");
    assert_eq!(m.to_state().encode_to_vec(), before_bytes);
    refusal
}
