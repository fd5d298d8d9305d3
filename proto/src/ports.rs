//! Published ports as users write them, `[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]` (the
//! form of `docker run -p`), and as `inspect` shows them, always with the host address and the
//! protocol: `0.0.0.0:8080:80/tcp`.

use std::fmt;
use std::net::Ipv4Addr;

use crate::{PortMapping, Protocol};

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl PortMapping {
    /// Parses `[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]`; TCP when no protocol is given.
    pub fn parse(s: &str) -> Result<PortMapping, String> {
        let bad = |why: &str| {
            format!("invalid --publish {s:?}: {why}; the form is [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]")
        };
        let (ports, protocol) = match s.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, Protocol::Tcp),
            Some((ports, "udp")) => (ports, Protocol::Udp),
            Some(_) => return Err(bad("the protocol is tcp or udp")),
            None => (s, Protocol::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host_port, container_port) = match parts[..] {
            [h, c] => (Ipv4Addr::UNSPECIFIED, h, c),
            [ip, h, c] => (
                ip.parse::<Ipv4Addr>()
                    .map_err(|_| bad("HOSTIP is not an IPv4 address"))?,
                h,
                c,
            ),
            _ => return Err(bad("expected two or three parts separated by ':'")),
        };
        let port = |p: &str, what: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(u32::from(n)),
            _ => Err(bad(&format!("{what} is not a port number 1-65535"))),
        };
        let mut mapping = PortMapping {
            host_ip: u32::from(host_ip),
            host_port: port(host_port, "HOSTPORT")?,
            container_port: port(container_port, "CONTAINERPORT")?,
            ..Default::default()
        };
        mapping.set_protocol(protocol);
        Ok(mapping)
    }

    /// Whether `self` and `other` would take the same port of one host.
    pub fn clashes_with(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol && self.host_port == other.host_port
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}/{}",
            Ipv4Addr::from(self.host_ip),
            self.host_port,
            self.container_port,
            self.protocol().name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_docker_forms_and_prints_the_full_one() {
        for (given, shown) in [
            ("8080:80", "0.0.0.0:8080:80/tcp"),
            ("8080:80/udp", "0.0.0.0:8080:80/udp"),
            ("10.1.2.3:53:5353/udp", "10.1.2.3:53:5353/udp"),
            ("1:65535/tcp", "0.0.0.0:1:65535/tcp"),
        ] {
            assert_eq!(PortMapping::parse(given).expect(given).to_string(), shown);
        }
    }

    #[test]
    fn refuses_what_is_not_a_port_mapping() {
        for bad in [
            "80",
            "0:80",
            "8080:65536",
            "x:80",
            "1.2.3:80:80",
            "80:80/sctp",
            "a:b:c:d",
            "",
        ] {
            let e = PortMapping::parse(bad).expect_err(bad);
            assert!(e.starts_with("invalid --publish"), "{e}");
        }
    }

    #[test]
    fn a_host_port_clashes_per_protocol_whatever_the_address() {
        let p = |s| PortMapping::parse(s).expect(s);
        assert!(p("8080:80").clashes_with(&p("10.0.0.1:8080:81")));
        assert!(!p("8080:80").clashes_with(&p("8080:80/udp")));
        assert!(!p("8080:80").clashes_with(&p("8081:80")));
    }
}
