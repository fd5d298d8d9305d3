//! Hosts joining and leaving: `AddHost` (a host joining the cluster, or a daemon bringing its
//! own record up to date) and `RemoveHost` (a host leaving the cluster).

use vxnet_proto::{AddHost, RemoveHost, SetJoinSecret};

use super::{locate, Applied, Refusal, StateMachine};

/// Bytes in the join token's secret.
pub const JOIN_SECRET_LEN: usize = 32;

impl StateMachine {
    /// Adds a host, or replaces the host with the same id; adding an unchanged host changes
    /// nothing.
    pub(super) fn add_host(&mut self, c: &AddHost) -> Result<Applied, Refusal> {
        let host = c
            .host
            .as_ref()
            .ok_or(Refusal::MissingField { field: "host" })?;
        if host.id.is_empty() {
            return Err(Refusal::EmptyHostId);
        }
        let hosts = &mut self.state.hosts;
        match locate(hosts, &host.id) {
            Ok(i) if hosts[i] == *host => {}
            Ok(i) => {
                hosts[i] = host.clone();
                self.versions.touch_hosts();
            }
            Err(i) => {
                hosts.insert(i, host.clone());
                self.versions.touch_hosts();
            }
        }
        Ok(Applied::HostAdded(host.clone()))
    }

    /// Removes a host and its endpoints, in every network: they lived in its namespaces.
    pub(super) fn remove_host(&mut self, c: &RemoveHost) -> Result<Applied, Refusal> {
        let at = locate(&self.state.hosts, &c.host_id).map_err(|_| Refusal::NoSuchHost {
            host_id: c.host_id.clone(),
        })?;
        let host = self.state.hosts.remove(at);
        let gone: Vec<String> = self
            .endpoints
            .iter()
            .filter(|e| e.host_id == host.id)
            .map(|e| e.id.clone())
            .collect();
        let endpoints: Vec<_> = gone
            .iter()
            .filter_map(|id| self.endpoints.remove(id))
            .collect();
        for ep in &endpoints {
            self.versions.touch_network(&ep.network_id);
        }
        self.versions.touch_hosts();
        // Its certificate must not open a cluster connection again (see the module docs).
        let revoked = &mut self.state.revoked_raft_ids;
        if let Err(at) = revoked.binary_search(&host.raft_id) {
            revoked.insert(at, host.raft_id);
        }
        Ok(Applied::HostRemoved { host, endpoints })
    }

    /// Replaces the join token's secret.
    pub(super) fn set_join_secret(&mut self, c: &SetJoinSecret) -> Result<Applied, Refusal> {
        if c.secret.len() != JOIN_SECRET_LEN {
            return Err(Refusal::MissingField {
                field: "secret (32 bytes)",
            });
        }
        if !c.only_if_unset || self.state.join_secret.is_empty() {
            self.state.join_secret = c.secret.clone();
        }
        Ok(Applied::JoinSecretSet)
    }
}

#[cfg(test)]
mod tests;
