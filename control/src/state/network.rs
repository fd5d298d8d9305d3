//! Networks: `CreateNetwork` (with the choice of a default VNI and subnet) and
//! `RemoveNetwork`, and [`Addressing`], what a stored network's subnet and range say.
//!
//! A new network's arguments are checked first (usage errors), then against the state
//! (conflicts), so a command that is wrong in itself says so whatever the state holds.

use vxnet_proto::types::{FIRST_AUTO_VNI, VNI_MAX};
use vxnet_proto::{CreateNetwork, Network, RemoveNetwork, RotateNetworkKey};

use super::ipam::{self, Ipv4Cidr, DEFAULT_POOL, DEFAULT_SUBNET_PREFIX};
use super::{locate, validate, Applied, InvalidState, Refusal, StateMachine, DRIVER};

/// A stored network's subnet and ip range, parsed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Addressing {
    pub subnet: Ipv4Cidr,
    /// Where automatic endpoint addresses come from: the ip range, else the whole subnet.
    pub pool: Ipv4Cidr,
}

impl Addressing {
    /// A network's addressing as the state stores it. A missing or malformed subnet, or a
    /// malformed range or one reaching outside the subnet, is a broken state: never replaced
    /// by a default, because a default would hand out addresses the network never had.
    pub(super) fn of(network: &Network) -> Result<Self, InvalidState> {
        let broken = |what: String| InvalidState(format!("network {}{what}", network.name));
        let subnet = network
            .subnet
            .as_ref()
            .ok_or_else(|| broken(" has no subnet".to_owned()))?;
        let subnet =
            Ipv4Cidr::from_proto(subnet, "subnet").map_err(|e| broken(format!(": {e}")))?;
        let pool = match &network.ip_range {
            None => subnet,
            Some(range) => {
                let range = Ipv4Cidr::from_proto(range, "ip range")
                    .map_err(|e| broken(format!(": {e}")))?;
                if !subnet.contains_cidr(range) {
                    return Err(broken(format!(
                        ": ip range {range} is outside subnet {subnet}"
                    )));
                }
                range
            }
        };
        Ok(Self { subnet, pool })
    }
}

impl StateMachine {
    pub(super) fn create_network(&mut self, c: &CreateNetwork) -> Result<Applied, Refusal> {
        validate::network_name(&c.name)?;
        validate::id("network", &c.id)?;
        if let Some(vni) = c.vni {
            validate::vni(vni)?;
        }
        validate::mtu(c.mtu)?;
        let (subnet, ip_range) = validate::subnet_and_range(c)?;
        let peers = validate::peers(&c.peers)?;
        let keys = validate::encryption(c)?;

        if self.network_by_name.contains_key(&c.name) {
            return Err(Refusal::NetworkNameInUse {
                name: c.name.clone(),
            });
        }
        let Err(at) = locate(&self.state.networks, &c.id) else {
            return Err(Refusal::NetworkIdInUse { id: c.id.clone() });
        };
        let vni = match c.vni {
            Some(vni) => {
                if let Some(other) = self.network_by_vni.get(&vni) {
                    return Err(Refusal::VniInUse {
                        vni,
                        network: self
                            .network_by_id(other)
                            .map_or_else(|| other.clone(), |n| n.name.clone()),
                    });
                }
                vni
            }
            None => self.lowest_free_vni().ok_or(Refusal::NoFreeVni)?,
        };
        let subnet = match subnet {
            Some(subnet) => subnet,
            None => self.default_subnet()?,
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
            internal: c.internal,
            encrypted: c.encrypted,
            keys,
        };
        self.state.networks.insert(at, network.clone());
        self.versions.touch_network(&network.id);
        self.network_by_name
            .insert(network.name.clone(), network.id.clone());
        self.network_by_vni.insert(vni, network.id.clone());
        Ok(Applied::NetworkCreated(network))
    }

    /// Removes a network without endpoints; its name, VNI and subnet are free again.
    pub(super) fn remove_network(&mut self, c: &RemoveNetwork) -> Result<Applied, Refusal> {
        let at =
            locate(&self.state.networks, &c.network_id).map_err(|_| Refusal::NoSuchNetwork {
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
        self.versions.forget_network(&network.id);
        self.network_by_name.remove(&network.name);
        self.network_by_vni.remove(&network.vni);
        Ok(Applied::NetworkRemoved(network))
    }

    /// Gives an encrypted network a new key: its epoch follows the current one (wrapping at
    /// 256), and the current key stays beside it (oldest first) so that every host accepts
    /// both while they switch; an older one is dropped.
    pub(super) fn rotate_network_key(&mut self, c: &RotateNetworkKey) -> Result<Applied, Refusal> {
        let key = validate::network_key(c.key.as_ref())?;
        let at =
            locate(&self.state.networks, &c.network_id).map_err(|_| Refusal::NoSuchNetwork {
                network: c.network_id.clone(),
            })?;
        let network = &mut self.state.networks[at];
        let Some(current) = network.keys.last().filter(|_| network.encrypted).cloned() else {
            return Err(Refusal::NotEncrypted {
                network: network.name.clone(),
            });
        };
        network.keys = vec![vxnet_proto::NetworkKey {
            epoch: (current.epoch + 1) % 256,
            ..key
        }];
        network.keys.insert(0, current);
        let network = network.clone();
        self.versions.touch_network(&network.id);
        Ok(Applied::KeyRotated(network))
    }

    fn lowest_free_vni(&self) -> Option<u32> {
        lowest_free_number(self.network_by_vni.keys().copied(), FIRST_AUTO_VNI, VNI_MAX)
    }

    /// The lowest default-sized subnet of the default pool that overlaps no network's subnet,
    /// explicit or not.
    fn default_subnet(&self) -> Result<Ipv4Cidr, Refusal> {
        let taken = self
            .state
            .networks
            .iter()
            .map(|n| Addressing::of(n).map(|a| a.subnet))
            .collect::<Result<Vec<_>, _>>()?;
        ipam::lowest_free_subnet(DEFAULT_POOL, DEFAULT_SUBNET_PREFIX, taken)
            .ok_or(Refusal::NoFreeSubnet)
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

#[cfg(test)]
mod tests;
