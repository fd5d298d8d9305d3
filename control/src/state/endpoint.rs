//! Endpoints: `Connect` (with the choice of an endpoint's address and MAC) and `Disconnect`.
//!
//! A connect is checked in three rounds: its arguments on their own and against the network
//! it names (an address outside *that* subnet), then against the network's other endpoints,
//! then against the other networks the same namespace already joined, then its published ports
//! against every endpoint of the same host. The address is chosen last, from what the second
//! round found in use.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use vxnet_proto::types::MacAddr;
use vxnet_proto::{Connect, Disconnect, Endpoint, Network, PortMapping, Protocol, UpdateEndpoint};

use super::ipam::{self, Ipv4Cidr};
use super::{validate, Addressing, Applied, InvalidState, Refusal, StateMachine};

impl StateMachine {
    pub(super) fn connect(&mut self, c: &Connect) -> Result<Applied, Refusal> {
        validate::id("endpoint", &c.endpoint_id)?;
        if c.name.is_empty() {
            return Err(Refusal::EmptyEndpointName);
        }
        if c.target.is_empty() {
            return Err(Refusal::EmptyTarget);
        }
        validate::ifname(&c.ifname)?;
        let network = self
            .network_by_id(&c.network_id)
            .ok_or_else(|| Refusal::NoSuchNetwork {
                network: c.network_id.clone(),
            })?;
        let addressing = Addressing::of(network)?;
        if let Some(addr) = c.ipv4 {
            validate::endpoint_address(network, addressing.subnet, addr)?;
        }
        if self.host(&c.host_id).is_none() {
            return Err(Refusal::NoSuchHost {
                host_id: c.host_id.clone(),
            });
        }
        if self.endpoints.get(&c.endpoint_id).is_some() {
            return Err(Refusal::EndpointIdInUse {
                id: c.endpoint_id.clone(),
            });
        }

        let used = self.check_network_endpoints(c, network)?;
        self.check_namespace(c, network, addressing.subnet)?;
        self.check_ports(&c.host_id, &c.ports, network, None)?;
        let ipv4 = match c.ipv4 {
            Some(addr) => addr,
            None => ipam::lowest_free_address(
                addressing.subnet,
                addressing.pool,
                network.gateway,
                &used,
            )
            .ok_or_else(|| Refusal::NoFreeAddress {
                network: network.name.clone(),
                range: addressing.pool,
            })?,
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
            ports: c.ports.clone(),
        };
        self.endpoints.insert(endpoint.clone());
        self.versions.touch_network(&endpoint.network_id);
        Ok(Applied::Connected(endpoint))
    }

    /// Renames an endpoint, replaces its aliases or its published ports; the same checks as
    /// at connect, against every endpoint but itself.
    pub(super) fn update_endpoint(&mut self, u: &UpdateEndpoint) -> Result<Applied, Refusal> {
        let ep = self
            .endpoints
            .get(&u.endpoint_id)
            .ok_or_else(|| Refusal::NoSuchEndpoint {
                id: u.endpoint_id.clone(),
            })?;
        let network = self
            .network_by_id(&ep.network_id)
            .ok_or_else(|| InvalidState::unknown_network(ep))?;
        if let Some(name) = &u.name {
            if name.is_empty() {
                return Err(Refusal::EmptyEndpointName);
            }
            let taken = self
                .endpoints(&ep.network_id)
                .into_iter()
                .any(|o| o.id != ep.id && &o.name == name);
            if taken {
                return Err(Refusal::EndpointNameInUse {
                    name: name.clone(),
                    network: network.name.clone(),
                });
            }
        }
        if u.set_ports {
            self.check_ports(&ep.host_id, &u.ports, network, Some(&ep.id))?;
        }
        let mut ep = ep.clone();
        if let Some(name) = &u.name {
            ep.name = name.clone();
        }
        if u.set_aliases {
            ep.aliases = u.aliases.clone();
        }
        if u.set_ports {
            ep.ports = u.ports.clone();
        }
        self.endpoints.replace(ep.clone());
        self.versions.touch_network(&ep.network_id);
        Ok(Applied::Updated(ep))
    }

    pub(super) fn disconnect(&mut self, c: &Disconnect) -> Result<Applied, Refusal> {
        let ep = self
            .endpoints
            .remove(&c.endpoint_id)
            .ok_or_else(|| Refusal::NoSuchEndpoint {
                id: c.endpoint_id.clone(),
            })?;
        self.versions.touch_network(&ep.network_id);
        Ok(Applied::Disconnected(ep))
    }

    /// Refuses a connect that clashes with an endpoint of the same network (same namespace,
    /// name or address); otherwise returns the addresses those endpoints use.
    fn check_network_endpoints(
        &self,
        c: &Connect,
        network: &Network,
    ) -> Result<BTreeSet<u32>, Refusal> {
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
        Ok(used)
    }

    /// Refuses a connect whose namespace already joined another network with the same
    /// interface name or an overlapping subnet: its interfaces and routes would clash.
    /// Published ports: well-formed, not on an `--internal` network, and each host port (per
    /// protocol) taken once per host — by this connect and by every endpoint already there.
    fn check_ports(
        &self,
        host_id: &str,
        ports: &[PortMapping],
        network: &Network,
        except: Option<&str>,
    ) -> Result<(), Refusal> {
        if ports.is_empty() {
            return Ok(());
        }
        if network.internal {
            return Err(Refusal::PublishOnInternal {
                network: network.name.clone(),
            });
        }
        for (i, p) in ports.iter().enumerate() {
            let invalid = |reason| Refusal::InvalidPort {
                mapping: p.to_string(),
                reason,
            };
            if Protocol::try_from(p.protocol).is_err() {
                return Err(invalid("the protocol is tcp or udp"));
            }
            for port in [p.host_port, p.container_port] {
                if !(1..=u32::from(u16::MAX)).contains(&port) {
                    return Err(invalid("ports are 1 to 65535"));
                }
            }
            if ports[..i].iter().any(|q| q.clashes_with(p)) {
                return Err(invalid("the host port is given twice"));
            }
            let on_host = self
                .endpoints
                .iter()
                .filter(|ep| ep.host_id == host_id && Some(ep.id.as_str()) != except);
            for ep in on_host {
                if ep.ports.iter().any(|q| q.clashes_with(p)) {
                    let other = self
                        .network_by_id(&ep.network_id)
                        .ok_or_else(|| InvalidState::unknown_network(ep))?;
                    return Err(Refusal::HostPortInUse {
                        port: format!("{}/{}", p.host_port, p.protocol().name()),
                        endpoint: ep.name.clone(),
                        network: other.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn check_namespace(
        &self,
        c: &Connect,
        network: &Network,
        subnet: Ipv4Cidr,
    ) -> Result<(), Refusal> {
        let same_target = self.endpoints.of_target(&c.host_id, &c.target);
        for ep in same_target {
            let other = self
                .network_by_id(&ep.network_id)
                .ok_or_else(|| InvalidState::unknown_network(ep))?;
            if ep.ifname == c.ifname {
                return Err(Refusal::IfnameInUse {
                    target: c.target.clone(),
                    ifname: c.ifname.clone(),
                    network: other.name.clone(),
                });
            }
            let other_subnet = Addressing::of(other)?.subnet;
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
        Ok(())
    }
}

#[cfg(test)]
mod tests;
