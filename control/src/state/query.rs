//! Read-only lookups of hosts, networks and endpoints, for the daemon and for the command
//! handlers alike. Every list comes back in a stable order (stated per method), never in
//! the order of some hash map.

use vxnet_proto::{Endpoint, Host, Network};

use super::{locate, ById, Refusal, StateMachine};

impl StateMachine {
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
        find(&self.state.networks, id)
    }

    /// Every network, sorted by id.
    pub fn networks_by_id(&self) -> &[Network] {
        &self.state.networks
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
        self.endpoints.of_network(network_id).collect()
    }

    /// The endpoints in sandboxes on one host, in every network, sorted by endpoint id.
    pub fn endpoints_on_host(&self, host_id: &str) -> Vec<&Endpoint> {
        self.endpoints
            .iter()
            .filter(|ep| ep.host_id == host_id)
            .collect()
    }

    /// An endpoint by its exact id.
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.get(id)
    }

    /// The endpoint joining a target namespace to a network. A target path names a namespace
    /// only on its own host, hence the host id.
    pub fn endpoint_by_target(
        &self,
        network_id: &str,
        host_id: &str,
        target: &str,
    ) -> Option<&Endpoint> {
        self.endpoints
            .of_target(host_id, target)
            .find(|ep| ep.network_id == network_id)
    }

    /// The endpoint of a network with this name (names are unique within a network).
    pub fn endpoint_by_name(&self, network_id: &str, name: &str) -> Option<&Endpoint> {
        self.endpoints
            .of_network(network_id)
            .find(|ep| ep.name == name)
    }

    /// A host by its exact id.
    pub fn host(&self, id: &str) -> Option<&Host> {
        find(&self.state.hosts, id)
    }

    /// Every host, sorted by id.
    pub fn hosts(&self) -> &[Host] {
        &self.state.hosts
    }
}

fn find<'a, T: ById>(items: &'a [T], id: &str) -> Option<&'a T> {
    locate(items, id).ok().map(|i| &items[i])
}

#[cfg(test)]
mod tests;
