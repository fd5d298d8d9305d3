//! The embedded DNS: each network's gateway address answers DNS on UDP and TCP port 53 for
//! the names of that network, cluster-wide, and forwards everything else.
//!
//! Rules:
//! - **Answers come from the program.** A [`Names`] table is built from the network's
//!   endpoints on every [`super::Host::apply`] and swapped in whole, so a name appears and
//!   disappears in the same apply as its endpoint.
//! - **What is answered here:** `NAME` and `NAME.NETWORK` for each endpoint name and alias
//!   (case-insensitive) — `A` with its address, and no records (NODATA) for any other type,
//!   so a resolver asking for `AAAA` alongside `A` does not fall through to the upstream;
//!   `PTR` for each endpoint address, naming the endpoint. Every other query is forwarded,
//!   unchanged, to the upstream resolvers ([`Upstreams`]), and their answer relayed as is.
//! - **Malformed queries** are dropped (UDP) or the connection closed (TCP), and counted;
//!   never answered with a guess, never logged per packet. Parsing and building messages is
//!   hickory's, not hand-written.
//! - The core here ([`decide`]) is sans-IO; the sockets live in [`serve`].

pub mod resolv_conf;
pub mod serve;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The TTL of vxnet's answers: short, names follow containers.
pub const TTL: u32 = 5;

/// Where names not of the network are asked: the host's resolvers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams(pub Vec<SocketAddr>);

impl Upstreams {
    /// The `nameserver` lines of a `resolv.conf` (IPv4 and IPv6, port 53).
    pub fn from_resolv_conf(text: &str) -> Upstreams {
        let servers = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
        Upstreams(servers)
    }
}

/// The names of one network: lowercase, fully qualified (`web.` and `web.NETWORK.`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    forward: BTreeMap<Name, Ipv4Addr>,
    reverse: BTreeMap<Ipv4Addr, Name>,
}

impl Names {
    /// The table of network `network` whose endpoints are `(name and aliases, address)`.
    /// A name that two endpoints claim (an alias, say) answers with the first.
    pub fn new<'a>(
        network: &str,
        endpoints: impl IntoIterator<Item = (&'a [String], Ipv4Addr)>,
    ) -> Names {
        let mut names = Names::default();
        for (labels, ip) in endpoints {
            for (i, label) in labels.iter().enumerate() {
                for fqdn in [format!("{label}."), format!("{label}.{network}.")] {
                    let Ok(name) = Name::from_utf8(&fqdn) else {
                        continue;
                    };
                    let name = name.to_lowercase();
                    if i == 0 {
                        names.reverse.entry(ip).or_insert_with(|| name.clone());
                    }
                    names.forward.entry(name).or_insert(ip);
                }
            }
        }
        names
    }

    pub fn lookup(&self, name: &Name) -> Option<Ipv4Addr> {
        self.forward.get(&name.to_lowercase()).copied()
    }

    pub fn reverse(&self, ip: Ipv4Addr) -> Option<&Name> {
        self.reverse.get(&ip)
    }
}

/// What to do with one query message.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send this response back.
    Answer(Vec<u8>),
    /// Not ours: relay the query unchanged to the upstreams.
    Forward,
    /// Not a DNS query: drop it (and count it).
    Drop,
}

/// Decides how to answer the query `bytes` from `names`.
pub fn decide(bytes: &[u8], names: &Names) -> Decision {
    let Ok(query) = Message::from_vec(bytes) else {
        return Decision::Drop;
    };
    if query.message_type() != MessageType::Query || query.op_code() != OpCode::Query {
        return Decision::Drop;
    }
    let [q] = query.queries() else {
        return Decision::Forward;
    };
    let mut answers = Vec::new();
    if q.query_type() == RecordType::PTR {
        let Some(ip) = arpa_ipv4(q.name()) else {
            return Decision::Forward;
        };
        let Some(target) = names.reverse(ip) else {
            return Decision::Forward;
        };
        answers.push(Record::from_rdata(
            q.name().clone(),
            TTL,
            RData::PTR(PTR(target.clone())),
        ));
    } else {
        let Some(ip) = names.lookup(q.name()) else {
            return Decision::Forward;
        };
        if q.query_type() == RecordType::A || q.query_type() == RecordType::ANY {
            answers.push(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
        }
    }
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(ResponseCode::NoError)
        .add_query(q.clone())
        .add_answers(answers);
    match response.to_vec() {
        Ok(bytes) => Decision::Answer(bytes),
        Err(_) => Decision::Drop,
    }
}

/// The IPv4 address of a `d.c.b.a.in-addr.arpa.` name.
fn arpa_ipv4(name: &Name) -> Option<Ipv4Addr> {
    let net = name.parse_arpa_name().ok()?;
    match net.addr() {
        std::net::IpAddr::V4(ip) if net.prefix_len() == 32 => Some(ip),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
