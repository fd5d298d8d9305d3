//! The drivers: threads that move bytes between TAP devices, the UDP socket and the forwarding
//! core, and carry out its decisions.
//!
//! - One receive thread owns the socket bound on `local:port`; it takes datagrams in
//!   `recvmmsg` batches, decapsulates them and writes each network's frames into its TAP —
//!   through a [`Coalescer`] when the TAP has offloads, so that a run of TCP segments becomes
//!   one write. With offloads it also enables UDP GRO on the socket (Linux 5.0+, detected at
//!   start): the kernel then hands over up to 64 KB of one flow's datagrams per message, split
//!   here at the size its cmsg gives. It also sweeps aged FDB entries.
//! - One thread per network reads that network's TAP, splits offloaded superframes into wire
//!   frames ([`crate::offload::segment`]), asks the core once per read (all segments of a
//!   superframe share their headers, so they share the decision), and sends the datagrams with
//!   `sendmmsg`: each is gathered from the VXLAN header and the frame, without a copy. It takes
//!   what the TAP already holds, up to a batch, before sending.
//! - Datagrams leave from a small pool of sockets bound to distinct ephemeral ports, picked by
//!   the inner-flow hash: the outer UDP source port then varies per flow, as a kernel vxlan
//!   sender's does, so the receiver's RSS spreads flows.
//! - Whether a TAP has offloads is read from the device (`SyncDevice::tcp_gso`, via `Deref` to the device);
//!   [`EngineConfig::offloads`] is what the daemon asks `Sandbox::open_tap` for.
//! - Counters count wire frames: a superframe read from the TAP counts as the frames it was
//!   split into, a coalesced write as the datagrams it merged.
//! - Hot paths never log; they count ([`crate::core::counters`]).
//!
//! Threads stop when [`Engine::remove_network`] or [`Engine::shutdown`] (or drop) is called;
//! both join the threads they stop.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tun_rs::{InterruptEvent, SyncDevice};

use crate::core::counters::DropReason;
use crate::core::forward::{Dataplane, NetworkConfig, NetworkPlane, Port, TapAction, WireAction};
use crate::offload::{segment, Coalescer, Segments, VirtioNetHdr, VNET_HDR_LEN};
use crate::wire::{flow_hash, FrameHeaders, Vni, VxlanHeader, VXLAN_HEADER_LEN};

/// Large enough for any frame a TAP without offloads hands us (MTU ≤ 9000).
const MAX_FRAME: usize = 9216;
/// A TAP with offloads hands over up to 64 KB of IP packet, plus headers.
const MAX_SUPERFRAME: usize = VNET_HDR_LEN + 14 + 65535 + 64;
const SOCKET_BUFFER: usize = 4 << 20;
/// How often the receive thread looks up from the socket to check for shutdown and aging.
const RX_TICK: Duration = Duration::from_millis(200);
const AGING_SWEEP: Duration = Duration::from_secs(5);
/// Datagrams per `recvmmsg`.
const RX_BATCH: usize = 32;
/// Room per received datagram: a 9000-byte-MTU underlay's largest, with margin.
const RX_SLOT: usize = MAX_FRAME + VXLAN_HEADER_LEN + 64;
/// Room per received message with UDP GRO: the kernel hands over up to 64 KB of datagrams of
/// one flow at once, all of one size but the last.
const RX_GRO_SLOT: usize = 65536;
/// Room for one cmsg carrying an int (the UDP GRO segment size), 8-byte aligned.
const RX_CONTROL: usize = 32;
/// A TAP thread stops taking more from the TAP once this many datagrams wait to be sent.
const TX_BATCH: usize = 64;

#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Underlay address: VTEP source address, and where the receive socket binds.
    pub local: Ipv4Addr,
    /// UDP port vxnet listens on and sends to (4789, the IANA VXLAN port).
    pub port: u16,
    /// Sockets in the sending pool: how many distinct outer source ports flows spread over.
    pub send_sockets: usize,
    /// Open TAPs with offloads (vnet header, TSO, checksum offload) where the kernel allows.
    pub offloads: bool,
}

impl EngineConfig {
    pub fn new(local: Ipv4Addr, port: u16) -> EngineConfig {
        EngineConfig {
            local,
            port,
            send_sockets: 8,
            offloads: true,
        }
    }
}

/// A network's TAP device; `vnet_hdr` when it was opened with offloads.
pub struct TapDevice {
    device: SyncDevice,
    vnet_hdr: bool,
}

/// A network as the engine runs it: its plane and its TAP.
pub type TapPort = Port<TapDevice>;

impl TapDevice {
    /// Writes one plain frame (behind a zero vnet header when the TAP has one).
    fn write_frame(&self, frame: &[u8]) -> io::Result<()> {
        if self.vnet_hdr {
            let hdr = [0u8; VNET_HDR_LEN];
            self.device
                .send_vectored(&[io::IoSlice::new(&hdr), io::IoSlice::new(frame)])
                .map(|_| ())
        } else {
            self.device.send(frame).map(|_| ())
        }
    }
}

struct Senders {
    sockets: Vec<UdpSocket>,
    port: u16,
    /// UDP segmentation offload (`UDP_SEGMENT`, Linux 4.18+): found at start, turned off for
    /// good the first time the kernel refuses a segmented send.
    gso: AtomicBool,
}

impl Senders {
    fn pick(&self, hash: u32) -> usize {
        hash as usize % self.sockets.len()
    }

    fn gso(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
    }

    fn disable_gso(&self, error: &io::Error) {
        if self.gso.swap(false, Ordering::Relaxed) {
            tracing::warn!(%error, "the kernel refuses UDP segmentation offload; sending datagrams one by one");
        }
    }
}

/// Whether the kernel knows `UDP_SEGMENT` (it answers the option on a UDP socket).
fn udp_gso_supported(socket: &UdpSocket) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a live socket, and a c_int-sized out-parameter with its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0
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
    config: EngineConfig,
    dataplane: Arc<Dataplane<TapDevice>>,
    senders: Arc<Senders>,
    workers: Mutex<HashMap<Vni, TapWorker>>,
    stop_rx: Arc<AtomicBool>,
    rx_thread: Option<JoinHandle<()>>,
}

/// Asks the kernel to merge received datagrams of a flow (UDP_GRO, Linux 5.0+).
fn enable_udp_gro(socket: &UdpSocket) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: a live socket, and a c_int option value with its length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
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
        let gso = config.offloads && udp_gso_supported(&sockets[0]);
        // UDP GRO (5.0+): the kernel merges consecutive datagrams of a flow into one read. Off
        // without offloads, and where the kernel does not know the option.
        let gro = config.offloads && enable_udp_gro(&rx);
        let dataplane = Arc::new(Dataplane::new());
        let stop_rx = Arc::new(AtomicBool::new(false));
        let rx_thread = {
            let dataplane = Arc::clone(&dataplane);
            let stop = Arc::clone(&stop_rx);
            std::thread::Builder::new()
                .name("vxnet-rx".into())
                .spawn(move || receive_loop(rx, gro, &dataplane, &stop))?
        };
        Ok(Engine {
            config,
            dataplane,
            senders: Arc::new(Senders {
                sockets,
                port: config.port,
                gso: AtomicBool::new(gso),
            }),
            workers: Mutex::new(HashMap::new()),
            stop_rx,
            rx_thread: Some(rx_thread),
        })
    }

    pub fn dataplane(&self) -> &Arc<Dataplane<TapDevice>> {
        &self.dataplane
    }

    /// Whether TAPs should be opened with offloads (`Sandbox::open_tap`).
    pub fn offloads(&self) -> bool {
        self.config.offloads
    }

    /// Starts forwarding for a network whose frames come and go through `tap`. Replaces (and
    /// stops) a network already running with the same VNI.
    pub fn add_network(&self, config: NetworkConfig, tap: SyncDevice) -> io::Result<Arc<TapPort>> {
        self.remove_network(config.vni);
        // Non-blocking, so that a TAP thread can take what is queued without waiting; it
        // waits for the first frame with `recv_intr`, which polls.
        tap.set_nonblocking(true)?;
        let vnet_hdr = tap.tcp_gso();
        let port = Arc::new(Port {
            plane: NetworkPlane::new(config),
            device: TapDevice {
                device: tap,
                vnet_hdr,
            },
        });
        let stop = Arc::new(InterruptEvent::new()?);
        let thread = {
            let port = Arc::clone(&port);
            let senders = Arc::clone(&self.senders);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("vxnet-tap-{}", config.vni.get()))
                .spawn(move || tap_loop(&port, &senders, &stop))?
        };
        self.dataplane.insert(Arc::clone(&port));
        self.lock_workers().insert(
            config.vni,
            TapWorker {
                stop,
                thread: Some(thread),
            },
        );
        Ok(port)
    }

    /// Stops forwarding for `vni`; its TAP is closed once the threads have let go of it.
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

// ---- wire → TAP ----------------------------------------------------------------------------

/// Buffers for one `recvmmsg`: a slot, a source address, a control buffer and a message
/// header per message. With UDP GRO a message may hold several datagrams of one flow.
struct RxBatch {
    slot: usize,
    gro: bool,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    controls: Vec<[u64; RX_CONTROL / 8]>,
    msgs: Vec<libc::mmsghdr>,
}

impl RxBatch {
    fn new(gro: bool) -> RxBatch {
        let slot = if gro { RX_GRO_SLOT } else { RX_SLOT };
        // SAFETY: plain C structs, for which all-zero bytes are a valid value.
        let (addr, iov, msg) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        RxBatch {
            slot,
            gro,
            bufs: vec![0u8; RX_BATCH * slot],
            addrs: vec![addr; RX_BATCH],
            iovs: vec![iov; RX_BATCH],
            controls: vec![[0; RX_CONTROL / 8]; RX_BATCH],
            msgs: vec![msg; RX_BATCH],
        }
    }

    /// Waits (up to the socket's read timeout) for at least one datagram and takes those
    /// already queued behind it; returns how many.
    fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // The kernel overwrites lengths and flags, so every header is set afresh.
        for i in 0..RX_BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * self.slot..].as_mut_ptr().cast(),
                iov_len: self.slot,
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            if self.gro {
                hdr.msg_control = self.controls[i].as_mut_ptr().cast();
                hdr.msg_controllen = RX_CONTROL as _;
            } else {
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        loop {
            // SAFETY: every header points into buffers owned by `self`, which outlive the
            // call; `RX_BATCH` headers exist.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    self.msgs.as_mut_ptr(),
                    RX_BATCH as _,
                    libc::MSG_WAITFORONE as _,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// The `i`th message, its IPv4 source, and the size of the datagrams it holds (all but
    /// the last; the whole message when the kernel did not merge any); `None` if it was cut
    /// short (larger than a slot) or not from IPv4.
    fn message(&self, i: usize) -> Option<(Ipv4Addr, &[u8], usize)> {
        let msg = &self.msgs[i];
        if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0
            || i32::from(self.addrs[i].sin_family) != libc::AF_INET
        {
            return None;
        }
        let len = (msg.msg_len as usize).min(self.slot);
        let src = Ipv4Addr::from(u32::from_be(self.addrs[i].sin_addr.s_addr));
        let segment = self.gro_segment_size(i).unwrap_or(len).max(1);
        Some((src, &self.bufs[i * self.slot..i * self.slot + len], segment))
    }

    /// The UDP_GRO cmsg of the `i`th message: the size of the merged datagrams.
    fn gro_segment_size(&self, i: usize) -> Option<usize> {
        if !self.gro {
            return None;
        }
        let hdr = &self.msgs[i].msg_hdr;
        // SAFETY: `hdr` is the header recvmmsg filled, whose control buffer (ours, alive) holds
        // `msg_controllen` bytes of cmsgs; the CMSG_* macros walk only within them.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                    let size =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                    return usize::try_from(size).ok().filter(|&s| s > 0);
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
        None
    }
}

fn receive_loop(socket: UdpSocket, gro: bool, dataplane: &Dataplane<TapDevice>, stop: &AtomicBool) {
    let mut rx = RxBatch::new(gro);
    // Kept across batches for their buffers; by VNI, so that no TAP is held open by them.
    let mut coalescers: HashMap<Vni, Coalescer> = HashMap::new();
    // The networks with frames in the current batch; emptied after each batch.
    let mut batch: Vec<Arc<TapPort>> = Vec::new();
    let mut last_sweep = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let received = rx.recv(socket.as_raw_fd());
        let now = Instant::now();
        if now.duration_since(last_sweep) >= AGING_SWEEP {
            for port in dataplane.ports() {
                port.plane.fdb.expire(now);
            }
            coalescers.retain(|vni, _| dataplane.get(*vni).is_some());
            last_sweep = now;
        }
        let count = match received {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!(error = %e, "receive on the VXLAN socket failed");
                std::thread::sleep(RX_TICK);
                continue;
            }
        };
        for (src, datagram) in (0..count).flat_map(|i| {
            let message = rx.message(i);
            if message.is_none() {
                dataplane.drop_cut_short();
            }
            message
                .into_iter()
                .flat_map(|(src, bytes, segment)| bytes.chunks(segment).map(move |d| (src, d)))
        }) {
            let (port, frame) = match dataplane.handle_datagram(src, datagram, now) {
                WireAction::Deliver { port, frame } => (port, frame),
                WireAction::Drop(reason) => {
                    tracing::trace!(?reason, %src, "dropped datagram");
                    continue;
                }
            };
            let tap = &port.device;
            if tap.vnet_hdr {
                let vni = port.plane.config().vni;
                coalescers.entry(vni).or_default().push(frame);
                if !batch.iter().any(|p| p.plane.config().vni == vni) {
                    batch.push(Arc::clone(&port));
                }
            } else {
                match tap.device.send(frame) {
                    Ok(_) => port.plane.counters.count_rx(frame.len()),
                    Err(_) => port.plane.counters.drops.bump(DropReason::TapWriteError),
                }
            }
        }
        for port in batch.drain(..) {
            let Some(coalescer) = coalescers.get_mut(&port.plane.config().vni) else {
                continue;
            };
            for write in coalescer.finish() {
                let c = &port.plane.counters;
                match port.device.device.send(write.bytes) {
                    Ok(_) => {
                        c.rx_frames
                            .fetch_add(u64::from(write.frames), Ordering::Relaxed);
                        c.rx_bytes
                            .fetch_add(write.wire_bytes as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        for _ in 0..write.frames {
                            c.drops.bump(DropReason::TapWriteError);
                        }
                    }
                }
            }
        }
    }
}

// ---- TAP → wire ----------------------------------------------------------------------------

/// Datagrams waiting to be sent: which socket of the pool, where to, and which frames of the
/// TAP thread's [`Segments`] (all segments of one superframe, or one frame).
#[derive(Clone)]
struct TxEntry {
    socket: usize,
    vtep: Ipv4Addr,
    frames: Range<usize>,
}

/// One message of a `sendmmsg`: one datagram, or with `gso_size` a run of datagrams the
/// kernel cuts into `gso_size`-byte pieces (all of that size but the last).
#[derive(Clone)]
struct TxMessage {
    socket: usize,
    vtep: Ipv4Addr,
    frames: Range<usize>,
    gso_size: Option<u16>,
}

/// Most segments one UDP GSO send may carry (`UDP_MAX_SEGMENTS` of older kernels).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes of UDP payload one UDP GSO send may carry (IPv4 length minus headers).
const GSO_MAX_BYTES: usize = 65535 - 20 - 8;

/// Room for one `UDP_SEGMENT` control message, 8-byte aligned as `cmsghdr` wants.
type GsoControl = [u64; 4];

/// The datagrams of one round of TAP reads, and the scratch `sendmmsg` needs for them.
#[derive(Default)]
struct TxQueue {
    entries: Vec<TxEntry>,
    messages: Vec<TxMessage>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    controls: Vec<GsoControl>,
    msgs: Vec<libc::mmsghdr>,
}

impl TxQueue {
    fn push(&mut self, socket: usize, vtep: Ipv4Addr, frames: Range<usize>) {
        self.entries.push(TxEntry {
            socket,
            vtep,
            frames,
        });
    }

    fn queued(&self) -> usize {
        self.entries.iter().map(|e| e.frames.len()).sum()
    }

    /// Cuts the queue into messages: with UDP GSO, each superframe's segments become as few
    /// segmented sends as the kernel's limits allow; without, one message per datagram.
    fn plan(&mut self, frames: &Segments, gso: bool) {
        self.messages.clear();
        for e in &self.entries {
            let mut i = e.frames.start;
            while i < e.frames.end {
                let size = VXLAN_HEADER_LEN + frames.get(i).len();
                let mut end = i + 1;
                if gso {
                    let mut total = size;
                    while end < e.frames.end && end - i < GSO_MAX_SEGMENTS {
                        let next = VXLAN_HEADER_LEN + frames.get(end).len();
                        // Equal sizes, but for a shorter last one.
                        if next > size || total + next > GSO_MAX_BYTES {
                            break;
                        }
                        total += next;
                        end += 1;
                        if next < size {
                            break;
                        }
                    }
                }
                self.messages.push(TxMessage {
                    socket: e.socket,
                    vtep: e.vtep,
                    frames: i..end,
                    gso_size: (end - i > 1).then_some(size as u16),
                });
                i = end;
            }
        }
    }

    /// Sends every queued datagram — each already behind its VXLAN header in `frames` — in
    /// `sendmmsg` calls of consecutive messages that share a socket, counting each datagram.
    fn flush(&mut self, senders: &Senders, frames: &Segments, plane: &NetworkPlane) {
        if self.entries.is_empty() {
            return;
        }
        self.plan(frames, senders.gso());
        let n = self.messages.len();
        // All scratch is sized before any pointer into it is taken.
        // SAFETY: plain C structs, for which all-zero bytes are a valid value.
        let (addr, iov, msg) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        self.addrs.resize(n, addr);
        self.iovs.resize(n, iov);
        self.controls.resize(n, [0; 4]);
        self.msgs.resize(n, msg);
        for (i, m) in self.messages.iter().enumerate() {
            let bytes = frames.run(m.frames.clone());
            self.addrs[i] = sockaddr(m.vtep, senders.port);
            self.iovs[i] = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_flags = 0;
            match m.gso_size {
                Some(size) => set_gso_control(hdr, &mut self.controls[i], size),
                None => {
                    hdr.msg_control = std::ptr::null_mut();
                    hdr.msg_controllen = 0;
                }
            }
        }
        let mut i = 0;
        while i < n {
            let socket = self.messages[i].socket;
            let end = self.messages[i..]
                .iter()
                .position(|m| m.socket != socket)
                .map_or(n, |k| i + k);
            let fd = senders.sockets[socket].as_raw_fd();
            while i < end {
                // SAFETY: headers `i..end` point into `self` and `frames`, alive and unmoved
                // for the call.
                let sent =
                    unsafe { libc::sendmmsg(fd, self.msgs[i..].as_mut_ptr(), (end - i) as _, 0) };
                if sent > 0 {
                    for m in &self.messages[i..i + sent as usize] {
                        count_sent(plane, frames, m.frames.clone());
                    }
                    i += sent as usize;
                    continue;
                }
                let error = io::Error::last_os_error();
                if sent < 0 && error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first message was refused. A segmented one may be refused for being
                // segmented (EIO, EINVAL from a device or path without UDP GSO): send its
                // datagrams one by one, and segment no more.
                let m = &self.messages[i];
                if m.gso_size.is_some() {
                    senders.disable_gso(&error);
                    let to = SocketAddrV4::new(m.vtep, senders.port);
                    for f in m.frames.clone() {
                        match senders.sockets[socket].send_to(frames.run(f..f + 1), to) {
                            Ok(_) => count_sent(plane, frames, f..f + 1),
                            Err(_) => plane.counters.drops.bump(DropReason::SendError),
                        }
                    }
                } else {
                    plane.counters.drops.bump(DropReason::SendError);
                }
                i += 1;
            }
        }
        self.entries.clear();
    }
}

fn count_sent(plane: &NetworkPlane, frames: &Segments, sent: Range<usize>) {
    for f in sent {
        plane.counters.count_tx(frames.get(f).len());
    }
}

/// Points `hdr` at a `UDP_SEGMENT` control message in `control` asking for `size`-byte
/// datagrams.
fn set_gso_control(hdr: &mut libc::msghdr, control: &mut GsoControl, size: u16) {
    *control = [0; 4];
    hdr.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE of a u16 (24 bytes on 64-bit) fits the 32 bytes of `control`,
    // which is 8-byte aligned; `hdr.msg_control` points at it with that length.
    unsafe {
        hdr.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
    }
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    // SAFETY: all-zero is a valid sockaddr_in; the fields that matter are set below.
    let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr = libc::in_addr {
        s_addr: u32::from(ip).to_be(),
    };
    a
}

fn tap_loop(port: &TapPort, senders: &Senders, stop: &InterruptEvent) {
    let (tap, plane) = (&port.device, &port.plane);
    let vni = plane.config().vni;
    let read_len = if tap.vnet_hdr {
        MAX_SUPERFRAME
    } else {
        MAX_FRAME
    };
    let mut buf = vec![0u8; read_len];
    // Every frame sits behind its VXLAN header: a datagram, or a run of them, is then one
    // slice, to gather or to hand to UDP segmentation.
    let mut frames = Segments::with_headroom(&VxlanHeader { vni }.to_bytes());
    let mut tx = TxQueue::default();
    let mut reply = [0u8; 64];
    loop {
        let mut len = match tap.device.recv_intr(&mut buf, stop) {
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
        frames.clear();
        let now = Instant::now();
        loop {
            handle_tap_read(
                &buf[..len],
                tap,
                plane,
                senders,
                now,
                &mut frames,
                &mut tx,
                &mut reply,
            );
            if tx.queued() >= TX_BATCH {
                break;
            }
            // What the TAP already holds joins this batch; errors (WouldBlock above all)
            // end it, and a lasting one shows at the next blocking read.
            match tap.device.recv(&mut buf) {
                Ok(n) => len = n,
                Err(_) => break,
            }
        }
        tx.flush(senders, &frames, plane);
    }
}

/// One read from the TAP: split (if offloaded), decide once, queue or answer.
#[allow(clippy::too_many_arguments)]
fn handle_tap_read(
    read: &[u8],
    tap: &TapDevice,
    plane: &NetworkPlane,
    senders: &Senders,
    now: Instant,
    frames: &mut Segments,
    tx: &mut TxQueue,
    reply: &mut [u8],
) {
    let vnet = if tap.vnet_hdr {
        VirtioNetHdr::parse(read).map(|hdr| (hdr, &read[VNET_HDR_LEN..]))
    } else {
        Ok((VirtioNetHdr::default(), read))
    };
    let first = frames.len();
    // One parse of the read serves the split and the flow hash (segments share its addresses).
    let split = vnet.map_err(DropReason::from).and_then(|(hdr, frame)| {
        let headers = FrameHeaders::parse(frame);
        segment(&hdr, &headers, frames)
            .map(|n| (n, headers))
            .map_err(DropReason::from)
    });
    let (count, headers) = match split {
        Ok(split) => split,
        Err(reason) => {
            plane.counters.drops.bump(reason);
            return;
        }
    };
    // Every segment carries the read's addresses: one decision serves them all; the first
    // segment is the longest.
    let lead = frames.get(first);
    let segments = first..first + count;
    match plane.handle_tap_frame(&headers, lead.len(), count, now, reply) {
        TapAction::Unicast(vtep) => tx.push(senders.pick(flow_hash(&headers)), vtep, segments),
        TapAction::Flood(vteps) => {
            let socket = senders.pick(flow_hash(&headers));
            for &vtep in vteps.iter() {
                tx.push(socket, vtep, segments.clone());
            }
        }
        TapAction::Reply(n) => {
            if tap.write_frame(&reply[..n]).is_err() {
                plane.counters.drops.bump(DropReason::TapWriteError);
            }
        }
        // The core counted the drop, once per segment.
        TapAction::Local | TapAction::Drop(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::{GsoType, FLAG_NEEDS_CSUM};

    /// A TSO superframe of `payload` bytes cut at `mss`, split into `frames`.
    fn split_superframe(frames: &mut Segments, payload: usize, mss: u16) -> Range<usize> {
        let mut f = vec![0u8; 14 + 20 + 20 + payload];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
        f[23] = 6;
        f[46] = 0x50;
        f[47] = 0x10;
        let hdr = VirtioNetHdr {
            flags: FLAG_NEEDS_CSUM,
            gso_type: GsoType::TcpV4,
            gso_size: mss,
            csum_start: 34,
            csum_offset: 16,
            ..VirtioNetHdr::default()
        };
        let first = frames.len();
        let n = segment(&hdr, &FrameHeaders::parse(&f), frames).expect("splits");
        first..first + n
    }

    fn plan(gso: bool, entries: &[Range<usize>], frames: &Segments) -> Vec<(usize, Option<u16>)> {
        let mut tx = TxQueue::default();
        for (i, r) in entries.iter().enumerate() {
            tx.push(i % 2, Ipv4Addr::new(198, 18, 0, 2), r.clone());
        }
        tx.plan(frames, gso);
        tx.messages
            .iter()
            .map(|m| (m.frames.len(), m.gso_size))
            .collect()
    }

    #[test]
    fn gso_sends_stay_within_the_kernel_limits() {
        let mut frames = Segments::with_headroom(&[0; VXLAN_HEADER_LEN]);
        // 47 segments of 1398 + one of 500: 1460 + 8 bytes each, > 64 KB together.
        let big = split_superframe(&mut frames, 47 * 1398 + 500, 1398);
        assert_eq!(big.len(), 48);
        let planned = plan(true, std::slice::from_ref(&big), &frames);
        assert_eq!(planned, vec![(44, Some(1460)), (4, Some(1460))]);
        let datagram = VXLAN_HEADER_LEN + 54 + 1398;
        assert_eq!(datagram, 1460);
        assert!(44 * datagram <= GSO_MAX_BYTES);
        assert!(45 * datagram > GSO_MAX_BYTES);

        // Tiny segments: the segment count limit, not the byte limit.
        let tiny = split_superframe(&mut frames, 100 * 10, 10);
        let planned = plan(true, std::slice::from_ref(&tiny), &frames);
        assert_eq!(planned, vec![(64, Some(72)), (36, Some(72))]);
    }

    #[test]
    fn without_gso_or_alone_every_datagram_is_a_message() {
        let mut frames = Segments::with_headroom(&[0; VXLAN_HEADER_LEN]);
        let run = split_superframe(&mut frames, 3 * 1000, 1000);
        let single = split_superframe(&mut frames, 700, 1000);
        assert_eq!(
            plan(false, std::slice::from_ref(&run), &frames),
            vec![(1, None); 3]
        );
        assert_eq!(
            plan(true, &[run, single], &frames),
            vec![(3, Some(8 + 54 + 1000)), (1, None)]
        );
    }

    #[test]
    fn a_short_segment_ends_a_gso_run() {
        let mut frames = Segments::with_headroom(&[0; VXLAN_HEADER_LEN]);
        let a = split_superframe(&mut frames, 1500, 1000);
        let b = split_superframe(&mut frames, 1000, 1000);
        // Queued as one entry, the short end of `a` may not be followed by `b`.
        let both = a.start..b.end;
        let planned = plan(true, std::slice::from_ref(&both), &frames);
        assert_eq!(planned, vec![(2, Some(1062)), (1, None)]);
    }
}
