//! The embedded DNS's sockets: one UDP socket and one TCP listener per network, bound to the
//! gateway address, port 53, inside the sandbox (a socket belongs to the namespace it was made
//! in), served by one small runtime for all networks of the host. Forwarded queries leave
//! from the daemon's own namespace, where the host's resolvers are reachable.
//!
//! Rules: [`DnsService::start`] takes sockets already bound; dropping the returned
//! [`DnsServer`] stops its tasks (the sockets close with them). Every upstream exchange is
//! bounded by [`UPSTREAM_TIMEOUT`] per resolver, every TCP client by [`TCP_IDLE`]; a query
//! no resolver answered gets SERVFAIL.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use super::{decide, Decision, Names, Upstreams};
use crate::core::counters::DropReason;
use crate::engine::TapPort;

/// How long one upstream resolver has to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP client may stay silent before it is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// The largest DNS message over UDP vxnet reads (EDNS allows up to 4096 in practice).
const UDP_MAX: usize = 4096;

/// The runtime every network's DNS runs on, and where queries are forwarded.
pub struct DnsService {
    runtime: tokio::runtime::Runtime,
    upstreams: Arc<Upstreams>,
}

/// One network's DNS: its names, swapped in by [`DnsServer::set_names`], and its tasks.
pub struct DnsServer {
    names: Arc<ArcSwap<Names>>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    pub fn set_names(&self, names: Names) {
        if **self.names.load() != names {
            self.names.store(Arc::new(names));
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl DnsService {
    pub fn new(upstreams: Upstreams) -> std::io::Result<DnsService> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vxnet-dns")
            .enable_all()
            .build()?;
        Ok(DnsService {
            runtime,
            upstreams: Arc::new(upstreams),
        })
    }

    /// Serves `udp` and `tcp` (bound to the gateway, port 53) with `names`, forwarding other
    /// names unless `forward` is false (an `--internal` network: REFUSED); drops are counted
    /// on `port`'s network.
    pub fn start(
        &self,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
        names: Names,
        forward: bool,
        port: Arc<TapPort>,
    ) -> std::io::Result<DnsServer> {
        let _context = self.runtime.enter();
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let udp = UdpSocket::from_std(udp)?;
        let tcp = TcpListener::from_std(tcp)?;
        let names = Arc::new(ArcSwap::from_pointee(names));
        let shared = Shared {
            names: names.clone(),
            upstreams: self.upstreams.clone(),
            forward,
            port,
        };
        let tasks = vec![
            self.runtime.spawn(serve_udp(udp, shared.clone())),
            self.runtime.spawn(serve_tcp(tcp, shared)),
        ];
        Ok(DnsServer { names, tasks })
    }
}

#[derive(Clone)]
struct Shared {
    names: Arc<ArcSwap<Names>>,
    upstreams: Arc<Upstreams>,
    forward: bool,
    port: Arc<TapPort>,
}

impl Shared {
    fn count(&self, reason: DropReason) {
        self.port.plane.counters.drops.bump(reason);
    }
}

async fn serve_udp(socket: UdpSocket, shared: Shared) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; UDP_MAX];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        match decide(&buf[..n], &shared.names.load()) {
            Decision::Answer(answer) => {
                let _ = socket.send_to(&answer, client).await;
            }
            Decision::Drop => shared.count(DropReason::DnsMalformed),
            Decision::Forward => {
                let (query, socket, shared) = (buf[..n].to_vec(), socket.clone(), shared.clone());
                tokio::spawn(async move {
                    let answer = forward(&query, &shared, Transport::Udp).await;
                    let _ = socket.send_to(&answer, client).await;
                });
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, shared: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_tcp_client(stream, shared.clone()));
    }
}

async fn serve_tcp_client(mut stream: TcpStream, shared: Shared) {
    loop {
        let Ok(Ok(query)) = tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)).await else {
            return;
        };
        let answer = match decide(&query, &shared.names.load()) {
            Decision::Answer(answer) => answer,
            Decision::Drop => {
                shared.count(DropReason::DnsMalformed);
                return;
            }
            Decision::Forward => forward(&query, &shared, Transport::Tcp).await,
        };
        if write_framed(&mut stream, &answer).await.is_err() {
            return;
        }
    }
}

#[derive(Clone, Copy)]
enum Transport {
    Udp,
    Tcp,
}

/// Asks each upstream in turn; the first answer carrying the query's id, else SERVFAIL.
async fn forward(query: &[u8], shared: &Shared, transport: Transport) -> Vec<u8> {
    if !shared.forward {
        return error_answer(query, ResponseCode::Refused);
    }
    for &upstream in &shared.upstreams.0 {
        let asked = match transport {
            Transport::Udp => {
                tokio::time::timeout(UPSTREAM_TIMEOUT, ask_udp(query, upstream)).await
            }
            Transport::Tcp => {
                tokio::time::timeout(UPSTREAM_TIMEOUT, ask_tcp(query, upstream)).await
            }
        };
        if let Ok(Ok(answer)) = asked {
            if answer.get(..2) == query.get(..2) {
                return answer;
            }
        }
    }
    shared.count(DropReason::DnsUpstreamFailed);
    error_answer(query, ResponseCode::ServFail)
}

async fn ask_udp(query: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: only the upstream's datagrams are read.
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; UDP_MAX];
    let n = socket.recv(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

async fn ask_tcp(query: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    write_framed(&mut stream, query).await?;
    read_framed(&mut stream).await
}

/// DNS over TCP: each message preceded by its length, two bytes big-endian.
async fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut message = vec![0u8; usize::from(len)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| std::io::ErrorKind::InvalidData)?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

/// An answer to `query` (which [`decide`] already parsed once) with no records and `code`.
fn error_answer(query: &[u8], code: ResponseCode) -> Vec<u8> {
    let Ok(query) = Message::from_vec(query) else {
        return Vec::new();
    };
    let mut response = Message::error_msg(query.id(), query.op_code(), code);
    response.add_queries(query.queries().to_vec());
    response.to_vec().unwrap_or_default()
}
