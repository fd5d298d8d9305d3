//! "Who is asking?" servers and clients: a TCP or UDP server inside a lab namespace answers
//! every connection or datagram with the address it came from, so a test sees both that it
//! got through and what NAT did to it on the way.
//!
//! [`serve_dns`] stands in for the upstream resolver the networks' DNS forwards to.
//!
//! Rules: servers run on a detached thread inside their namespace until the test process ends;
//! every client call is bounded by [`CLIENT_TIMEOUT`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use crate::netns::in_netns_thread;

/// How long a client waits to connect and for its answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts a TCP server on `addr` inside namespace `ns`; returns once it listens.
pub fn serve_tcp(ns: &str, addr: SocketAddrV4) -> Result<()> {
    serve(ns, move |ready| {
        let listener = TcpListener::bind(addr)?;
        let _ = ready.send(Ok(()));
        for mut stream in listener.incoming().flatten() {
            if let Ok(peer) = stream.peer_addr() {
                let _ = stream.write_all(peer.ip().to_string().as_bytes());
            }
        }
        Ok(())
    })
}

/// Starts a UDP server on `addr` inside namespace `ns`; returns once it is bound.
pub fn serve_udp(ns: &str, addr: SocketAddrV4) -> Result<()> {
    serve(ns, move |ready| {
        let socket = UdpSocket::bind(addr)?;
        let _ = ready.send(Ok(()));
        let mut buf = [0u8; 64];
        while let Ok((_, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(peer.ip().to_string().as_bytes(), peer);
        }
        Ok(())
    })
}

fn serve<F>(ns: &str, run: F) -> Result<()>
where
    F: FnOnce(&mpsc::Sender<Result<()>>) -> std::io::Result<()> + Send + 'static,
{
    let (ready_tx, ready_rx) = mpsc::channel();
    let ns_name = ns.to_string();
    std::thread::spawn(move || {
        let failed = ready_tx.clone();
        let outcome = in_netns_thread(&ns_name, move || Ok(run(&ready_tx)?));
        if let Err(e) = outcome {
            let _ = failed.send(Err(e));
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| anyhow!("the server in {ns} did not start"))?
        .with_context(|| format!("starting a server in {ns}"))
}

/// Connects over TCP from inside `ns` to `server`; the address the server saw.
pub fn ask_tcp(ns: &str, server: SocketAddrV4) -> Result<Ipv4Addr> {
    in_netns_thread(ns, move || {
        let mut stream = TcpStream::connect_timeout(&SocketAddr::V4(server), CLIENT_TIMEOUT)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        let mut seen = String::new();
        stream.read_to_string(&mut seen)?;
        Ok(seen.parse()?)
    })
}

/// Sends one UDP datagram from inside `ns` to `server`; the address the server saw.
pub fn ask_udp(ns: &str, server: SocketAddrV4) -> Result<Ipv4Addr> {
    in_netns_thread(ns, move || {
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        socket.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        socket.send_to(b"who", server)?;
        let mut buf = [0u8; 64];
        let (n, _) = socket.recv_from(&mut buf)?;
        Ok(std::str::from_utf8(&buf[..n])?.parse()?)
    })
}

/// Starts a stand-in for an upstream resolver on `addr` (UDP) inside namespace `ns`: it
/// answers `name` with `ip` and every other name with NXDOMAIN.
pub fn serve_dns(ns: &str, addr: SocketAddrV4, name: &'static str, ip: Ipv4Addr) -> Result<()> {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::{rdata::A, Name, RData, Record};
    serve(ns, move |ready| {
        let socket = UdpSocket::bind(addr)?;
        let _ = ready.send(Ok(()));
        let wanted = Name::from_ascii(name).map_err(std::io::Error::other)?;
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut answer = Message::new();
            answer
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_recursion_available(true)
                .add_queries(query.queries().to_vec());
            match query.queries().first() {
                Some(q) if q.name().to_lowercase() == wanted.to_lowercase() => {
                    answer.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(ip))));
                }
                _ => {
                    answer.set_response_code(ResponseCode::NXDomain);
                }
            }
            if let Ok(bytes) = answer.to_vec() {
                let _ = socket.send_to(&bytes, peer);
            }
        }
        Ok(())
    })
}
