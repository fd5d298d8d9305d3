//! Hosts joining and leaving: `AddHost` (a host joining the cluster, or a daemon bringing its
//! own record up to date) and `RemoveHost` (a host leaving the cluster).

use vxnet_proto::{AddHost, RemoveHost};

use super::{locate, Applied, Refusal, StateMachine};

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
            Ok(i) => hosts[i] = host.clone(),
            Err(i) => hosts.insert(i, host.clone()),
        }
        Ok(Applied::HostAdded(host.clone()))
    }

    /// Removes a host and its endpoints, in every network: they lived in its namespaces.
    pub(super) fn remove_host(&mut self, c: &RemoveHost) -> Result<Applied, Refusal> {
        let at = locate(&self.state.hosts, &c.host_id).map_err(|_| Refusal::NoSuchHost {
            host_id: c.host_id.clone(),
        })?;
        let host = self.state.hosts.remove(at);
        let (endpoints, kept) = std::mem::take(&mut self.state.endpoints)
            .into_iter()
            .partition(|e| e.host_id == host.id);
        self.state.endpoints = kept;
        Ok(Applied::HostRemoved { host, endpoints })
    }
}

#[cfg(test)]
mod tests;
