//! The drivers: threads that move bytes between TAP devices, the UDP socket and the forwarding
//! core, and carry out its decisions.
//!
//! - One receive thread owns the socket bound on `local:port`; it decapsulates and writes each
//!   frame into the TAP of the frame's network. It also sweeps aged FDB entries.
//! - One thread per network reads that network's TAP, asks the core, and encapsulates.
//! - Datagrams leave from a small pool of sockets bound to distinct ephemeral ports, picked by
//!   the inner-flow hash: the outer UDP source port then varies per flow, as a kernel vxlan
//!   sender's does, so the receiver's RSS spreads flows.
//! - Hot paths never log; they count ([`crate::counters`]).
//!
//! Threads stop when [`Engine::remove_network`] or [`Engine::shutdown`] (or drop) is called;
//! both join the threads they stop.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tun_rs::{InterruptEvent, SyncDevice};

use crate::counters::DropReason;
use crate::forward::{Dataplane, FrameSink, NetworkConfig, NetworkPlane, TapAction, WireAction};
use crate::wire::{flow_hash, Vni, VxlanHeader, VXLAN_HEADER_LEN};

/// Large enough for any frame a TAP without offloads hands us (MTU ≤ 9000).
const MAX_FRAME: usize = 9216;
const SOCKET_BUFFER: usize = 4 << 20;
/// How often the receive thread looks up from the socket to check for shutdown and aging.
const RX_TICK: Duration = Duration::from_millis(200);
const AGING_SWEEP: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Underlay address: VTEP source address, and where the receive socket binds.
    pub local: Ipv4Addr,
    /// UDP port vxnet listens on and sends to (4789, the IANA VXLAN port).
    pub port: u16,
    /// Sockets in the sending pool: how many distinct outer source ports flows spread over.
    pub send_sockets: usize,
}

impl EngineConfig {
    pub fn new(local: Ipv4Addr, port: u16) -> EngineConfig {
        EngineConfig {
            local,
            port,
            send_sockets: 8,
        }
    }
}

/// A TAP device as a [`FrameSink`].
struct TapSink(Arc<SyncDevice>);

impl FrameSink for TapSink {
    fn write_frame(&self, frame: &[u8]) -> io::Result<()> {
        self.0.send(frame).map(|_| ())
    }
}

struct Senders {
    sockets: Vec<UdpSocket>,
    port: u16,
}

impl Senders {
    fn send(&self, vtep: Ipv4Addr, hash: u32, datagram: &[u8]) -> io::Result<()> {
        let socket = &self.sockets[hash as usize % self.sockets.len()];
        socket
            .send_to(datagram, SocketAddrV4::new(vtep, self.port))
            .map(|_| ())
    }
}

struct TapWorker {
    stop: Arc<InterruptEvent>,
    thread: Option<JoinHandle<()>>,
}

impl TapWorker {
    fn stop(&mut self) {
        let _ = self.stop.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Engine {
    dataplane: Arc<Dataplane>,
    senders: Arc<Senders>,
    workers: Mutex<HashMap<Vni, TapWorker>>,
    stop_rx: Arc<AtomicBool>,
    rx_thread: Option<JoinHandle<()>>,
}

fn bound_udp(addr: SocketAddrV4, reuse: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if reuse {
        socket.set_reuse_address(true)?;
    }
    // Bigger buffers absorb bursts between two wakeups of our thread; best effort, the
    // kernel caps them at net.core.[rw]mem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&SocketAddr::V4(addr).into())?;
    Ok(socket.into())
}

impl Engine {
    /// Binds the sockets and starts the receive thread.
    pub fn start(config: EngineConfig) -> io::Result<Engine> {
        let rx = bound_udp(SocketAddrV4::new(config.local, config.port), false)?;
        rx.set_read_timeout(Some(RX_TICK))?;
        let sockets = (0..config.send_sockets.max(1))
            .map(|_| bound_udp(SocketAddrV4::new(config.local, 0), false))
            .collect::<io::Result<Vec<_>>>()?;
        let dataplane = Arc::new(Dataplane::new());
        let stop_rx = Arc::new(AtomicBool::new(false));
        let rx_thread = {
            let dataplane = Arc::clone(&dataplane);
            let stop = Arc::clone(&stop_rx);
            std::thread::Builder::new()
                .name("vxnet-rx".into())
                .spawn(move || receive_loop(rx, &dataplane, &stop))?
        };
        Ok(Engine {
            dataplane,
            senders: Arc::new(Senders {
                sockets,
                port: config.port,
            }),
            workers: Mutex::new(HashMap::new()),
            stop_rx,
            rx_thread: Some(rx_thread),
        })
    }

    pub fn dataplane(&self) -> &Arc<Dataplane> {
        &self.dataplane
    }

    /// Starts forwarding for a network whose frames come and go through `tap`. Replaces (and
    /// stops) a network already running with the same VNI.
    pub fn add_network(
        &self,
        config: NetworkConfig,
        tap: SyncDevice,
    ) -> io::Result<Arc<NetworkPlane>> {
        self.remove_network(config.vni);
        let tap = Arc::new(tap);
        let plane = Arc::new(NetworkPlane::new(
            config,
            Arc::new(TapSink(Arc::clone(&tap))),
        ));
        let stop = Arc::new(InterruptEvent::new()?);
        let thread = {
            let plane = Arc::clone(&plane);
            let senders = Arc::clone(&self.senders);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("vxnet-tap-{}", config.vni.get()))
                .spawn(move || tap_loop(&tap, &plane, &senders, &stop))?
        };
        self.dataplane.insert(Arc::clone(&plane));
        self.lock_workers().insert(
            config.vni,
            TapWorker {
                stop,
                thread: Some(thread),
            },
        );
        Ok(plane)
    }

    /// Stops forwarding for `vni`; its TAP is closed once the thread has ended.
    pub fn remove_network(&self, vni: Vni) {
        self.dataplane.remove(vni);
        let worker = self.lock_workers().remove(&vni);
        if let Some(mut w) = worker {
            w.stop();
        }
    }

    fn lock_workers(&self) -> std::sync::MutexGuard<'_, HashMap<Vni, TapWorker>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        let vnis: Vec<Vni> = self.lock_workers().keys().copied().collect();
        for vni in vnis {
            self.remove_network(vni);
        }
        self.stop_rx.store(true, Ordering::Relaxed);
        if let Some(t) = self.rx_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn receive_loop(socket: UdpSocket, dataplane: &Dataplane, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    let mut last_sweep = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let received = socket.recv_from(&mut buf);
        let now = Instant::now();
        if now.duration_since(last_sweep) >= AGING_SWEEP {
            for plane in dataplane.planes() {
                plane.fdb.expire(now);
            }
            last_sweep = now;
        }
        let (len, src) = match received {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "receive on the VXLAN socket failed");
                std::thread::sleep(RX_TICK);
                continue;
            }
        };
        let SocketAddr::V4(src) = src else { continue };
        match dataplane.handle_datagram(*src.ip(), &buf[..len], now) {
            WireAction::Deliver { plane, frame } => match plane.sink().write_frame(frame) {
                Ok(()) => plane.counters.count_rx(frame.len()),
                Err(_) => plane.counters.drops.bump(DropReason::TapWriteError),
            },
            WireAction::Drop(reason) => {
                tracing::trace!(?reason, %src, "dropped datagram");
            }
        }
    }
}

fn tap_loop(tap: &SyncDevice, plane: &NetworkPlane, senders: &Senders, stop: &InterruptEvent) {
    let vni = plane.config().vni;
    // The VXLAN header goes in front of the frame in the same buffer: one copy-free send.
    let mut buf = vec![0u8; VXLAN_HEADER_LEN + MAX_FRAME];
    VxlanHeader { vni }.emit(&mut buf);
    let mut reply = [0u8; 64];
    loop {
        let len = match tap.recv_intr(&mut buf[VXLAN_HEADER_LEN..], stop) {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if stop.is_trigger() {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(vni = vni.get(), error = %e, "reading the TAP failed; network stopped");
                return;
            }
        };
        let frame = &buf[VXLAN_HEADER_LEN..VXLAN_HEADER_LEN + len];
        let datagram = &buf[..VXLAN_HEADER_LEN + len];
        match plane.handle_tap_frame(frame, Instant::now(), &mut reply) {
            TapAction::Unicast(vtep) => {
                send_counted(plane, senders, vtep, flow_hash(frame), datagram)
            }
            TapAction::Flood(vteps) => {
                let hash = flow_hash(frame);
                for &vtep in vteps.iter() {
                    send_counted(plane, senders, vtep, hash, datagram);
                }
            }
            TapAction::Reply(n) => {
                if plane.sink().write_frame(&reply[..n]).is_err() {
                    plane.counters.drops.bump(DropReason::TapWriteError);
                }
            }
            TapAction::Local | TapAction::Drop(_) => {}
        }
    }
}

fn send_counted(
    plane: &NetworkPlane,
    senders: &Senders,
    vtep: Ipv4Addr,
    hash: u32,
    datagram: &[u8],
) {
    match senders.send(vtep, hash, datagram) {
        Ok(()) => plane.counters.count_tx(datagram.len() - VXLAN_HEADER_LEN),
        Err(_) => plane.counters.drops.bump(DropReason::SendError),
    }
}
