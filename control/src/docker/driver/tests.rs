use std::sync::Mutex;

use vxnet_proto::{Cidr, Endpoint, Network};

use super::*;

/// vxnet as the driver sees it: networks, endpoints, and every request it got.
#[derive(Default)]
struct FakeVxnet {
    networks: Mutex<Vec<Network>>,
    endpoints: Mutex<Vec<Endpoint>>,
    calls: Mutex<Vec<request::Kind>>,
}

fn failure(message: &str, code: ErrorCode) -> Response {
    let mut r = Response {
        error: message.into(),
        ..Default::default()
    };
    r.set_code(code);
    r
}

fn cidr(text: &str) -> Cidr {
    Ipv4Cidr::parse_as(text, "subnet").expect("cidr").to_proto()
}

impl FakeVxnet {
    fn with_network(self, name: &str, subnet: &str, gateway: &str, used: &[&str]) -> Self {
        let id = format!("{:0>64}", self.networks.lock().expect("lock").len());
        self.networks.lock().expect("lock").push(Network {
            id: id.clone(),
            name: name.into(),
            subnet: Some(cidr(subnet)),
            gateway: u32::from(gateway.parse::<Ipv4Addr>().expect("ip")),
            ..Default::default()
        });
        for ip in used {
            self.endpoints.lock().expect("lock").push(Endpoint {
                network_id: id.clone(),
                ipv4: u32::from(ip.parse::<Ipv4Addr>().expect("ip")),
                ..Default::default()
            });
        }
        self
    }

    fn view(&self, net: &Network) -> NetworkView {
        NetworkView {
            network: Some(net.clone()),
            endpoints: self
                .endpoints
                .lock()
                .expect("lock")
                .iter()
                .filter(|e| e.network_id == net.id)
                .cloned()
                .collect(),
            ..Default::default()
        }
    }
}

impl Vxnet for &FakeVxnet {
    async fn call(&self, kind: request::Kind) -> Response {
        self.calls.lock().expect("lock").push(kind.clone());
        let networks = self.networks.lock().expect("lock").clone();
        match kind {
            request::Kind::NetworkList(_) => Response {
                networks: networks.iter().map(|n| self.view(n)).collect(),
                ..Default::default()
            },
            request::Kind::NetworkInspect(r) => {
                match networks.iter().find(|n| n.name == r.networks[0]) {
                    Some(n) => Response {
                        networks: vec![self.view(n)],
                        ..Default::default()
                    },
                    None => failure("network not found", ErrorCode::NotFound),
                }
            }
            request::Kind::NetworkCreate(r) => {
                let subnet = r.subnet.expect("subnet");
                let gateway = r.gateway.unwrap_or(subnet.addr + 1);
                self.networks.lock().expect("lock").push(Network {
                    id: format!("{:0>64}", networks.len()),
                    name: r.name,
                    subnet: Some(subnet),
                    gateway,
                    internal: r.internal,
                    encrypted: r.encrypted,
                    ..Default::default()
                });
                Response::default()
            }
            request::Kind::NetworkDisconnect(r) if r.endpoint_id == "gone" => {
                failure("network not found", ErrorCode::NotFound)
            }
            _ => Response::default(),
        }
    }
}

struct FakeEngine(DockerNetwork);

impl Engine for FakeEngine {
    async fn network(&self, _id: &str) -> Result<DockerNetwork, String> {
        Ok(self.0.clone())
    }

    async fn endpoint_names(
        &self,
        _n: &str,
        e: &str,
    ) -> Result<Option<(String, Vec<String>)>, String> {
        Ok((e == "named").then(|| ("web".to_string(), vec!["www".to_string()])))
    }
}

fn docker(name: &str, subnet: &str, internal: bool) -> FakeEngine {
    FakeEngine(DockerNetwork {
        name: name.into(),
        subnet: Some(subnet.into()),
        gateway: None,
        internal,
        encrypted: false,
    })
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn call<V: Vxnet, E: Engine>(driver: &Driver<V, E>, method: &str, body: Value) -> Value {
    let (status, answer) = run(driver.handle(method, body.to_string().as_bytes()));
    assert_eq!(status, 200, "{method}: {answer}");
    answer
}

#[test]
fn activation_capabilities_and_unknown_methods() {
    let vxnet = FakeVxnet::default();
    let d = Driver::new(&vxnet, docker("n", "10.1.0.0/24", false));
    assert_eq!(
        call(&d, "Plugin.Activate", json!({}))["Implements"],
        json!(["NetworkDriver", "IpamDriver"])
    );
    assert_eq!(
        call(&d, "NetworkDriver.GetCapabilities", json!({}))["Scope"],
        "local"
    );
    let (status, answer) = run(d.handle("NetworkDriver.Frobnicate", b"{}"));
    assert_eq!(status, 404);
    assert!(answer["Err"]
        .as_str()
        .is_some_and(|e| e.contains("Frobnicate")));
    let bad = call(&d, "NetworkDriver.Join", json!("not an object"));
    assert!(
        bad["Err"]
            .as_str()
            .is_some_and(|e| e.starts_with("malformed NetworkDriver.Join")),
        "{bad}"
    );
}

#[test]
fn pools_are_subnets_and_addresses_are_free_on_every_network_of_the_subnet() {
    let vxnet = FakeVxnet::default()
        .with_network("a", "10.0.0.0/24", "10.0.0.1", &["10.0.0.2", "10.0.0.3"])
        .with_network("b", "10.128.0.0/24", "10.128.0.1", &[]);
    let d = Driver::new(&vxnet, docker("n", "10.1.0.0/24", false));
    let given = call(&d, "IpamDriver.RequestPool", json!({"Pool": "10.9.0.0/16"}));
    assert_eq!(
        (given["PoolID"].clone(), given["Pool"].clone()),
        (json!("10.9.0.0/16"), json!("10.9.0.0/16"))
    );
    let free = call(&d, "IpamDriver.RequestPool", json!({}));
    assert_eq!(
        free["Pool"], "10.128.1.0/24",
        "the lowest /24 of 10.128.0.0/9 no network uses"
    );
    assert!(call(&d, "IpamDriver.RequestPool", json!({"V6": true}))["Err"].is_string());

    let gw = call(
        &d,
        "IpamDriver.RequestAddress",
        json!({"PoolID": "10.0.0.0/24", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    );
    assert_eq!(gw["Address"], "10.0.0.1/24");
    let next = call(
        &d,
        "IpamDriver.RequestAddress",
        json!({"PoolID": "10.0.0.0/24"}),
    );
    assert_eq!(
        next["Address"], "10.0.0.4/24",
        "skips the gateway and the endpoints"
    );
    let asked = call(
        &d,
        "IpamDriver.RequestAddress",
        json!({"PoolID": "10.0.0.0/24", "Address": "10.0.0.77"}),
    );
    assert_eq!(asked["Address"], "10.0.0.77/24");
    assert!(call(&d, "IpamDriver.RequestAddress", json!({"PoolID": "junk"}))["Err"].is_string());
}

#[test]
fn an_endpoint_makes_the_network_by_name_and_joins_with_a_handed_over_veth() {
    let vxnet = FakeVxnet::default();
    let d = Driver::new(&vxnet, docker("shop", "10.5.0.0/24", false));
    let eid = "ab".repeat(32);
    let created = call(
        &d,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": "d1", "EndpointID": eid, "Interface": {"Address": "10.5.0.7/24"}}),
    );
    assert_eq!(created["Interface"]["MacAddress"], "02:42:0a:05:00:07");
    assert_eq!(vxnet.networks.lock().expect("lock")[0].name, "shop");
    let joined = call(
        &d,
        "NetworkDriver.Join",
        json!({"NetworkID": "d1", "EndpointID": eid, "SandboxKey": "/var/run/docker/netns/x"}),
    );
    assert_eq!(joined["InterfaceName"]["SrcName"], "vxdabababababa");
    assert_eq!(joined["InterfaceName"]["DstPrefix"], "eth");
    assert_eq!(joined["Gateway"], "10.5.0.1");
    let connect = vxnet
        .calls
        .lock()
        .expect("lock")
        .iter()
        .find_map(|k| match k {
            request::Kind::NetworkConnect(c) => Some(c.clone()),
            _ => None,
        });
    let c = connect.expect("a connect");
    assert_eq!(
        (c.network.as_str(), c.target.as_str()),
        ("shop", "/var/run/docker/netns/x")
    );
    assert_eq!(
        (c.endpoint_id.as_deref(), c.hand_over),
        (Some(eid.as_str()), true)
    );
    assert_eq!(c.ipv4, Some(u32::from(Ipv4Addr::new(10, 5, 0, 7))));
    // Joined once: a second Join of the same endpoint is refused.
    assert!(call(&d, "NetworkDriver.Join", json!({"EndpointID": eid}))["Err"].is_string());
    assert_eq!(
        call(
            &d,
            "NetworkDriver.DeleteEndpoint",
            json!({"NetworkID": "d1", "EndpointID": eid})
        ),
        json!({})
    );
    assert_eq!(
        call(
            &d,
            "NetworkDriver.DeleteEndpoint",
            json!({"NetworkID": "d1", "EndpointID": "gone"})
        ),
        json!({})
    );
}

#[test]
fn an_existing_network_must_have_the_same_subnet_and_internal_ones_give_no_gateway() {
    let vxnet = FakeVxnet::default().with_network("shop", "10.5.0.0/24", "10.5.0.1", &[]);
    let other = Driver::new(&vxnet, docker("shop", "10.6.0.0/24", false));
    let refused = call(
        &other,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": "d1", "EndpointID": "e1", "Interface": {"Address": "10.6.0.2/24"}}),
    );
    assert!(
        refused["Err"]
            .as_str()
            .is_some_and(|e| e.contains("--subnet 10.5.0.0/24")),
        "{refused}"
    );

    let inside = FakeVxnet::default();
    let d = Driver::new(&inside, docker("quiet", "10.7.0.0/24", true));
    call(
        &d,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": "d2", "EndpointID": "e2", "Interface": {"Address": "10.7.0.2/24"}}),
    );
    assert!(inside.networks.lock().expect("lock")[0].internal);
    let joined = call(
        &d,
        "NetworkDriver.Join",
        json!({"NetworkID": "d2", "EndpointID": "e2", "SandboxKey": "/x"}),
    );
    assert!(joined.get("Gateway").is_none(), "{joined}");
}

fn updates(vxnet: &FakeVxnet) -> Vec<EndpointUpdateRequest> {
    vxnet
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|k| match k {
            request::Kind::EndpointUpdate(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_joined_endpoint_takes_its_containers_name_and_aliases() {
    let vxnet = FakeVxnet::default();
    let d = Driver::new(&vxnet, docker("shop", "10.5.0.0/24", false));
    run(d.name_endpoint("d1", "named"));
    let u = updates(&vxnet);
    assert_eq!(u.len(), 1);
    assert_eq!(
        (u[0].network.as_str(), u[0].endpoint_id.as_str()),
        ("shop", "named")
    );
    assert_eq!(
        (u[0].name.as_deref(), u[0].set_aliases),
        (Some("web"), true)
    );
    assert_eq!(u[0].aliases, ["www"]);
    assert!(!u[0].set_ports);
}

#[test]
fn published_ports_follow_dockers_portmap() {
    let vxnet = FakeVxnet::default();
    let d = Driver::new(&vxnet, docker("shop", "10.5.0.0/24", false));
    let portmap = json!([
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080},
        {"Proto": 17, "IP": "", "Port": 53, "HostIP": "198.18.0.10", "HostPort": 5353}
    ]);
    call(
        &d,
        "NetworkDriver.ProgramExternalConnectivity",
        json!({"NetworkID": "d1", "EndpointID": "e1", "Options": {"com.docker.network.portmap": portmap}}),
    );
    let u = updates(&vxnet);
    assert!(u[0].set_ports);
    let shown: Vec<String> = u[0].ports.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["0.0.0.0:8080:80/tcp", "198.18.0.10:5353:53/udp"]);
    // `-p 80`: a free host port is chosen.
    call(
        &d,
        "NetworkDriver.ProgramExternalConnectivity",
        json!({"NetworkID": "d1", "EndpointID": "e1",
        "Options": {"com.docker.network.portmap": [{"Proto": 6, "Port": 80, "HostPort": 0}]}}),
    );
    let chosen = updates(&vxnet).pop().expect("an update").ports[0].host_port;
    assert!(chosen > 0, "no host port chosen");
    call(
        &d,
        "NetworkDriver.RevokeExternalConnectivity",
        json!({"NetworkID": "d1", "EndpointID": "e1"}),
    );
    let last = updates(&vxnet).pop().expect("an update");
    assert!(last.set_ports && last.ports.is_empty());
}

#[test]
fn an_encrypted_docker_network_makes_an_encrypted_vxnet_network() {
    let vxnet = FakeVxnet::default();
    let mut engine = docker("secret", "10.8.0.0/24", false);
    engine.0.encrypted = true;
    let d = Driver::new(&vxnet, engine);
    let endpoint =
        json!({"NetworkID": "d3", "EndpointID": "e3", "Interface": {"Address": "10.8.0.2/24"}});
    let made = call(&d, "NetworkDriver.CreateEndpoint", endpoint);
    assert!(made.get("Err").is_none(), "{made}");
    assert!(vxnet.networks.lock().expect("lock")[0].encrypted);
    // A plain Docker network of the same name does not use it.
    let plain = Driver::new(&vxnet, docker("secret", "10.8.0.0/24", false));
    let refused = call(
        &plain,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": "d4", "EndpointID": "e4", "Interface": {"Address": "10.8.0.3/24"}}),
    );
    assert!(
        refused["Err"]
            .as_str()
            .is_some_and(|e| e.contains("exists encrypted")),
        "{refused}"
    );
}
