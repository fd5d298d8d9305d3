//! What each call of Docker's network and IPAM plugin protocol does, in terms of the requests the
//! CLI sends ([`Vxnet`]) and of what the calling Docker engine knows ([`Engine`]). No sockets
//! here: the HTTP side is in `http`, and tests drive the driver with fakes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use vxnet_proto::types::MacAddr;
use vxnet_proto::{
    request, EndpointUpdateRequest, ErrorCode, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkInspectRequest, NetworkListRequest, NetworkView, PortMapping,
    Protocol, Response,
};

use super::wire;
use crate::state::ipam::{self, DEFAULT_POOL, DEFAULT_SUBNET_PREFIX};
use crate::state::Ipv4Cidr;

/// Docker's name for the address-type option of a gateway's `RequestAddress`.
const GATEWAY_REQUEST: &str = "com.docker.network.gateway";
/// Docker's key for `-p` in `ProgramExternalConnectivity` options.
const PORTMAP_OPTION: &str = "com.docker.network.portmap";
/// The interface Docker moves into the container is renamed `eth<N>`.
const DST_PREFIX: &str = "eth";

/// The daemon, as the driver uses it: one API request, its answer.
pub trait Vxnet: Send + Sync {
    fn call(&self, kind: request::Kind) -> impl std::future::Future<Output = Response> + Send;
}

/// A Docker network as its engine describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerNetwork {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    /// `-o encrypted`: the vxnet network is made `--encrypted`.
    pub encrypted: bool,
}

/// The Docker engine that calls the driver, asked over its API.
pub trait Engine: Send + Sync {
    fn network(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<DockerNetwork, String>> + Send;

    /// The name and aliases of the container whose endpoint on network `network_id` is
    /// `endpoint_id`; `None` while the engine does not show it yet.
    fn endpoint_names(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> impl std::future::Future<Output = Result<Option<(String, Vec<String>)>, String>> + Send;
}

/// How long after `Join` the driver looks for the container's name.
const NAME_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// An endpoint between `CreateEndpoint` and `Join`: Docker gives the container's namespace
/// only at `Join`, so the vxnet endpoint is made then.
#[derive(Debug, Clone)]
struct Pending {
    network: String,
    address: Ipv4Addr,
    gateway: Option<Ipv4Addr>,
}

/// The driver: stateless but for the endpoints between `CreateEndpoint` and `Join`.
pub struct Driver<V, E> {
    vxnet: V,
    engine: E,
    pending: Mutex<BTreeMap<String, Pending>>,
    /// The ports each endpoint publishes, with the host ports vxnet chose for `-p PORT`: fixed
    /// at the first call that brings them, so that a repeated `ProgramExternalConnectivity`
    /// publishes the same ones.
    ports: Mutex<BTreeMap<String, Vec<PortMapping>>>,
}

/// An answer: HTTP status and JSON body.
pub type Answer = (u16, Value);

fn ok(body: Value) -> Answer {
    (200, body)
}

fn fail(message: impl AsRef<str>) -> Answer {
    (200, wire::error(message.as_ref()))
}

impl<V: Vxnet, E: Engine> Driver<V, E> {
    pub fn new(vxnet: V, engine: E) -> Self {
        Driver {
            vxnet,
            engine,
            pending: Mutex::new(BTreeMap::new()),
            ports: Mutex::new(BTreeMap::new()),
        }
    }

    /// Answers `POST /<method>` with `body`. Unknown methods get 404, malformed bodies an
    /// `Err` naming the method.
    pub async fn handle(&self, method: &str, body: &[u8]) -> Answer {
        match method {
            "Plugin.Activate" => ok(json!({ "Implements": ["NetworkDriver", "IpamDriver"] })),
            "NetworkDriver.GetCapabilities" => {
                ok(json!({ "Scope": "local", "ConnectivityScope": "global" }))
            }
            "NetworkDriver.CreateNetwork" => {
                parsed(body, method, |r| async move { self.create_network(r) }).await
            }
            "NetworkDriver.DeleteNetwork"
            | "NetworkDriver.DiscoverNew"
            | "NetworkDriver.DiscoverDelete"
            | "NetworkDriver.Leave"
            | "IpamDriver.ReleasePool"
            | "IpamDriver.ReleaseAddress" => ok(json!({})),
            "NetworkDriver.CreateEndpoint" => {
                parsed(body, method, |r| self.create_endpoint(r)).await
            }
            "NetworkDriver.Join" => parsed(body, method, |r| self.join(r)).await,
            "NetworkDriver.DeleteEndpoint" => {
                parsed(body, method, |r| self.delete_endpoint(r)).await
            }
            // Docker reads a remote driver's port map from here but cannot use it (it expects
            // its own Go types where JSON gives maps): `vxnet network inspect` shows the ports.
            "NetworkDriver.EndpointOperInfo" => ok(json!({ "Value": {} })),
            "NetworkDriver.ProgramExternalConnectivity" => {
                parsed(body, method, |r| self.publish(r)).await
            }
            "NetworkDriver.RevokeExternalConnectivity" => {
                parsed(body, method, |r| self.unpublish(r)).await
            }
            "IpamDriver.GetCapabilities" => ok(json!({ "RequiresMACAddress": false })),
            "IpamDriver.GetDefaultAddressSpaces" => ok(json!({
                "LocalDefaultAddressSpace": "vxnet",
                "GlobalDefaultAddressSpace": "vxnet",
            })),
            "IpamDriver.RequestPool" => parsed(body, method, |r| self.request_pool(r)).await,
            "IpamDriver.RequestAddress" => parsed(body, method, |r| self.request_address(r)).await,
            _ => (404, wire::error(&format!("vxnet has no method {method}"))),
        }
    }

    /// A pool is a subnet: the one asked for, else the lowest /24 of vxnet's default pool that
    /// no vxnet network uses. IPv4 only.
    async fn request_pool(&self, r: wire::RequestPool) -> Answer {
        if r.v6 {
            return fail("vxnet networks are IPv4 only; create the network without --ipv6");
        }
        if !r.sub_pool.is_empty() {
            return fail("vxnet takes no --ip-range through Docker; give --subnet only");
        }
        let subnet = if r.pool.is_empty() {
            let taken = match self.subnets().await {
                Ok(taken) => taken,
                Err(e) => return fail(strip_code(&e)),
            };
            match ipam::lowest_free_subnet(DEFAULT_POOL, DEFAULT_SUBNET_PREFIX, taken) {
                Some(s) => s,
                None => {
                    return fail(format!(
                        "no free /{DEFAULT_SUBNET_PREFIX} left in {DEFAULT_POOL}; pass --subnet"
                    ))
                }
            }
        } else {
            match Ipv4Cidr::parse_as(&r.pool, "subnet") {
                Ok(s) => s,
                Err(e) => return fail(e.to_string()),
            }
        };
        let pool = subnet.to_string();
        ok(json!({ "PoolID": pool, "Pool": pool, "Data": {} }))
    }

    /// The gateway: the address asked for, else the pool's first host address (vxnet's
    /// default). An endpoint's address: the one asked for (`--ip`), else the lowest address
    /// that no vxnet network on this subnet uses — the state machine checks it again when the
    /// endpoint is made, so a race with another host ends in a clear refusal, never a
    /// duplicate.
    async fn request_address(&self, r: wire::RequestAddress) -> Answer {
        let subnet = match Ipv4Cidr::parse_as(&r.pool_id, "pool") {
            Ok(s) => s,
            Err(e) => return fail(format!("unknown pool {:?}: {e}", r.pool_id)),
        };
        let len = subnet.prefix_len();
        if !r.address.is_empty() {
            return ok(json!({ "Address": format!("{}/{len}", r.address), "Data": {} }));
        }
        let gateway = subnet.first_host().unwrap_or(subnet.network());
        if r.options.get("RequestAddressType").map(String::as_str) == Some(GATEWAY_REQUEST) {
            return ok(
                json!({ "Address": format!("{}/{len}", Ipv4Addr::from(gateway)), "Data": {} }),
            );
        }
        let views = match self.views(Vec::new()).await {
            Ok(v) => v,
            Err(e) => return fail(strip_code(&e)),
        };
        let mut used = BTreeSet::new();
        let mut gateways = BTreeSet::from([gateway]);
        for view in &views {
            let Some(net) = &view.network else { continue };
            if net
                .subnet
                .as_ref()
                .and_then(|c| Ipv4Cidr::from_proto(c, "subnet").ok())
                != Some(subnet)
            {
                continue;
            }
            gateways.insert(net.gateway);
            used.extend(view.endpoints.iter().map(|e| e.ipv4));
        }
        used.extend(gateways.iter().copied());
        match ipam::lowest_free_address(subnet, subnet, gateway, &used) {
            Some(a) => ok(json!({ "Address": format!("{}/{len}", Ipv4Addr::from(a)), "Data": {} })),
            None => fail(format!("no free address left in {subnet}")),
        }
    }

    fn create_network(&self, r: wire::CreateNetwork) -> Answer {
        if !r.ipv6_data.is_empty() {
            return fail("vxnet networks are IPv4 only; create the network without --ipv6");
        }
        match r.ipv4_data.as_slice() {
            [_] => ok(json!({})),
            [] => fail("the network has no IPv4 pool; create it with --ipam-driver vxnet"),
            _ => fail("vxnet networks have one subnet; give one --subnet"),
        }
    }

    /// Makes sure the cluster-wide vxnet network of the same name exists with this subnet
    /// (creating it on first use), and remembers the endpoint for `Join`.
    async fn create_endpoint(&self, r: wire::CreateEndpoint) -> Answer {
        let docker = match self.engine.network(&r.network_id).await {
            Ok(n) => n,
            Err(e) => {
                return fail(format!(
                    "cannot ask Docker about network {}: {e}",
                    r.network_id
                ))
            }
        };
        if let Err(e) = self.ports_for(&r.endpoint_id, &r.options) {
            return fail(e);
        }
        let interface = r.interface.unwrap_or_default();
        let Some(address) = interface
            .address
            .split('/')
            .next()
            .and_then(|a| a.parse::<Ipv4Addr>().ok())
        else {
            return fail(
                "the endpoint has no IPv4 address; create the network with --ipam-driver vxnet",
            );
        };
        let net = match self.ensure_network(&docker).await {
            Ok(n) => n,
            Err(e) => return fail(e),
        };
        let gateway = (!net.internal).then(|| Ipv4Addr::from(net.gateway));
        self.pending_endpoints().insert(
            r.endpoint_id.clone(),
            Pending {
                network: net.name.clone(),
                address,
                gateway,
            },
        );
        let mac = if interface.mac_address.is_empty() {
            MacAddr::for_ipv4(address).to_string()
        } else {
            // Docker made it; the interface carries it, and vxnet's rule must agree.
            if interface.mac_address.to_lowercase() != MacAddr::for_ipv4(address).to_string() {
                return fail(format!(
                    "vxnet endpoints have the MAC {} (from their address); leave --mac-address out",
                    MacAddr::for_ipv4(address)
                ));
            }
            return ok(json!({ "Interface": {} }));
        };
        ok(json!({ "Interface": { "MacAddress": mac } }))
    }

    async fn join(&self, r: wire::Join) -> Answer {
        let Some(p) = self.pending_endpoints().get(&r.endpoint_id).cloned() else {
            return fail("vxnet does not know this endpoint (was the daemon restarted since it was created?); start the container again");
        };
        let ifname = hand_over_name(&r.endpoint_id);
        let answer = self
            .vxnet
            .call(request::Kind::NetworkConnect(NetworkConnectRequest {
                network: p.network.clone(),
                target: r.sandbox_key.clone(),
                ipv4: Some(u32::from(p.address)),
                ifname: Some(ifname.clone()),
                name: Some(r.endpoint_id.chars().take(12).collect()),
                endpoint_id: Some(r.endpoint_id.clone()),
                hand_over: true,
                ..Default::default()
            }))
            .await;
        if let Err(e) = checked(answer) {
            return fail(strip_code(&e));
        }
        self.pending_endpoints().remove(&r.endpoint_id);
        let response = wire::JoinResponse {
            interface_name: wire::InterfaceName {
                src_name: ifname,
                dst_prefix: DST_PREFIX.to_string(),
            },
            gateway: p.gateway.map(|g| g.to_string()).unwrap_or_default(),
            disable_gateway_service: false,
        };
        ok(serde_json::to_value(response).unwrap_or_default())
    }

    async fn delete_endpoint(&self, r: wire::EndpointRef) -> Answer {
        self.pending_endpoints().remove(&r.endpoint_id);
        self.ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&r.endpoint_id);
        let docker = match self.engine.network(&r.network_id).await {
            Ok(n) => n,
            Err(e) => {
                return fail(format!(
                    "cannot ask Docker about network {}: {e}",
                    r.network_id
                ))
            }
        };
        let answer = self
            .vxnet
            .call(request::Kind::NetworkDisconnect(NetworkDisconnectRequest {
                network: docker.name,
                endpoint_id: r.endpoint_id,
                ..Default::default()
            }))
            .await;
        match checked(answer) {
            Ok(_) => ok(json!({})),
            // The network itself is gone (removed with `vxnet network rm`): so is the endpoint.
            Err(e) if e.starts_with("NOT_FOUND") => ok(json!({})),
            Err(e) => fail(strip_code(&e)),
        }
    }

    /// After a successful `Join`: names the endpoint like its container (and its aliases, as
    /// `--network-alias` and Docker give them), once the engine shows which container it is.
    /// Until then, and if the name is taken on the network (container names are unique per
    /// engine, not per cluster), the endpoint keeps the first 12 digits of its id.
    pub async fn name_endpoint(&self, network_id: &str, endpoint_id: &str) {
        let deadline = tokio::time::Instant::now() + NAME_WAIT;
        let names = loop {
            match self.engine.endpoint_names(network_id, endpoint_id).await {
                Ok(Some(names)) => break names,
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(endpoint = endpoint_id, error = %e, "cannot learn the container's name from Docker");
                    return;
                }
            }
        };
        let Ok(docker) = self.engine.network(network_id).await else {
            return;
        };
        let (name, aliases) = names;
        let answer = self
            .vxnet
            .call(request::Kind::EndpointUpdate(EndpointUpdateRequest {
                network: docker.name,
                endpoint_id: endpoint_id.to_string(),
                name: Some(name.clone()),
                set_aliases: true,
                aliases,
                ..Default::default()
            }))
            .await;
        if let Err(e) = checked(answer) {
            tracing::warn!(endpoint = endpoint_id, %name, error = %e, "cannot name the endpoint like its container");
        }
    }

    /// `-p`: the ports Docker asks for become the endpoint's published ports.
    async fn publish(&self, r: wire::ProgramExternalConnectivity) -> Answer {
        match self.ports_for(&r.endpoint_id, &r.options) {
            Ok(ports) => self.set_ports(&r.network_id, &r.endpoint_id, ports).await,
            Err(e) => fail(e),
        }
    }

    /// The ports endpoint `endpoint_id` publishes: as fixed earlier, else from `options`
    /// (Docker's port map), fixed now.
    fn ports_for(
        &self,
        endpoint_id: &str,
        options: &BTreeMap<String, Value>,
    ) -> Result<Vec<PortMapping>, String> {
        let mut fixed = self
            .ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ports) = fixed.get(endpoint_id) {
            return Ok(ports.clone());
        }
        let bindings: Vec<wire::PortBinding> = match options.get(PORTMAP_OPTION) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| format!("malformed {PORTMAP_OPTION}: {e}"))?,
        };
        let ports = bindings
            .iter()
            .map(port_mapping)
            .collect::<Result<Vec<_>, _>>()?;
        fixed.insert(endpoint_id.to_string(), ports.clone());
        Ok(ports)
    }

    async fn unpublish(&self, r: wire::EndpointRef) -> Answer {
        match self
            .set_ports(&r.network_id, &r.endpoint_id, Vec::new())
            .await
        {
            (_, v) if v.get("Err").is_some() => ok(json!({})),
            answer => answer,
        }
    }

    async fn set_ports(
        &self,
        network_id: &str,
        endpoint_id: &str,
        ports: Vec<PortMapping>,
    ) -> Answer {
        let docker = match self.engine.network(network_id).await {
            Ok(n) => n,
            Err(e) => return fail(format!("cannot ask Docker about network {network_id}: {e}")),
        };
        let answer = self
            .vxnet
            .call(request::Kind::EndpointUpdate(EndpointUpdateRequest {
                network: docker.name,
                endpoint_id: endpoint_id.to_string(),
                set_ports: true,
                ports,
                ..Default::default()
            }))
            .await;
        match checked(answer) {
            Ok(_) => ok(json!({})),
            Err(e) => fail(strip_code(&e)),
        }
    }

    /// The vxnet network `docker` stands for, created if it is not there yet.
    async fn ensure_network(&self, docker: &DockerNetwork) -> Result<vxnet_proto::Network, String> {
        let Some(subnet) = docker.subnet.as_deref() else {
            return Err(format!(
                "Docker network {} has no subnet; create it with --ipam-driver vxnet",
                docker.name
            ));
        };
        let subnet = Ipv4Cidr::parse_as(subnet, "subnet").map_err(|e| e.to_string())?;
        for attempt in 0..2 {
            match self.views(vec![docker.name.clone()]).await {
                Ok(views) => {
                    let net = views
                        .into_iter()
                        .find_map(|v| v.network)
                        .ok_or("inspect returned no network")?;
                    let theirs = net
                        .subnet
                        .as_ref()
                        .and_then(|c| Ipv4Cidr::from_proto(c, "subnet").ok());
                    if theirs != Some(subnet) {
                        let theirs = theirs.map_or_else(|| "?".to_string(), |s| s.to_string());
                        return Err(format!(
                            "vxnet network {} exists with subnet {theirs}; create the Docker \
                             network with --subnet {theirs}",
                            docker.name
                        ));
                    }
                    if net.encrypted != docker.encrypted {
                        return Err(format!(
                            "vxnet network {} exists {}; create the Docker network {}",
                            docker.name,
                            if net.encrypted {
                                "encrypted"
                            } else {
                                "unencrypted"
                            },
                            if net.encrypted {
                                "with -o encrypted"
                            } else {
                                "without -o encrypted"
                            },
                        ));
                    }
                    return Ok(net);
                }
                Err(e) if attempt == 0 && e.starts_with("NOT_FOUND") => {}
                Err(e) => return Err(strip_code(&e)),
            }
            let gateway = docker
                .gateway
                .as_deref()
                .and_then(|g| g.split('/').next())
                .and_then(|g| g.parse::<Ipv4Addr>().ok());
            let created = self
                .vxnet
                .call(request::Kind::NetworkCreate(NetworkCreateRequest {
                    name: docker.name.clone(),
                    subnet: Some(subnet.to_proto()),
                    gateway: gateway.map(u32::from),
                    internal: docker.internal,
                    encrypted: docker.encrypted,
                    ..Default::default()
                }))
                .await;
            // Another host may have made it in the meantime: look again either way.
            if let Err(e) = checked(created) {
                if !e.starts_with("CONFLICT") {
                    return Err(strip_code(&e));
                }
            }
        }
        Err(format!("vxnet network {} could not be made", docker.name))
    }

    async fn subnets(&self) -> Result<Vec<Ipv4Cidr>, String> {
        let views = self.views(Vec::new()).await?;
        Ok(views
            .iter()
            .filter_map(|v| v.network.as_ref()?.subnet.as_ref())
            .filter_map(|c| Ipv4Cidr::from_proto(c, "subnet").ok())
            .collect())
    }

    /// Every network (`names` empty) or the named ones. Errors start with their code.
    async fn views(&self, names: Vec<String>) -> Result<Vec<NetworkView>, String> {
        let kind = if names.is_empty() {
            request::Kind::NetworkList(NetworkListRequest {})
        } else {
            request::Kind::NetworkInspect(NetworkInspectRequest { networks: names })
        };
        checked(self.vxnet.call(kind).await).map(|r| r.networks)
    }

    fn pending_endpoints(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A Docker port binding as a vxnet published port. Docker gives host port 0 for `-p PORT`
/// ("any"), which vxnet does not choose for the user.
fn port_mapping(b: &wire::PortBinding) -> Result<PortMapping, String> {
    let protocol = match b.proto {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        other => {
            return Err(format!(
                "vxnet publishes TCP and UDP, not IP protocol {other}"
            ))
        }
    };

    let host_ip = match b.host_ip.as_str() {
        "" => Ipv4Addr::UNSPECIFIED,
        ip => ip
            .parse()
            .map_err(|_| format!("vxnet publishes on IPv4 host addresses, not {ip}"))?,
    };
    // `-p PORT`: any free host port, as Docker's own port mapper does; the kernel's choice of
    // an ephemeral port, held by the daemon once the update is applied.
    let host_port = match b.host_port {
        0 => free_port(protocol, host_ip)?,
        given => given,
    };
    let mut p = PortMapping {
        host_ip: u32::from(host_ip),
        host_port: u32::from(host_port),
        container_port: u32::from(b.port),
        ..Default::default()
    };
    p.set_protocol(protocol);
    Ok(p)
}

/// A port of `host_ip` that nothing holds for `protocol` right now.
fn free_port(protocol: Protocol, host_ip: Ipv4Addr) -> Result<u16, String> {
    let at = std::net::SocketAddrV4::new(host_ip, 0);
    let port = match protocol {
        Protocol::Tcp => std::net::TcpListener::bind(at).and_then(|s| s.local_addr()),
        Protocol::Udp => std::net::UdpSocket::bind(at).and_then(|s| s.local_addr()),
    };
    port.map(|a| a.port())
        .map_err(|e| format!("cannot find a free host port on {host_ip}: {e}"))
}

/// The name the container end waits under in the daemon's namespace: unique per endpoint,
/// within IFNAMSIZ.
fn hand_over_name(endpoint_id: &str) -> String {
    format!("vxd{}", &endpoint_id[..11.min(endpoint_id.len())])
}

/// Answers with `handle` of the request in `body`, or with what is wrong with the body.
async fn parsed<R, F, Fut>(body: &[u8], method: &str, handle: F) -> Answer
where
    R: DeserializeOwned,
    F: FnOnce(R) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    match parse(body, method) {
        Ok(r) => handle(r).await,
        Err(answer) => answer,
    }
}

fn parse<R: DeserializeOwned>(body: &[u8], method: &str) -> Result<R, Answer> {
    serde_json::from_slice(body).map_err(|e| fail(format!("malformed {method} request: {e}")))
}

/// A response's error as `CODE: message`, so callers can act on the code.
fn checked(r: Response) -> Result<Response, String> {
    if r.error.is_empty() {
        return Ok(r);
    }
    let code = ErrorCode::try_from(r.code).unwrap_or(ErrorCode::Internal);
    Err(format!(
        "{}: {}",
        code.as_str_name().trim_start_matches("ERROR_CODE_"),
        r.error
    ))
}

fn strip_code(e: &str) -> String {
    e.split_once(": ").map_or(e, |(_, m)| m).to_string()
}

#[cfg(test)]
mod tests;
