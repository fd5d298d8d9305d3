//! Checks of a command's arguments on their own: names, ids, interface names, VNIs, MTUs and
//! addresses. None of them looks at the state beyond the network a command names, and each
//! returns the [`Refusal`] a user sees. The limits come from `vxnet_proto::types`, shared
//! with the dataplane.

use std::net::Ipv4Addr;

use vxnet_proto::types::{IFNAME_MAX, MTU_MAX, MTU_MIN, NETWORK_KEY_LEN, VNI_MAX, VNI_MIN};
use vxnet_proto::{CreateNetwork, Network};

use super::ipam::{Ipv4Cidr, MAX_NETWORK_PREFIX};
use super::Refusal;

/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, as Docker's network names.
pub(crate) fn network_name(name: &str) -> Result<(), Refusal> {
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
pub(super) fn id(what: &'static str, id: &str) -> Result<(), Refusal> {
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

pub(super) fn vni(vni: u32) -> Result<(), Refusal> {
    if (VNI_MIN..=VNI_MAX).contains(&vni) {
        Ok(())
    } else {
        Err(Refusal::VniOutOfRange { vni })
    }
}

pub(super) fn mtu(mtu: u32) -> Result<(), Refusal> {
    if (MTU_MIN..=MTU_MAX).contains(&mtu) {
        Ok(())
    } else {
        Err(Refusal::MtuOutOfRange { mtu })
    }
}

/// The subnet and ip range a `network create` asks for, each checked on its own and against
/// each other, and its gateway checked against the subnet. Either is `None` when not given;
/// a gateway or a range without a subnet is refused.
pub(super) fn subnet_and_range(
    c: &CreateNetwork,
) -> Result<(Option<Ipv4Cidr>, Option<Ipv4Cidr>), Refusal> {
    let subnet = match &c.subnet {
        Some(subnet) => {
            let subnet = Ipv4Cidr::from_proto(subnet, "subnet")?;
            if subnet.prefix_len() > MAX_NETWORK_PREFIX {
                return Err(Refusal::SubnetTooSmall { subnet });
            }
            subnet
        }
        // Docker's rule: a gateway or range only means something inside a chosen subnet.
        None if c.gateway.is_some() => return Err(Refusal::NeedsSubnet { what: "gateway" }),
        None if c.ip_range.is_some() => return Err(Refusal::NeedsSubnet { what: "ip range" }),
        None => return Ok((None, None)),
    };
    let ip_range = match &c.ip_range {
        Some(range) => {
            let range = Ipv4Cidr::from_proto(range, "ip range")?;
            if !subnet.contains_cidr(range) {
                return Err(Refusal::IpRangeOutsideSubnet { range, subnet });
            }
            Some(range)
        }
        None => None,
    };
    if let Some(gateway) = c.gateway {
        gateway_in(subnet, gateway)?;
    }
    Ok((Some(subnet), ip_range))
}

fn gateway_in(subnet: Ipv4Cidr, gateway: u32) -> Result<(), Refusal> {
    let role = if !subnet.contains(gateway) {
        return Err(Refusal::GatewayOutsideSubnet {
            gateway: Ipv4Addr::from(gateway),
            subnet,
        });
    } else if gateway == subnet.network() {
        "network address"
    } else if gateway == subnet.broadcast() {
        "broadcast address"
    } else {
        return Ok(());
    };
    Err(Refusal::GatewayNotHostAddress {
        gateway: Ipv4Addr::from(gateway),
        subnet,
        role,
    })
}

/// A network's static peers, each a unicast address, sorted and without duplicates.
pub(super) fn peers(peers: &[u32]) -> Result<Vec<u32>, Refusal> {
    if let Some(&peer) = peers.iter().find(|&&p| !is_unicast(p)) {
        return Err(Refusal::InvalidPeer {
            peer: Ipv4Addr::from(peer),
        });
    }
    let mut peers = peers.to_vec();
    peers.sort_unstable();
    peers.dedup();
    Ok(peers)
}

/// A VTEP must be reachable by unicast: not 0.0.0.0, not multicast, not the limited broadcast.
fn is_unicast(addr: u32) -> bool {
    let addr = Ipv4Addr::from(addr);
    !(addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast())
}

/// The kernel's `dev_valid_name`: 1..=15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
pub(super) fn ifname(ifname: &str) -> Result<(), Refusal> {
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

/// An explicit endpoint address: inside the network's subnet and none of the addresses an
/// endpoint never gets (network, broadcast, gateway). Whether it is free is the caller's check.
pub(super) fn endpoint_address(
    network: &Network,
    subnet: Ipv4Cidr,
    addr: u32,
) -> Result<(), Refusal> {
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

/// An encrypted network's first key and its rules: 32 bytes of epoch 0, and no static peers
/// (a kernel VTEP cannot open sealed datagrams). A plain network keeps no key, whatever the
/// command carries.
pub(super) fn encryption(c: &CreateNetwork) -> Result<Vec<vxnet_proto::NetworkKey>, Refusal> {
    if !c.encrypted {
        return Ok(Vec::new());
    }
    if !c.peers.is_empty() {
        return Err(Refusal::EncryptedWithPeers);
    }
    if c.key.as_ref().is_some_and(|k| k.epoch != 0) {
        return Err(Refusal::MalformedNetworkKey);
    }
    Ok(vec![network_key(c.key.as_ref())?])
}

/// A proposer's network key: present, 32 bytes.
pub(super) fn network_key(
    key: Option<&vxnet_proto::NetworkKey>,
) -> Result<vxnet_proto::NetworkKey, Refusal> {
    let key = key.ok_or(Refusal::MissingField {
        field: "network key",
    })?;
    if key.secret.len() != NETWORK_KEY_LEN {
        return Err(Refusal::MalformedNetworkKey);
    }
    Ok(key.clone())
}
