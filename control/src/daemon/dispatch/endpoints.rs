//! The endpoint requests of the control thread: `connect` (with its intent, its proposal and
//! the plumbing after), `disconnect`, `update` (names, aliases, published ports), and the
//! checks and lookups they share. A second `impl Daemon` beside the rest of the dispatcher.

use std::net::Ipv4Addr;
use std::path::Path;

use vxnet_dataplane::host::{next_free_ifname, publish, resolve_target, Attachment};
use vxnet_proto::types::MacAddr;
use vxnet_proto::{
    command, Connect, Disconnect, Endpoint, EndpointUpdateRequest, Network, NetworkConnectRequest,
    NetworkDisconnectRequest, PortMapping, Response, UpdateEndpoint,
};

use super::{Daemon, Reply};
use crate::daemon::error::RequestError;
use crate::program::host_side;
use crate::state::Applied;
use crate::sys;

impl Daemon {
    /// Refuses a host port that some program on this host holds, before anything is
    /// proposed. Ports vxnet itself publishes here are left to the state machine, whose
    /// refusal names the endpoint that has them.
    pub(super) fn check_host_ports(&self, ports: &[PortMapping]) -> Result<(), RequestError> {
        let state = self.state();
        let ours = state.endpoints_on_host(&self.host_id);
        for p in ports {
            if ours
                .iter()
                .any(|e| e.ports.iter().any(|q| q.clashes_with(p)))
            {
                continue;
            }
            let Some((proto, ip, port)) = host_side(p) else {
                continue; // malformed: the state machine says why
            };
            publish::probe(proto, ip, port).map_err(|source| RequestError::HostPortBusy {
                port: format!("{port}/{}", proto.name()),
                source,
            })?;
        }
        Ok(())
    }

    pub(super) fn connect(&mut self, r: NetworkConnectRequest) -> Reply {
        let net = self.network(&r.network)?;
        // A hand-over's namespace may not exist yet (Docker's sandbox key, at Join): the
        // interface waits in this namespace and the runtime moves it there.
        let target = if r.hand_over {
            std::path::PathBuf::from(&r.target)
        } else {
            resolve_target(&r.target)?
        };
        let ifname = match r.ifname {
            Some(name) => name,
            None => next_free_ifname(&target)?,
        };
        let name = r.name.unwrap_or_else(|| default_endpoint_name(&r.target));
        self.check_host_ports(&r.ports)?;
        let id = match r.endpoint_id {
            Some(id) => id,
            None => sys::random_id().map_err(RequestError::Random)?,
        };
        // On disk before the proposal: whatever happens from here on, a restart finds it.
        self.intents
            .record(&id, &net.id, &target)
            .map_err(RequestError::Intent)?;
        let proposed = self.apply(command::Kind::Connect(Connect {
            endpoint_id: id.clone(),
            network_id: net.id.clone(),
            host_id: self.host_id.clone(),
            name,
            ipv4: r.ipv4,
            aliases: r.aliases,
            ifname,
            target: target.to_string_lossy().into_owned(),
            ports: r.ports,
        }));
        let applied = match proposed {
            // The entry may still commit later: the intent stays, and settles it then.
            Err(e) if e.is_timeout() => return Err(e.into()),
            Err(e) => {
                self.intents.clear(&id);
                return Err(e.into());
            }
            Ok(applied) => applied,
        };
        let Applied::Connected(ep) = applied else {
            self.intents.clear(&id);
            return Err(RequestError::AppliedAsOther("connect"));
        };
        // Committed, no veth yet: where the lab's crash test kills the daemon.
        sys::crash_point("connect-committed");
        if let Err(e) = self.plumb(&net, &ep, &target, r.hand_over) {
            // Give the address back: a failed connect leaves nothing behind.
            self.undo_connect(&ep);
            return Err(e);
        }
        self.intents.clear(&ep.id);
        tracing::info!(network = %net.name, endpoint = %ep.name, ip = %Ipv4Addr::from(ep.ipv4), "connected");
        Ok(Response {
            endpoint: Some(ep),
            ..Default::default()
        })
    }

    /// Wires a committed endpoint into this host's sandbox of its network, setting that
    /// sandbox up first if this is the network's first local endpoint.
    pub(super) fn plumb(
        &mut self,
        net: &Network,
        ep: &Endpoint,
        target: &Path,
        hand_over: bool,
    ) -> Result<(), RequestError> {
        if let Some(failure) = self
            .reconcile_all()
            .into_iter()
            .find(|f| f.network_id == net.id)
        {
            return Err(failure.error.into());
        }
        let mac = MacAddr::from_slice(&ep.mac)
            .ok_or_else(|| RequestError::MalformedMac(ep.name.clone()))?;
        self.dataplane.attach(&Attachment {
            network_id: net.id.clone(),
            endpoint_id: ep.id.clone(),
            target: target.to_path_buf(),
            ifname: ep.ifname.clone(),
            mac,
            ipv4: Ipv4Addr::from(ep.ipv4),
            hand_over,
        })?;
        Ok(())
    }

    pub(super) fn disconnect(&mut self, r: NetworkDisconnectRequest) -> Reply {
        let net = self.network(&r.network)?;
        let found = if r.endpoint_id.is_empty() {
            self.find_endpoint(&net, &r.target)
        } else {
            let state = self.state();
            state
                .endpoint(&r.endpoint_id)
                .filter(|ep| ep.network_id == net.id && ep.host_id == self.host_id)
                .cloned()
        };
        let ep = match found {
            Some(ep) => ep,
            // By id (Docker's DeleteEndpoint): already gone is what was asked.
            None if !r.endpoint_id.is_empty() => return Ok(Response::default()),
            None => {
                return Err(RequestError::NotConnected {
                    target: r.target.clone(),
                    network: net.name.clone(),
                })
            }
        };
        // Committed first: without a quorum the disconnect fails and the container keeps its
        // interface, as the state still lists it. Once committed, the veth goes here (and, should
        // that fail, at the next reconcile, which removes veths no endpoint owns).
        self.apply(command::Kind::Disconnect(Disconnect {
            endpoint_id: ep.id.clone(),
        }))?;
        if let Err(e) = self.dataplane.detach(&net.id, &ep.id) {
            tracing::warn!(endpoint = %ep.name, error = %e, "cannot delete the veth yet; the next reconcile will");
        }
        self.reconcile_all();
        tracing::info!(network = %net.name, endpoint = %ep.name, "disconnected");
        Ok(Response {
            endpoint: Some(ep),
            ..Default::default()
        })
    }

    /// Renames a local endpoint, replaces its aliases or its published ports; the ports are
    /// programmed before the answer.
    pub(super) fn update_endpoint(&mut self, r: EndpointUpdateRequest) -> Reply {
        let net = self.network(&r.network)?;
        let ep = self
            .state()
            .endpoint(&r.endpoint_id)
            .filter(|ep| ep.network_id == net.id && ep.host_id == self.host_id)
            .cloned()
            .ok_or_else(|| RequestError::NotConnected {
                target: r.endpoint_id.clone(),
                network: net.name.clone(),
            })?;
        if r.set_ports {
            let new: Vec<PortMapping> = r
                .ports
                .iter()
                .filter(|p| !ep.ports.iter().any(|q| q.clashes_with(p)))
                .copied()
                .collect();
            self.check_host_ports(&new)?;
        }
        let applied = self.apply(command::Kind::UpdateEndpoint(UpdateEndpoint {
            endpoint_id: ep.id.clone(),
            name: r.name,
            set_aliases: r.set_aliases,
            aliases: r.aliases,
            set_ports: r.set_ports,
            ports: r.ports,
        }))?;
        let Applied::Updated(ep) = applied else {
            return Err(RequestError::AppliedAsOther("update"));
        };
        self.reconcile_all();
        Ok(Response {
            endpoint: Some(ep),
            ..Default::default()
        })
    }

    /// The local endpoint of `net` that `target` names: by endpoint name, or by namespace.
    pub(super) fn find_endpoint(&self, net: &Network, target: &str) -> Option<Endpoint> {
        let state = self.state();
        // Only this host's endpoints: another host's container is disconnected there.
        if let Some(ep) = state
            .endpoint_by_name(&net.id, target)
            .filter(|ep| ep.host_id == self.host_id)
        {
            return Some(ep.clone());
        }
        let path = resolve_target(target).ok()?;
        state
            .endpoint_by_target(&net.id, &self.host_id, &path.to_string_lossy())
            .cloned()
    }
}

/// The default endpoint name (README, "The command line"): the namespace's name, or
/// `pid:PID`; for a path, its last component.
pub(super) fn default_endpoint_name(target: &str) -> String {
    if target.starts_with("pid:") || !target.starts_with('/') {
        return target.to_string();
    }
    match Path::new(target).file_name().and_then(|n| n.to_str()) {
        Some(name) if name != "net" => name.to_string(),
        _ => target.to_string(),
    }
}
