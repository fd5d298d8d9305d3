//! The drivers: threads that move bytes between TAP devices, the UDP socket and the forwarding
//! core, and carry out its decisions.
//!
//! - **Workers.** The engine runs [`EngineConfig::queues`] receive threads and, per network,
//!   as many TAP threads: worker `q` has its own socket in a `SO_REUSEPORT` group on
//!   `local:port` and reads queue `q` of every multi-queue TAP. The kernel spreads flows over
//!   the sockets by their outer addresses and ports (which a sender varies per inner flow) and
//!   over the TAP queues by the inner flow, so one flow's packets stay with one worker, in
//!   order, while several flows use several cores. One queue where the kernel lacks either
//!   feature (before 3.9, or `--kernel` below it).
//! - A receive thread takes datagrams in `recvmmsg` batches, decapsulates them and writes each
//!   network's frames into its TAP queue — through a [`Coalescer`](crate::core::offload::Coalescer)
//!   when the TAP has offloads, so that a run of TCP segments becomes one write. With offloads
//!   it also enables UDP GRO on its socket (Linux 5.0+, detected at start): the kernel then
//!   hands over up to 64 KB of one flow's datagrams per message, split here at the size its
//!   cmsg gives. Worker 0 also sweeps aged FDB entries.
//! - A TAP thread reads its queue, splits offloaded superframes into wire frames
//!   ([`crate::core::offload::segment`]), asks the core once per read (all segments of a
//!   superframe share their headers, so they share the decision), and sends the datagrams with
//!   `sendmmsg`: each is gathered from the VXLAN header and the frame, without a copy. It takes
//!   what the queue already holds, up to a batch, before sending.
//! - Run to completion: a receive thread, having written into a TAP queue, forwards what that
//!   write produced (replies, ACKs) in the same pass rather than waiting for the queue's thread
//!   to wake; the kernel queues a flow's answers where the flow was written. Whoever reads a
//!   queue holds its reader lock, so one flow's frames leave in order.
//! - Socket buffers are set past `net.core.[rw]mem_max` (`SO_*BUFFORCE`), TAP queues to
//!   [`crate::host::sandbox::TAP_QUEUE_LEN`] frames: bursts wait in the kernel, not in drops.
//! - Datagrams leave from a small pool of sockets bound to distinct ephemeral ports, picked by
//!   the inner-flow hash: the outer UDP source port then varies per flow, as a kernel vxlan
//!   sender's does, so the receiver's RSS spreads flows.
//! - Whether a TAP has offloads is read from the device (`SyncDevice::tcp_gso`);
//!   [`EngineConfig::offloads`] is what the daemon asks `Sandbox::open_tap` for.
//! - Counters count wire frames: a superframe read from the TAP counts as the frames it was
//!   split into, a coalesced write as the datagrams it merged.
//! - Encrypted networks ([`crate::core::seal`]): the TAP threads seal each datagram in place
//!   after the split, the receive thread opens each before the coalescer; a plain network
//!   pays one branch per read and per datagram for this, nothing per byte.
//! - Hot paths never log; they count ([`crate::core::counters`]).
//!
//! Threads stop when [`Engine::remove_network`] or [`Engine::shutdown`] (or drop) is called;
//! both join the threads they stop. A thread that stops by itself — a TAP that cannot be read
//! any more, a panic — is reported once on the channel of [`Engine::take_failures`]; the
//! engine does not restart it.
//!
//! The receive side is in `rx`, the send side in `tx`; this module starts and stops them.

mod rx;
mod tx;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tun_rs::{InterruptEvent, SyncDevice};

use self::rx::{enable_udp_gro, receive_loop, Receiver};
use self::tx::{tap_loop, udp_gso_supported, Senders};
use crate::core::counters::SyscallStats;
use crate::core::forward::{Dataplane, NetworkConfig, NetworkPlane, Port};
use crate::core::offload::VNET_HDR_LEN;
use crate::kernel::{self, KernelVersion};
use crate::wire::Vni;

/// Large enough for any frame a TAP without offloads hands us (MTU ≤ 9000).
const MAX_FRAME: usize = 9216;
const SOCKET_BUFFER: usize = 4 << 20;
/// How often the receive thread looks up from the socket to check for shutdown and aging.
const RX_TICK: Duration = Duration::from_millis(200);

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
    /// Use no kernel feature newer than this Linux version (`--kernel`): at 4.17 or older no
    /// UDP GSO, before 5.0 no UDP GRO. `None`: whatever the running kernel offers. Features
    /// that are allowed are still detected at start ([`crate::kernel`]).
    pub kernel: Option<KernelVersion>,
    /// Forwarding workers: receive sockets in the `SO_REUSEPORT` group, and queues (each with
    /// its thread) per TAP. At least 1; cut to 1 where `kernel` forbids either feature.
    pub queues: usize,
    /// After the last packet, the forwarding threads keep polling (without sleeping) this
    /// long before they block again: a wakeup less per packet while traffic flows, for CPU.
    /// Zero: never.
    pub busy_poll: Duration,
}

impl EngineConfig {
    pub fn new(local: Ipv4Addr, port: u16) -> EngineConfig {
        EngineConfig {
            local,
            port,
            send_sockets: 8,
            offloads: true,
            kernel: None,
            queues: EngineConfig::one_per_core(),
            busy_poll: Duration::ZERO,
        }
    }

    /// The default worker count: one per core this process may run on, at most
    /// [`MAX_QUEUES`].
    pub fn one_per_core() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_QUEUES))
    }

    /// The workers the kernel limit allows: several need both a multi-queue TAP and
    /// `SO_REUSEPORT`.
    fn allowed_queues(&self) -> usize {
        let several = kernel::allows(self.kernel, kernel::MULTI_QUEUE_TAP)
            && kernel::allows(self.kernel, kernel::REUSEPORT);
        if several {
            self.queues.clamp(1, MAX_QUEUES)
        } else {
            1
        }
    }
}

/// Most workers the engine runs (`--queues`).
pub const MAX_QUEUES: usize = 16;

/// How the engine wants a network's TAP opened (`Sandbox::open_tap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapShape {
    /// Vnet header, TSO and checksum offload, where the kernel agrees.
    pub offloads: bool,
    /// `IFF_MULTI_QUEUE` (Linux 3.8+).
    pub multi_queue: bool,
    /// Files to attach: one per worker (1 without `multi_queue`).
    pub queues: usize,
}

/// A forwarding thread that stopped by itself: its name, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("forwarding thread {thread} stopped: {error}")]
pub struct ThreadFailure {
    pub thread: String,
    pub error: String,
}

/// Starts thread `name` running `body`; if it ends with an error or a panic, that is sent on
/// `failures` (a thread told to stop returns `Ok`).
fn spawn_forwarding(
    name: String,
    failures: &mpsc::Sender<ThreadFailure>,
    body: impl FnOnce() -> io::Result<()> + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    let failures = failures.clone();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let error = match std::panic::catch_unwind(AssertUnwindSafe(body)) {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("no message");
                    format!("panicked: {message}")
                }
            };
            let _ = failures.send(ThreadFailure {
                thread: name,
                error,
            });
        })
}

/// A network's TAP device: its queues, one per worker; `vnet_hdr` when it was opened with
/// offloads.
pub struct TapDevice {
    queues: Vec<TapQueue>,
    vnet_hdr: bool,
}

/// A network as the engine runs it: its plane and its TAP.
pub type TapPort = Port<TapDevice>;

impl TapDevice {
    /// The queue worker `worker` reads and writes: its own, or one shared by several workers
    /// when the TAP has fewer queues than the engine has workers.
    fn queue(&self, worker: usize) -> &TapQueue {
        &self.queues[worker % self.queues.len()]
    }

    /// How many queues the TAP has: its TAP threads.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }
}

/// One file of a (multi-queue) TAP.
struct TapQueue {
    device: SyncDevice,
    /// Held by whichever thread reads the queue (its own thread, or a receive thread
    /// forwarding what its write produced): frames of a flow leave in the order they came.
    reader: Mutex<()>,
}

impl TapQueue {
    fn lock_reader(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reader lock if nobody holds it.
    fn try_lock_reader(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        match self.reader.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Writes one plain frame (behind a zero vnet header when the TAP has one).
    fn write_frame(&self, frame: &[u8], vnet_hdr: bool) -> io::Result<()> {
        if vnet_hdr {
            let hdr = [0u8; VNET_HDR_LEN];
            self.device
                .send_vectored(&[io::IoSlice::new(&hdr), io::IoSlice::new(frame)])
                .map(|_| ())
        } else {
            self.device.send(frame).map(|_| ())
        }
    }
}

/// The wall-clock time in nanoseconds since 1970: where an encrypted network's nonce counter
/// starts ([`crate::core::seal`]), above any a previous run of this daemon used.
fn wall_clock_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A network's TAP threads, one per queue, each with the event that stops it.
struct TapWorkers(Vec<(Arc<InterruptEvent>, JoinHandle<()>)>);

impl TapWorkers {
    fn stop(self) {
        for (stop, _) in &self.0 {
            let _ = stop.trigger();
        }
        for (_, thread) in self.0 {
            let _ = thread.join();
        }
    }
}

pub struct Engine {
    config: EngineConfig,
    dataplane: Arc<Dataplane<TapDevice>>,
    senders: Arc<Senders>,
    workers: Mutex<HashMap<Vni, TapWorkers>>,
    stop_rx: Arc<AtomicBool>,
    rx_threads: Vec<JoinHandle<()>>,
    /// The receive sockets again (duplicated descriptors), to wake their threads at stop.
    rx_wakers: Vec<UdpSocket>,
    failures: mpsc::Sender<ThreadFailure>,
    failed: Option<mpsc::Receiver<ThreadFailure>>,
}

/// A UDP socket bound on `addr`; with `reuse_port`, one of a `SO_REUSEPORT` group there.
fn bound_udp(addr: SocketAddrV4, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Bigger buffers absorb bursts between two wakeups of our thread.
    set_buffer(&socket, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
    set_buffer(&socket, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
    socket.bind(&SocketAddr::V4(addr).into())?;
    Ok(socket.into())
}

/// Sets a socket buffer to [`SOCKET_BUFFER`]: with `force` (2.6.14+, needs CAP_NET_ADMIN,
/// which the daemon has) past `net.core.[rw]mem_max`, which would otherwise cap it silently
/// (at 208 KiB on a default system); else with the plain option, capped. Best effort.
fn set_buffer(socket: &Socket, force: libc::c_int, plain: libc::c_int) {
    let size = SOCKET_BUFFER as libc::c_int;
    for option in [force, plain] {
        if set_int_option(socket.as_raw_fd(), libc::SOL_SOCKET, option, size).is_ok() {
            return;
        }
    }
}

/// `setsockopt` of an `int`-valued option: the one form every socket option the engine sets
/// takes (buffers, UDP GRO, zero checksums).
fn set_int_option(
    fd: std::os::fd::RawFd,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the caller's live socket, and a c_int option value with its length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The receive sockets, one per worker, all bound on `local:port`: a `SO_REUSEPORT` group
/// when there are several. Where the kernel refuses the option (before 3.9), one socket, and
/// `config.queues` becomes 1.
fn receive_group(config: &mut EngineConfig) -> io::Result<Vec<UdpSocket>> {
    config.queues = config.allowed_queues();
    // Bound alone first: a port that is held (by another daemon on this address, say) is
    // refused as it is with one worker, and a second vxnet daemon, which does the same, is
    // refused by our group (which would take in any socket of the same user that asked to
    // join). Its port is the group's (port 0 in tests: one the kernel picks).
    let alone = bound_udp(SocketAddrV4::new(config.local, config.port), false)?;
    if config.queues == 1 {
        alone.set_read_timeout(Some(RX_TICK))?;
        return Ok(vec![alone]);
    }
    let addr = SocketAddrV4::new(config.local, alone.local_addr()?.port());
    drop(alone);
    let mut group = Vec::with_capacity(config.queues);
    match bound_udp(addr, true) {
        Ok(first) => group.push(first),
        Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {
            tracing::info!("the kernel has no SO_REUSEPORT; one forwarding worker");
            config.queues = 1;
            group.push(bound_udp(addr, false)?);
        }
        Err(e) => return Err(e),
    }
    while group.len() < config.queues {
        group.push(bound_udp(addr, true)?);
    }
    for socket in &group {
        socket.set_read_timeout(Some(RX_TICK))?;
    }
    Ok(group)
}

impl Engine {
    /// Binds the sockets and starts the receive threads.
    pub fn start(mut config: EngineConfig) -> io::Result<Engine> {
        let receivers = receive_group(&mut config)?;
        let sockets = (0..config.send_sockets.max(1))
            .map(|_| bound_udp(SocketAddrV4::new(config.local, 0), false))
            .collect::<io::Result<Vec<_>>>()?;
        let gso = config.offloads
            && kernel::allows(config.kernel, kernel::UDP_SEGMENT)
            && udp_gso_supported(&sockets[0]);
        // UDP GRO (5.0+): the kernel merges consecutive datagrams of a flow into one read. Off
        // without offloads, above the `kernel` limit, on kernels whose UDP GRO is not trusted
        // (before 5.12, see `kernel::udp_gro_trusted`), and where the kernel does not know the
        // option.
        let gro = config.offloads
            && kernel::allows(config.kernel, kernel::UDP_GRO)
            && kernel::udp_gro_trusted()
            && receivers.iter().all(enable_udp_gro);
        // UDP superframes into TAPs (6.2+): a flow's datagrams of one size become one write.
        // By version, as nothing can be asked without sending one; a kernel that refuses one
        // anyway turns it off (`rx`).
        let tap_udp_gso = config.offloads
            && kernel::allows(config.kernel, kernel::TAP_UDP_SEGMENTATION)
            && KernelVersion::running().is_some_and(|k| k >= kernel::TAP_UDP_SEGMENTATION);
        tracing::info!(
            tap_offloads_asked = config.offloads,
            udp_gso = gso,
            udp_gro = gro,
            tap_udp_gso,
            queues = config.queues,
            kernel_limit = %config.kernel.map_or_else(|| "none".to_string(), |k| k.to_string()),
            "dataplane offloads"
        );
        let dataplane = Arc::new(Dataplane::new());
        let stop_rx = Arc::new(AtomicBool::new(false));
        let (failures, failed) = mpsc::channel();
        let senders = Arc::new(Senders::new(sockets, config.port, gso));
        let tap_udp_gso = Arc::new(AtomicBool::new(tap_udp_gso));
        let mut rx_threads = Vec::with_capacity(receivers.len());
        let rx_wakers = receivers
            .iter()
            .map(UdpSocket::try_clone)
            .collect::<io::Result<Vec<_>>>()?;
        for (worker, socket) in receivers.into_iter().enumerate() {
            let receiver = Receiver {
                worker,
                gro,
                tap_udp_gso: Arc::clone(&tap_udp_gso),
                busy_poll: config.busy_poll,
            };
            let dataplane = Arc::clone(&dataplane);
            let senders = Arc::clone(&senders);
            let stop = Arc::clone(&stop_rx);
            let thread = spawn_forwarding(format!("vxnet-rx-{worker}"), &failures, move || {
                receive_loop(socket, &receiver, &dataplane, &senders, &stop);
                Ok(())
            });
            match thread {
                Ok(thread) => rx_threads.push(thread),
                Err(e) => {
                    stop_rx.store(true, Ordering::Relaxed);
                    for t in rx_threads {
                        let _ = t.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(Engine {
            config,
            dataplane,
            senders,
            workers: Mutex::new(HashMap::new()),
            stop_rx,
            rx_threads,
            rx_wakers,
            failures,
            failed: Some(failed),
        })
    }

    /// The channel on which threads that stopped by themselves are reported (see the module
    /// docs); `None` after the first call. It closes once the engine is gone.
    pub fn take_failures(&mut self) -> Option<mpsc::Receiver<ThreadFailure>> {
        self.failed.take()
    }

    pub fn dataplane(&self) -> &Arc<Dataplane<TapDevice>> {
        &self.dataplane
    }

    /// The forwarding threads' system calls so far (every network together).
    pub fn syscalls(&self) -> SyscallStats {
        self.senders.syscalls.snapshot()
    }

    /// This host's VTEP address.
    pub fn local(&self) -> Ipv4Addr {
        self.config.local
    }

    /// How TAPs are to be opened (`Sandbox::open_tap`): with offloads or not, and one queue
    /// per worker where the kernel limit allows multi-queue TAPs.
    pub fn tap_shape(&self) -> TapShape {
        TapShape {
            offloads: self.config.offloads,
            multi_queue: kernel::allows(self.config.kernel, kernel::MULTI_QUEUE_TAP),
            queues: self.config.queues,
        }
    }

    /// Starts forwarding for a network whose frames come and go through `queues`, the files
    /// of one TAP (at least one): a thread each. Replaces (and stops) a network already
    /// running with the same VNI.
    pub fn add_network(
        &self,
        config: NetworkConfig,
        queues: Vec<SyncDevice>,
    ) -> io::Result<Arc<TapPort>> {
        self.remove_network(config.vni);
        let Some(first) = queues.first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a TAP without a queue",
            ));
        };
        let vnet_hdr = first.tcp_gso();
        // Non-blocking, so that a TAP thread can take what is queued without waiting; it
        // waits for the first frame with `wait_readable_intr`, which polls.
        for queue in &queues {
            queue.set_nonblocking(true)?;
        }
        let port = Arc::new(Port {
            plane: NetworkPlane::new(config, wall_clock_nanos()),
            device: TapDevice {
                queues: queues
                    .into_iter()
                    .map(|device| TapQueue {
                        device,
                        reader: Mutex::new(()),
                    })
                    .collect(),
                vnet_hdr,
            },
        });
        let mut workers = TapWorkers(Vec::new());
        for worker in 0..port.device.queue_count() {
            let started = InterruptEvent::new().and_then(|stop| {
                let stop = Arc::new(stop);
                let port = Arc::clone(&port);
                let senders = Arc::clone(&self.senders);
                let busy_poll = self.config.busy_poll;
                let name = format!("vxnet-tap-{}-{worker}", config.vni.get());
                let thread = {
                    let stop = Arc::clone(&stop);
                    spawn_forwarding(name, &self.failures, move || {
                        tap_loop(&port, worker, &senders, &stop, busy_poll)
                    })?
                };
                Ok((stop, thread))
            });
            match started {
                Ok(started) => workers.0.push(started),
                Err(e) => {
                    workers.stop();
                    return Err(e);
                }
            }
        }
        self.dataplane.insert(Arc::clone(&port));
        self.lock_workers().insert(config.vni, workers);
        Ok(port)
    }

    /// Stops forwarding for `vni`; its TAP is closed once the threads have let go of it.
    pub fn remove_network(&self, vni: Vni) {
        self.dataplane.remove(vni);
        let workers = self.lock_workers().remove(&vni);
        if let Some(w) = workers {
            w.stop();
        }
    }

    fn lock_workers(&self) -> std::sync::MutexGuard<'_, HashMap<Vni, TapWorkers>> {
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
        // A receive thread sleeps in `recvmmsg` until a datagram or its read timeout comes;
        // shutting its socket's receive side wakes it at once (and every later call returns
        // nothing), so a stopping daemon does not wait out the timeout on a quiet socket.
        for socket in &self.rx_wakers {
            let _ = socket2::SockRef::from(socket).shutdown(std::net::Shutdown::Read);
        }
        for t in self.rx_threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests;
