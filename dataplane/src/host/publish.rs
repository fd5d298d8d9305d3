//! Published ports: a container's port reachable at its host's address.
//!
//! Two DNATs, because the host never routes to container addresses (subnets may overlap, see
//! [`super::egress`]): the host's table sends `HOSTPORT` to the sandbox's transit address,
//! same port; the sandbox's table sends what arrives on its transit link at `HOSTPORT` to
//! the container's address and port. Replies go back the way they came through both
//! conntracks; the container sees the client's real address. Connections from the host itself
//! to any of its addresses, 127.0.0.1 included, take the same path (the host's `output`
//! chain, and `route_localnet` on the transit link, as Docker does without its proxy).
//!
//! Rules:
//! - A host port is published once per protocol on a host, whatever the address it is bound
//!   to (the sandbox tells publishes apart by port alone); the state machine refuses the
//!   second one.
//! - While a port is published, the daemon holds a socket bound to it ([`reserve`]), so no
//!   program on the host can take it in the meantime; a port some program holds already is
//!   refused at connect ([`probe`]).

use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Socket, Type};

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port of a local endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Publish {
    pub proto: Proto,
    /// The host address it is reachable at; unspecified: every address of the host.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

impl Publish {
    /// What [`reserve`] binds: the protocol, the host address and the host port.
    pub fn host_side(&self) -> (Proto, Ipv4Addr, u16) {
        (self.proto, self.host_ip, self.host_port)
    }
}

/// Binds `port` at `ip` (unspecified: every address) for `proto` in the calling thread's
/// namespace and returns the socket, which holds the port until it is dropped. `Err` with
/// `AddrInUse` when some program has it.
pub fn reserve(proto: Proto, ip: Ipv4Addr, port: u16) -> std::io::Result<Socket> {
    let ty = match proto {
        Proto::Tcp => Type::STREAM,
        Proto::Udp => Type::DGRAM,
    };
    let socket = Socket::new(Domain::IPV4, ty.cloexec(), None)?;
    // Not listening and without SO_REUSEADDR: nobody else can bind the port, and a
    // connection to it never reaches this socket (the DNAT takes it first).
    socket.bind(&SocketAddrV4::new(ip, port).into())?;
    Ok(socket)
}

/// Whether `port` is free for `proto` at `ip`: a [`reserve`] that is let go at once.
pub fn probe(proto: Proto, ip: Ipv4Addr, port: u16) -> std::io::Result<()> {
    reserve(proto, ip, port).map(drop)
}

/// The host table's DNAT rules: each published port to the sandbox's transit address
/// (`to`), in `prerouting` (from outside) and in `output` (from the host itself).
pub fn host_rules(ports: &[(Publish, Ipv4Addr)]) -> String {
    let rules: String = ports
        .iter()
        .map(|(p, to)| {
            let dst = if p.host_ip.is_unspecified() {
                "fib daddr type local".to_string()
            } else {
                format!("ip daddr {}", p.host_ip)
            };
            format!(
                "\t\t{dst} {} dport {} dnat to {to}\n",
                p.proto.name(),
                p.host_port
            )
        })
        .collect();
    ["prerouting", "output"]
        .iter()
        .map(|hook| {
            format!(
                "\tchain {hook} {{\n\t\ttype nat hook {hook} priority -100; policy accept;\n{rules}\t}}\n"
            )
        })
        .collect()
}

/// A sandbox table's DNAT rules: what arrives on the transit link (`iifname`) at a published
/// host port goes to its container.
pub fn sandbox_rules(iifname: &str, ports: &[Publish]) -> String {
    let rules: String = ports
        .iter()
        .map(|p| {
            format!(
                "\t\tiifname \"{iifname}\" {} dport {} dnat to {}:{}\n",
                p.proto.name(),
                p.host_port,
                p.container_ip,
                p.container_port
            )
        })
        .collect();
    format!("\tchain prerouting {{\n\t\ttype nat hook prerouting priority -100; policy accept;\n{rules}\t}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(host_ip: Ipv4Addr) -> Publish {
        Publish {
            proto: Proto::Tcp,
            host_ip,
            host_port: 8080,
            container_ip: Ipv4Addr::new(10, 0, 0, 5),
            container_port: 80,
        }
    }

    #[test]
    fn host_rules_send_the_port_to_the_sandbox_from_outside_and_from_the_host() {
        let to = Ipv4Addr::new(169, 254, 0, 1);
        let rules = host_rules(&[
            (web(Ipv4Addr::UNSPECIFIED), to),
            (web(Ipv4Addr::new(198, 18, 0, 11)), to),
        ]);
        assert_eq!(
            rules
                .matches("fib daddr type local tcp dport 8080 dnat to 169.254.0.1")
                .count(),
            2,
            "{rules}"
        );
        assert_eq!(
            rules
                .matches("ip daddr 198.18.0.11 tcp dport 8080 dnat to 169.254.0.1")
                .count(),
            2,
            "{rules}"
        );
        assert!(rules.contains("type nat hook prerouting priority -100"));
        assert!(rules.contains("type nat hook output priority -100"));
    }

    #[test]
    fn sandbox_rules_send_the_port_to_the_container() {
        let rules = sandbox_rules("transit0", &[web(Ipv4Addr::UNSPECIFIED)]);
        assert!(
            rules.contains("iifname \"transit0\" tcp dport 8080 dnat to 10.0.0.5:80"),
            "{rules}"
        );
    }

    #[test]
    fn a_reserved_port_is_refused_until_released() {
        let held = reserve(Proto::Udp, Ipv4Addr::LOCALHOST, 0).expect("any free port");
        let port = held
            .local_addr()
            .expect("addr")
            .as_socket_ipv4()
            .expect("v4")
            .port();
        let e = probe(Proto::Udp, Ipv4Addr::LOCALHOST, port).expect_err("held");
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        drop(held);
        probe(Proto::Udp, Ipv4Addr::LOCALHOST, port).expect("free again");
    }
}
